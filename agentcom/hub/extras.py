"""Optional routes (dashboard socket, web page, metrics), looked up lazily so the core never depends on them.

``build_routes`` makes them for any auth flavour: the standalone hub passes its admin-token
bases (``standalone_routes``), the Jupyter extension passes Jupyter's handler classes
(``agentcom.jupyter.handlers.jupyter_routes``). Paths are relative; ``route_table`` puts them
under the base URL. The fan-out and metrics objects are made here, once per mounted app, and
reach the handlers through ``initialize`` kwargs.
"""

from __future__ import annotations

from typing import Any

from tornado import web, websocket

Route = tuple[str, type, dict[str, Any]]


def build_routes(hub: Any, *, api_base: type, socket_bases: tuple[type, ...], page_base: type,
                 page_auth_mode: str) -> tuple[Route, ...]:
    """Dashboard socket, page, static files and metrics, each logic mixin on top of its auth base."""
    from agentcom.dashboard.handlers import DashboardSocketLogic, PageLogic, StaticLogic, new_fanout
    from agentcom.hub.metrics import HubMetrics, MetricsLogic

    fanout = new_fanout(hub)
    metrics = HubMetrics(hub, fanout)
    hub.dashboard_fanout = fanout
    hub.metrics = metrics
    kwargs = {"fanout": fanout, "metrics": metrics}
    socket = type("DashboardSocketHandler", (DashboardSocketLogic, *socket_bases), {})
    page = type("DashboardPageHandler", (PageLogic, page_base), {"auth_mode": page_auth_mode})
    static = type("DashboardStaticHandler", (StaticLogic, web.RequestHandler), {})
    metrics_handler = type("MetricsHandler", (MetricsLogic, api_base), {})
    return (
        ("agentcom/ws/dashboard", socket, kwargs),
        ("agentcom/?", page, kwargs),
        ("agentcom/static/(?P<name>[A-Za-z0-9_.-]+)", static, {}),
        ("agentcom/metrics", metrics_handler, kwargs),
    )


def standalone_routes(hub: Any) -> tuple[Route, ...]:
    from agentcom.dashboard.handlers import StandaloneSocketAuth
    from agentcom.hub.handlers import StandaloneAuth

    return build_routes(
        hub,
        api_base=StandaloneAuth,
        socket_bases=(StandaloneSocketAuth, websocket.WebSocketHandler, StandaloneAuth),
        page_base=web.RequestHandler,
        page_auth_mode="token",
    )
