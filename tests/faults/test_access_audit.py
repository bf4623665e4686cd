"""Access-control audit: every route and socket, read from the live route tables, with wrong credentials.

Routes are enumerated from the running application (the standalone hub's Tornado rules, the
Jupyter extension's handler list), so a new route is audited without touching this file; a
route whose pattern has a group this file has no sample for fails the audit until one is added.

Credentials tried where the admin (or Jupyter) identity is needed: none, a sidecar token (a
live one, for an agent that is connected), a revoked sidecar token, a rotated-away admin
token, and garbage; each as ``Authorization: Bearer``, ``Authorization: token`` and ``?token=``.
Public by design: ``/agentcom/health`` (interface.md), the dashboard's ``app.js`` / ``app.css``
(fixed files, no data), and on the standalone hub the dashboard page itself: an empty shell with
a token form; every byte of data it shows comes over the dashboard socket, which needs the admin
token. Under Jupyter the page follows Jupyter's login like the rest. The sidecar socket takes no
HTTP credentials at all: it is opened by anyone and authenticated by ``identify`` alone.

Tokens must never show up in log records (``tornado`` and ``agentcom`` loggers), in error bodies
or in the snapshot.
"""

from __future__ import annotations

import json
import logging
import re
import urllib.parse
from pathlib import Path
from typing import Any, Iterator

import pytest
import tornado.websocket
from tornado import web
from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest

from agentcom.protocol import codec
from agentcom.protocol import messages as m
from agentcom.store import tokens
from browser.live import LiveHub

from .hostile import Http, Seeded, Socket, identify, start_hub, state
from .hostile import seeded  # noqa: F401  (fixture)

METHODS = ("get", "post", "put", "patch", "delete", "head", "options")
PUBLIC = {"/agentcom/health", "/agentcom/static/app.js", "/agentcom/static/app.css"}
PAGE = "/agentcom/"


class Records(logging.Handler):
    """Every record of the loggers it is attached to, formatted, from any thread."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        text = record.getMessage()
        if record.exc_info:
            text += logging.Formatter().formatException(record.exc_info)
        self.lines.append(text)


@pytest.fixture
def records() -> Iterator[Records]:
    """Capture ``tornado`` and ``agentcom`` logs at DEBUG for the test (access log included)."""
    handler = Records()
    loggers = [logging.getLogger(name) for name in ("tornado", "agentcom")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.addHandler(handler)
        logger.setLevel(logging.DEBUG)
    yield handler
    for logger, level in zip(loggers, levels):
        logger.removeHandler(handler)
        logger.setLevel(level)


def concrete_paths(pattern: str, samples: dict[str, list[str]]) -> list[str]:
    """Every path a route pattern stands for, its groups filled from ``samples``."""
    pattern = pattern.rstrip("$").replace("/?", "/")
    groups = re.findall(r"\(\?P<(\w+)>[^()]*\)", pattern)
    missing = [g for g in groups if g not in samples]
    assert not missing, f"route {pattern} has groups {missing}: add samples for them to this audit"
    paths = [pattern]
    for group in groups:
        paths = [re.sub(r"\(\?P<" + group + r">[^()]*\)", value, p, count=1) for p in paths for value in samples[group]]
    return paths


def methods_of(handler: type) -> list[str]:
    """HTTP methods a handler implements (beyond RequestHandler's 405 defaults)."""
    if issubclass(handler, tornado.websocket.WebSocketHandler):
        return ["websocket"]
    return [name.upper() for name in METHODS if getattr(handler, name) is not getattr(web.RequestHandler, name)]


# ============================================================================ standalone hub


@pytest.fixture(scope="module")
def rotated_admin(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A DB whose first admin token was rotated away (its file deleted, as the docs say to rotate it)."""
    tmp = tmp_path_factory.mktemp("audit")
    first = start_hub(tmp)
    old = first.hub.admin_token
    first.stop()
    (tmp / "hub.admin_token").unlink()
    return tmp, old


@pytest.fixture(scope="module")
def live(rotated_admin: tuple[Path, str]) -> Iterator[LiveHub]:
    hub = start_hub(rotated_admin[0])
    assert hub.hub.admin_token != rotated_admin[1]
    yield hub
    hub.stop()


@pytest.fixture(scope="module")
def secrets_(live: LiveHub, seeded: Seeded, rotated_admin: tuple[Path, str]) -> dict[str, str]:
    """Every credential in play, by what it is."""
    revoked = live.call(live.hub.create_agent_token, "retired")
    assert live.call(tokens.revoke_token, live.hub.conn, "retired")
    return {"agent": seeded.worker_token, "revoked_agent": revoked, "old_admin": rotated_admin[1],
            "garbage": "aca_" + "A" * 43, "admin": live.hub.admin_token}


def standalone_routes(live: LiveHub, seeded: Seeded) -> list[tuple[str, str]]:
    """(method, path) for every rule of the running app; the sample task is a real one."""
    app = live.hub._server.request_callback  # type: ignore[union-attr]
    samples = {"task_id": [seeded.queued], "action": ["cancel", "retry"], "name": ["app.js", "app.css"]}
    found = []
    for rule in app.wildcard_router.rules:
        for path in concrete_paths(rule.matcher.regex.pattern, samples):
            assert rule.matcher.regex.match(path), (rule.matcher.regex.pattern, path)
            found.extend((method, path) for method in methods_of(rule.target))
    return found


def wrong_credentials(secrets: dict[str, str]) -> list[tuple[str, dict[str, str], str]]:
    """(label, headers, query) for each wrong credential in each place one can be put."""
    ways: list[tuple[str, dict[str, str], str]] = [("none", {}, "")]
    for name, value in secrets.items():
        if name == "admin":
            continue
        ways += [(f"{name} as Bearer", {"Authorization": f"Bearer {value}"}, ""),
                 (f"{name} as token", {"Authorization": f"token {value}"}, ""),
                 (f"{name} in ?token=", {}, "token=" + urllib.parse.quote(value))]
    return ways


def with_query(path: str, query: str) -> str:
    return f"{path}?{query}" if query else path


def test_every_standalone_route_refuses_wrong_credentials(live: LiveHub, seeded: Seeded, secrets_: dict[str, str],
                                                          records: Records) -> None:
    before = state(live)
    http = Http(live)
    routes = standalone_routes(live, seeded)
    assert ("POST", "/agentcom/api/tasks") in routes and ("websocket", "/agentcom/ws/dashboard") in routes
    bodies: list[bytes] = []
    audited = 0
    for method, path in routes:
        if path in PUBLIC or path == PAGE or path == "/agentcom/ws/sidecar":
            continue                                    # public by design: test_public_routes_hold_no_secrets
        for label, headers, query in wrong_credentials(secrets_):
            target = with_query(path, query)
            if method == "websocket":
                status, raw = refused_upgrade(live, target, headers)
            else:
                body = b'{"description": "sneaky", "host": "127.0.0.1"}' if method in ("POST", "PUT", "PATCH") else None
                status, answer_headers, raw = http.call(method, target, body, headers=headers)
                if method != "HEAD":
                    assert answer_headers["content-type"].startswith("application/json"), (method, target, raw[:200])
                    assert json.loads(raw)["error"] == "unauthorized", (method, target, label, raw[:200])
            assert status == 401, (method, target, label, status, raw[:200])
            bodies.append(raw)
            audited += 1
        if method != "websocket":                       # the admin token passes the same door (a bogus task:
            control = path.replace(seeded.queued, "task-nosuch")    # the real one must stay as it is)
            status, _, raw = http.call(method, control, b"{}" if method in ("POST", "PUT", "PATCH") else None,
                                       token=secrets_["admin"])
            assert status not in (401, 403), (method, path, status, raw[:200])
    print(f"standalone: {len(routes)} (method, path) pairs, {audited} refused requests")
    live.call(live.hub.core.store.group.commit)
    assert no_secret_in(secrets_, bodies, records.lines)
    after = state(live)
    assert after["rows"] == before["rows"] and after["stored"] == before["stored"]


def refused_upgrade(live: LiveHub, target: str, headers: dict[str, str]) -> tuple[int, bytes]:
    try:
        sock = Socket(live, target, headers)
    except HTTPClientError as exc:
        return exc.code, exc.response.body if exc.response is not None else b""
    sock.close()
    return 101, b""


def test_dashboard_socket_opens_with_the_admin_token_only(live: LiveHub, seeded: Seeded, secrets_: dict[str, str]) -> None:
    for headers, query in (({"Authorization": f"Bearer {secrets_['admin']}"}, ""), ({}, "token=" + secrets_["admin"])):
        sock = Socket(live, with_query("/agentcom/ws/dashboard", query), headers)
        first = sock.recv()
        assert first is not None and first["type"] == "snapshot"
        sock.close()


def test_sidecar_socket_is_authenticated_by_identify(live: LiveHub, seeded: Seeded, secrets_: dict[str, str],
                                                     records: Records) -> None:
    """Anyone may open it; nothing but the agent's own live token gets past ``identify``."""
    before = state(live)
    sock = Socket(live, headers={"Authorization": f"Bearer {secrets_['admin']}"})   # HTTP credentials mean nothing
    answer = sock.ask(m.Ping())
    assert answer is not None and answer["error"] == "not_identified"
    sock.close()
    attempts = [("worker", secrets_["admin"]), ("worker", secrets_["old_admin"]), ("retired", secrets_["revoked_agent"]),
                ("stranger", secrets_["agent"]), ("worker", secrets_["revoked_agent"]), ("worker", secrets_["garbage"])]
    bodies = []
    for agent_id, token in attempts:
        sock = Socket(live)
        answer = sock.ask(m.Identify(agent_id=agent_id, token=token, protocol_version=1))
        assert answer is not None and answer["error"] == "unauthorized", (agent_id, answer)
        assert sock.recv() is None and sock.close_code == 1008
        bodies.append(json.dumps(answer).encode())
    worker = seeded.worker.ask(m.Ping())                # the real worker kept its connection through all of that
    assert worker is not None and worker["type"] == "pong"
    assert no_secret_in(secrets_, bodies, records.lines)
    after = state(live)
    assert after["rows"] == before["rows"] and after["snapshot"]["agents"] == before["snapshot"]["agents"]


def test_revoking_or_reminting_a_token_ends_its_live_session(live: LiveHub, seeded: Seeded) -> None:
    """``agentcom token revoke`` (or ``token create`` again) writes only the database; the hub's token
    check (every TOKEN_CHECK_MS, called here directly) closes the sessions those tokens opened."""
    hub = live.hub
    revoked, reminted = identify(live, "victim"), identify(live, "renewed")
    assert live.call(tokens.revoke_token, hub.conn, "victim")
    live.call(hub.create_agent_token, "renewed")
    assert sorted(live.call(hub.close_revoked_sidecars)) == ["renewed", "victim"]
    for sock in (revoked, reminted):
        answer = sock.recv()
        assert answer is not None and answer["error"] == "unauthorized", answer
        assert sock.recv() is None and sock.close_code == 1008
    assert live.call(hub.close_revoked_sidecars) == []
    answer = seeded.worker.ask(m.Ping())                # a sidecar whose token stands is left alone
    assert answer is not None and answer["type"] == "pong"


def test_sidecar_socket_refuses_browser_pages(live: LiveHub) -> None:
    """A page on another site must not open the sidecar socket with a visitor's network position."""
    with pytest.raises(HTTPClientError) as refused:
        Socket(live, headers={"Origin": "http://evil.example"})
    assert refused.value.code == 403


def test_public_routes_hold_no_secrets(live: LiveHub, seeded: Seeded, secrets_: dict[str, str],
                                       records: Records) -> None:
    http = Http(live)
    bodies = []
    for path in sorted(PUBLIC | {PAGE}):
        status, headers, raw = http.call("GET", path)
        assert status == 200, (path, status)
        bodies.append(raw)
        for task_id in seeded.task_ids:                 # the page and its files carry no data either
            assert task_id.encode() not in raw, path
        assert b"worker" not in raw or path.endswith(".js"), path
    status, _, raw = http.call("GET", "/agentcom/static/index.html")  # only the two listed files are served
    assert status == 404
    assert no_secret_in(secrets_, bodies, records.lines)


def test_authorised_views_hold_no_tokens(live: LiveHub, seeded: Seeded, secrets_: dict[str, str],
                                         records: Records) -> None:
    """Snapshot, agents, tasks, metrics and the dashboard's snapshot, read with the admin token."""
    http = Http(live)
    bodies = [json.dumps(live.call(live.hub.core.snapshot)).encode()]
    for path in ("/agentcom/api/snapshot", "/agentcom/api/agents", "/agentcom/api/tasks", "/agentcom/metrics",
                 f"/agentcom/api/tasks/{seeded.working['task_id']}", "/agentcom/api/executions?format=csv"):
        status, _, raw = http.call("GET", path, token=secrets_["admin"])
        assert status == 200, path
        bodies.append(raw)
    status, _, raw = http.call("GET", "/agentcom/api/agents?%74oken=" + secrets_["admin"])  # Tornado decodes names
    assert status == 200
    sock = Socket(live, "/agentcom/ws/dashboard?token=" + secrets_["admin"])
    first = sock.recv()
    sock.close()
    bodies.append(json.dumps(first).encode())
    assert no_secret_in(secrets_, bodies, records.lines)


def no_secret_in(secrets: dict[str, str], bodies: list[bytes], lines: list[str]) -> bool:
    assert lines or bodies
    for name, value in secrets.items():
        for body in bodies:
            assert value.encode() not in body, f"the {name} token is in an answer: {body[:300]!r}"
        for line in lines:
            assert value not in line, f"the {name} token is in a log record: {line[:300]}"
    return True


# ============================================================================ Jupyter extension


@pytest.fixture
def jp_server_config(tmp_path: Path) -> dict[str, Any]:
    return {
        "ServerApp": {"jpserver_extensions": {"agentcom": True}},
        "AgentCom": {"db_path": str(tmp_path / "jupyter-audit.db"), "identify_failure_limit": 1000},
    }


async def fetch(url: str, **kwargs: Any) -> Any:
    client = AsyncHTTPClient(force_instance=True)
    try:
        return await client.fetch(url, raise_error=False, request_timeout=10, follow_redirects=False, **kwargs)
    finally:
        client.close()


async def test_every_jupyter_route_refuses_wrong_credentials(jp_serverapp: Any, jp_fetch: Any, jp_http_port: int,
                                                             records: Records) -> None:
    ext = jp_serverapp.extension_manager.extension_points["agentcom"].app
    hub = ext.hub
    await jp_fetch("agentcom", "health")                # starts the HTTP server
    task = hub.submit_dict({"description": "audit me", "needed_capabilities": ["nobody"]})
    agent = hub.create_agent_token("jworker")
    revoked = hub.create_agent_token("jretired")
    tokens.revoke_token(hub.conn, "jretired")
    secrets = {"agent": agent, "revoked_agent": revoked, "hub_admin": hub.admin_token, "garbage": "x" * 48,
               "jupyter": jp_serverapp.identity_provider.token}
    base = f"http://localhost:{jp_http_port}{jp_serverapp.base_url}"
    samples = {"task_id": [task.task_id], "action": ["cancel", "retry"], "name": ["app.js", "app.css"]}
    rows_before = hub.conn.execute("SELECT count(*) FROM task_history").fetchone()[0]
    bodies: list[bytes] = []
    audited = 0
    routes = [(method, path) for pattern, handler, *_ in ext.handlers
              for path in concrete_paths(pattern, samples) for method in methods_of(handler)]
    assert ("GET", "/agentcom/api/snapshot") in routes
    for method, path in routes:
        if path in PUBLIC or path == "/agentcom/ws/sidecar":
            continue
        for label, headers, query in wrong_credentials({k: v for k, v in secrets.items() if k != "jupyter"}):
            url = with_query(base + path.lstrip("/"), query)
            if method == "websocket":
                with pytest.raises(HTTPClientError) as refused:
                    await tornado.websocket.websocket_connect(HTTPRequest(url.replace("http", "ws", 1), headers=headers))
                status, raw = refused.value.code, b""
            else:
                body = b'{"description": "sneaky"}' if method in ("POST", "PUT", "PATCH") else None
                answer = await fetch(url, method=method, headers=headers, body=body,
                                     allow_nonstandard_methods=True)
                status, raw = answer.code, answer.body or b""
                if method == "OPTIONS" and status in (200, 204):
                    assert raw == b"", raw[:200]        # Jupyter's CORS preflight: no data, no effect
                    continue
                if path == PAGE and status == 302:      # the page sends visitors to Jupyter's login
                    assert "login" in answer.headers["Location"], answer.headers
            assert status in (401, 403) or (path == PAGE and status == 302), (method, path, label, status, raw[:200])
            bodies.append(raw)
            audited += 1
    print(f"jupyter: {len(routes)} (method, path) pairs, {audited} refused requests")
    assert hub.conn.execute("SELECT count(*) FROM task_history").fetchone()[0] == rows_before
    assert hub.core.tasks[task.task_id].status == "queued"
    no_secret_in(secrets, bodies, records.lines)


async def test_jupyter_sidecar_socket_needs_a_live_sidecar_token(jp_serverapp: Any, jp_ws_fetch: Any) -> None:
    hub = jp_serverapp.extension_manager.extension_points["agentcom"].app.hub
    hub.create_agent_token("jretired")
    revoked = hub.create_agent_token("jretired")
    tokens.revoke_token(hub.conn, "jretired")
    for agent_id, token in (("jretired", revoked), ("jretired", hub.admin_token),
                            ("jretired", jp_serverapp.identity_provider.token)):
        ws = await jp_ws_fetch("agentcom", "ws", "sidecar")
        await ws.write_message(codec.encode(m.Identify(agent_id=agent_id, token=token, protocol_version=1)))
        answer = json.loads(await ws.read_message())
        assert answer["type"] == "error" and answer["error"] == "unauthorized", answer
        assert await ws.read_message() is None and ws.close_code == 1008
    assert "jretired" not in hub.core.agents
