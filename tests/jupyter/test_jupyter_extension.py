"""The hub as a Jupyter server extension, through pytest-jupyter's real server.

Tests are plain ``async def`` (pytest-jupyter runs them on its loop; pytest-asyncio or
anyio marks would fight with its fixtures). ``jp_base_url`` is ``/a%40b/`` by default, so
every request here also checks that the hub lives under the server's base_url.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any, Iterator

import pytest
import tornado.websocket
from jupyter_server.auth import Authorizer
from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest

from agentcom.protocol import codec
from agentcom.protocol import messages as m


@pytest.fixture
def jp_server_config(tmp_path: Path) -> dict[str, Any]:
    return {
        "ServerApp": {"jpserver_extensions": {"agentcom": True}},
        "AgentCom": {"db_path": str(tmp_path / "jupyter-hub.db"), "batch_interval_ms": 20},
    }


def extension(serverapp: Any) -> Any:
    return serverapp.extension_manager.extension_points["agentcom"].app


async def fetch(address: str, **kwargs: Any) -> Any:
    """A request without Jupyter's auth header (a fresh client: pytest-jupyter gives each test a new loop)."""
    client = AsyncHTTPClient(force_instance=True)
    try:
        return await client.fetch(address, raise_error=False, request_timeout=10, **kwargs)
    finally:
        client.close()


def url(serverapp: Any, port: int, *parts: str) -> str:
    """An address on the test server; the test must ask for ``jp_fetch``, which starts the HTTP server."""
    return f"http://localhost:{port}{serverapp.base_url}{'/'.join(parts)}"


async def test_enabled_by_config_and_serving_under_base_url(jp_serverapp: Any, jp_fetch: Any, jp_http_port: int) -> None:
    manager = jp_serverapp.extension_manager
    assert manager.extensions["agentcom"].enabled
    assert manager.extension_points["agentcom"].app.hub is not None
    assert jp_serverapp.base_url == "/a%40b/"
    answer = await jp_fetch("agentcom", "api", "snapshot")
    assert {"agents", "queue", "totals"} <= set(json.loads(answer.body))
    health = await fetch(url(jp_serverapp, jp_http_port, "agentcom", "health"))
    assert json.loads(health.body)["status"] == "ok"
    outside = await fetch(f"http://localhost:{jp_http_port}/agentcom/health")
    assert outside.code == 404                     # nothing outside the base_url


async def test_settings_come_from_traitlets_config(jp_serverapp: Any, tmp_path: Path) -> None:
    hub = extension(jp_serverapp).hub
    assert hub.settings.db_path == str(tmp_path / "jupyter-hub.db")
    assert hub.settings.batch_interval_ms == 20
    assert Path(hub.settings.db_path).exists()


async def test_api_with_jupyter_token(jp_fetch: Any) -> None:
    created = await jp_fetch("agentcom", "api", "tasks", method="POST",
                             body=json.dumps({"description": "lint the repo", "complexity_tier": "trivial"}))
    assert created.code == 201
    task_id = json.loads(created.body)["task_id"]
    listed = json.loads((await jp_fetch("agentcom", "api", "tasks")).body)
    assert [t["task_id"] for t in listed["tasks"]] == [task_id]
    bad = await jp_fetch("agentcom", "api", "tasks", method="POST", body="{}", raise_error=False)
    assert bad.code == 422 and json.loads(bad.body)["error"] == "validation_failed"
    csv = await jp_fetch("agentcom", "api", "executions", params={"format": "csv"})
    assert csv.headers["Content-Type"].startswith("text/csv") and csv.body.startswith(b"task_id,")


@pytest.mark.parametrize("path", [("agentcom", "api", "snapshot"), ("agentcom", "api", "tasks"),
                                  ("agentcom", "metrics")])
async def test_unauthenticated_requests_are_refused(jp_serverapp: Any, jp_fetch: Any, jp_http_port: int,
                                                    path: tuple[str, ...]) -> None:
    for headers in ({}, {"Authorization": "token not-the-jupyter-token"}):
        answer = await fetch(url(jp_serverapp, jp_http_port, *path), headers=headers)
        assert answer.code in (401, 403)
        assert json.loads(answer.body)["error"] in ("unauthorized", "forbidden")
    posted = await fetch(url(jp_serverapp, jp_http_port, "agentcom", "api", "tasks"), method="POST",
                                           body=json.dumps({"description": "sneaky"}))
    assert posted.code in (401, 403)
    assert extension(jp_serverapp).hub.core.counts["queued"] == 0


async def test_dashboard_page_needs_login(jp_serverapp: Any, jp_fetch: Any, jp_http_port: int) -> None:
    page = await jp_fetch("agentcom/")
    assert b'content="jupyter"' in page.body and page.headers["Content-Security-Policy"].startswith("default-src")
    anonymous = await fetch(url(jp_serverapp, jp_http_port, "agentcom/"), follow_redirects=False)
    assert anonymous.code in (302, 401, 403)
    if anonymous.code == 302:
        assert "login" in anonymous.headers["Location"]
    script = await fetch(url(jp_serverapp, jp_http_port, "agentcom", "static", "app.js"))
    assert script.headers["Content-Type"].startswith("application/javascript")


async def test_metrics_with_jupyter_auth(jp_fetch: Any) -> None:
    answer = await jp_fetch("agentcom", "metrics")
    text = answer.body.decode()
    assert answer.headers["Content-Type"].startswith("text/plain")
    for name in ("agentcom_tasks", "agentcom_queue_depth", "agentcom_connected_sidecars",
                 "agentcom_connected_dashboards", "agentcom_assignment_latency_seconds_bucket"):
        assert name in text


async def test_dashboard_socket_uses_jupyter_auth(jp_serverapp: Any, jp_ws_fetch: Any, jp_http_port: int) -> None:
    ws = await jp_ws_fetch("agentcom", "ws", "dashboard")
    snapshot = json.loads(await ws.read_message())
    assert snapshot["type"] == "snapshot" and "tasks" in snapshot["data"]
    extension(jp_serverapp).hub.submit_dict({"description": "watch me"})
    frame = json.loads(await ws.read_message())
    assert frame["type"] == "events" and frame["data"][0]["task"]["description"] == "watch me"
    ws.close()
    anonymous = url(jp_serverapp, jp_http_port, "agentcom", "ws", "dashboard").replace("http", "ws", 1)
    with pytest.raises(HTTPClientError) as info:
        await tornado.websocket.websocket_connect(HTTPRequest(anonymous))
    assert info.value.code in (401, 403)


async def test_sidecar_socket_refuses_jupyter_tokens_and_accepts_sidecar_tokens(
        jp_serverapp: Any, jp_ws_fetch: Any) -> None:
    jupyter_token = jp_serverapp.identity_provider.token
    ws = await jp_ws_fetch("agentcom", "ws", "sidecar")   # Jupyter's auth header is sent and means nothing here
    await ws.write_message(codec.encode(m.Identify(agent_id="builder-1", token=jupyter_token, protocol_version=1)))
    refused = json.loads(await ws.read_message())
    assert refused["type"] == "error" and refused["error"] == "unauthorized"
    assert await ws.read_message() is None
    assert ws.close_code == 1008

    token = extension(jp_serverapp).hub.create_agent_token("builder-1")
    ws = await jp_ws_fetch("agentcom", "ws", "sidecar", headers={"Authorization": ""})
    await ws.write_message(codec.encode(m.Identify(agent_id="builder-1", token=token, protocol_version=1)))
    identified = json.loads(await ws.read_message())
    assert identified["type"] == "identified" and identified["agent_id"] == "builder-1"
    ws.close()


async def test_stop_extension_closes_the_hub(jp_serverapp: Any, jp_ws_fetch: Any) -> None:
    """The server's shutdown stops the extension: dashboards and sidecars are closed with 1001, then the store."""
    app = extension(jp_serverapp)
    hub = app.hub
    ws = await jp_ws_fetch("agentcom", "ws", "dashboard")
    assert json.loads(await ws.read_message())["type"] == "snapshot"
    token = hub.create_agent_token("builder-1")
    agent = await jp_ws_fetch("agentcom", "ws", "sidecar", headers={"Authorization": ""})
    await agent.write_message(codec.encode(m.Identify(agent_id="builder-1", token=token, protocol_version=1)))
    assert json.loads(await agent.read_message())["type"] == "identified"
    assert hub.core.agents["builder-1"].online

    await jp_serverapp.cleanup_extensions()          # what ServerApp runs on shutdown (stop_all_extensions)
    assert app.hub is None and hub.dashboards == 0
    while (frame := await asyncio.wait_for(ws.read_message(), 20)) is not None:   # a batch on its way comes first
        assert json.loads(frame)["type"] == "events"           # (the dashboard hears of the sidecar)
    while (frame := await asyncio.wait_for(agent.read_message(), 20)) is not None:
        assert json.loads(frame)["type"] != "error"
    assert ws.close_code == 1001
    assert agent.close_code == 1001 and agent.close_reason == "hub shutting down"
    with pytest.raises(Exception):
        hub.conn.execute("SELECT 1")


class ReadOnlyAgentCom(Authorizer):
    """A deployment's own authorizer: may look at AgentCom, may not change anything."""

    def is_authorized(self, handler: Any, user: Any, action: str, resource: str) -> bool:
        return resource != "agentcom" or action == "read"


class TestCustomAuthorizer:
    @pytest.fixture
    def jp_server_config(self, tmp_path: Path) -> dict[str, Any]:
        return {
            "ServerApp": {"jpserver_extensions": {"agentcom": True}, "authorizer_class": ReadOnlyAgentCom},
            "AgentCom": {"db_path": str(tmp_path / "jupyter-ro.db")},
        }

    async def test_the_authorizer_decides(self, jp_fetch: Any, jp_ws_fetch: Any) -> None:
        assert (await jp_fetch("agentcom", "api", "snapshot")).code == 200
        assert (await jp_fetch("agentcom", "metrics")).code == 200
        refused = await jp_fetch("agentcom", "api", "tasks", method="POST", body=json.dumps({"description": "no"}),
                                 raise_error=False)
        assert refused.code == 403 and json.loads(refused.body)["error"] == "forbidden"
        ws = await jp_ws_fetch("agentcom", "ws", "dashboard")   # opening a dashboard is a read
        assert json.loads(await ws.read_message())["type"] == "snapshot"
        await ws.write_message(json.dumps({"type": "cancel_task", "task_id": "task-any"}))   # cancelling is a write
        answer = json.loads(await ws.read_message())
        assert answer["type"] == "error" and answer["error"] == "unauthorized"
        ws.close()


def _mounted(router: Any) -> Iterator[tuple[str, Any, dict[str, Any]]]:
    """(path regex, handler class, initialize kwargs) of every rule of a Tornado application, nested routers too."""
    for rule in router.rules:
        target = rule.target
        if hasattr(target, "rules"):
            yield from _mounted(target)
        elif isinstance(target, type):
            yield rule.matcher.regex.pattern, target, dict(rule.target_kwargs or {})


def _logic(handler: type) -> tuple[type, ...]:
    """What a route does, apart from its auth: the ``*Logic`` mixins of the handler (or the handler itself)."""
    mixins = tuple(c for c in handler.__mro__ if c.__name__.endswith("Logic"))
    return mixins or (handler,)


def _agentcom_routes(app: Any, base_url: str) -> dict[str, tuple[tuple[type, ...], frozenset[str]]]:
    """The AgentCom routes an application serves: path under base_url -> (logic, kwarg names)."""
    routes = {}
    for pattern, handler, kwargs in _mounted(app.default_router):
        path = pattern.lstrip("^").rstrip("$")
        if path.startswith(base_url + "agentcom"):
            routes[path[len(base_url):]] = (_logic(handler), frozenset(kwargs))
    return routes


async def test_standalone_hub_and_extension_mount_the_same_handlers(jp_serverapp: Any, tmp_path: Path) -> None:
    from agentcom import Hub

    standalone = Hub(db_path=str(tmp_path / "standalone.db"), host="127.0.0.1", port=0)
    try:
        alone = _agentcom_routes(standalone.make_app(), "/")
    finally:
        await standalone.close()
    inside = _agentcom_routes(jp_serverapp.web_app, jp_serverapp.base_url)
    assert len(alone) >= 13 and {"agentcom/ws/sidecar", "agentcom/ws/dashboard", "agentcom/metrics"} <= set(alone)
    assert list(inside.items()) == list(alone.items())   # same paths, same order, same logic, same kwargs
    unprefixed = {rule[0].lstrip("/") for rule in extension(jp_serverapp).handlers}
    assert unprefixed == set(alone)   # and the extension declares exactly these, before base_url is put in front
