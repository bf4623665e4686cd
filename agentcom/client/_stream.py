"""The dashboard socket, kept open on the running asyncio loop and poured into a :class:`Feed`.

One :class:`FeedStream` is one asyncio task on the loop it was started on (in a notebook,
the kernel's own loop), so every feed listener, and so every widget update, runs on that
loop: no thread ever touches a widget. The socket reconnects by itself with exponential
backoff and jitter (0.5 s doubling to 30 s; reset once a connection has lived a while, so a
hub that accepts and at once closes is not hammered); each new connection starts with a fresh
snapshot from the hub. A refused credential (HTTP 401/403) stops the stream: retrying a
wrong token only fills logs.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from typing import Any

import msgspec
from tornado import httpclient, websocket
from tornado.iostream import StreamClosedError

from agentcom.client._feed import Feed

log = logging.getLogger(__name__)

_decode = msgspec.json.Decoder().decode
_encode = msgspec.json.Encoder().encode


class FeedStream:
    """Keeps ``{base}/agentcom/ws/dashboard`` open and applies its frames to ``feed``."""

    def __init__(self, feed: Feed, base_url: str, token: str | None, *, initial_backoff: float = 0.5,
                 max_backoff: float = 30.0, connect_timeout: float = 10.0, resync_interval: float = 1.0) -> None:
        self.feed = feed
        self.url = _ws_url(base_url) + "/agentcom/ws/dashboard"
        self.token = token
        self.initial_backoff = initial_backoff
        self.max_backoff = max_backoff
        self.connect_timeout = connect_timeout
        self.resync_interval = resync_interval
        self.connects = 0                 # successful connections so far (reconnects = connects - 1)
        self._task: asyncio.Task[None] | None = None
        self._conn: websocket.WebSocketClientConnection | None = None
        self._subscription: tuple[bool, str | None] = (False, None)
        self._last_resync = 0.0
        self._opened: asyncio.Event | None = None
        self._stopping = False

    # ------------------------------------------------------------------ control

    def start(self) -> "FeedStream":
        """Start on the running loop (call from a coroutine, a notebook cell or a loop callback)."""
        if self._task is None or self._task.done():
            loop = asyncio.get_running_loop()
            self._stopping = False
            self._opened = asyncio.Event()
            self._task = loop.create_task(self._run(), name=f"agentcom-feed {self.url}")
        return self

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    async def wait_open(self, timeout: float = 10.0) -> None:
        """Wait until the socket is open and its first snapshot applied."""
        if self._opened is None:
            raise RuntimeError("the feed stream is not started")
        await asyncio.wait_for(self._opened.wait(), timeout)

    async def stop(self) -> None:
        self._stopping = True
        if self._conn is not None:
            self._conn.close(1000, "client closing")
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except (asyncio.CancelledError, Exception):  # noqa: BLE001 - stopping must not raise
                pass
        self._task = None
        self.feed.set_connection("closed")

    def close(self) -> None:
        """Stop without waiting (safe from synchronous code on the loop's thread)."""
        self._stopping = True
        if self._conn is not None:
            self._conn.close(1000, "client closing")
        if self._task is not None:
            self._task.cancel()
            self._task = None
        self.feed.set_connection("closed")

    # ------------------------------------------------------------------ commands to the hub

    def send(self, frame: dict[str, Any]) -> bool:
        """Send one client frame now; False when the socket is not open (nothing is queued)."""
        conn = self._conn
        if conn is None or conn.protocol is None:
            return False
        try:
            conn.write_message(_encode(frame).decode())
        except websocket.WebSocketClosedError:
            return False
        return True

    def subscribe(self, task_id: str | None) -> None:
        """Which task's output the hub should stream (None = all); kept across reconnects."""
        self._subscription = (True, task_id)
        self.send({"type": "subscribe", "task_id": task_id})

    def request_snapshot(self) -> bool:
        return self.send({"type": "request_snapshot"})

    # ------------------------------------------------------------------ the loop

    async def _run(self) -> None:
        delay = self.initial_backoff
        while not self._stopping:
            self.feed.set_connection("connecting" if self.connects == 0 else "reconnecting")
            try:
                conn = await self._connect()
            except httpclient.HTTPClientError as exc:
                if exc.code in (401, 403):
                    self.feed.set_connection("unauthorized", f"the hub refused the token (HTTP {exc.code}) at {self.url}")
                    return
                self.feed.last_error = f"dashboard socket: HTTP {exc.code} {exc.message}"
            except (OSError, StreamClosedError, asyncio.TimeoutError) as exc:
                self.feed.last_error = f"dashboard socket: {exc or type(exc).__name__}"
            else:
                opened = time.monotonic()
                await self._pump(conn)
                if self._stopping:
                    break
                if time.monotonic() - opened > 10 * self.initial_backoff + 5:
                    delay = self.initial_backoff   # it was a working connection: retry quickly
            jitter = delay * random.uniform(0.7, 1.3)
            await asyncio.sleep(jitter)
            delay = min(self.max_backoff, delay * 2)

    async def _connect(self) -> websocket.WebSocketClientConnection:
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        request = httpclient.HTTPRequest(self.url, headers=headers, connect_timeout=self.connect_timeout,
                                         request_timeout=self.connect_timeout)
        return await websocket.websocket_connect(request, ping_interval=20, ping_timeout=20,
                                                 max_message_size=64 * 1024 * 1024)

    async def _pump(self, conn: websocket.WebSocketClientConnection) -> None:
        self._conn = conn
        self.connects += 1
        feed = self.feed
        feed.set_connection("open")
        subscribed, task_id = self._subscription
        if subscribed:
            self.send({"type": "subscribe", "task_id": task_id})
        try:
            while True:
                message = await conn.read_message()
                if message is None:
                    break
                try:
                    frame = _decode(message)
                except msgspec.DecodeError:
                    log.warning("dashboard socket sent a frame that is not JSON; ignored")
                    continue
                if isinstance(frame, dict):
                    feed.apply(frame)
                    if frame.get("type") == "snapshot" and self._opened is not None:
                        self._opened.set()
                if feed.needs_snapshot:
                    now = time.monotonic()
                    if now - self._last_resync >= self.resync_interval and self.request_snapshot():
                        self._last_resync = now
                        feed.needs_snapshot = False
        finally:
            self._conn = None
            if not self._stopping:
                reason = conn.close_reason or (f"code {conn.close_code}" if conn.close_code else "connection lost")
                feed.set_connection("reconnecting", f"dashboard socket closed: {reason}")


def _ws_url(base: str) -> str:
    base = base.rstrip("/")
    if base.startswith("https://"):
        return "wss://" + base[len("https://"):]
    if base.startswith("http://"):
        return "ws://" + base[len("http://"):]
    return base


__all__ = ["FeedStream"]
