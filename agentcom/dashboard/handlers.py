"""Tornado adapters for dashboards: the socket, the page and its two static files.

Like the API handlers, each is a logic mixin; ``agentcom.hub.extras.build_routes`` puts it on
top of an auth base (the standalone hub's admin token, or Jupyter's handlers), so both modes
serve the same code. The socket handler only feeds text to a ``DashboardSession`` and hands
it a non-blocking ``write``; all the buffering and batching lives in the session.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from tornado import web, websocket
from tornado.ioloop import PeriodicCallback

from agentcom.dashboard.session import DashboardFanout, DashboardSession

STATIC_DIR = Path(__file__).with_name("static")
STATIC_TYPES = {"app.js": "application/javascript; charset=UTF-8", "app.css": "text/css; charset=UTF-8"}
# The page needs nothing from elsewhere; a CSP also stops any injected markup from running.
PAGE_CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
            "connect-src 'self' ws: wss:; base-uri 'none'; form-action 'none'; frame-ancestors 'self'")


def tornado_ticker(callback: Callable[[], None], interval_ms: int) -> Callable[[], None]:
    """Run ``callback`` every ``interval_ms`` on the current IOLoop; returns the stopper."""
    timer = PeriodicCallback(callback, interval_ms)
    timer.start()
    return timer.stop


def new_fanout(hub: Any) -> DashboardFanout:
    return DashboardFanout(hub, schedule=tornado_ticker)


class DashboardSocketLogic:
    """``/agentcom/ws/dashboard``: snapshot, batched deltas and execution events, commands."""

    hub: Any
    fanout: DashboardFanout
    session: DashboardSession | None = None

    def initialize(self, hub: Any, fanout: DashboardFanout, **_: Any) -> None:
        self.hub = hub
        self.fanout = fanout

    @property
    def max_message_size(self) -> int:
        """Largest frame accepted from a dashboard: ``max_frame_bytes`` in both modes (not the server's default)."""
        return int(self.hub.settings.max_frame_bytes)

    def open(self, *args: Any, **kwargs: Any) -> None:
        handler: websocket.WebSocketHandler = self  # type: ignore[assignment]
        opener = getattr(super(), "open", None)
        if opener is not None:
            opener(*args, **kwargs)  # Jupyter's WebSocketMixin starts its keep-alive pings here
        handler.set_nodelay(True)
        can_write = bool(getattr(self, "agentcom_can_write", True))
        self.session = DashboardSession(self.fanout, self._write, self._close_socket, can_write=can_write)
        self.session.start()

    def _write(self, text: str | bytes) -> Any:
        """One text frame (UTF-8 bytes are sent as they are: Tornado encodes only str)."""
        handler: websocket.WebSocketHandler = self  # type: ignore[assignment]
        if handler.ws_connection is None or handler.ws_connection.is_closing():
            return None
        try:
            future = handler.write_message(text)
        except websocket.WebSocketClosedError:
            return None
        future.add_done_callback(_consume)
        return future

    def _close_socket(self, code: int, reason: str) -> None:
        handler: websocket.WebSocketHandler = self  # type: ignore[assignment]
        handler.close(code, reason)

    def on_message(self, message: str | bytes) -> None:
        if self.session is not None:
            self.session.on_text(message)

    def on_close(self) -> None:
        if self.session is not None:
            self.session.on_close()
        closer = getattr(super(), "on_close", None)
        if closer is not None:
            closer()


def _consume(future: Any) -> None:
    """A write to a closed socket fails; that is normal here and must not be logged as unhandled."""
    if not future.cancelled():
        future.exception()


class StandaloneSocketAuth:
    """Before the upgrade: the admin token (Bearer header or ``?token=``), else 401."""

    async def get(self, *args: Any, **kwargs: Any) -> None:
        handler: web.RequestHandler = self  # type: ignore[assignment]
        if not handler.current_user:
            raise web.HTTPError(401, "missing or invalid admin token")
        await super().get(*args, **kwargs)  # type: ignore[misc]


class PageLogic:
    """``/agentcom/``: the one-page dashboard (no data in it; it talks to the socket)."""

    auth_mode = "token"

    def initialize(self, hub: Any, **_: Any) -> None:
        self.hub = hub

    def get(self) -> None:
        handler: web.RequestHandler = self  # type: ignore[assignment]
        if not handler.request.path.endswith("/"):
            handler.redirect(handler.request.path + "/", permanent=False)
            return
        html = (STATIC_DIR / "index.html").read_text(encoding="utf-8")
        html = html.replace("{{auth_mode}}", self.auth_mode).replace("{{version}}", str(self.hub.version))
        handler.set_header("Content-Type", "text/html; charset=UTF-8")
        handler.set_header("Content-Security-Policy", PAGE_CSP)
        handler.set_header("X-Content-Type-Options", "nosniff")
        handler.set_header("Cache-Control", "no-store")
        handler.finish(html)


class StaticLogic:
    """The page's script and stylesheet; public (they hold no data)."""

    def initialize(self, hub: Any = None, **_: Any) -> None:
        self.hub = hub

    def get(self, name: str) -> None:
        handler: web.RequestHandler = self  # type: ignore[assignment]
        if name not in STATIC_TYPES:
            raise web.HTTPError(404)
        handler.set_header("Content-Type", STATIC_TYPES[name])
        handler.set_header("X-Content-Type-Options", "nosniff")
        handler.set_header("Cache-Control", "no-cache")
        handler.finish((STATIC_DIR / name).read_bytes())
