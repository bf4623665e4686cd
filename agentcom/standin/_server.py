"""What every stand-in shares: a Tornado app on a free loopback port, a request log
and fault knobs (fail, hang, slow down) for tests.

A stand-in runs in the caller's event loop (``async with OllamaStandin() as s``); it
binds 127.0.0.1 only, never a public interface. Faults are queued and consumed one per
request in arrival order, so "fail the next two requests with 529" is exact.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Self

from tornado.httpserver import HTTPServer
from tornado.iostream import StreamClosedError
from tornado.netutil import bind_sockets
from tornado.web import Application, RequestHandler

__all__ = ["Fault", "RecordedRequest", "Standin", "StandinHandler"]

log = logging.getLogger("agentcom.standin")


@dataclass(frozen=True, slots=True)
class Fault:
    """One planned misbehaviour. ``status`` fails the request (after ``after_chunks``
    streamed chunks when ``midstream``); ``hang`` stops answering (after ``after_chunks``)."""

    status: int | None = None
    message: str | None = None
    midstream: bool = False
    hang: bool = False
    after_chunks: int = 0


@dataclass(frozen=True, slots=True)
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]
    body: Any = field(default=None)


class Standin:
    """Base of the stand-in servers. Subclasses give ``routes()``."""

    def __init__(self, *, chunk_delay: float = 0.0) -> None:
        self.chunk_delay = chunk_delay
        """Seconds to sleep between streamed chunks (0 = as fast as possible)."""
        self.requests: list[RecordedRequest] = []
        """Every request received, in order (for tests)."""
        self.active_streams = 0
        """Responses currently being produced; drops when a client aborts a stream."""
        self._faults: deque[Fault] = deque()
        self._server: HTTPServer | None = None
        self._port: int | None = None
        self._stopping: asyncio.Event | None = None

    # ------------------------------------------------------------------ lifecycle

    def routes(self) -> list[tuple[str, type[RequestHandler]]]:
        raise NotImplementedError

    async def start(self) -> Self:
        if self._server is not None:
            return self
        self._stopping = asyncio.Event()
        app = Application([(path, handler, {"standin": self}) for path, handler in self.routes()],
                          log_function=_log_request)
        sockets = bind_sockets(0, "127.0.0.1")
        self._port = sockets[0].getsockname()[1]
        self._server = HTTPServer(app)
        self._server.add_sockets(sockets)
        return self

    async def stop(self) -> None:
        """Stop listening, release hanging requests, close every connection."""
        if self._server is None:
            return
        assert self._stopping is not None
        self._stopping.set()
        self._server.stop()
        await self._server.close_all_connections()
        self._server = None

    async def __aenter__(self) -> Self:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("stand-in not started: use `async with` or `await start()`")
        return self._port

    @property
    def url(self) -> str:
        """Base URL, e.g. ``http://127.0.0.1:41234``."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def endpoint(self) -> str:
        """``host:port``, the form of a routing decision's ``selected_endpoint``."""
        return f"127.0.0.1:{self.port}"

    # ------------------------------------------------------------------ knobs

    def fail_next(self, count: int = 1, status: int = 500, *, midstream: bool = False,
                  after_chunks: int = 2, message: str | None = None) -> None:
        """Fail the next ``count`` requests with HTTP ``status`` (in the API's own error body).

        With ``midstream`` the stream starts normally and breaks after ``after_chunks``
        chunks with the API's in-stream error (the HTTP status is then 200).
        """
        fault = Fault(status=status, message=message, midstream=midstream,
                      after_chunks=after_chunks if midstream else 0)
        self._faults.extend([fault] * count)

    def hang_next(self, count: int = 1, *, after_chunks: int = 0) -> None:
        """Let the next ``count`` requests stall (after ``after_chunks`` chunks) until the
        client gives up or the stand-in stops."""
        self._faults.extend([Fault(hang=True, after_chunks=after_chunks)] * count)

    def clear_faults(self) -> None:
        self._faults.clear()

    def take_fault(self) -> Fault | None:
        return self._faults.popleft() if self._faults else None


def _log_request(handler: RequestHandler) -> None:
    log.debug("%s %s -> %s", handler.request.method, handler.request.uri, handler.get_status())


class StandinHandler(RequestHandler):
    """Request handler with the stand-in at hand, a request log and disconnect detection."""

    standin: Standin

    def initialize(self, standin: Standin) -> None:
        self.standin = standin
        self._client_gone = asyncio.Event()
        self.json_body: Any = None

    def prepare(self) -> None:
        body: Any = None
        if self.request.body:
            try:
                body = json.loads(self.request.body)
            except (UnicodeDecodeError, json.JSONDecodeError):
                body = self.request.body.decode("utf-8", "replace")
        self.json_body = body
        self.standin.requests.append(RecordedRequest(
            self.request.method or "", self.request.path,
            {k.lower(): v for k, v in self.request.headers.get_all()}, body))

    def on_connection_close(self) -> None:
        self._client_gone.set()

    @property
    def client_gone(self) -> bool:
        return self._client_gone.is_set()

    async def stall(self) -> None:
        """Wait until the client disconnects or the stand-in stops (a hung backend)."""
        stopping = self.standin._stopping
        assert stopping is not None
        waiters = [asyncio.ensure_future(self._client_gone.wait()), asyncio.ensure_future(stopping.wait())]
        try:
            await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()

    async def send_chunk(self, data: str) -> bool:
        """Write and flush one piece; False when the client has gone away."""
        if self.client_gone:
            return False
        try:
            self.write(data)
            await self.flush()
        except StreamClosedError:
            return False
        if self.standin.chunk_delay > 0:
            await asyncio.sleep(self.standin.chunk_delay)
        return not self.client_gone

    def send_json(self, status: int, payload: Any) -> None:
        self.set_status(status)
        self.set_header("Content-Type", "application/json; charset=utf-8")
        self.finish(json.dumps(payload))
