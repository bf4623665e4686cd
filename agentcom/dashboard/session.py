"""Dashboard connections without a socket: the fan-out from the hub and one session per dashboard.

``DashboardFanout`` is the hub's single pubsub listener for all dashboards. It turns each
message into its wire form once (an execution event is encoded to JSON bytes once, not
once per dashboard). An execution event is appended to one batch shared by all dashboards,
whatever their number; the batch is handed to every session's buffer in one step (a C-level
``deque.extend``) before any session flushes, and at the latest every ``HAND_OVER_ITEMS``
events or ``HAND_OVER_BYTES``. A lifecycle delta goes to every session at once. That is all
the hub's path ever does for a dashboard: appends to bounded buffers, never a socket write.

``DashboardSession`` is one connection's state, fed raw text by a transport and writing
text frames through a ``write`` callable that returns the transport's write future (or
None). ``flush`` runs every ``batch_interval_ms`` and whenever a command is answered. It
writes only when that connection's previous write has completed, so a stalled client just
keeps its own buffer full, without ever delaying the hub or any other client. The buffer is bounded:
``dashboard_buffer`` items and a byte budget. On overflow the *oldest execution events* go
first and the client is told ``{"type": "dropped", "count": N}`` before its next events.
Lifecycle deltas are coalesced per task and agent (the latest state replaces the older one),
so they are bounded by the number of tasks and agents and never dropped.

Inside ``events`` frames each item carries ``kind``: ``task``, ``progress``, ``completion``,
``agent``, ``agent_left``, ``stats`` (queue counts and money totals after task changes), or
``execution_event`` (the fields of the ``execution_event`` frame). Items keep the order the hub
published them in, so execution events stay in ``seq`` order per task.
"""

from __future__ import annotations

import bisect
import collections
import itertools
import logging
import operator
from typing import Any, Callable, Iterable, NamedTuple

import msgspec

from agentcom.errors import ProtocolError, RateLimited, Unauthorized
from agentcom.hub.session import RateWindow
from agentcom.protocol import codec
from agentcom.protocol import messages as m

log = logging.getLogger(__name__)

CLOSE_POLICY = 1008
BYTE_BUDGET = 16 * 1024 * 1024      # execution text buffered per dashboard, on top of the item limit
MAX_CONTROL_FRAMES = 256            # unread answers to commands before a client counts as abusive
RECENT_TASKS = 500                  # finished tasks the snapshot lists besides the open ones
SNAPSHOTS_PER_SECOND = 2            # a snapshot costs the hub ~20 ms at 2,000 tasks: requests beyond are refused
_EXEC_PREFIX = b'{"kind":"execution_event",'
HAND_OVER_ITEMS = 1024              # execution events published before the shared batch is handed over at the latest
HAND_OVER_BYTES = 1024 * 1024       # ... or their bytes

Write = Callable[[str | bytes], Any]  # a text frame; returns the transport's write future (has .done()) or None
Close = Callable[[int, str], None]


class ExecItem(NamedTuple):
    """One execution event as every dashboard gets it: its JSON item, encoded once by the fan-out."""

    seq: int        # publication order, shared with the deltas (to merge them back in order)
    task_id: str
    raw: bytes      # {"kind":"execution_event",...}


_SEQ = operator.itemgetter(0)
_RAW = operator.itemgetter(2)


def delta_key(topic: str, message: dict[str, Any], seq: int) -> tuple[str, str | int]:
    """Deltas with the same key coalesce: only the latest is kept while unsent."""
    kind = message.get("kind")
    if kind == "task":
        return ("task", message["task"]["task_id"])
    if kind in ("progress", "completion"):
        ident = message.get("task_id") or message.get("completion", {}).get("task_id")
        return (kind, ident)
    if kind == "agent":
        return ("agent", message["agent"]["agent_id"])
    if kind == "agent_left":
        return ("agent", message["agent_id"])
    return (f"{topic}:{kind}", seq)  # unknown kinds are never merged


class DashboardFanout:
    """All dashboards of one hub; subscribes to the hub's pubsub while any is connected."""

    def __init__(self, hub: Any, *, schedule: Callable[[Callable[[], None], int], Callable[[], None]] | None = None) -> None:
        self.hub = hub
        self.core = hub.core
        self.settings = hub.settings
        self.sessions: dict[DashboardSession, None] = {}
        self._dropped_total = 0
        self._batch: list[ExecItem] = []        # execution events not yet handed to the sessions
        self._batch_bytes = 0
        self._seq = itertools.count()
        self._encoder = msgspec.json.Encoder()
        self._unsubscribe: Callable[[], None] | None = None
        self._schedule = schedule
        self._stop_ticker: Callable[[], None] | None = None
        self._holders: dict[str, str] = {}      # open task -> agent holding it (for agent state deltas)

    def __len__(self) -> int:
        return len(self.sessions)

    @property
    def dropped_total(self) -> int:
        """Execution events dropped for slow dashboards since the hub started (all sessions)."""
        self.hand_over()
        return self._dropped_total

    def attach(self, session: "DashboardSession") -> None:
        self.hand_over()  # what was published before it connected is not for it
        if not self.sessions:
            self._unsubscribe = self.core.pubsub.subscribe(self._on_message)
            if self._schedule is not None:
                self._stop_ticker = self._schedule(self.flush_all, self.settings.batch_interval_ms)
        self.sessions[session] = None
        self._count()

    def detach(self, session: "DashboardSession") -> None:
        self.sessions.pop(session, None)
        self._count()
        if not self.sessions:
            self._batch, self._batch_bytes = [], 0
            if self._unsubscribe is not None:
                self._unsubscribe()
                self._unsubscribe = None
            if self._stop_ticker is not None:
                self._stop_ticker()
                self._stop_ticker = None

    def _count(self) -> None:
        self.hub.dashboards = len(self.sessions)

    def flush_all(self) -> None:
        self.hand_over()
        for session in tuple(self.sessions):
            session.flush()

    def hand_over(self) -> None:
        """Give the execution events published since the last hand-over to every session."""
        batch = self._batch
        if not batch:
            return
        nbytes = self._batch_bytes
        self._batch, self._batch_bytes = [], 0
        for session in self.sessions:
            session.take(batch, nbytes)

    def close_all(self, code: int = 1001, reason: str = "hub shutting down") -> None:
        for session in tuple(self.sessions):
            session.close(code, reason)

    def note_dropped(self, count: int) -> None:
        self._dropped_total += count

    def _on_message(self, topic: str, message: dict[str, Any]) -> None:
        seq = next(self._seq)
        if topic == "execution":
            body = self._encoder.encode(message)
            raw = _EXEC_PREFIX + body[1:] if len(body) > 2 else b'{"kind":"execution_event"}'
            self._batch.append(ExecItem(seq, message["task_id"], raw))
            self._batch_bytes += len(raw)
            if len(self._batch) >= HAND_OVER_ITEMS or self._batch_bytes >= HAND_OVER_BYTES:
                self.hand_over()
        else:
            key = delta_key(topic, message, seq)
            for session in self.sessions:
                session.push_delta(seq, key, message, topic == "tasks")
            if message.get("kind") == "task":
                self._refresh_agents(message["task"])

    def _refresh_agents(self, task: dict[str, Any]) -> None:
        """The core reports an agent when it connects or frees a slot; its state also changes when a task is
        assigned, accepted or reclaimed, so the agents holding (or last holding) the task are re-sent too."""
        task_id, holder = task["task_id"], task.get("assigned_to")
        previous = self._holders.pop(task_id, None)
        if holder is not None and task["status"] in ("assigned", "working"):
            self._holders[task_id] = holder
        for agent_id in {a for a in (previous, holder) if a is not None}:
            agent = self.core.agents.get(agent_id)
            if agent is not None:
                message = {"kind": "agent", "agent": agent.view()}
                seq, key = next(self._seq), ("agent", str(agent_id))
                for session in self.sessions:
                    session.push_delta(seq, key, message, False)

    # ------------------------------------------------------------------ views shared by sessions

    def snapshot(self) -> dict[str, Any]:
        """SNAPSHOT plus ``tasks``: the open tasks and the most recent finished ones."""
        from agentcom.hub.core import task_summary

        data: dict[str, Any] = self.core.snapshot()
        open_tasks = {t.task_id: task_summary(t) for t in self.core.tasks.values()}
        recent, _ = self.core.store.query(limit=RECENT_TASKS)
        tasks = list(open_tasks.values())
        tasks.extend(task_summary(t) for t in recent if t.task_id not in open_tasks)
        data["tasks"] = tasks
        data["dashboard"] = {"batch_interval_ms": self.settings.batch_interval_ms, "buffer": self.settings.dashboard_buffer}
        return data

    def stats(self) -> dict[str, Any]:
        return {"kind": "stats", "queue": dict(self.core.counts), "totals": self.core.totals()}


class DashboardSession:
    """One dashboard: a bounded outgoing buffer, flushed only when its transport is free."""

    def __init__(self, fanout: DashboardFanout, write: Write, close: Close, *, can_write: bool = True,
                 buffer: int | None = None, byte_budget: int = BYTE_BUDGET, max_frame_bytes: int | None = None) -> None:
        settings = fanout.settings
        self.fanout = fanout
        self.core = fanout.core
        self._write = write
        self._close = close
        self.buffer = buffer or settings.dashboard_buffer
        self.byte_budget = byte_budget
        self.max_frame_bytes = max_frame_bytes or settings.max_frame_bytes
        self.can_write = can_write          # may send cancel_task / retry_task (Jupyter's authorizer decides)
        self.task_filter: str | None = None
        self.closed = False
        self._dropped_total = 0
        self._exec: collections.deque[ExecItem] = collections.deque()
        self._exec_bytes = 0
        self._deltas: dict[tuple[str, str | int], tuple[int, dict[str, Any]]] = {}
        self._control: collections.deque[str] = collections.deque()
        self._dropped = 0
        self._snapshot_due = False
        self._stats_due = False
        self._inflight: Any = None
        self._bad = RateWindow(settings.bad_frame_limit, settings.bad_frame_window_ms)
        self._frames = RateWindow(settings.frame_rate_limit, 1000)
        self._snapshots = RateWindow(SNAPSHOTS_PER_SECOND, 1000)

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        """Register with the hub and send the snapshot."""
        self.fanout.attach(self)
        self._snapshot_due = True
        self.flush()

    def close(self, code: int, reason: str) -> None:
        if not self.closed:
            self.on_close()
            self._close(code, reason)

    def on_close(self) -> None:
        if not self.closed:
            self.closed = True
            self.fanout.detach(self)
            self._exec.clear()
            self._deltas.clear()
            self._control.clear()

    # ------------------------------------------------------------------ from the hub (never blocks)

    def take(self, batch: list[ExecItem], nbytes: int) -> None:
        """Execution events published since the last hand-over, ``nbytes`` of JSON in all (``hand_over``)."""
        if self.task_filter is not None:
            batch = [item for item in batch if item.task_id == self.task_filter]
            nbytes = sum(len(item.raw) for item in batch)
        self._exec.extend(batch)
        self._exec_bytes += nbytes
        self._trim()

    def push_delta(self, seq: int, key: tuple[str, str | int], delta: dict[str, Any], task_delta: bool) -> None:
        self._deltas.pop(key, None)
        self._deltas[key] = (seq, delta)
        self._stats_due = self._stats_due or task_delta
        self._trim()

    def _trim(self) -> None:
        dropped = 0
        while self._exec and (len(self._exec) + len(self._deltas) > self.buffer or self._exec_bytes > self.byte_budget):
            self._exec_bytes -= len(self._exec.popleft().raw)
            dropped += 1
        if dropped:
            self._dropped += dropped
            self._dropped_total += dropped
            self.fanout.note_dropped(dropped)

    @property
    def dropped_total(self) -> int:
        """Execution events dropped for this dashboard since it connected."""
        self.fanout.hand_over()
        return self._dropped_total

    @property
    def pending(self) -> int:
        """Items waiting to be sent (execution events plus coalesced deltas)."""
        self.fanout.hand_over()
        return len(self._exec) + len(self._deltas)

    # ------------------------------------------------------------------ from the client

    def on_text(self, raw: str | bytes) -> None:
        if self.closed:
            return
        try:
            frame = codec.dashboard_decoder.decode(raw)
            self._check_rate(frame)
            answer = self._dispatch(frame)
        except ProtocolError as exc:
            answer = codec.error_frame(exc)
            if not isinstance(exc, RateLimited) and self._bad.hit(self.core.clock()):
                self.close(CLOSE_POLICY, "too many bad frames")
                return
        if answer is not None:
            if len(self._control) >= MAX_CONTROL_FRAMES:
                self.close(CLOSE_POLICY, "too many unread answers")
                return
            self._control.append(codec.encode(answer))
        self.flush()

    def _dispatch(self, frame: msgspec.Struct) -> msgspec.Struct | None:
        match frame:
            case m.RequestSnapshot():
                self._snapshot_due = True
            case m.Subscribe(task_id=task_id):
                self.subscribe(task_id)
            case m.CancelTask(task_id=task_id):
                self._check_write("cancel_task", task_id)
                task = self.core.cancel(task_id)
                return m.CommandResult(command="cancel_task", task_id=task.task_id, status=task.status)
            case m.RetryTask(task_id=task_id):
                self._check_write("retry_task", task_id)
                task = self.core.retry(task_id)
                return m.CommandResult(command="retry_task", task_id=task.task_id, status=task.status)
            case m.Ping():
                return m.Pong(timestamp=self.core.clock())
        return None

    def _check_rate(self, frame: msgspec.Struct) -> None:
        """Every frame counts against ``frame_rate_limit``; snapshots, which cost the hub most, have their own budget."""
        budget = self._snapshots if isinstance(frame, m.RequestSnapshot) else self._frames
        budget.charge(self.core.clock(), str(frame.__struct_config__.tag))

    def _check_write(self, command: str, task_id: str) -> None:
        if not self.can_write:
            raise Unauthorized(f"{command}: this dashboard may watch but not change tasks", task_id=task_id)

    def subscribe(self, task_id: str | None) -> None:
        """Stream one task's execution output (or every task's with None)."""
        self.fanout.hand_over()  # what was published before goes by the old filter
        self.task_filter = task_id
        if task_id is not None:
            kept = [item for item in self._exec if item.task_id == task_id]
            self._exec = collections.deque(kept)
            self._exec_bytes = sum(len(item.raw) for item in kept)

    # ------------------------------------------------------------------ to the client

    @property
    def busy(self) -> bool:
        return self._inflight is not None and not self._inflight.done()

    def flush(self) -> bool:
        """Write what is pending if the previous write has completed; True if anything was written."""
        if self.closed:
            return False
        self.fanout.hand_over()  # even when busy: its buffer is trimmed (and drops counted) now
        if self.busy:
            return False
        frames: list[str | bytes] = []
        if self._snapshot_due:
            self._snapshot_due = False
            self._deltas.clear()          # the snapshot already contains their effect
            self._stats_due = False
            frames.append(codec.encode(m.SnapshotFrame(data=self.fanout.snapshot())))
        frames.extend(self._control)
        self._control.clear()
        if self._dropped:
            frames.append(codec.encode(m.Dropped(count=self._dropped)))
            self._dropped = 0
        frames.extend(self._events_frames())
        if not frames:
            return False
        future = None
        for text in frames:
            future = self._write(text) or future
        self._inflight = future
        return True

    def _events_frames(self) -> list[bytes]:
        if not self._exec and not self._deltas and not self._stats_due:
            return []
        raws: list[bytes] = list(map(_RAW, self._exec))
        size = self._exec_bytes
        if self._deltas:
            raws, added = _merge(self._exec, raws, self._deltas.values())
            size += added
        if self._stats_due:
            stats = _encoder.encode(self.fanout.stats())
            raws.append(stats)
            size += len(stats)
        self._exec.clear()
        self._exec_bytes = 0
        self._deltas.clear()
        self._stats_due = False
        return _frames(raws, size + len(raws), self.max_frame_bytes)


_encoder = msgspec.json.Encoder()
_head, _tail = _encoder.encode(m.EventsFrame(data=[])).split(b"[]")   # b'{"type":"events","data":', b'}'
_EVENTS_HEAD, _EVENTS_TAIL = _head + b"[", b"]" + _tail                  # an events frame is HEAD items,... TAIL


def _merge(execs: collections.deque[ExecItem], raws: list[bytes],
           deltas: Iterable[tuple[int, dict[str, Any]]]) -> tuple[list[bytes], int]:
    """The deltas, encoded, put among the execution events' items in the order the hub published them
    (and the bytes they added).

    Deltas are few and events many: each delta is placed by bisection, and the events between
    two deltas are copied as one slice."""
    seqs = list(map(_SEQ, execs))
    out: list[bytes] = []
    start = added = 0
    for seq, delta in sorted(deltas, key=_SEQ):
        at = bisect.bisect_left(seqs, seq, start)
        out.extend(raws[start:at])
        encoded = _encoder.encode(delta)
        out.append(encoded)
        added += len(encoded)
        start = at
    out.extend(raws[start:])
    return out, added


def _frames(raws: list[bytes], size: int, max_bytes: int) -> list[bytes]:
    """``events`` frames of these JSON items (``size`` bytes with a comma each), no larger than
    ``max_bytes`` each (an oversized item goes alone).

    Built by joining the items' bytes: nothing is encoded again, and a batch that fits (the usual
    case) is one join. Otherwise where the frames split is found by bisection over the items'
    running sizes (summed in C), so even a dashboard that fell far behind costs a few Python
    steps per frame, not per item."""
    budget = max(1024, max_bytes - 64)
    if not raws:
        return []
    if size <= budget:
        return [_EVENTS_HEAD + b",".join(raws) + _EVENTS_TAIL]
    ends = list(map(operator.add, itertools.accumulate(map(len, raws)), range(1, len(raws) + 1)))  # with commas
    frames: list[bytes] = []
    start, base = 0, 0
    while start < len(raws):
        stop = max(start + 1, bisect.bisect_right(ends, base + budget, start))
        frames.append(_EVENTS_HEAD + b",".join(raws[start:stop]) + _EVENTS_TAIL)
        start, base = stop, ends[stop - 1]
    return frames
