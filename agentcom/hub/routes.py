"""The whole route table of the hub, the same for the standalone server and the Jupyter extension."""

from __future__ import annotations

from typing import Any

from tornado import web
from tornado.routing import _RuleList

from agentcom.hub import handlers as h

_API = (
    (r"agentcom/api/tasks", h.TasksLogic),
    (r"agentcom/api/tasks/(?P<task_id>[^/]+)", h.TaskLogic),
    (r"agentcom/api/tasks/(?P<task_id>[^/]+)/(?P<action>cancel|retry)", h.TaskActionLogic),
    (r"agentcom/api/agents", h.AgentsLogic),
    (r"agentcom/api/snapshot", h.SnapshotLogic),
    (r"agentcom/api/executions", h.ExecutionsLogic),
    (r"agentcom/api/endpoints", h.EndpointsLogic),
)


def _join(base_url: str, path: str) -> str:
    return "/" + "/".join(p for p in (base_url.strip("/"), path) if p)


def route_table(hub: Any, base_url: str = "/", auth_base: type[web.RequestHandler] = h.StandaloneAuth,
                extra: tuple[tuple[str, type, dict[str, Any]], ...] = ()) -> _RuleList:
    """Routes under ``base_url``; API handlers are the logic mixins on top of ``auth_base``."""
    rules: _RuleList = []
    kwargs = {"hub": hub}
    for path, logic in _API:
        handler = type(logic.__name__.replace("Logic", "Handler"), (logic, auth_base), {})
        rules.append((_join(base_url, path), handler, kwargs))
    health = type("HealthHandler", (h.HealthLogic, web.RequestHandler), {})
    rules.append((_join(base_url, "agentcom/health"), health, kwargs))
    rules.append((_join(base_url, "agentcom/ws/sidecar"), h.SidecarSocketHandler, kwargs))
    for path, handler, extra_kwargs in extra:
        rules.append((_join(base_url, path), handler, {**kwargs, **extra_kwargs}))
    return rules
