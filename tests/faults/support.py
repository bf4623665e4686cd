"""Pieces the fault suite shares: a TCP relay that can cut connections, protocol sidecars
that record everything they see, and read-only looks at a hub's SQLite file.

Nothing here stands in for an AgentCom component. The relay is a plain byte pipe between
a real client and a real hub, so cutting it is a real network failure (RST or FIN on both
sides). ``RecordingSidecar`` speaks the wire protocol (protocol.md) the way a sidecar must:
it keeps every outcome until the hub acknowledges it and offers those in ``identify.resume``
on every reconnect, and it writes down every ``task_assign`` it runs and every
``task_ack`` it gets in a shared ``Ledger``.
"""

from __future__ import annotations

import asyncio
import json
import re
import socket
import sqlite3
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tornado.httpclient import HTTPClientError, HTTPRequest
from tornado.iostream import StreamClosedError
from tornado.websocket import WebSocketClientConnection, WebSocketClosedError, websocket_connect

from agentcom.protocol import codec
from agentcom.protocol import messages as m
from cli.conftest import agentcom
from hub.wire import result
from sidecar.harness import SidecarProcess, eventually

# --------------------------------------------------------------------- ports and the relay


def free_port() -> int:
    """A loopback port nobody listens on now, so a restarted hub can take the same one."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class _Pipe(asyncio.Protocol):
    def __init__(self, relay: Relay) -> None:
        self.relay = relay
        self.transport: asyncio.Transport | None = None
        self.peer: _Pipe | None = None
        self._early: list[bytes] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        if self.peer is not None and self.peer.transport is not None:
            self.peer.transport.write(data)
        else:
            self._early.append(data)

    def joined(self, peer: _Pipe) -> None:
        self.peer = peer
        for data in self._early:
            self.data_received(data)
        self._early.clear()

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        if self.peer is not None and self.peer.transport is not None:
            self.peer.transport.close()  # the other side sees an orderly FIN without a close frame


class Relay:
    """``127.0.0.1:port`` piped to ``target_port``; ``cut("client"|"hub")`` aborts live links on that side.

    ``cut("client")``: the client's socket is reset under it, the hub sees the stream end.
    ``cut("hub")``: the hub's socket is reset, the client sees the stream end.
    """

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.links: list[tuple[_Pipe, _Pipe]] = []
        self.accepted = 0
        self._server: asyncio.base_events.Server | None = None

    async def start(self) -> Relay:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(lambda: _Inbound(self), "127.0.0.1", 0)
        return self

    @property
    def port(self) -> int:
        assert self._server is not None
        return int(self._server.sockets[0].getsockname()[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def live(self) -> list[tuple[_Pipe, _Pipe]]:
        return [(c, h) for c, h in self.links if c.transport is not None and h.transport is not None]

    def cut(self, side: str) -> int:
        """Abort every live link on ``side``; returns how many."""
        links = self.live()
        for client, hub in links:
            pipe = client if side == "client" else hub
            assert pipe.transport is not None
            pipe.transport.abort()
        return len(links)

    def freeze(self) -> int:
        """Stop carrying bytes on every live link, both ways, without closing anything: a silent network."""
        links = self.live()
        for client, hub in links:
            for pipe in (client, hub):
                assert pipe.transport is not None
                pipe.transport.pause_reading()
        return len(links)

    async def stop(self) -> None:
        for client, hub in self.links:
            for pipe in (client, hub):
                if pipe.transport is not None:
                    pipe.transport.abort()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()


class _Inbound(_Pipe):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self.relay.accepted += 1
        asyncio.ensure_future(self._dial())

    async def _dial(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            _, upstream = await loop.create_connection(lambda: _Pipe(self.relay), "127.0.0.1", self.relay.target_port)
        except OSError:
            if self.transport is not None:
                self.transport.abort()
            return
        assert isinstance(upstream, _Pipe)
        upstream.joined(self)
        self.joined(upstream)
        self.relay.links.append((self, upstream))
        if self.transport is None:  # the client left while we dialled
            if upstream.transport is not None:
                upstream.transport.close()


# --------------------------------------------------------------------- agentcom sidecar processes


async def start_sidecars(hub_url: str, db: Path, env: dict[str, str], work: Path, count: int,
                         *args: str) -> list[SidecarProcess]:
    """``agent-0`` ... ``agent-{count-1}`` as ``agentcom sidecar`` processes, tokens minted with the CLI.

    Returns once each is identified: start-up (seconds of imports on a busy machine) is not what
    a fault test is about.
    """
    sidecars = []
    for i in range(count):
        token = agentcom("token", "create", f"agent-{i}", "--db", str(db), env=env).stdout.strip()
        sidecars.append(await SidecarProcess(hub_url, f"agent-{i}", token, work, args=args).start())
    for sidecar in sidecars:
        await eventually(lambda: "identified as" in sidecar.output(), f"{sidecar.agent_id} up", timeout=60)
    return sidecars


# --------------------------------------------------------------------- recording sidecars

JOB_RE = re.compile(r"job (\d+)")


def job_cost(description: str) -> tuple[float, float]:
    """What job N costs and what it would have cost on Claude: fixed per job, so a resend says the same."""
    n = int(JOB_RE.search(description).group(1)) if JOB_RE.search(description) else 0  # type: ignore[union-attr]
    return (n % 50 + 1) * 1e-5, (n % 50 + 1) * 4e-5


@dataclass
class Ledger:
    """Everything the recording sidecars saw, shared by all of them."""

    runs: Counter[str] = field(default_factory=Counter)       # task_assign frames run, per task
    acked: set[str] = field(default_factory=set)               # task_ack complete received
    run_after_ack: list[tuple[str, int, str]] = field(default_factory=list)
    resent: int = 0                                            # outcomes sent again after task_continue
    refused: Counter[str] = field(default_factory=Counter)     # error codes the hub answered
    connects: int = 0

    def ran(self, task_id: str, generation: int, agent_id: str) -> None:
        if task_id in self.acked:
            self.run_after_ack.append((task_id, generation, agent_id))
        self.runs[task_id] += 1


class RecordingSidecar:
    """A protocol-level sidecar: runs each task at once, keeps outcomes until acknowledged.

    ``gate`` is cleared by a test to keep it from reconnecting (while a hub is down and being
    inspected); ``url`` is read on every connect.
    """

    def __init__(self, url: str, agent_id: str, token: str, ledger: Ledger, *, concurrency: int = 4,
                 gate: asyncio.Event | None = None, ping_s: float = 0.5) -> None:
        self.url = url
        self.agent_id = agent_id
        self.token = token
        self.ledger = ledger
        self.concurrency = concurrency
        self.gate = gate or asyncio.Event()
        if gate is None:
            self.gate.set()
        self.ping_s = ping_s
        self.held: dict[str, tuple[int, m.TaskComplete]] = {}  # the journal: outcomes not yet acknowledged
        self._task: asyncio.Task[None] | None = None
        self._conn: WebSocketClientConnection | None = None

    def start(self) -> RecordingSidecar:
        self._task = asyncio.ensure_future(self._serve())
        return self

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self._conn is not None:
            self._conn.close()

    async def _serve(self) -> None:
        ws_url = self.url.replace("http", "ws", 1) + "/agentcom/ws/sidecar"
        while True:
            await self.gate.wait()
            try:
                conn = await websocket_connect(HTTPRequest(ws_url, connect_timeout=2, request_timeout=2))
            except (OSError, HTTPClientError, StreamClosedError, asyncio.TimeoutError):
                await asyncio.sleep(0.05)
                continue
            if not self.gate.is_set():  # closed while this connect was under way (e.g. resolving)
                conn.close()
                continue
            self._conn = conn
            beat = asyncio.ensure_future(self._ping(conn))
            try:
                await self._session(conn)
            except (WebSocketClosedError, StreamClosedError):
                pass
            finally:
                beat.cancel()
                conn.close()
                self._conn = None

    async def _ping(self, conn: WebSocketClientConnection) -> None:
        while True:
            await asyncio.sleep(self.ping_s)
            self._write(conn, m.Ping())

    async def _session(self, conn: WebSocketClientConnection) -> None:
        resume = [m.ResumeEntry(task_id=t, generation=g) for t, (g, _) in list(self.held.items())[:64]]
        await conn.write_message(codec.encode(m.Identify(
            agent_id=self.agent_id, token=self.token, protocol_version=1, resume=resume, concurrency=self.concurrency)))
        while (raw := await conn.read_message()) is not None:
            frame = codec.sidecar_outbound_decoder.decode(raw)
            match frame:
                case m.Identified():
                    self.ledger.connects += 1
                case m.TaskAssign():
                    self._run(conn, frame)
                case m.TaskContinue():
                    held = self.held.get(frame.task_id)
                    if held is not None and held[0] == frame.generation:
                        self.ledger.resent += 1
                        self._write(conn, held[1])
                case m.TaskReassign():
                    self.held.pop(frame.task_id, None)
                case m.TaskAck(status="accepted"):
                    pass
                case m.TaskAck():
                    if frame.status == "complete":
                        self.ledger.acked.add(frame.task_id)
                    self.held.pop(frame.task_id, None)
                case m.ErrorFrame():
                    self.ledger.refused[frame.error] += 1
                    if frame.task_id and frame.error in ("stale_generation", "not_found", "invalid_state"):
                        self.held.pop(frame.task_id, None)  # not ours any more, or already closed

    def _write(self, conn: WebSocketClientConnection, frame: Any) -> None:
        """Send without waiting; a write to a socket that just died is the reconnect's business."""
        conn.write_message(codec.encode(frame)).add_done_callback(_consume)

    def _run(self, conn: WebSocketClientConnection, assign: m.TaskAssign) -> None:
        self.ledger.ran(assign.task_id, assign.generation, self.agent_id)
        cost, equivalent = job_cost(assign.description)
        outcome = m.TaskComplete(task_id=assign.task_id, generation=assign.generation,
                                 result=result(estimated_cost_usd=cost, equivalent_claude_cost_usd=equivalent,
                                               tokens_in=3, tokens_out=5))
        self.held[assign.task_id] = (assign.generation, outcome)
        self._write(conn, m.TaskAccepted(task_id=assign.task_id, generation=assign.generation))
        self._write(conn, outcome)


def _consume(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()


# --------------------------------------------------------------------- the store, read-only


def read_db(db: Path, sql: str, *args: Any) -> list[tuple[Any, ...]]:
    """Rows of ``sql`` from the hub's file, opened read-only (the hub may be running: WAL)."""
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
    try:
        return conn.execute(sql, args).fetchall()
    finally:
        conn.close()


def count_tasks(db: Path, status: str) -> int:
    """How many tasks the file holds in ``status``."""
    return int(read_db(db, "SELECT count(*) FROM tasks WHERE status = ?", status)[0][0])


def usd_nano(value: float) -> int:
    return round(value * 1_000_000_000)


def runs_by_task(log: Path) -> dict[str, list[int]]:
    """Task id -> the generations it ran at, in order: shell tasks append ``$AGENTCOM_TASK_ID $AGENTCOM_GENERATION``."""
    runs: dict[str, list[int]] = defaultdict(list)
    if log.exists():
        for line in log.read_text().splitlines():
            task_id, generation = line.split()
            runs[task_id].append(int(generation))
    return runs


def record_run(log: Path, then: str) -> str:
    """A shell command (``shell: true``) that appends its task id and generation to ``log``, then runs ``then``."""
    return f'echo "$AGENTCOM_TASK_ID $AGENTCOM_GENERATION" >> {log}; {then}'


def journal_tasks(state_dir: Path) -> list[dict[str, Any]]:
    """The tasks a sidecar's journal holds (running, or finished and not yet acknowledged)."""
    path = state_dir / "journal.json"
    return list(json.loads(path.read_text())["tasks"]) if path.exists() else []
