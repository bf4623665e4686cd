"""Shared parts of the hostile-input tests: a live hub on its own thread with some real state,
a blocking sidecar socket and HTTP client that talk to it over loopback, and the hub's state
as one comparable value.

The hub runs on its own thread (``tests/browser/live.py``), so hypothesis drives plain sync
tests and one hub serves a whole module; the hub is only ever touched on its own loop
(through ``LiveHub.run`` / ``LiveHub.call``).
"""

from __future__ import annotations

import asyncio
import http.client
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import strategies as st
from tornado.websocket import WebSocketClientConnection, websocket_connect

from agentcom.protocol import codec
from agentcom.protocol import messages as m
from browser.live import WAIT_S, LiveHub

KNOWN_ERRORS = {"invalid_json", "validation_failed", "unknown_type", "not_identified", "unauthorized",
                "stale_generation", "invalid_state", "not_found", "rate_limited"}
TABLES = ("tasks", "task_history", "executions", "agent_tokens", "endpoints")


@dataclass
class Seeded:
    """What ``seed`` left on the hub: one task of each kind, their owner and its token."""

    worker_token: str
    working: dict[str, Any]        # assigned to ``worker`` and accepted
    completed: dict[str, Any]      # run to completion by ``worker``
    queued: str                    # needs a capability nobody has: stays queued
    worker: "Socket"

    @property
    def task_ids(self) -> list[str]:
        return [self.working["task_id"], self.completed["task_id"], self.queued]


class Socket:
    """A blocking WebSocket client to the live hub (the connection lives on the hub's loop)."""

    def __init__(self, live: LiveHub, path: str = "/agentcom/ws/sidecar", headers: dict[str, str] | None = None) -> None:
        from tornado.httpclient import HTTPRequest

        self.live = live
        url = live.hub.url.replace("http", "ws", 1) + path

        async def connect() -> WebSocketClientConnection:
            return await websocket_connect(HTTPRequest(url, headers=headers or {}))

        self.ws: WebSocketClientConnection = live.run(connect())

    def send(self, frame: Any, binary: bool = False) -> None:
        raw: str | bytes = codec.encode(frame) if not isinstance(frame, (str, bytes)) else frame

        async def write() -> None:
            await self.ws.write_message(raw, binary=binary or isinstance(raw, bytes))

        self.live.run(write())

    def recv(self) -> dict[str, Any] | None:
        """The next frame, or None once the hub closed the socket."""

        async def read() -> str | bytes | None:
            return await asyncio.wait_for(self.ws.read_message(), WAIT_S)

        raw = self.live.run(read())
        return None if raw is None else dict(json.loads(raw))

    def ask(self, frame: Any, binary: bool = False) -> dict[str, Any] | None:
        self.send(frame, binary)
        return self.recv()

    def pipeline(self, frames: list[str]) -> list[dict[str, Any] | None]:
        """Send all, then read one answer per frame, in one trip to the hub's loop (for long batches)."""

        async def run() -> list[dict[str, Any] | None]:
            for raw in frames:
                await self.ws.write_message(raw)
            answers: list[dict[str, Any] | None] = []
            for _ in frames:
                got = await asyncio.wait_for(self.ws.read_message(), WAIT_S)
                answers.append(None if got is None else dict(json.loads(got)))
            return answers

        return self.live.run(run())

    @property
    def close_code(self) -> int | None:
        return self.ws.close_code

    def close(self) -> None:
        self.live.loop.call_soon_threadsafe(self.ws.close)


def identify(live: LiveHub, agent_id: str, token: str | None = None, **fields: Any) -> Socket:
    sock = Socket(live)
    token = token or live.call(live.hub.create_agent_token, agent_id)
    answer = sock.ask(m.Identify(agent_id=agent_id, token=token, protocol_version=1, **fields))
    assert answer is not None and answer["type"] == "identified", answer
    return sock


# Limits that would cut a fuzzing run short (a fuzzer is a flood of bad frames from one address);
# each is set only where this hub has it. The tests of the limits themselves use the defaults.
LENIENT = {"bad_frame_limit": 1_000_000, "bad_frame_window_ms": 10, "identify_failure_limit": 1_000_000, "frame_rate_limit": 1_000_000,
           "progress_rate_limit": 1_000_000}


def start_hub(tmp: Path, lenient: bool = True, **settings: Any) -> LiveHub:
    """A live hub; ``lenient`` lifts the abuse limits so one fuzzing socket can send thousands of bad frames."""
    from agentcom.config import AgentCom

    if lenient:
        settings = {k: v for k, v in LENIENT.items() if AgentCom.class_traits().get(k) is not None} | settings
    settings.setdefault("lease_ms", 600_000)      # the seeded worker never times out during a module
    settings.setdefault("routing", "explicit")    # seeded tasks assign at once, not after fallback_wait_ms
    return LiveHub(str(tmp / "hub.db"), **settings)


def seed(live: LiveHub) -> Seeded:
    """Real state for bad input to leave alone: a working, a completed and a queued task."""
    hub = live.hub
    token = live.call(hub.create_agent_token, "worker")
    worker = identify(live, "worker", token, capabilities=["shell"])
    result = m.ExecutionResult(status="success", output="ok", model_used="llama3.2", tokens_in=3, tokens_out=4,
                               estimated_cost_usd=0.0, equivalent_claude_cost_usd=0.001, execution_ms=5,
                               price_table="test-1")
    tasks: list[dict[str, Any]] = []
    for description in ("finish me", "keep working"):
        live.call(lambda d=description: hub.submit_dict({"description": d, "assign_to": "worker",
                                                          "complexity_tier": "trivial"}))
        assign = worker.recv()
        assert assign is not None and assign["type"] == "task_assign", assign
        ack = worker.ask(m.TaskAccepted(task_id=assign["task_id"], generation=assign["generation"]))
        assert ack is not None and ack["status"] == "accepted", ack
        tasks.append(assign)
        if description == "finish me":
            ack = worker.ask(m.TaskComplete(task_id=assign["task_id"], generation=assign["generation"], result=result))
            assert ack is not None and ack["status"] == "complete", ack
    done = tasks[0]
    queued = live.call(lambda: hub.submit_dict({"description": "needs a gpu", "needed_capabilities": ["gpu"],
                                                "complexity_tier": "trivial"})).task_id
    return Seeded(worker_token=token, working=tasks[1], completed=done, queued=queued, worker=worker)


# ---------------------------------------------------------------- fixtures the fuzz modules import

@pytest.fixture(autouse=True)
def jp_asyncio_loop() -> None:
    """Replaces pytest-jupyter's per-test loop where imported: the hub runs on its own thread."""


@pytest.fixture(autouse=True)
def jp_server_cleanup() -> None:
    """No Jupyter server where imported."""


@pytest.fixture(scope="module")
def seeded(live: LiveHub) -> Seeded:
    """The module's ``live`` hub with ``seed``'s state on it."""
    return seed(live)


def state(live: LiveHub) -> dict[str, Any]:
    """Everything bad input must not change: snapshot (less clocks), tasks in memory and on disk, row counts."""
    hub = live.hub

    def read() -> dict[str, Any]:
        snap = hub.core.snapshot()
        snap.pop("timestamp"), snap.pop("uptime_ms")
        for agent in snap["agents"]:
            agent.pop("last_seen", None)          # any frame, a bad one too, renews liveness (protocol.md)
        rows = {t: hub.conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in TABLES}
        tasks, count = hub.core.store.query(limit=1000)
        return {"snapshot": snap, "rows": rows, "count": count,
                "stored": [(t.task_id, t.status, t.generation, t.attempts, t.assigned_to) for t in tasks],
                "live": sorted((t.task_id, t.status, t.generation) for t in hub.core.tasks.values())}

    return live.call(read)


def check_error(answer: dict[str, Any] | None) -> dict[str, Any]:
    """An error frame with a known code and a message saying what was wrong."""
    assert answer is not None, "the hub closed the socket instead of answering"
    assert answer["type"] == "error", answer
    assert answer["error"] in KNOWN_ERRORS, answer
    assert isinstance(answer["message"], str) and answer["message"].strip(), answer
    assert len(json.dumps(answer)) < 16_384, "an error answer must not echo the bad input back at length"
    if answer["error"] == "validation_failed":
        assert answer["errors"] and all(e["field"] and e["error"] for e in answer["errors"]), answer
    return answer


class Http:
    """Blocking HTTP/1.1 requests to the live hub (a fresh connection each, as hostile clients do)."""

    def __init__(self, live: LiveHub) -> None:
        self.live = live

    def call(self, method: str, path: str, body: bytes | None = None, token: str | None = None,
             headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", self.live.hub.port, timeout=WAIT_S)
        try:
            hdrs = dict(headers or {})
            if token is not None:
                hdrs["Authorization"] = f"Bearer {token}"
            if body is not None:
                hdrs.setdefault("Content-Type", "application/json")
            conn.request(method, path, body=body, headers=hdrs)
            response = conn.getresponse()
            return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
        finally:
            conn.close()

    def json(self, method: str, path: str, body: bytes | None = None, token: str | None = None) -> tuple[int, Any]:
        status, headers, raw = self.call(method, path, body, token)
        assert headers.get("content-type", "").startswith("application/json"), (status, headers, raw[:200])
        return status, json.loads(raw)


# --------------------------------------------------------------------- JSON for hypothesis

json_leaf = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=40)
json_value = st.recursive(json_leaf, lambda kids: st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=8), kids, max_size=4),
                          max_leaves=12)
KIND_OF = {type(None): "null", bool: "bool", int: "int", float: "float", str: "str", list: "array", dict: "object"}


def kind(value: Any) -> str:
    return KIND_OF[type(value)]


def wrong_value(allowed: set[str]) -> st.SearchStrategy[Any]:
    return json_value.filter(lambda v: kind(v) not in allowed and not (kind(v) == "float" and "int" in allowed
                                                                      and float(v).is_integer() and "float" in allowed))


def nested(depth: int, opener: str) -> str:
    """``depth`` arrays (``[``) or objects (``{``) inside each other."""
    if opener == "[":
        return "[" * depth + "]" * depth
    return '{"a":' * depth + "1" + "}" * depth
