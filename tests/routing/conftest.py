"""Real local HTTP servers (Tornado on 127.0.0.1, port 0) that speak Ollama's and OpenAI's APIs.

A ``FakeLLMServer`` answers ``/api/tags``, ``/api/ps`` and ``/v1/models`` according to
its ``mode``, which a test may change between checks:

- ``healthy``: the real wire shapes (as Ollama 0.6 and llama.cpp's server send them)
- ``failing``: HTTP 500 with Ollama's ``{"error": ...}`` body
- ``slow``: holds the request until the test ends (beyond any probe timeout)
- ``garbage``: 200 with an HTML body; ``wrong_shape``: 200 with JSON of the wrong shape
- ``no_ps``: healthy but ``/api/ps`` is 404 (an Ollama older than the endpoint)

The root conftest loads pytest-jupyter, whose hook runs every coroutine test on its own
loop: so no async fixtures here (they would run on anyio's loop), and no
``parametrize`` on async tests (its collection hook and anyio's clash); loop instead.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from typing import Any, Callable, Iterator

import pytest
import tornado.httpserver
import tornado.netutil
import tornado.web

from agentcom.store.schema import MIGRATIONS


class FakeLLMServer:
    def __init__(self, mode: str, models: list[str], loaded: list[str]) -> None:
        self.mode = mode
        self.models = models
        self.loaded = loaded
        self.hits: list[str] = []
        self.release = asyncio.Event()
        self.port = 0
        self.http: tornado.httpserver.HTTPServer | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def body(self, path: str) -> tuple[int, str]:
        if self.mode == "failing":
            return 500, json.dumps({"error": "model runner crashed"})
        if self.mode == "garbage":
            return 200, "<html><body>502 Bad Gateway</body></html>"
        if self.mode == "wrong_shape":
            return 200, json.dumps({"models": "none", "data": 7})
        if path == "/api/tags":
            return 200, json.dumps({"models": [
                {"name": m, "model": m, "modified_at": "2025-05-01T10:00:00.000000+02:00", "size": 2019393189,
                 "digest": "a80c4f17acd5", "details": {"format": "gguf", "family": "llama",
                                                      "parameter_size": "3.2B", "quantization_level": "Q4_K_M"}}
                for m in self.models
            ]})
        if path == "/api/ps":
            if self.mode == "no_ps":
                return 404, "404 page not found"
            return 200, json.dumps({"models": [
                {"name": m, "model": m, "size": 3_000_000_000, "digest": "a80c4f17acd5",
                 "expires_at": "2099-01-01T00:00:00Z", "size_vram": 3_000_000_000}
                for m in self.loaded
            ]})
        if path == "/v1/models":
            return 200, json.dumps({"object": "list", "data": [
                {"id": m, "object": "model", "created": 1730000000, "owned_by": "llamacpp"} for m in self.models
            ]})
        return 404, "not found"


class _Handler(tornado.web.RequestHandler):
    def initialize(self, server: FakeLLMServer) -> None:
        self.server = server

    async def get(self) -> None:
        self.server.hits.append(self.request.path)
        if self.server.mode == "slow":
            await self.server.release.wait()
            return
        status, body = self.server.body(self.request.path)
        self.set_status(status)
        self.set_header("Content-Type", "text/html" if body.startswith("<") else "application/json")
        self.finish(body)


async def _shut(servers: list[FakeLLMServer]) -> None:
    for server in servers:
        server.release.set()
        assert server.http is not None
        server.http.stop()
    await asyncio.sleep(0)
    for server in servers:
        assert server.http is not None
        await asyncio.wait_for(server.http.close_all_connections(), 5)


@pytest.fixture
def llm_server() -> Iterator[Callable[..., FakeLLMServer]]:
    """Factory, called inside the async test: ``server = llm_server("healthy", models=[...])``.

    A sync fixture on purpose: coroutine tests may run on another loop than async
    fixtures (pytest-jupyter's runner vs anyio's), and a server must live on the test's
    loop. Teardown runs its cleanup on the loop the servers were started on.
    """
    started: list[FakeLLMServer] = []
    loops: list[asyncio.AbstractEventLoop] = []

    def start(mode: str = "healthy", models: list[str] | None = None, loaded: list[str] | None = None) -> FakeLLMServer:
        loops.append(asyncio.get_running_loop())
        server = FakeLLMServer(mode, ["llama3.2:latest", "qwen2.5-coder:7b"] if models is None else models,
                               ["qwen2.5-coder:7b"] if loaded is None else loaded)
        app = tornado.web.Application([(r"/.*", _Handler, {"server": server})])
        sockets = tornado.netutil.bind_sockets(0, "127.0.0.1")
        server.port = sockets[0].getsockname()[1]
        server.http = tornado.httpserver.HTTPServer(app)
        server.http.add_sockets(sockets)
        started.append(server)
        return server

    yield start
    if started and not loops[0].is_closed():
        loops[0].run_until_complete(_shut(started))


@pytest.fixture
def closed_port() -> int:
    """A port nothing listens on (bound, then released)."""
    sockets = tornado.netutil.bind_sockets(0, "127.0.0.1")
    port = sockets[0].getsockname()[1]
    for sock in sockets:
        sock.close()
    return port


@pytest.fixture
def db() -> Any:
    """An in-memory store with the real schema, autocommit like the hub's connection."""
    conn = sqlite3.connect(":memory:", isolation_level=None)
    conn.executescript(MIGRATIONS[0])
    yield conn
    conn.close()


@pytest.fixture
def changes() -> list[Any]:
    return []
