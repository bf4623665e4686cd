"""The live feed: a hub's state as seen through its dashboard socket, in plain Python.

A :class:`Feed` is fed decoded dashboard frames (``snapshot``, ``events``,
``execution_event``, ``dropped``, ``command_result``) through :meth:`Feed.apply` and keeps:

- ``agents`` (by id), ``queue`` counts, ``totals`` and ``routing_stats`` from the last
  snapshot, kept current by the deltas that follow it;
- ``tasks``: the summaries of tasks seen in deltas (the newest ``max_tasks``);
- ``completions``: COMPLETION records (snapshot's ``recent_completions`` plus completion
  deltas), newest last, at most ``max_completions``;
- ``streams``: per task, a bounded deque of its execution events (``events_per_task``), for
  at most ``max_streams`` tasks and ``max_events`` events in all (the least recently active
  task is forgotten first), plus ``timeline``, a bounded deque of recent events of all tasks
  in arrival order. Memory is bounded by these limits, never by how many events arrive.

It owns no socket and imports no widget: :class:`agentcom.client.FeedStream` pours a
socket into it, widgets and :class:`LiveExecutions` register listeners. Listeners are
called synchronously as ``listener(kind, data)`` and must be cheap (mark dirty, schedule
a render); a listener that raises is removed and logged so one bad view never stalls the
feed. Kinds: ``snapshot``, ``agent``, ``agent_left``, ``task``, ``progress``,
``completion``, ``queue``, ``totals``, ``execution`` (data: an :class:`ExecEvent`),
``dropped``, ``command_result``, ``error``, ``connection``.

Queue counts and money totals are exact at each snapshot and at each ``stats`` delta (the
hub sends one after task changes). Should a hub send no ``stats``, counts move with task
deltas when the task's previous status is known, totals with completions; a delta naming a
task whose previous status the feed never saw sets ``needs_snapshot`` and the stream asks
for a fresh snapshot (at most once a second), so counts never drift for long.
"""

from __future__ import annotations

import collections
import logging
from typing import Any, Callable, Iterator, NamedTuple

log = logging.getLogger(__name__)

Listener = Callable[[str, Any], None]

QUEUE_STATES = ("queued", "assigned", "working", "completed", "failed", "dead_letter", "cancelled")
FINAL_STATES = frozenset(("completed", "failed", "dead_letter", "cancelled"))


class ExecEvent(NamedTuple):
    """One execution event as the feed keeps it (a tuple: 100,000 of them stay small)."""

    task_id: str
    generation: int
    event_type: str
    text: str
    seq: int
    timestamp: int
    tokens_so_far: int | None
    model: str | None
    agent_id: str | None


class StreamInfo:
    """What the feed knows about one task's output stream."""

    __slots__ = ("task_id", "agent_id", "model", "tokens_so_far", "generation", "last_seq", "gaps", "count", "events")

    def __init__(self, task_id: str, maxlen: int) -> None:
        self.task_id = task_id
        self.agent_id: str | None = None
        self.model: str | None = None
        self.tokens_so_far: int | None = None
        self.generation = -1
        self.last_seq = -1
        self.gaps = 0          # seq jumps seen (events the hub dropped for us, or lost)
        self.count = 0         # events received, including those the bounded deque let go
        self.events: collections.deque[ExecEvent] = collections.deque(maxlen=maxlen)


class Feed:
    """Live hub state built from dashboard frames; see the module docstring."""

    def __init__(self, *, events_per_task: int = 2_000, max_streams: int = 200, max_events: int = 50_000,
                 timeline: int = 2_000, max_tasks: int = 10_000, max_completions: int = 10_000) -> None:
        for name, value in (("events_per_task", events_per_task), ("max_streams", max_streams),
                            ("max_events", max_events), ("timeline", timeline), ("max_tasks", max_tasks),
                            ("max_completions", max_completions)):
            if value < 1:
                raise ValueError(f"{name} must be at least 1, got {value}")
        self.events_per_task = events_per_task
        self.max_streams = max_streams
        self.max_events = max_events
        self.buffered = 0                         # events held in all streams' deques
        self.max_tasks = max_tasks
        self.max_completions = max_completions
        self.agents: dict[str, dict[str, Any]] = {}
        self.queue: dict[str, int] = {s: 0 for s in QUEUE_STATES}
        self.totals: dict[str, Any] = {}
        self.routing_stats: dict[str, Any] = {}
        self.tasks: collections.OrderedDict[str, dict[str, Any]] = collections.OrderedDict()
        self.completions: collections.OrderedDict[str, dict[str, Any]] = collections.OrderedDict()
        self.streams: collections.OrderedDict[str, StreamInfo] = collections.OrderedDict()
        self.timeline: collections.deque[ExecEvent] = collections.deque(maxlen=timeline)
        self.snapshot_at: int | None = None      # hub time (ms) of the last snapshot
        self.snapshots = 0
        self.events_received = 0
        self.dropped = 0                          # execution events the hub dropped for this dashboard
        self.needs_snapshot = False
        self.connection = "idle"                  # idle | connecting | open | reconnecting | closed | unauthorized
        self.last_error: str | None = None
        self._status: dict[str, str] = {}         # task_id -> last status seen (for queue counts)
        self._hub_stats = False                   # the hub sends ``stats`` deltas: no inference needed
        self._listeners: list[Listener] = []

    # ------------------------------------------------------------------ listeners

    def add_listener(self, listener: Listener) -> Callable[[], None]:
        """Call ``listener(kind, data)`` on every change; returns a function that removes it."""
        self._listeners.append(listener)

        def remove() -> None:
            if listener in self._listeners:
                self._listeners.remove(listener)

        return remove

    def _emit(self, kind: str, data: Any) -> None:
        for listener in tuple(self._listeners):
            try:
                listener(kind, data)
            except Exception:  # noqa: BLE001 - one broken view must not stop the feed
                log.exception("feed listener %r failed on %s; removing it", listener, kind)
                if listener in self._listeners:
                    self._listeners.remove(listener)

    # ------------------------------------------------------------------ input

    def apply(self, frame: dict[str, Any]) -> None:
        """Apply one decoded dashboard frame. Unknown frame types are ignored (newer hubs)."""
        kind = frame.get("type")
        if kind == "execution_event":
            self._execution(frame)
        elif kind == "events":
            data = [d for d in frame.get("data") or () if isinstance(d, dict)]
            if not self._hub_stats and any(d.get("kind") == "stats" for d in data):
                self._hub_stats = True          # exact counts follow: never infer them, never resync for them
                self.needs_snapshot = False
            for delta in data:
                self._delta(delta)
        elif kind == "snapshot":
            self._snapshot(frame.get("data") or {})
        elif kind == "dropped":
            count = int(frame.get("count") or 0)
            self.dropped += count
            self._emit("dropped", count)
        elif kind == "command_result":
            self._emit("command_result", frame)
        elif kind == "error":
            self.last_error = f"{frame.get('error')}: {frame.get('message')}"
            self._emit("error", frame)

    def set_connection(self, state: str, error: str | None = None) -> None:
        """Record the socket's state (called by the stream)."""
        self.connection = state
        if error is not None:
            self.last_error = error
        self._emit("connection", state)

    # ------------------------------------------------------------------ snapshot and deltas

    def _snapshot(self, data: dict[str, Any]) -> None:
        self.snapshots += 1
        self.snapshot_at = data.get("timestamp")
        self.agents = {a["agent_id"]: a for a in data.get("agents") or () if isinstance(a, dict) and "agent_id" in a}
        queue = data.get("queue") or {}
        self.queue = {s: int(queue.get(s, 0) or 0) for s in (*QUEUE_STATES, *queue)}
        self.totals = dict(data.get("totals") or {})
        self.routing_stats = dict(data.get("routing_stats") or {})
        for completion in data.get("recent_completions") or ():
            if isinstance(completion, dict) and "task_id" in completion:
                self._remember_completion(completion)
        for task in data.get("tasks") or ():
            if isinstance(task, dict) and isinstance(task.get("task_id"), str):
                self._remember_task(task)
                if isinstance(task.get("status"), str):
                    self._status[task["task_id"]] = task["status"]
        self.needs_snapshot = False
        self._emit("snapshot", data)

    def _delta(self, delta: dict[str, Any]) -> None:
        kind = delta.get("kind") or delta.get("type")
        if kind == "task" and isinstance(delta.get("task"), dict):
            self._task(delta["task"])
        elif kind == "completion" and isinstance(delta.get("completion"), dict):
            self._completion(delta["completion"])
        elif kind == "agent" and isinstance(delta.get("agent"), dict):
            agent = delta["agent"]
            self.agents[agent["agent_id"]] = agent
            self._emit("agent", agent)
        elif kind == "agent_left":
            self.agents.pop(delta.get("agent_id"), None)  # type: ignore[arg-type]
            self._emit("agent_left", delta.get("agent_id"))
        elif kind == "progress":
            task = self.tasks.get(delta.get("task_id"))  # type: ignore[arg-type]
            if task is not None:
                task["progress"] = delta.get("progress")
            self._emit("progress", delta)
        elif kind in ("execution_event", "execution"):
            event = delta.get("event")
            self._execution(event if isinstance(event, dict) else delta)
        elif kind == "stats":
            self._hub_stats = True
            if isinstance(delta.get("queue"), dict):
                self.queue.update({k: int(v or 0) for k, v in delta["queue"].items()})
                self._emit("queue", self.queue)
            if isinstance(delta.get("totals"), dict):
                self.totals.update(delta["totals"])
                self._emit("totals", self.totals)

    def _task(self, task: dict[str, Any]) -> None:
        task_id = task.get("task_id")
        if not isinstance(task_id, str):
            return
        status = task.get("status")
        old = self._status.get(task_id)
        if isinstance(status, str) and status != old:
            if self._hub_stats:
                pass                          # the stats delta that follows carries exact counts
            elif old is not None:
                self.queue[old] = max(0, self.queue.get(old, 0) - 1)
                self.queue[status] = self.queue.get(status, 0) + 1
            elif status == "queued" and not task.get("generation") and not task.get("attempts"):
                self.queue["queued"] = self.queue.get("queued", 0) + 1   # a fresh submission
            else:
                self.needs_snapshot = True    # we never saw where it came from
            self._status[task_id] = status
            if len(self._status) > 4 * self.max_tasks:
                for stale in list(self._status)[: len(self._status) - 2 * self.max_tasks]:
                    del self._status[stale]
        self._remember_task(task)
        self._emit("task", task)

    def _remember_task(self, task: dict[str, Any]) -> None:
        task_id = task["task_id"]
        self.tasks[task_id] = task
        self.tasks.move_to_end(task_id)
        if len(self.tasks) > self.max_tasks:
            self.tasks.popitem(last=False)

    def _completion(self, completion: dict[str, Any]) -> None:
        if "task_id" not in completion:
            return
        fresh = completion["task_id"] not in self.completions
        self._remember_completion(completion)
        meta = completion.get("execution_meta") or {}
        if fresh and meta and self.totals and not self._hub_stats:
            cost, eq = meta.get("estimated_cost_usd"), meta.get("equivalent_claude_cost_usd")
            t = self.totals
            t["cost_usd"] = (t.get("cost_usd") or 0) + (cost or 0)
            t["equivalent_claude_cost_usd"] = (t.get("equivalent_claude_cost_usd") or 0) + (eq or 0)
            if cost is not None and eq is not None:
                t["savings_usd"] = (t.get("savings_usd") or 0) + eq - cost
            t["tokens_in"] = (t.get("tokens_in") or 0) + (meta.get("tokens_in") or 0)
            t["tokens_out"] = (t.get("tokens_out") or 0) + (meta.get("tokens_out") or 0)
        self._emit("completion", completion)

    def _remember_completion(self, completion: dict[str, Any]) -> None:
        task_id = completion["task_id"]
        self.completions[task_id] = completion
        self.completions.move_to_end(task_id)
        if len(self.completions) > self.max_completions:
            self.completions.popitem(last=False)

    def _execution(self, frame: dict[str, Any]) -> None:
        task_id = frame.get("task_id")
        if not isinstance(task_id, str):
            return
        self.events_received += 1
        stream = self.streams.get(task_id)
        if stream is None:
            stream = self.streams[task_id] = StreamInfo(task_id, self.events_per_task)
            if len(self.streams) > self.max_streams:
                self.buffered -= len(self.streams.popitem(last=False)[1].events)
        elif next(reversed(self.streams)) != task_id:
            self.streams.move_to_end(task_id)
        generation = frame.get("generation") or 0
        seq = frame.get("seq")
        if seq is None:
            seq = stream.last_seq + 1
        if generation != stream.generation:
            stream.generation = generation
        elif seq != stream.last_seq + 1 and seq > stream.last_seq:
            stream.gaps += 1
        stream.last_seq = seq
        stream.count += 1
        if frame.get("agent_id"):
            stream.agent_id = frame["agent_id"]
        if frame.get("model"):
            stream.model = frame["model"]
        if frame.get("tokens_so_far") is not None:
            stream.tokens_so_far = frame["tokens_so_far"]
        event = ExecEvent(task_id, generation, frame.get("event_type") or "stdout", frame.get("text") or "", seq,
                          frame.get("timestamp") or 0, frame.get("tokens_so_far"), frame.get("model"),
                          frame.get("agent_id"))
        if len(stream.events) < self.events_per_task:
            self.buffered += 1
            if self.buffered > self.max_events:
                self._evict(keep=task_id)
        stream.events.append(event)
        self.timeline.append(event)
        self._emit("execution", event)

    def _evict(self, keep: str) -> None:
        """Forget the least recently active tasks' output until ``max_events`` holds again."""
        for task_id in list(self.streams):
            if self.buffered <= self.max_events:
                return
            if task_id != keep:
                self.buffered -= len(self.streams.pop(task_id).events)

    # ------------------------------------------------------------------ views

    def events(self, task_id: str | None = None) -> Iterator[ExecEvent]:
        """Buffered events of one task (oldest first), or of all tasks in arrival order."""
        if task_id is None:
            return iter(self.timeline)
        stream = self.streams.get(task_id)
        return iter(stream.events) if stream is not None else iter(())

    def describe(self, task_id: str) -> str:
        """A task's description if the feed saw it (task delta or completion), else ''."""
        task = self.tasks.get(task_id) or self.completions.get(task_id) or {}
        return str(task.get("description") or "")

    def __repr__(self) -> str:
        return (f"<Feed {self.connection}: {len(self.agents)} agents, queue {self.queue}, "
                f"{len(self.completions)} completions, {self.events_received} events, {self.dropped} dropped>")


__all__ = ["ExecEvent", "FINAL_STATES", "Feed", "Listener", "QUEUE_STATES", "StreamInfo"]
