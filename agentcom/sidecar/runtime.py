"""The sidecar: one agent's connection to the hub and the tasks it runs.

``Sidecar.run`` keeps a WebSocket session to the hub alive (identify, heartbeat,
reconnect with capped exponential backoff and jitter) and runs up to ``concurrency``
tasks at once through a dispatcher. What it guarantees:

- every accepted task is journalled first (``journal.py``) and stays there until the hub
  acknowledges its outcome, so neither a dropped connection nor a crash loses it;
- on (re)connect the journal is offered as ``identify.resume``: a task the hub continues is
  carried on (or run again after a crash), one it reassigns is dropped;
- a shell command's process group is journalled when it spawns; on start-up, and again before a
  journalled task is run again or let go, every group a killed predecessor left running is
  killed (``_reap_orphans``), so a task never runs twice at once;
- a task this sidecar's set-up cannot run (no executor for its target, no API key, no Ollama
  endpoint: ``Dispatcher.refusal``) is answered ``task_rejected``, and the hub gives it to another;
- frames produced while disconnected wait in the outbox and go out once the resume answers
  are in, minus those of tasks that are no longer ours;
- ``task_cancelled`` stops the work at once and nothing more is sent for that generation;
- a refused token is fatal (``SidecarRefused``), not a reconnect loop;
- the hub hears what its endpoints have room for (``resource_report``): on connect, when
  the running set changes (at most once a second) and every ``resource_interval_s``.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Awaitable, Callable, Protocol, Sequence

import msgspec
from tornado.httpclient import HTTPClientError, HTTPRequest
from tornado.websocket import WebSocketClientConnection, WebSocketClosedError, websocket_connect

from agentcom.errors import AgentComError, HubUnavailable, ProtocolError
from agentcom.executors import process_groups
from agentcom.executors.base import Output
from agentcom.executors.process_groups import ProcessGroup
from agentcom.protocol import codec
from agentcom.protocol import messages as m
from agentcom.routing.addresses import parse_address
from agentcom.routing.targets import serves
from agentcom.sidecar.connection import Backoff, Pacer, sidecar_url
from agentcom.sidecar.emitter import DEFAULT_BATCH_INTERVAL_MS, ProgressEmitter
from agentcom.sidecar.journal import FinalFrame, Journal
from agentcom.sidecar.outbox import Outbox

log = logging.getLogger(__name__)

WRITE_BATCH = 256
RESUME_WAIT_S = 5.0
STOP_GRACE_S = 3.0
MAX_RESUME = 64  # identify.resume entries the protocol takes
FRAME_MARGIN = 1_024  # bytes kept free under the hub's frame limit
DEFAULT_MAX_EVENTS_PER_S = 2_000  # progress frames a second: under the hub's per-session budget (5 000)
_REFUSING_ERRORS = {"stale_generation", "not_found"}
REPORT_MIN_GAP_S = 1.0  # resource reports at most this often, however often tasks start and end
STORE_RETRY_S = (1.0, 2.0, 4.0, 8.0, 15.0, 30.0)  # an outcome the hub could not store is offered again after these
_LOOPBACK = {"127.0.0.1", "::1", "localhost"}
ORPHAN_WAIT_S = 10.0  # how long start-up waits for killed orphan process groups to be gone


class SidecarRefused(HubUnavailable):
    """The hub refused this sidecar's credentials (``unauthorized`` or close 1008)."""


class Runner(Protocol):
    """What executes a task: ``agentcom.executors.dispatch.Dispatcher`` or a stand-in."""

    async def execute(self, task: m.TaskAssign, on_output: Callable[[Output], Awaitable[None]]) -> Any: ...


@dataclass
class _Run:
    assign: m.TaskAssign
    emitter: ProgressEmitter
    task: asyncio.Task[None] | None = None


class Sidecar:
    """One sidecar process's worth of state. Create, ``await run()``, ``stop()`` from a signal."""

    def __init__(
        self,
        hub_url: str,
        agent_id: str,
        token: str,
        *,
        capabilities: Sequence[str] = (),
        ollama_url: str | None = None,
        workdir: str | Path | None = None,
        state_dir: str | Path,
        concurrency: int = 1,
        runner: Runner | None = None,
        name: str | None = None,
        models: Sequence[str] = (),
        batch_interval_ms: int | None = None,
        connect_timeout_s: float = 10.0,
        backoff: Backoff = Backoff(),
        max_frame_bytes: int = 1_048_576,
        max_events_per_s: float = DEFAULT_MAX_EVENTS_PER_S,
        dispatcher_options: dict[str, Any] | None = None,
        resource_interval_s: float = 15.0,
    ) -> None:
        if not 1 <= concurrency <= 64:
            raise ValueError(f"concurrency must be between 1 and 64, got {concurrency}")
        self.url = sidecar_url(hub_url)
        self.agent_id = agent_id
        self._token = token
        self.capabilities = list(capabilities)
        self.ollama_url = ollama_url
        self.workdir = Path(workdir) if workdir else Path.cwd()
        self.concurrency = concurrency
        self.name = name
        self.models = list(models)
        # None: the hub's batch_interval_ms (sent in identified), else the default; a value given wins
        self._batch_interval_given = batch_interval_ms is not None
        self.batch_interval_ms = DEFAULT_BATCH_INTERVAL_MS if batch_interval_ms is None else batch_interval_ms
        self._hub_price_table: str | None = None  # the hub's table version last warned about
        self.connect_timeout_s = connect_timeout_s
        self.backoff = backoff
        self.max_frame_bytes = max_frame_bytes
        self._pacer = Pacer(max_events_per_s)
        self.journal = Journal(state_dir)
        self.outbox = Outbox()
        self._runner = runner
        self._dispatcher_options = dispatcher_options or {}
        self._runs: dict[str, _Run] = {}
        self._conn: WebSocketClientConnection | None = None
        self._stop = asyncio.Event()
        self._resume_pending: set[str] = set()
        self._last_heard = 0.0
        self.identified_count = 0
        self.resource_interval_s = resource_interval_s
        self._runs_changed = asyncio.Event()
        self._reports_refused = False  # the hub does not know resource_report (an older hub)
        self._store_retries: dict[str, int] = {}  # task_id -> outcomes refused with store_unavailable so far
        self._own_groups: set[ProcessGroup] = set()  # groups this process spawned; the journal's others are orphans

    # ------------------------------------------------------------------ public

    @property
    def connected(self) -> bool:
        return self._conn is not None

    @property
    def running_tasks(self) -> list[str]:
        return list(self._runs)

    def stop(self) -> None:
        """Ask ``run`` to finish: running work is stopped and stays journalled (see ``_shutdown``)."""
        self._stop.set()

    async def run(self) -> None:
        """Serve until ``stop()``. Raises SidecarRefused / HubUnavailable when it cannot start."""
        self.journal.lock()
        try:
            await self._reap_orphans()
            if self._runner is None:
                self._runner = self._make_dispatcher()
            serving = asyncio.create_task(self._connect_loop())
            stopping = asyncio.create_task(self._stop.wait())
            await asyncio.wait({serving, stopping}, return_when=asyncio.FIRST_COMPLETED)
            stopping.cancel()
            if not serving.done():
                await self._shutdown()
                try:
                    await asyncio.wait_for(serving, STOP_GRACE_S + 5)
                except asyncio.TimeoutError:
                    pass
            serving.result()  # re-raises SidecarRefused / HubUnavailable
        finally:
            runs = [r.task for r in self._runs.values() if r.task is not None]
            for task in runs:
                task.cancel()
            await asyncio.gather(*runs, return_exceptions=True)
            self._runs.clear()
            self.journal.unlock()

    async def _shutdown(self) -> None:
        """Stop the work and leave: running tasks stay journalled for the hub's lease.

        Why not ``task_failed``: the hub would requeue the task and, this sidecar being still
        connected, could hand it straight back. Closing instead lets the hub keep the task for
        ``lease_ms``: a restarted sidecar resumes it (``task_continue``, run again), otherwise the
        hub reclaims it when the lease runs out. Outcomes not yet acknowledged get a moment to go.
        """
        runs = list(self._runs.values())
        self._runs.clear()
        for run in runs:
            run.emitter.close()  # what it printed so far still goes out
            if run.task is not None:
                run.task.cancel()  # executors kill their process group / close their stream
        await asyncio.gather(*(r.task for r in runs if r.task is not None), return_exceptions=True)
        if runs:
            log.info("stopped %d running task(s); they stay journalled for resume", len(runs))
        if self._conn is not None:
            try:
                await asyncio.wait_for(self._acks_settled(), STOP_GRACE_S)
            except asyncio.TimeoutError:
                pass
        if self._conn is not None:
            self._conn.close(1000, "sidecar stopping")

    async def _acks_settled(self) -> None:
        await self.outbox.drained()
        while self._conn is not None and any(e.state == "finished" for e in self.journal.entries()):
            await asyncio.sleep(0.02)

    # ------------------------------------------------------------------ orphaned commands

    async def _reap_orphans(self) -> None:
        """Kill the process groups a killed predecessor left running, and wait for them to go.

        Why before connecting: the hub may answer the resume with ``task_continue`` at once, and the
        task would run again while its first command still runs. A group still there after
        ``ORPHAN_WAIT_S`` (stuck in the kernel) stays journalled and is killed again before its task
        runs or is let go."""
        orphans = self._kill_orphans()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + ORPHAN_WAIT_S
        while (left := [g for g in orphans if process_groups.alive(g)]) and loop.time() < deadline:
            await asyncio.sleep(0.05)
        for group in left:
            log.error("process group %d of task %s survived SIGKILL for %.0fs; still journalled",
                      group.pgid, group.task_id, ORPHAN_WAIT_S)
        self.journal.forget_process_groups([g for g in orphans if g not in left])

    def _kill_orphans(self, task_id: str | None = None) -> list[ProcessGroup]:
        """SIGKILL the journalled groups (of one task, or all) this process did not spawn; returns them.

        Each is killed only if it is still that very group (``process_groups.kill`` checks the
        leader's start time, or the task's mark in a member's environment)."""
        orphans = [g for g in self.journal.process_groups(task_id) if g not in self._own_groups]
        for group in orphans:
            if process_groups.kill(group):
                log.warning("killed process group %d of task %s (generation %d): a previous sidecar process "
                            "left it running", group.pgid, group.task_id, group.generation)
        return orphans

    def _release_orphans(self, task_id: str) -> None:
        """Before a journalled task runs again or is let go: no command of an earlier run may go on."""
        orphans = self._kill_orphans(task_id)
        self.journal.forget_process_groups([g for g in orphans if not process_groups.alive(g)])

    def _process_spawned(self, group: ProcessGroup) -> None:
        """The shell executor started a command: journal its group before it can outlive a crash."""
        self._own_groups.add(group)
        self.journal.add_process_group(group)

    # ------------------------------------------------------------------ connection

    async def _connect_loop(self) -> None:
        loop = asyncio.get_running_loop()
        give_up_at = loop.time() + self.connect_timeout_s
        attempt = 0
        while not self._stop.is_set():
            try:
                conn = await websocket_connect(
                    HTTPRequest(self.url, connect_timeout=max(1.0, min(10.0, self.connect_timeout_s)),
                                request_timeout=max(1.0, min(10.0, self.connect_timeout_s))),
                    max_message_size=self.max_frame_bytes,
                )
            except (OSError, HTTPClientError, asyncio.TimeoutError, WebSocketClosedError) as exc:
                if self.identified_count == 0 and loop.time() >= give_up_at:
                    raise HubUnavailable(f"cannot reach the hub at {self.url}: {_reason(exc)}") from None
                delay = self.backoff.delay(attempt)
                attempt += 1
                level = logging.WARNING if self.identified_count else logging.INFO
                log.log(level, "hub unreachable (%s); retrying in %.1fs", _reason(exc), delay)
                await self._sleep(delay)
                continue
            if self._stop.is_set():
                conn.close(1000, "sidecar stopping")
                break
            try:
                if await self._session(conn):
                    attempt = 0
            finally:
                self._conn = None
                self.outbox.close()
                conn.close()
            if self._stop.is_set():
                break
            delay = self.backoff.delay(attempt)
            attempt += 1
            log.warning("disconnected from the hub; reconnecting in %.1fs", delay)
            await self._sleep(delay)

    async def _sleep(self, seconds: float) -> None:
        try:
            await asyncio.wait_for(self._stop.wait(), seconds)
        except asyncio.TimeoutError:
            pass

    async def _session(self, conn: WebSocketClientConnection) -> bool:
        """One connection: identify, then read until it closes. True if it got identified."""
        resume = self.journal.resume_entries()[:MAX_RESUME]  # the rest wait for a later connection
        # lifecycle frames of journalled tasks are re-derived from the journal by the resume answers
        self.outbox.discard_lifecycle({entry.task_id for entry in resume})
        hello = m.Identify(
            agent_id=self.agent_id, token=self._token, protocol_version=1, name=self.name,
            capabilities=self.capabilities, ollama_url=self.ollama_url, models=self.models, resume=resume,
            concurrency=self.concurrency,
        )
        try:
            await conn.write_message(codec.encode(hello))
            raw = await asyncio.wait_for(conn.read_message(), timeout=max(5.0, self.connect_timeout_s))
        except (WebSocketClosedError, asyncio.TimeoutError):
            return False
        if raw is None:
            if conn.close_code == 1008:
                raise SidecarRefused(f"the hub refused agent {self.agent_id!r}: {conn.close_reason or 'policy violation'}")
            return False
        frame = self._decode(raw)
        if isinstance(frame, m.ErrorFrame):
            if frame.error == "unauthorized":
                raise SidecarRefused(f"the hub refused the token of agent {self.agent_id!r}: {frame.message}")
            log.warning("hub answered identify with %s: %s", frame.error, frame.message)
            return False
        if not isinstance(frame, m.Identified):
            log.warning("hub answered identify with %r; reconnecting", type(frame).__name__)
            return False
        self.identified_count += 1
        self._apply_hub_settings(frame)
        self._conn = conn
        self._last_heard = time.monotonic()
        log.info("identified as %s (heartbeat %d ms, lease %d ms)", frame.agent_id, frame.heartbeat_ms, frame.lease_ms)
        self._resume_pending = {entry.task_id for entry in resume}
        helpers = [
            asyncio.create_task(self._write_loop(conn)),
            asyncio.create_task(self._heartbeat(conn, frame.heartbeat_ms, frame.lease_ms)),
            asyncio.create_task(self._report_resources(conn)),
        ]
        if self._resume_pending:
            helpers.append(asyncio.create_task(self._open_after(RESUME_WAIT_S)))
        else:
            self.outbox.open()
        try:
            while (raw := await conn.read_message()) is not None:
                self._last_heard = time.monotonic()
                inbound = self._decode(raw)
                if inbound is not None:
                    self._handle(inbound)
        finally:
            for helper in helpers:
                helper.cancel()
            await asyncio.gather(*helpers, return_exceptions=True)
        log.info("connection closed (%s %s)", conn.close_code, conn.close_reason or "")
        return True

    async def _write_loop(self, conn: WebSocketClientConnection) -> None:
        while True:
            batch = await self.outbox.take(WRITE_BATCH)
            sent = 0
            try:
                await self._pacer.spend(sum(isinstance(f, m.TaskProgress) for f in batch))
                last = None
                for frame in batch:
                    last = conn.write_message(codec.encode(frame))
                    sent += 1
                if last is not None:
                    await last
            except WebSocketClosedError:
                # frames handed to a dying socket may be lost: progress tolerates it, and
                # lifecycle frames are journalled and re-sent through the resume handshake
                self.outbox.put_front(batch[sent:])
                return
            except asyncio.CancelledError:
                self.outbox.put_front(batch[sent:])
                raise

    async def _heartbeat(self, conn: WebSocketClientConnection, heartbeat_ms: int, lease_ms: int) -> None:
        """Ping every ``heartbeat_ms``; close a connection the hub has been silent on for a lease."""
        interval = max(heartbeat_ms, 10) / 1000
        silence_limit = max(lease_ms / 1000, 3 * interval)
        while True:
            await asyncio.sleep(interval)
            if time.monotonic() - self._last_heard > silence_limit:
                log.warning("no word from the hub for %.1fs; reconnecting", silence_limit)
                conn.close(1001, "hub silent")
                return
            try:
                conn.write_message(codec.encode(m.Ping()))
            except WebSocketClosedError:
                return

    async def _report_resources(self, conn: WebSocketClientConnection) -> None:
        """Send ``resource_report`` now, after each change of the running set (at most every
        ``REPORT_MIN_GAP_S``) and every ``resource_interval_s``; straight to the socket, since a
        report held over a disconnection would be stale when it arrived."""
        self._reports_refused = False
        while True:
            self._runs_changed.clear()
            report = None if self._reports_refused else await self.resource_report()
            if report is not None:
                try:
                    conn.write_message(codec.encode(report))
                except WebSocketClosedError:
                    return
            await asyncio.sleep(REPORT_MIN_GAP_S)
            # asyncio.timeout, not wait_for: on Python 3.11 wait_for swallows a cancel that arrives as the
            # event is set, and this helper then outlives its session, which waits for it for ever
            try:
                async with asyncio.timeout(max(0.0, self.resource_interval_s - REPORT_MIN_GAP_S)):
                    await self._runs_changed.wait()
            except TimeoutError:
                pass

    async def resource_report(self) -> m.ResourceReport | None:
        """Free slots and tasks in flight per endpoint this sidecar uses (its ``ollama_url`` and every
        endpoint a running task was sent to); for its ``ollama_url`` also the loaded models and, when
        that is this machine, its load and memory. None when it uses no endpoint."""
        running: dict[str, tuple[str, int]] = {}  # endpoint id -> (address as reported, tasks running there)
        for run in self._runs.values():
            decision = run.assign.routing_decision
            address = decision.selected_endpoint or (self.ollama_url if decision.target_type == "ollama" else None)
            endpoint_id = _endpoint_id(address)
            if address and endpoint_id:
                first_address, count = running.get(endpoint_id, (address, 0))
                running[endpoint_id] = (first_address, count + 1)
        free = max(0, self.concurrency - len(self._runs))
        entries = []
        own_id = _endpoint_id(self.ollama_url)
        if self.ollama_url and own_id:
            _, in_flight = running.pop(own_id, ("", 0))
            local = parse_address(self.ollama_url).host in _LOOPBACK
            entries.append(m.EndpointResources(endpoint=self.ollama_url, free_slots=free, in_flight=in_flight,
                                               loaded_models=await _loaded_models(self.ollama_url),
                                               **(machine_figures() if local else {})))
        for address, in_flight in sorted(running.values()):
            entries.append(m.EndpointResources(endpoint=address, free_slots=free, in_flight=in_flight))
        return m.ResourceReport(endpoints=entries[:64]) if entries else None

    async def _open_after(self, seconds: float) -> None:
        await asyncio.sleep(seconds)
        if self._resume_pending:
            log.warning("hub did not answer resume for %s; sending anyway", ", ".join(sorted(self._resume_pending)))
            self._resume_pending.clear()
        self.outbox.open()

    def _resume_answered(self, task_id: str) -> None:
        if task_id in self._resume_pending:
            self._resume_pending.discard(task_id)
            if not self._resume_pending:
                self.outbox.open()

    def _decode(self, raw: str | bytes) -> Any:
        try:
            return codec.sidecar_outbound_decoder.decode(raw)
        except ProtocolError as exc:
            log.warning("ignoring a frame from the hub: %s", exc.message)
            return None

    # ------------------------------------------------------------------ inbound frames

    def _handle(self, frame: Any) -> None:
        if isinstance(frame, m.TaskAssign):
            self._on_assign(frame)
        elif isinstance(frame, m.TaskCancelled):
            self._on_cancelled(frame)
        elif isinstance(frame, m.TaskAck):
            self._on_ack(frame)
        elif isinstance(frame, m.TaskContinue):
            self._on_continue(frame)
        elif isinstance(frame, m.TaskReassign):
            self._on_reassign(frame)
        elif isinstance(frame, m.ErrorFrame):
            self._on_error(frame)
        # Pong and a repeated Identified only renew liveness

    def _on_assign(self, assign: m.TaskAssign) -> None:
        current = self._runs.get(assign.task_id)
        if current is not None:
            if current.assign.generation == assign.generation:
                return  # a duplicate of what we are running
            self._abandon(assign.task_id)  # the hub moved on to a newer generation
        if self._stop.is_set():
            self.outbox.put(m.TaskRejected(task_id=assign.task_id, generation=assign.generation, reason="stopping"))
            return
        if len(self._runs) >= self.concurrency:
            self.outbox.put(m.TaskRejected(task_id=assign.task_id, generation=assign.generation, reason="busy"))
            return
        refusal = getattr(self._runner, "refusal", None)  # a stand-in runner may not say
        reason = refusal(assign) if refusal is not None else None
        if reason:
            # this sidecar's set-up, not the task: back to the queue, for a sidecar that can run it
            log.warning("task %s: rejected, this sidecar cannot run it: %s", assign.task_id, reason)
            self.outbox.put(m.TaskRejected(task_id=assign.task_id, generation=assign.generation,
                                           reason=f"cannot run it here: {reason}"[:4000]))
            return
        entry = self.journal.start(assign)
        self.outbox.put(m.TaskAccepted(task_id=assign.task_id, generation=assign.generation))
        log.info("task %s (generation %d, %s): accepted", assign.task_id, assign.generation,
                 assign.routing_decision.target_type)
        self._start(assign, first_seq=entry.seq_reserved + 1, note=None)

    def _on_continue(self, frame: m.TaskContinue) -> None:
        self._resume_answered(frame.task_id)
        entry = self.journal.get(frame.task_id)
        if entry is None or entry.generation != frame.generation:
            return
        if entry.state == "finished":
            final = entry.final_frame()
            if final is not None:
                log.info("task %s: hub continues it; sending its outcome again", frame.task_id)
                self.outbox.put(final)
            return
        if not entry.accepted_acked:
            self.outbox.put(m.TaskAccepted(task_id=entry.task_id, generation=entry.generation))
        if frame.task_id in self._runs:
            return  # still running here: the connection dropped, the work did not
        self._release_orphans(frame.task_id)  # normally done at start-up; a survivor gets one more SIGKILL
        entry = self.journal.rerun(frame.task_id) or entry
        log.info("task %s: hub continues it after a restart; running it again (run %d)", frame.task_id, entry.runs)
        self._start(entry.assign_frame(), first_seq=entry.seq_reserved + 1,
                    note=f"sidecar restarted; running the task again (run {entry.runs})")

    def _on_reassign(self, frame: m.TaskReassign) -> None:
        self._resume_answered(frame.task_id)
        log.info("task %s: hub reassigned it; dropping it", frame.task_id)
        self._abandon(frame.task_id)

    def _on_cancelled(self, frame: m.TaskCancelled) -> None:
        run = self._runs.get(frame.task_id)
        if run is not None and run.assign.generation != frame.generation:
            return
        log.info("task %s: cancelled by the hub", frame.task_id)
        self._abandon(frame.task_id, frame.generation)

    def _on_ack(self, frame: m.TaskAck) -> None:
        if frame.status == "accepted":
            self.journal.mark_accepted(frame.task_id)
            return
        entry = self.journal.get(frame.task_id)
        if entry is not None and entry.state == "finished":
            self.journal.remove(frame.task_id)

    def _on_error(self, frame: m.ErrorFrame) -> None:
        if frame.error == "rate_limited":
            if self.outbox.pause((frame.retry_after_ms or 1000) / 1000):
                log.warning("hub says rate_limited (%s); pausing %d ms", frame.message, frame.retry_after_ms or 1000)
            return
        if frame.error == "unknown_type" and "'resource_report'" in frame.message:
            log.info("the hub does not take resource reports; not sending more on this connection")
            self._reports_refused = True  # each one would count as a bad frame towards a 1008 close
            return
        log.warning("hub error %s: %s", frame.error, frame.message)
        if not frame.task_id:
            return
        entry = self.journal.get(frame.task_id)
        if frame.error in _REFUSING_ERRORS:
            self._abandon(frame.task_id)  # the task is not ours any more
        elif frame.error == "invalid_state" and entry is not None and entry.state == "finished":
            self.journal.remove(frame.task_id)  # the hub already closed it
        elif frame.error == "store_unavailable" and entry is not None and entry.state == "finished":
            self._resend_outcome_later(frame.task_id, entry.generation)

    def _resend_outcome_later(self, task_id: str, generation: int) -> None:
        """The hub could not record this outcome (its disk is full or read-only) and keeps the task
        open: offer it again on this connection, with backoff, rather than only after a reconnect
        that may never come. The journal keeps the outcome meanwhile."""
        attempt = self._store_retries.get(task_id, 0)
        self._store_retries[task_id] = attempt + 1
        delay = STORE_RETRY_S[min(attempt, len(STORE_RETRY_S) - 1)]
        asyncio.get_running_loop().call_later(delay, self._resend_outcome, task_id, generation)

    def _resend_outcome(self, task_id: str, generation: int) -> None:
        entry = self.journal.get(task_id)
        if entry is None or entry.generation != generation or entry.state != "finished":
            self._store_retries.pop(task_id, None)  # acknowledged, or no longer ours
            return
        final = entry.final_frame()
        if final is not None and self.connected and not self._stop.is_set():
            log.info("task %s: sending its outcome again (the hub's store refused it)", task_id)
            self.outbox.put(final)

    def _abandon(self, task_id: str, generation: int | None = None) -> None:
        """Stop a task's work, forget its frames and its journal entry; send nothing more."""
        run = self._runs.pop(task_id, None)
        if run is not None:
            self._runs_changed.set()
            run.emitter.discard()
            if run.task is not None:
                run.task.cancel()
            generation = run.assign.generation if generation is None else generation
        self.outbox.discard(task_id, generation)
        self.journal.remove(task_id, generation)
        self._release_orphans(task_id)  # a task let go after a crash: its first command must not run on

    # ------------------------------------------------------------------ running tasks

    def _start(self, assign: m.TaskAssign, *, first_seq: int, note: str | None) -> None:
        task_id = assign.task_id
        emitter = ProgressEmitter(
            task_id, assign.generation, self.outbox.put, batch_interval_ms=self.batch_interval_ms,
            first_seq=first_seq, on_reserve=lambda upto: self.journal.reserve_seq(task_id, upto),
            congested=lambda: self.outbox.congested,
        )
        run = _Run(assign=assign, emitter=emitter)
        self._runs[task_id] = run
        if note:
            emitter.emit(Output(kind="status", text=note))
        run.task = asyncio.create_task(self._execute(run), name=f"task {task_id}")
        self._runs_changed.set()

    async def _execute(self, run: _Run) -> None:
        assign, emitter = run.assign, run.emitter

        async def on_output(out: Output) -> None:
            emitter.emit(out)
            await self.outbox.room()

        try:
            if self._runner is None:
                raise AgentComError("the sidecar has no runner")
            finished = await self._runner.execute(assign, on_output)
            final = fit_frame(_final_frame(assign, finished), self.max_frame_bytes - FRAME_MARGIN)
        except asyncio.CancelledError:
            emitter.discard()
            self._run_ended(assign, forget=True)
            raise
        except Exception as exc:  # noqa: BLE001  an executor bug must still end the task, not the sidecar
            # retryable, as the dispatcher rules for an executor crash: nothing says the next attempt
            # meets the same fault, and max_attempts bounds the cost of being wrong
            log.exception("task %s crashed the executor", assign.task_id)
            final = m.TaskFailed(task_id=assign.task_id, generation=assign.generation,
                                 error=f"sidecar error: {type(exc).__name__}: {exc}"[:4000], retryable=True)
        if self._runs.get(assign.task_id) is not run:
            self._run_ended(assign, forget=True)
            return  # cancelled, reassigned or stopped while finishing
        emitter.close()
        self.journal.finish(final)  # forgets the run's process groups in the same write
        self._run_ended(assign, forget=False)
        self.outbox.put(final)
        del self._runs[assign.task_id]
        self._runs_changed.set()
        log.info("task %s: %s", assign.task_id,
                 "complete" if isinstance(final, m.TaskComplete) else f"failed: {final.error.splitlines()[0][:200]}")

    def _run_ended(self, assign: m.TaskAssign, *, forget: bool) -> None:
        """A run is over, and the executor has stopped its commands (it kills its process group before
        it returns or raises): its groups are no longer anyone's to kill."""
        ended = [g for g in self._own_groups if (g.task_id, g.generation) == (assign.task_id, assign.generation)]
        self._own_groups.difference_update(ended)
        if forget:
            self.journal.forget_process_groups(ended)

    # ------------------------------------------------------------------ setup

    def _apply_hub_settings(self, frame: m.Identified) -> None:
        """Adopt the hub's ``batch_interval_ms`` and ``reference_model`` from ``identified`` (absent: the
        defaults) unless this sidecar was given its own; say so when the hub's price table is not ours.

        Why: users set these once, on the hub, and expect every sidecar to follow (docs/configuration.md).
        A value this sidecar cannot use is ignored with a warning, never a reason to drop the connection."""
        from agentcom.errors import PricingError
        from agentcom.pricing import DEFAULT_REFERENCE_MODEL

        interval = DEFAULT_BATCH_INTERVAL_MS if frame.batch_interval_ms is msgspec.UNSET else frame.batch_interval_ms
        if self._batch_interval_given:
            if interval != self.batch_interval_ms:
                log.info("batch interval %d ms (--batch-interval-ms; the hub's is %d ms)", self.batch_interval_ms, interval)
        elif isinstance(interval, int) and interval >= 1:
            self.batch_interval_ms = interval
        else:
            log.warning("ignoring the hub's batch_interval_ms %r: not a positive number of ms", interval)
        runner: Any = self._runner  # the Dispatcher prices runs; a stand-in runner may not
        prices = getattr(runner, "prices", None)
        if prices is None or not hasattr(runner, "reference_model"):
            return  # a runner that prices nothing
        reference = DEFAULT_REFERENCE_MODEL if frame.reference_model is msgspec.UNSET else frame.reference_model
        if "reference_model" in self._dispatcher_options:
            if reference != runner.reference_model:
                log.info("reference model %s (--reference-model; the hub's is %s)", runner.reference_model, reference)
        elif reference != runner.reference_model:
            try:
                prices.check_reference(reference)
            except PricingError as exc:
                log.warning("keeping reference model %s: the hub's cannot be used here: %s", runner.reference_model, exc)
            else:
                runner.reference_model = reference
        hub_table = frame.price_table
        if hub_table is not msgspec.UNSET and hub_table != prices.version and hub_table != self._hub_price_table:
            self._hub_price_table = hub_table
            log.warning("this sidecar prices its runs with price table %s, the hub's price_table setting is %s: "
                        "recorded costs follow this sidecar's table (give it --price-table with the hub's file)",
                        prices.version, hub_table)
        log.info("batch interval %d ms, reference model %s, price table %s",
                 self.batch_interval_ms, runner.reference_model, prices.version)

    def _announce(self, capability: str) -> None:
        """Tell the hub (in ``identify``) what this sidecar serves itself, so model routing need not wait
        for a registered endpoint."""
        if capability not in self.capabilities:
            self.capabilities.append(capability)

    def _make_dispatcher(self) -> Runner:
        """The executors' Dispatcher, with the embedded model when one was asked for."""
        from agentcom.executors.dispatch import Dispatcher
        from agentcom.pricing import PriceTable

        options = dict(self._dispatcher_options)
        prices = PriceTable.load(options.pop("price_table", None))
        from agentcom.executors.openai_compat import OpenAICompatExecutor

        # OpenAI-compatible servers are reached at the endpoint the routing decision names,
        # else at the sidecar's own --openai-url (explicit routing, or model routing to a sidecar that says
        # serves:openai, names no endpoint).
        openai_url = options.pop("openai_url", None)
        executors: dict[str, Any] = {"openai": OpenAICompatExecutor(openai_url)}
        if openai_url:
            self._announce(serves("openai"))
        local_model = options.pop("local_model", None)
        local_threads = options.pop("local_threads", None)
        if local_model:
            from agentcom.executors.local_llama import LocalLlamaExecutor

            local = LocalLlamaExecutor(local_model, n_threads=local_threads)
            executors["local"] = local
            self._announce(serves("local"))
            if local.model_name not in self.models:
                self.models.append(local.model_name)
        return Dispatcher(prices, workdir=self.workdir, ollama_url=self.ollama_url, executors=executors,
                          on_spawn=self._process_spawned, **options)


def _final_frame(assign: m.TaskAssign, finished: Any) -> FinalFrame:
    """The dispatcher's ``Finished`` as ``task_complete`` or ``task_failed``."""
    result: m.ExecutionResult = finished.result
    if finished.error is None and result.status == "success":
        return m.TaskComplete(task_id=assign.task_id, generation=assign.generation, result=result)
    error = finished.error or "execution failed"
    return m.TaskFailed(task_id=assign.task_id, generation=assign.generation, error=error[:4000],
                        retryable=bool(finished.retryable), result=result)


def fit_frame(final: FinalFrame, max_bytes: int) -> FinalFrame:
    """The outcome with its ``result.output`` cut (oldest text first) until the frame fits.

    Why: the hub closes the socket on a frame above its limit (1009); an outcome that never
    fits would be re-sent after every reconnect, for ever. 512 Ki characters of output can
    exceed 1 MiB once JSON-escaped and UTF-8 encoded.
    """
    size = len(codec.encode(final).encode())
    result = final.result
    while size > max_bytes and result is not None and result.output:
        output = result.output
        bytes_per_char = len(codec.encode_bytes(output)) / len(output)  # escaping and UTF-8 widen text
        keep = max(0, len(output) - int((size - max_bytes) / bytes_per_char) - 128)
        marker = f"[... {len(output) - keep} earlier characters cut to fit the frame ...]\n" if keep else ""
        result = msgspec.structs.replace(result, output=marker + output[len(output) - keep:])
        final = msgspec.structs.replace(final, result=result)
        size = len(codec.encode(final).encode())
    return final


def _endpoint_id(address: str | None) -> str | None:
    """``host:port`` of an endpoint address, so a URL and a bare ``host:port`` count as one."""
    if not address:
        return None
    try:
        return parse_address(address).endpoint_id
    except AgentComError:
        return None


async def _loaded_models(ollama_url: str) -> list[str] | None:
    """Models the Ollama server holds in memory (``/api/ps``); None when it does not say."""
    import ollama

    try:
        async with ollama.AsyncClient(host=ollama_url, timeout=2.0) as client:
            answer = await client.ps()
        return [model.model for model in answer.models if isinstance(model.model, str) and model.model][:256]
    except Exception:  # noqa: BLE001 - a report without loaded models is still worth sending
        return None


def machine_figures() -> dict[str, float]:
    """Load (1-minute load average over the cores, as a percentage) and memory of this machine, where
    the system tells; what it does not tell is left out."""
    figures: dict[str, float] = {}
    try:
        figures["cpu_percent"] = min(100.0, 100.0 * os.getloadavg()[0] / (os.cpu_count() or 1))
    except (AttributeError, OSError):
        pass
    try:
        with open("/proc/meminfo", encoding="ascii") as handle:
            kib = {line.split(":")[0]: int(line.split()[1]) for line in handle if line.split()[1:2]}
        if "MemTotal" in kib and "MemAvailable" in kib:
            figures["ram_total_mb"] = kib["MemTotal"] / 1024
            figures["ram_free_mb"] = min(kib["MemAvailable"], kib["MemTotal"]) / 1024
    except (OSError, ValueError, IndexError):
        pass
    return figures


def _reason(exc: BaseException) -> str:
    if isinstance(exc, HTTPClientError):
        return f"HTTP {exc.code}"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__


__all__ = ["Runner", "Sidecar", "SidecarRefused", "fit_frame", "machine_figures"]
