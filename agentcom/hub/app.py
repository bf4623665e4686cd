"""``agentcom.Hub``: a hub with its own Tornado server, in this process.

Used by ``agentcom hub`` (standalone), by ``agentcom demo``, by notebooks and by tests.
``await hub.start()`` binds and returns; ``await hub.stop()`` closes sockets and the store.
"""

from __future__ import annotations

import socket
from typing import Any

from tornado import httpserver, web

from agentcom.config import AgentCom
from agentcom.hub import redact
from agentcom.hub.core import Router
from agentcom.hub.handlers import StandaloneAuth
from agentcom.hub.routes import route_table
from agentcom.hub.service import HubService


class UnknownPath(StandaloneAuth):
    """Any path outside the route table: a JSON 404 like the API's, whatever the method."""

    def prepare(self) -> None:
        raise web.HTTPError(404, "no such path")


class Hub(HubService):
    def __init__(self, settings: AgentCom | None = None, router: Router | None = None, **overrides: Any) -> None:
        super().__init__(settings, router, **overrides)
        self._server: httpserver.HTTPServer | None = None
        self.port: int | None = None

    def make_app(self) -> web.Application:
        redact.install()  # dashboard URLs carry the admin token: keep it out of Tornado's log lines
        return web.Application(
            route_table(self, "/", extra=self.extra_routes()),
            agentcom_admin_token=self.admin_token,
            websocket_max_message_size=self.settings.max_frame_bytes,
            websocket_ping_interval=None,
            default_handler_class=UnknownPath,
        )

    def extra_routes(self) -> tuple[tuple[str, type, dict[str, Any]], ...]:
        """Routes added by optional parts (dashboard socket and page, metrics)."""
        from agentcom.hub import extras

        return extras.standalone_routes(self)

    async def start(self) -> "Hub":
        app = self.make_app()
        self._server = httpserver.HTTPServer(app, xheaders=False, max_body_size=self.settings.max_frame_bytes * 4)
        sockets = _bind(self.settings.host, self.settings.port)
        self._server.add_sockets(sockets)
        self.port = sockets[0].getsockname()[1]
        self.start_timers()
        return self

    @property
    def url(self) -> str:
        host = self.settings.host
        shown = f"[{host}]" if ":" in host else host
        return f"http://{shown}:{self.port}"

    @property
    def ws_url(self) -> str:
        return self.url.replace("http", "ws", 1) + "/agentcom/ws/sidecar"

    async def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
            await self.close()
            await self._server.close_all_connections()
            self._server = None
        else:
            await self.close()

    async def __aenter__(self) -> "Hub":
        return await self.start()

    async def __aexit__(self, *exc: Any) -> None:
        await self.stop()


def _bind(host: str, port: int) -> list[socket.socket]:
    from tornado.netutil import bind_sockets

    return bind_sockets(port, address=host, reuse_port=False)[:1]
