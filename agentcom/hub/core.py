"""The hub's task state machine, without any I/O but the store.

Every change of a task goes through a method here; each writes the store first (so a
crash loses nothing that was acknowledged), updates the in-memory view, publishes a
delta, and sends frames to sidecars through the ``send`` callables they registered.
Tornado handlers (``agentcom.hub.handlers``) only decode frames and call in.

Lifecycle: queued -> assigned -> working -> completed; failed execution -> queued again
(retry) or dead_letter when attempts are used up, or failed when the sidecar says the
failure is not retryable; cancelled from any open state. Every assignment and every
reclaim bumps ``generation``; every assignment counts one attempt.

A write the store refuses (disk full, read-only file system) changes nothing: the
operation raises ``StoreUnavailable`` and memory is reloaded from the file (``resync``),
which also happens when a group commit fails. Reads keep being served meanwhile.
"""

from __future__ import annotations

import collections
import functools
import logging
import secrets
import sqlite3
import time
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Callable, ParamSpec, Protocol, TypeVar

import msgspec

from agentcom.config import AgentCom
from agentcom.errors import InvalidState, NotFound, StaleGeneration, StoreError, StoreUnavailable, ValidationFailed
from agentcom.hub.agents import Agent, placeholder
from agentcom.hub.pubsub import PubSub
from agentcom.hub.ready import ReadyQueue
from agentcom.hub.sidecar_settings import identified_extras
from agentcom.pricing import free_without_usage
from agentcom.protocol import messages as m
from agentcom.protocol.api import TaskSubmission
from agentcom.store.db import transaction
from agentcom.store.tasks import ALL_STATES, NANO, OPEN_STATES, Task, TaskStore, totals_view, usd_to_nano

log = logging.getLogger(__name__)

PRIORITY_INDEX = {name: i for i, name in enumerate(m.PRIORITIES)}


def now_ms() -> int:
    return int(time.time() * 1000)


P = ParamSpec("P")
R = TypeVar("R")


def _store_write(method: Callable[P, R]) -> Callable[P, R]:
    """An operation whose write the store refuses leaves memory as the file has it and raises StoreUnavailable."""

    @functools.wraps(method)
    def guarded(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return method(*args, **kwargs)
        except (sqlite3.Error, StoreError) as exc:  # StoreError: the routing tables' writes (endpoints)
            core: HubCore = args[0]  # type: ignore[assignment]
            core.write_failed(exc)
            raise StoreUnavailable(f"the hub cannot write its store now ({exc}); nothing was changed, "
                                   "try again later") from None

    return guarded


REJECTED_RECHECK_MS = 1_000  # a rejected task waiting for a busy sidecar is offered again this much later


@dataclass(frozen=True)
class Wait:
    """The router's answer when a task cannot be routed yet: try again at ``until`` (ms)."""

    until: int
    reason: str


class Router(Protocol):
    """Chooses a routing decision and an agent for a ready task (``agentcom.routing``)."""

    def classify(self, submission: TaskSubmission) -> dict[str, Any]: ...

    def route(self, task: Task, agents: list[Agent], now: int) -> tuple[dict[str, Any], Agent] | Wait | None: ...

    def record(self, decision: dict[str, Any]) -> None: ...

    def agent_joined(self, agent: Agent, peer_host: str | None = None) -> Any: ...

    def forget(self, task_id: str) -> None: ...

    def stats(self) -> dict[str, Any]: ...


class HubCore:
    def __init__(self, settings: AgentCom, store: TaskStore, router: Router, *,
                 clock: Callable[[], int] = now_ms, call_later: Callable[[float, Callable[[], None]], Any] | None = None,
                 pubsub: PubSub | None = None) -> None:
        self.settings = settings
        self.store = store
        self.router = router
        self.clock = clock
        self.pubsub = pubsub or PubSub()
        # Called with the Task itself after each change of its state (metrics): no summary dict is
        # built for them, so the ``tasks`` topic costs nothing while no dashboard listens.
        self.transitions: list[Callable[[Task], None]] = []
        self._call_later = call_later
        self.tasks: dict[str, Task] = {}          # open tasks only
        self.agents: dict[str, Agent] = {}
        # The online agents with a free slot, kept current by ``_slots`` at every change of an agent's
        # tasks or presence: ``schedule`` runs twice per task and must not walk every agent each time.
        self._free: dict[str, Agent] = {}
        self.ready = ReadyQueue(self._is_ready)
        self._waiting_on: dict[str, set[str]] = collections.defaultdict(set)  # dependency -> dependents
        self._parked: dict[str, int] = {}          # task_id -> retry routing at (ms)
        # task_id -> {agent_id: connected_at of the session that rejected it}: while another connected
        # sidecar could take the task, it waits for that one rather than bounce back (see schedule)
        self._rejected_by: dict[str, dict[str, int]] = {}
        self.counts: dict[str, int] = store.counts()
        self.totals_nano = store.totals_nano()
        self.recent: collections.deque[dict[str, Any]] = collections.deque(maxlen=settings.snapshot_recent)
        self.started_at = clock()
        self._load()
        store.group.on_failure.append(self.resync)  # a failed group commit: the file is the truth

    # ------------------------------------------------------------------ start-up

    def _load(self) -> None:
        """Rebuild the in-memory queue from the store after a (re)start."""
        now = self.clock()
        for task in self.store.load_open():
            self.tasks[task.task_id] = task
            self._index(task, now)
        # Completions only, as the live path appends them: a failed run is no completion, and a task
        # that failed before it succeeded appears once.
        rows = self.store.conn.execute(
            "SELECT e.task_id, e.agent_id, e.execution_ms, t.completed_at FROM executions e "
            "JOIN tasks t USING(task_id) WHERE e.status = 'success' AND t.status = 'completed' "
            "ORDER BY e.id DESC LIMIT ?",
            (self.settings.snapshot_recent,),
        ).fetchall()
        for row in reversed(rows):
            task = self.store.get(row["task_id"])
            if task is not None:
                self.recent.append(self._completion(task, row["agent_id"], row["execution_ms"], row["completed_at"]))

    def _index(self, task: Task, now: int) -> None:
        """File an open task where the core looks for it: the ready queue, or its agent's task map."""
        if task.status == "queued":
            self._enqueue(task)
        elif task.assigned_to:
            agent = self.agents.get(task.assigned_to)
            if agent is None:
                agent = self.agents[task.assigned_to] = placeholder(task.assigned_to, now)
            agent.tasks[task.task_id] = task.status
            self._slots(agent)

    # ------------------------------------------------------------------ submit / cancel / retry

    @_store_write
    def submit(self, sub: TaskSubmission) -> Task:
        metadata = dict(sub.metadata)
        self._check_metadata(metadata)
        missing = [d for d in sub.depends_on if d not in self.tasks and self.store.get(d) is None]
        if missing:
            raise ValidationFailed(
                f"depends_on names unknown task(s): {', '.join(missing)}",
                [{"field": "depends_on", "error": f"unknown task id {d!r}"} for d in missing],
            )
        now = self.clock()
        task = Task(
            task_id=f"task-{now:012x}{secrets.token_hex(6)}",  # time-ordered: index inserts stay together
            description=sub.description,
            priority=PRIORITY_INDEX[sub.priority],
            status="queued",
            max_attempts=sub.max_attempts or self.settings.max_attempts,
            created_at=now,
            updated_at=now,
            complexity=self.router.classify(sub),
            metadata=metadata,
            file_hints=[msgspec.to_builtins(h) for h in sub.file_hints],
            success_criteria=list(sub.success_criteria),
            verification_steps=[msgspec.to_builtins(s) for s in sub.verification_steps],
            needed_capabilities=sorted(set(sub.needed_capabilities)),
            depends_on=list(dict.fromkeys(sub.depends_on)),
            assign_to=sub.assign_to or (metadata.get("assign_to") if isinstance(metadata.get("assign_to"), str) else None),
        )
        self.store.insert(task, ("submitted", None, {"priority": sub.priority, "tier": task.tier}))
        self.tasks[task.task_id] = task
        self._count(None, "queued")
        self._enqueue(task)
        self._publish_task(task)
        return task

    @staticmethod
    def _check_metadata(metadata: dict[str, Any]) -> None:
        checks = {"shell_command": str, "timeout_ms": int, "shell": bool, "max_tokens": int}
        errors = []
        for key, kind in checks.items():
            if key in metadata and (not isinstance(metadata[key], kind) or isinstance(metadata[key], bool) != (kind is bool)):
                errors.append({"field": f"metadata.{key}", "error": f"expected {kind.__name__}, got {type(metadata[key]).__name__}"})
        if isinstance(metadata.get("timeout_ms"), int) and not 1 <= metadata["timeout_ms"] <= 86_400_000:
            errors.append({"field": "metadata.timeout_ms", "error": "must be between 1 and 86400000"})
        if isinstance(metadata.get("shell_command"), str) and not metadata["shell_command"].strip():
            errors.append({"field": "metadata.shell_command", "error": "must not be empty"})
        if errors:
            raise ValidationFailed("; ".join(f"{e['field']}: {e['error']}" for e in errors), errors)

    @_store_write
    def cancel(self, task_id: str) -> Task:
        task = self.tasks.get(task_id)
        if task is None:
            stored = self.store.get(task_id)
            if stored is None:
                raise NotFound(f"no task {task_id!r}", task_id=task_id)
            raise InvalidState(f"task {task_id} is already {stored.status}", task_id=task_id)
        agent = self.agents.get(task.assigned_to) if task.assigned_to else None
        old = task.status
        self._finish(task, "cancelled", "cancelled", agent_id=task.assigned_to)
        self._count(old, "cancelled")
        if agent is not None:
            agent.send(m.TaskCancelled(task_id=task.task_id, generation=task.generation))
            self._release(agent, task.task_id)
        self._publish_task(task)
        self.schedule()
        return task

    @_store_write
    def retry(self, task_id: str) -> Task:
        if task_id in self.tasks:
            raise InvalidState(f"task {task_id} is still {self.tasks[task_id].status}; only finished tasks can be retried",
                               task_id=task_id)
        task = self.store.get(task_id)
        if task is None:
            raise NotFound(f"no task {task_id!r}", task_id=task_id)
        if task.status == "completed":
            raise InvalidState(f"task {task_id} completed; submit a new task to run it again", task_id=task_id)
        old = task.status
        task.status, task.attempts, task.assigned_to, task.completed_at = "queued", 0, None, None
        task.generation += 1
        task.updated_at = self.clock()
        self.store.save(task, "retried", None, {"from": old})
        self.tasks[task.task_id] = task
        self._count(old, "queued")
        self._enqueue(task)
        self._publish_task(task)
        self.schedule()
        return task

    # ------------------------------------------------------------------ sidecar connections

    @_store_write
    def connect(self, hello: m.Identify, send: Callable[[msgspec.Struct], None],
                close: Callable[[int, str], None], peer_host: str | None = None) -> Agent:
        """Register an identified sidecar; answers ``identified`` and its resume entries.

        ``peer_host``: the socket's remote address; a loopback ``ollama_url`` means that machine.

        Tasks the previous connection held and this one does not resume are reclaimed first,
        so a refused write leaves no agent registered and nothing promised."""
        now = self.clock()
        extras = identified_extras(self.settings)  # before any state changes: it reads a file
        previous = self.agents.get(hello.agent_id)
        if previous is not None and previous.online:
            previous.close(1000, "replaced by a new connection of the same agent")
        resumed = {r.task_id: r.generation for r in hello.resume}
        kept = {task_id for task_id, generation in resumed.items()
                if (task := self.tasks.get(task_id)) is not None and task.assigned_to == hello.agent_id
                and task.generation == generation}
        for task_id in list(previous.tasks) if previous else ():
            if task_id not in kept and task_id in self.tasks:
                self._reclaim(self.tasks[task_id], "sidecar reconnected without it")
        agent = Agent(
            agent_id=hello.agent_id, name=hello.name, capabilities=frozenset(hello.capabilities),
            ollama_url=hello.ollama_url, models=list(hello.models),
            concurrency=max(1, min(64, int(getattr(hello, "concurrency", 1) or 1))),
            connected_at=now, last_seen=now, send=send, close=close,
            last_assigned_at=previous.last_assigned_at if previous else 0,
        )
        # before the agent is registered: a refused endpoint write (StoreError) leaves no agent online
        self.router.agent_joined(agent, peer_host)
        self.agents[agent.agent_id] = agent
        send(m.Identified(agent_id=agent.agent_id, heartbeat_ms=self.settings.heartbeat_ms,
                          lease_ms=self.settings.lease_ms, **extras))
        for task_id, generation in resumed.items():
            if task_id in kept:
                agent.tasks[task_id] = self.tasks[task_id].status
                send(m.TaskContinue(task_id=task_id, generation=generation))
            else:
                send(m.TaskReassign(task_id=task_id))
        self._slots(agent)
        self.pubsub.publish("agents", {"kind": "agent", "agent": agent.view()})
        if self._parked:  # tasks waiting for an endpoint: the new sidecar may serve them itself
            self.unpark_all()
        else:
            self.schedule()
        return agent

    def disconnect(self, agent: Agent) -> None:
        """The socket closed: keep its tasks for ``lease_ms`` so it can resume them."""
        if self.agents.get(agent.agent_id) is not agent:
            return  # already replaced by a newer connection
        agent.online = False
        agent.last_seen = self.clock()
        self._slots(agent)
        if not agent.tasks:
            del self.agents[agent.agent_id]
            self.pubsub.publish("agents", {"kind": "agent_left", "agent_id": agent.agent_id})
        else:
            self.pubsub.publish("agents", {"kind": "agent", "agent": agent.view()})

    def touch(self, agent: Agent) -> None:
        agent.last_seen = self.clock()

    def sweep_leases(self) -> None:
        """Reclaim the tasks of sidecars silent (or gone) for longer than ``lease_ms``.

        Runs on a timer: a refused write is logged and retried at the next sweep."""
        try:
            self._sweep_leases()
        except sqlite3.Error as exc:
            self.write_failed(exc)

    def _sweep_leases(self) -> None:
        now = self.clock()
        for agent in list(self.agents.values()):
            if now - agent.last_seen <= self.settings.lease_ms:
                continue
            if agent.online:
                agent.close(1001, "lease expired: no frame within lease_ms")
                agent.online = False
            for task_id in list(agent.tasks):
                if task_id in self.tasks:
                    self._reclaim(self.tasks[task_id], "lease expired")
            agent.tasks.clear()
            self._slots(agent)
            if self.agents.get(agent.agent_id) is agent:
                del self.agents[agent.agent_id]
                self.pubsub.publish("agents", {"kind": "agent_left", "agent_id": agent.agent_id})
        for task_id, until in list(self._parked.items()):
            if until <= now:
                del self._parked[task_id]
                task = self.tasks.get(task_id)
                if task is not None and task.status == "queued":
                    self._enqueue(task)
        self.schedule()

    # ------------------------------------------------------------------ sidecar frames

    def _owned(self, agent: Agent, task_id: str, generation: int, frame: str) -> Task:
        task = self.tasks.get(task_id)
        if task is None:
            stored = self.store.get(task_id)
            if stored is None:
                raise NotFound(f"{frame}: no task {task_id!r}", task_id=task_id)
            if stored.generation != generation:
                raise StaleGeneration(f"{frame}: task {task_id} is at generation {stored.generation}, not {generation}",
                                      task_id=task_id)
            raise InvalidState(f"{frame}: task {task_id} is already {stored.status}", task_id=task_id, status=stored.status)
        if task.generation != generation:
            raise StaleGeneration(f"{frame}: task {task_id} is at generation {task.generation}, not {generation}",
                                  task_id=task_id)
        if task.assigned_to != agent.agent_id or task.status not in ("assigned", "working"):
            raise InvalidState(f"{frame}: task {task_id} is {task.status} and not assigned to {agent.agent_id}",
                               task_id=task_id)
        return task

    @_store_write
    def accepted(self, agent: Agent, f: m.TaskAccepted) -> None:
        task = self._owned(agent, f.task_id, f.generation, "task_accepted")
        if task.status == "assigned":
            task.status, task.updated_at = "working", self.clock()
            agent.tasks[task.task_id] = "working"
            self.store.save(task, "accepted", agent.agent_id, scope="status")
            self._count("assigned", "working")
            self._publish_task(task)
            self._publish_agent(agent)
        agent.send(m.TaskAck(task_id=task.task_id, status="accepted"))

    @_store_write
    def rejected(self, agent: Agent, f: m.TaskRejected) -> None:
        task = self._owned(agent, f.task_id, f.generation, "task_rejected")
        self._release(agent, task.task_id)
        self._reclaim(task, f"rejected by {agent.agent_id}: {f.reason}", event="rejected")
        if task.status == "queued":
            self._rejected_by.setdefault(task.task_id, {})[agent.agent_id] = agent.connected_at
        self.schedule()

    def progress(self, agent: Agent, f: m.TaskProgress) -> None:
        task = self._owned(agent, f.task_id, f.generation, "task_progress")
        event = f.execution_event
        if event is not None and self.pubsub.has_listeners("execution"):
            self.pubsub.publish("execution", {
                "task_id": task.task_id, "generation": task.generation, "agent_id": agent.agent_id,
                "event_type": event.event_type, "text": event.text, "tokens_so_far": event.tokens_so_far,
                "model": event.model, "timestamp": event.timestamp, "seq": event.seq,
            })
        if f.progress is not None and self.pubsub.has_listeners("tasks"):
            self.pubsub.publish("tasks", {"kind": "progress", "task_id": task.task_id, "progress": f.progress})

    @_store_write
    def complete(self, agent: Agent, f: m.TaskComplete) -> None:
        task = self.tasks.get(f.task_id)
        if task is None:
            stored = self.store.get(f.task_id)
            if stored is not None and stored.status == "completed" and stored.generation == f.generation:
                agent.send(m.TaskAck(task_id=f.task_id, status="complete"))  # duplicate: acknowledged, ignored
                return
        task = self._owned(agent, f.task_id, f.generation, "task_complete")
        if f.result.status != "success":
            raise InvalidState("task_complete: result.status must be 'success'; report failures with task_failed",
                               task_id=f.task_id)
        result = msgspec.to_builtins(f.result)
        old = task.status
        task.result = result
        with transaction(self.store.conn, single=True):  # one UPDATE; the execution row is deferred
            self._record_execution(task, agent.agent_id, f.result, None)
            self._finish(task, "completed", "completed", agent_id=agent.agent_id,
                         details={"model": f.result.model_used, "execution_ms": f.result.execution_ms})
        self._count(old, "completed")
        self._release(agent, task.task_id)
        agent.send(m.TaskAck(task_id=task.task_id, status="complete"))
        completion = self._completion(task, agent.agent_id, f.result.execution_ms, task.completed_at or 0)
        self.recent.append(completion)
        self._publish_task(task)
        if self.pubsub.has_listeners("tasks"):
            self.pubsub.publish("tasks", {"kind": "completion", "completion": completion})
        self._release_dependents(task.task_id)
        self.schedule()

    @_store_write
    def failed(self, agent: Agent, f: m.TaskFailed) -> None:
        task = self._owned(agent, f.task_id, f.generation, "task_failed")
        old = task.status
        task.last_error = f.error
        if f.result is not None:
            task.result = msgspec.to_builtins(f.result)
        exhausted = task.attempts >= task.max_attempts
        with transaction(self.store.conn, single=True):  # one UPDATE; the execution row is deferred
            self._record_execution(task, agent.agent_id, f.result, f.error)
            if f.retryable and not exhausted:
                ack = "retried"
                task.status, task.assigned_to, task.updated_at = "queued", None, self.clock()
                task.generation += 1
                self.store.save(task, "failed_retrying", agent.agent_id, {"error": f.error[:500]})
            else:
                ack = "dead_letter"
                final = "dead_letter" if f.retryable else "failed"
                self._finish(task, final, final, agent_id=agent.agent_id, details={"error": f.error[:500]})
        self._release(agent, task.task_id)
        if ack == "retried":
            self._count(old, "queued")
            self._enqueue(task)
        else:
            self._count(old, task.status)
        agent.send(m.TaskAck(task_id=task.task_id, status=ack))
        self._publish_task(task)
        self.schedule()

    # ------------------------------------------------------------------ scheduling

    def schedule(self) -> int:
        """Assign ready tasks to agents with free slots, best priority first. Returns how many."""
        if not len(self.ready):  # the common case under load is checked first: it costs nothing
            return 0
        if not self._free:
            return 0
        free = list(self._free.values())
        assigned = 0
        blocked: set[Any] = set()
        now = self.clock()
        while free:
            heads = [h for h in self.ready.heads() if h[1] not in blocked]
            if not heads:
                break
            _, key, task_id = min(heads, key=lambda h: h[0])
            needs, pinned = key
            eligible = [a for a in free if needs <= a.capabilities and (pinned is None or a.agent_id == pinned)]
            if not eligible:
                blocked.add(key)
                continue
            task = self.tasks[task_id]
            if self._rejected_by and (refused := self._rejected_by.get(task_id)):
                eligible = self._not_rejected(eligible, refused, key)
                if not eligible:  # a sidecar that did not reject it is connected but busy: wait for it
                    self.ready.pop(key)
                    self._park(task, Wait(until=now + REJECTED_RECHECK_MS, reason="rejected"))
                    continue
            try:
                choice = self.router.route(task, eligible, now)
            except (sqlite3.Error, StoreError) as exc:  # routing reads the store (budget spend): retried later
                self.write_failed(exc)
                break
            if choice is None:
                blocked.add(key)
                continue
            self.ready.pop(key)
            if isinstance(choice, Wait):
                self._park(task, choice)
                continue
            decision, agent = choice
            try:
                self._assign(task, agent, decision, now)
            except sqlite3.Error as exc:  # the task stays queued (as the file has it); scheduling resumes later
                self.write_failed(exc)
                break
            assigned += 1
            if agent.free_slots <= 0:
                free.remove(agent)
        return assigned

    def _not_rejected(self, eligible: list[Agent], refused: dict[str, int], key: Any) -> list[Agent]:
        """The offered sidecars for a task some sidecar rejected. Its rejecters (the same connection) are
        left out while another connected sidecar that could take it has not rejected it: the task goes
        to that one, or waits for it when it is busy, instead of bouncing between rejecters until its
        attempts run out. When every connected sidecar that could take it has rejected it, they are
        offered it again, as the protocol says (a rejection may mean "busy", and attempts bound it)."""
        def rejected(agent: Agent) -> bool:
            return refused.get(agent.agent_id) == agent.connected_at

        fresh = [a for a in eligible if not rejected(a)]
        if fresh:
            return fresh
        needs, pinned = key
        waiting_for_one = any(a.online and not rejected(a) and needs <= a.capabilities
                              and (pinned is None or a.agent_id == pinned) for a in self.agents.values())
        return [] if waiting_for_one else eligible

    def unpark_all(self) -> None:
        """Routing conditions changed (an endpoint came or went): route parked tasks again now."""
        for task_id in self._parked:
            self._parked[task_id] = 0
        self.sweep_leases()

    def _park(self, task: Task, wait: Wait) -> None:
        self._parked[task.task_id] = wait.until
        if self._call_later is not None:
            self._call_later(max(0.0, (wait.until - self.clock()) / 1000), self.sweep_leases)

    def _assign(self, task: Task, agent: Agent, decision: dict[str, Any], now: int) -> None:
        task.generation += 1
        task.attempts += 1
        task.status, task.assigned_to, task.assigned_at, task.updated_at = "assigned", agent.agent_id, now, now
        task.routing_decision = decision
        self.store.save(task, "assigned", agent.agent_id, {"target": decision.get("target_type"),
                                                          "model": decision.get("selected_model")})
        agent.tasks[task.task_id] = "assigned"
        agent.last_assigned_at = now
        self._slots(agent)
        self.router.record(decision)
        self._count("queued", "assigned")
        agent.send(self.assign_frame(task))
        self._publish_task(task)
        self._publish_agent(agent)

    def assign_frame(self, task: Task) -> m.TaskAssign:
        return msgspec.convert({
            "type": "task_assign", "task_id": task.task_id, "generation": task.generation,
            "description": task.description, "priority": m.PRIORITIES[task.priority], "metadata": task.metadata,
            "assigned_at": task.assigned_at, "file_hints": task.file_hints, "success_criteria": task.success_criteria,
            "verification_steps": task.verification_steps, "complexity": task.complexity,
            "routing_decision": task.routing_decision,
        }, m.TaskAssign)

    # ------------------------------------------------------------------ store failures

    def write_failed(self, exc: sqlite3.Error | StoreError) -> None:
        """A write was refused: bring memory back to what the file holds."""
        log.error("the store refused a write (%s); the hub keeps what the file holds and refuses new work", exc)
        self.store.group.refused(exc)
        try:
            self.resync()
        except sqlite3.Error:
            log.exception("cannot reload the hub's state from the store; memory may disagree with the file")

    def resync(self) -> None:
        """Make memory agree with the store again after a write failed: the file is the truth.

        The tasks the failed transaction wrote (``store.touched``) are reloaded (the same
        objects where they exist); the ready queue, dependency waits and agents' task maps
        are rebuilt from memory, counts (and totals and recent completions, when executions
        were written) from the file; dashboards hear of every task whose state went back.
        """
        store_failed = getattr(self.router, "store_failed", None)
        if store_failed is not None:  # routing's cached reads (budget spend) may count rows now gone
            store_failed()
        changed = []
        for task_id in self.store.touched:
            held = self.tasks.pop(task_id, None)
            before = (held.status, held.generation) if held is not None else None
            fresh = self.store.get(task_id)
            if fresh is not None and fresh.status in OPEN_STATES:
                if held is not None:
                    vars(held).update(vars(fresh))
                self.tasks[task_id] = held or fresh
            if fresh is not None and (fresh.status, fresh.generation) != before:
                changed.append(self.tasks.get(task_id) or fresh)
        self.store.touched.clear()
        for task_id in [t for t in self._parked if t not in self.tasks or self.tasks[t].status != "queued"]:
            del self._parked[task_id]
        for task_id in [t for t in self._rejected_by if t not in self.tasks]:
            del self._rejected_by[task_id]
        self.ready = ReadyQueue(self._is_ready)
        self._waiting_on.clear()
        now = self.clock()
        for agent in self.agents.values():
            agent.tasks.clear()
            self._slots(agent)
        for task in self.tasks.values():
            if task.task_id not in self._parked:  # parked ones come back on their own timer
                self._index(task, now)
        self.counts.clear()
        self.counts.update(self.store.counts())
        if self.store.touched_executions:
            self.store.touched_executions = False
            self.totals_nano.update(self.store.totals_nano())
            statuses = self.store.statuses(c["task_id"] for c in self.recent)
            kept = [c for c in self.recent if statuses.get(c["task_id"]) == "completed"]
            self.recent.clear()
            self.recent.extend(kept)
        for task in changed:
            self._publish_task(task)
        for agent in self.agents.values():
            self._publish_agent(agent)

    # ------------------------------------------------------------------ internals

    def _is_ready(self, task_id: str) -> bool:
        task = self.tasks.get(task_id)
        return task is not None and task.status == "queued" and task_id not in self._parked

    def _enqueue(self, task: Task) -> None:
        unmet = [d for d in task.depends_on if self._dep_status(d) != "completed"]
        if unmet:
            for dep in unmet:
                self._waiting_on[dep].add(task.task_id)
            return
        self.ready.push(task.task_id, task.priority, task.seq, frozenset(task.needed_capabilities), task.assign_to)

    def _dep_status(self, task_id: str) -> str | None:
        if task_id in self.tasks:
            return self.tasks[task_id].status
        return self.store.statuses([task_id]).get(task_id)

    def _release_dependents(self, task_id: str) -> None:
        for dependent in self._waiting_on.pop(task_id, ()):
            task = self.tasks.get(dependent)
            if task is not None and task.status == "queued":
                self._enqueue(task)

    def _reclaim(self, task: Task, reason: str, event: str = "reclaimed") -> None:
        """Take a task back from its agent: requeue it, or dead-letter it when attempts are used up."""
        old = task.status
        agent_id = task.assigned_to
        task.last_error = reason
        if task.attempts >= task.max_attempts:
            self._finish(task, "dead_letter", event, agent_id=agent_id, details={"reason": reason})
            self._count(old, "dead_letter")
        else:
            task.status, task.assigned_to, task.updated_at = "queued", None, self.clock()
            task.generation += 1
            self.store.save(task, event, agent_id, {"reason": reason})
            self._count(old, "queued")
            self._enqueue(task)
        agent = self.agents.get(agent_id) if agent_id else None
        if agent is not None:
            self._release(agent, task.task_id)
        self._publish_task(task)

    def _finish(self, task: Task, status: str, event: str, *, agent_id: str | None,
                details: dict[str, Any] | None = None) -> None:
        now = self.clock()
        task.status, task.updated_at, task.completed_at = status, now, now
        self.store.save(task, event, agent_id, details, scope="final")  # assignment columns are as last written
        self.tasks.pop(task.task_id, None)
        self.ready.discard(task.task_id)
        self._parked.pop(task.task_id, None)
        self._rejected_by.pop(task.task_id, None)
        self.router.forget(task.task_id)

    def _release(self, agent: Agent, task_id: str) -> None:
        agent.tasks.pop(task_id, None)
        self._slots(agent)
        self._publish_agent(agent)

    def _slots(self, agent: Agent) -> None:
        """After any change of ``agent``'s tasks or presence: file it among the free agents, or not."""
        current = self.agents.get(agent.agent_id)
        if agent is current and agent.online and len(agent.tasks) < agent.concurrency:
            self._free[agent.agent_id] = agent
        elif (held := self._free.get(agent.agent_id)) is not None and (held is agent or held is not current):
            del self._free[agent.agent_id]  # this agent is full or gone, or a newer connection replaced it

    def _publish_agent(self, agent: Agent) -> None:
        """Tell dashboards an agent's state changed (idle / assigned / working)."""
        if self.pubsub.has_listeners("agents"):
            self.pubsub.publish("agents", {"kind": "agent", "agent": agent.view()})

    def _count(self, old: str | None, new: str) -> None:
        if old is not None:
            self.counts[old] -= 1
        self.counts[new] += 1

    def _record_execution(self, task: Task, agent_id: str, result: m.ExecutionResult | None, error: str | None) -> None:
        decision = task.routing_decision or {}
        if result is not None:
            cost = usd_to_nano(result.estimated_cost_usd)
        else:  # a failure reported without a result: only a run that is free whatever it used costs a known 0
            target, endpoint = decision.get("target_type"), decision.get("selected_endpoint")
            # an openai run with no endpoint in the decision used the sidecar's own server, which the hub cannot place
            free = free_without_usage(target, endpoint) and not (target == "openai" and endpoint is None)
            cost = 0 if free else None
        eq = usd_to_nano(result.equivalent_claude_cost_usd) if result else None
        row = {
            "task_id": task.task_id, "generation": task.generation, "agent_id": agent_id, "tier": task.tier,
            "target_type": decision.get("target_type"), "endpoint": decision.get("selected_endpoint"),
            "model_used": result.model_used if result else decision.get("selected_model"),
            "tokens_in": result.tokens_in if result else 0, "tokens_out": result.tokens_out if result else 0,
            "cache_read_tokens": result.cache_read_tokens if result else 0,
            "cache_write_tokens": result.cache_write_tokens if result else 0,
            "cost_nusd": cost, "equivalent_claude_cost_nusd": eq,
            "execution_ms": result.execution_ms if result else 0,
            "status": "success" if error is None else "failed", "error": error,
            "fallback_used": int(bool(decision.get("fallback_used"))), "completed_at": self.clock(),
            "price_table": result.price_table if result else "none",
        }
        if self.store.record_execution(row):  # totals move exactly once per finished generation
            t = self.totals_nano
            t["cost"] += cost or 0
            t["equivalent"] += eq or 0
            if cost is not None and eq is not None:
                t["savings"] += eq - cost
            t["tokens_in"] += row["tokens_in"]
            t["tokens_out"] += row["tokens_out"]
            t["executions"] += 1
            t["unpriced"] += cost is None

    def _completion(self, task: Task, agent_id: str | None, execution_ms: int, completed_at: int) -> dict[str, Any]:
        result = task.result or {}
        return {
            "task_id": task.task_id, "agent_id": agent_id, "description": task.description[:200],
            "completed_at": completed_at, "duration_ms": execution_ms, "routing_decision": task.routing_decision,
            "tier": task.tier,
            "execution_meta": {
                "model_used": result.get("model_used"), "tokens_in": result.get("tokens_in", 0),
                "tokens_out": result.get("tokens_out", 0), "estimated_cost_usd": result.get("estimated_cost_usd"),
                "equivalent_claude_cost_usd": result.get("equivalent_claude_cost_usd"),
                "execution_ms": result.get("execution_ms", execution_ms),
            } if result else None,
        }

    def _publish_task(self, task: Task) -> None:
        for listener in tuple(self.transitions):
            try:
                listener(task)
            except Exception:  # noqa: BLE001 - as with pubsub: a bad listener is dropped, the hub goes on
                log.exception("task transition listener failed; removing it")
                self.transitions.remove(listener)
        if self.pubsub.has_listeners("tasks"):
            self.pubsub.publish("tasks", {"kind": "task", "task": task_summary(task)})

    # ------------------------------------------------------------------ views

    def snapshot(self) -> dict[str, Any]:
        now = self.clock()
        return {
            "timestamp": now,
            "uptime_ms": now - self.started_at,
            "agents": [a.view() for a in self.agents.values()],
            "queue": {s: self.counts.get(s, 0) for s in ALL_STATES},
            "recent_completions": list(self.recent),
            "routing_stats": self.router.stats(),
            "totals": self.totals(),
        }

    def totals(self) -> dict[str, Any]:
        """Money and tokens over every finished execution; runs without a price are counted apart
        (``unpriced_executions``), never summed as 0."""
        return totals_view(self.totals_nano)

    def task_detail(self, task_id: str) -> dict[str, Any]:
        task = self.tasks.get(task_id) or self.store.get(task_id)
        if task is None:
            raise NotFound(f"no task {task_id!r}", task_id=task_id)
        detail = task_summary(task)
        detail.update({
            "metadata": task.metadata, "file_hints": task.file_hints, "success_criteria": task.success_criteria,
            "verification_steps": task.verification_steps, "needed_capabilities": task.needed_capabilities,
            "depends_on": task.depends_on, "assign_to": task.assign_to, "complexity": task.complexity,
            "result": task.result, "last_error": task.last_error, "history": self.store.history(task_id),
        })
        return detail

    def spend_since(self, since_ms: int) -> Decimal:
        return self.store.cloud_spend_since(since_ms)


def task_summary(task: Task) -> dict[str, Any]:
    return {
        "task_id": task.task_id, "description": task.description, "priority": m.PRIORITIES[task.priority],
        "status": task.status, "generation": task.generation, "attempts": task.attempts,
        "max_attempts": task.max_attempts, "assigned_to": task.assigned_to, "tier": task.tier,
        "routing_decision": task.routing_decision, "created_at": task.created_at, "updated_at": task.updated_at,
        "completed_at": task.completed_at,
        "cost_usd": (task.result or {}).get("estimated_cost_usd"),
        "model_used": (task.result or {}).get("model_used"),
    }


__all__ = ["HubCore", "Router", "Wait", "now_ms", "task_summary", "NANO"]
