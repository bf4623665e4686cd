"""Per-connection rate budgets, and addresses refused for a while after abuse or token guessing.

A second client address is real: the hub listens on 127.0.0.1 and a client binds its end of
the connection to 127.0.0.2 (all of 127/8 is loopback on Linux), so the hub sees another
``remote_ip``.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from tornado.httpclient import HTTPClientError, HTTPRequest
from tornado.websocket import websocket_connect

from agentcom import Hub
from agentcom.config import AgentCom
from agentcom.errors import ConfigError
from agentcom.protocol import messages as m
from hub.conftest import make_hub, raw_ws, sidecar_ws  # noqa: F401  (fixtures shared with the hub tests)
from hub.wire import WAIT_S, Api, Sidecar, eventually, result

pytestmark = pytest.mark.anyio

OTHER = "127.0.0.2"
COOLDOWN_MS = 2_000  # long enough to see the refusal, short enough to wait out


async def _connect(hub: Hub, source: str | None = None) -> Sidecar:
    request = HTTPRequest(hub.ws_url, network_interface=source, connect_timeout=WAIT_S, request_timeout=WAIT_S)
    return Sidecar(await websocket_connect(request))


async def _identify(hub: Hub, agent_id: str, token: str, source: str | None = None) -> Sidecar:
    sidecar = await _connect(hub, source)
    sidecar.agent_id = agent_id
    await sidecar.send(m.Identify(agent_id=agent_id, token=token, protocol_version=1))
    await sidecar.expect("identified", agent_id=agent_id)
    return sidecar


async def _refused(hub: Hub) -> dict[str, Any]:
    """A new sidecar socket from 127.0.0.1 is answered 429 before the upgrade; its JSON body."""
    with pytest.raises(HTTPClientError) as caught:
        await _connect(hub)
    response = caught.value.response
    assert caught.value.code == 429 and response is not None
    assert int(response.headers["Retry-After"]) >= 1
    body: dict[str, Any] = json.loads(response.body)
    assert body["error"] == "rate_limited" and body["retry_after_ms"] > 0
    return body


async def _welcome_again(hub: Hub) -> Sidecar:
    """Poll until 127.0.0.1 may connect again (the cool-down ran out)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + WAIT_S
    while True:
        try:
            return await _connect(hub)
        except HTTPClientError as exc:
            assert exc.code == 429 and loop.time() < deadline, "the address was never allowed again"
        await asyncio.sleep(0.1)


# ------------------------------------------------------------------ budgets


async def test_a_progress_flood_never_starves_the_completion(make_hub, sidecar_ws) -> None:
    bad_frame_limit = 20
    hub = await make_hub(progress_rate_limit=5, bad_frame_limit=bad_frame_limit)
    api = Api(hub)
    try:
        sidecar = await sidecar_ws(hub)
        task_id = await api.submit()
        assign = await sidecar.assignment()
        await sidecar.accept(assign)
        flood = 100  # far over both the progress budget and bad_frame_limit
        for i in range(flood):
            await sidecar.send(m.TaskProgress(task_id=task_id, generation=assign["generation"], progress=i % 100))
        await sidecar.send(m.TaskComplete(task_id=task_id, generation=assign["generation"], result=result()))

        answers = []
        while not answers or answers[-1]["type"] != "task_ack":
            answers.append(await sidecar.recv())
        *refused, ack = answers
        assert ack == {"type": "task_ack", "task_id": task_id, "status": "complete"}
        assert bad_frame_limit < len(refused) < flood  # 5 a second went through; the refused ones are no abuse
        assert all(f["type"] == "error" and f["error"] == "rate_limited" and f["retry_after_ms"] > 0
                   and "task_progress" in f["message"] for f in refused)
        await sidecar.nothing_else()  # refused progress is not abuse: the socket stays open, ping has its own budget
        assert (await api.task(task_id))["status"] == "completed"
    finally:
        api.close()


async def test_a_ping_flood_spends_its_own_budget_not_the_lifecycle_frames(make_hub, sidecar_ws) -> None:
    hub = await make_hub(frame_rate_limit=3)
    api = Api(hub)
    try:
        sidecar = await sidecar_ws(hub)
        task_id = await api.submit()
        assign = await sidecar.assignment()
        for _ in range(30):
            await sidecar.send(m.Ping())
        await sidecar.send(m.TaskAccepted(task_id=task_id, generation=assign["generation"]))
        await sidecar.send(m.TaskComplete(task_id=task_id, generation=assign["generation"], result=result()))

        answers = [await sidecar.recv() for _ in range(32)]
        pongs = [f for f in answers if f["type"] == "pong"]
        refused = [f for f in answers if f["type"] == "error"]
        assert 1 <= len(pongs) < 30 and len(pongs) + len(refused) == 30
        assert all(f["error"] == "rate_limited" and "ping" in f["message"] for f in refused)
        assert [f["status"] for f in answers[30:]] == ["accepted", "complete"]
        assert (await api.task(task_id))["status"] == "completed"
    finally:
        api.close()


def test_the_budgets_and_cool_downs_are_settings() -> None:
    settings = AgentCom.load(env={"AGENTCOM_PROGRESS_RATE_LIMIT": "50", "AGENTCOM_FRAME_RATE_LIMIT": "7"},
                             overrides={"identify_failure_limit": 4, "identify_cooldown_ms": 1_000,
                                        "bad_frame_cooldown_ms": 500, "identify_failure_window_ms": 900})
    assert (settings.progress_rate_limit, settings.frame_rate_limit, settings.identify_failure_limit) == (50, 7, 4)
    assert (settings.identify_cooldown_ms, settings.bad_frame_cooldown_ms, settings.identify_failure_window_ms) == (
        1_000, 500, 900)
    for name in ("progress_rate_limit", "frame_rate_limit", "identify_failure_limit"):
        with pytest.raises(ConfigError, match=f"{name} must be at least 1"):
            AgentCom.load(overrides={name: 0})
    for name in ("bad_frame_cooldown_ms", "identify_failure_window_ms", "identify_cooldown_ms"):
        with pytest.raises(ConfigError, match=f"{name} must be a positive number of milliseconds"):
            AgentCom.load(overrides={name: -1})


# ------------------------------------------------------------------ refused addresses


async def test_an_abusive_connection_is_closed_and_its_address_refused_for_a_while(make_hub, raw_ws) -> None:
    hub = await make_hub(bad_frame_limit=3, bad_frame_cooldown_ms=COOLDOWN_MS)
    token = hub.create_agent_token("agent-1")
    abuser = await raw_ws(hub)
    for _ in range(4):
        await abuser.send("not json")
    assert [(await abuser.recv())["error"] for _ in range(4)] == ["invalid_json"] * 4
    code, reason = await abuser.closed()
    assert (code, reason) == (1008, "too many bad frames")

    body = await _refused(hub)
    assert "too many bad frames" in body["message"]
    other = await _identify(hub, "agent-1", token, source=OTHER)  # another address is not affected
    await other.nothing_else()
    other.close()

    back = await _welcome_again(hub)
    back.agent_id = "agent-1"
    await back.send(m.Identify(agent_id="agent-1", token=token, protocol_version=1))
    await back.expect("identified")
    back.close()


async def test_bad_identifies_from_one_address_get_it_refused_for_a_while(make_hub) -> None:
    hub = await make_hub(identify_failure_limit=3, identify_cooldown_ms=COOLDOWN_MS)
    token = hub.create_agent_token("agent-1")
    early = await _connect(hub)  # opened before the cool-down starts
    for attempt in range(3):
        guesser = await _connect(hub)
        await guesser.send(m.Identify(agent_id="agent-1", token=f"acs_guess{attempt}", protocol_version=1))
        await guesser.error("unauthorized")
        assert await guesser.closed() == (1008, "unauthorized")

    body = await _refused(hub)
    assert "bad token" in body["message"]
    await early.send(m.Identify(agent_id="agent-1", token=token, protocol_version=1))  # even a good token
    refused = await early.error("rate_limited")
    assert refused["retry_after_ms"] > 0 and "bad token" in refused["message"]
    code, _ = await early.closed()
    assert code == 1008
    assert "agent-1" not in hub.core.agents

    other = await _identify(hub, "agent-1", token, source=OTHER)  # a good token from elsewhere is welcome
    assert hub.core.agents["agent-1"].online
    other.close()
    await eventually(lambda: "agent-1" not in hub.core.agents, "the hub saw the close")

    back = await _welcome_again(hub)
    await back.send(m.Identify(agent_id="agent-1", token=token, protocol_version=1))
    await back.expect("identified", agent_id="agent-1")
    back.close()
