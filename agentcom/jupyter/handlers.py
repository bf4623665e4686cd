"""Jupyter's auth under the hub's handlers: the bases ``route_table`` and ``build_routes`` mount on.

Everything but the sidecar socket goes through the Jupyter server's own identity provider
(token, cookie, or whatever the deployment configured) and its authorizer, on the resource
``agentcom`` (action ``read`` for GET/HEAD, ``write`` otherwise). The sidecar socket is a
plain WebSocketHandler: sidecars authenticate with sidecar tokens in ``identify``, and a
Jupyter token or cookie gives no access to it.
"""

from __future__ import annotations

from typing import Any

from jupyter_core.utils import ensure_async
from jupyter_server.auth.decorator import ws_authenticated
from jupyter_server.base.handlers import APIHandler, JupyterHandler
from jupyter_server.base.websocket import WebSocketMixin
from tornado import web, websocket

from agentcom.protocol import codec

AUTH_RESOURCE = "agentcom"
_CODES = {401: "unauthorized", 403: "forbidden", 404: "not_found", 405: "method_not_allowed"}


def _action(method: str | None) -> str:
    return "read" if method in ("GET", "HEAD") else "write"


async def _authorize(handler: JupyterHandler) -> None:
    user = handler.current_user
    if user is None:
        raise web.HTTPError(403, "not authenticated")
    allowed = await ensure_async(handler.authorizer.is_authorized(handler, user, _action(handler.request.method),
                                                                   AUTH_RESOURCE))
    if not allowed:
        raise web.HTTPError(403, f"not authorized to {_action(handler.request.method)} {AUTH_RESOURCE}")


class JupyterAuth(APIHandler):
    """Base of the HTTP API and metrics inside Jupyter: 403 without auth, JSON errors."""

    auth_resource = AUTH_RESOURCE

    async def prepare(self) -> None:  # type: ignore[override]
        await super().prepare()
        if self.current_user is not None:
            await _authorize(self)

    def finish(self, *args: Any, **kwargs: Any) -> Any:
        """APIHandler labels every answer JSON; keep the type a handler chose (metrics text, CSV, Parquet)."""
        chosen = self._headers.get("Content-Type", "")
        if chosen and not chosen.startswith("text/html"):
            kwargs.setdefault("set_content_type", chosen)
        return super().finish(*args, **kwargs)

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        exc = kwargs.get("exc_info", (None, None, None))[1]
        message = getattr(exc, "log_message", None) or self._reason or "error"
        self.set_header("Content-Type", "application/json; charset=UTF-8")
        self.finish(codec.encode_bytes({"error": _CODES.get(status_code, "error"), "message": message}))


class JupyterPageAuth(JupyterHandler):
    """Base of the dashboard page: Jupyter's login redirect, then the authorizer.

    Checked here rather than left to ``JupyterHandler``: servers that still allow
    unauthenticated access to undecorated handlers must not show the page either.
    """

    auth_resource = AUTH_RESOURCE

    async def prepare(self) -> None:  # type: ignore[override]
        await super().prepare()
        if self._finished:
            return
        if self.current_user is None:
            web.authenticated(lambda handler: None)(self)  # redirect to Jupyter's login page (403 unless GET)
            return
        await _authorize(self)


class JupyterSocketAuth:
    """Before the dashboard socket's upgrade: Jupyter's auth (``ws_authenticated``) and authorizer."""

    def set_default_headers(self) -> None:
        """JupyterHandler's default headers make no sense on a WebSocket upgrade."""

    agentcom_can_write = False

    @ws_authenticated
    async def get(self, *args: Any, **kwargs: Any) -> None:
        handler: JupyterHandler = self  # type: ignore[assignment]
        await _authorize(handler)  # watching is a read
        self.agentcom_can_write = bool(await ensure_async(  # cancel/retry over the socket are writes
            handler.authorizer.is_authorized(handler, handler.current_user, "write", AUTH_RESOURCE)))
        await super().get(*args, **kwargs)  # type: ignore[misc]


JUPYTER_SOCKET_BASES: tuple[type, ...] = (JupyterSocketAuth, WebSocketMixin, websocket.WebSocketHandler, JupyterHandler)


def jupyter_routes(hub: Any) -> tuple[tuple[str, type, dict[str, Any]], ...]:
    """The dashboard socket, page and metrics on Jupyter's auth (the ``extra`` of ``route_table``)."""
    from agentcom.hub.extras import build_routes

    return build_routes(hub, api_base=JupyterAuth, socket_bases=JUPYTER_SOCKET_BASES, page_base=JupyterPageAuth,
                        page_auth_mode="jupyter")
