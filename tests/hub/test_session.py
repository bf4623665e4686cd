"""The sidecar session over a real socket: identify, auth, ping, bad frames, limits."""

from __future__ import annotations

import json

import pytest
from tornado.httpclient import HTTPClientError, HTTPRequest
from tornado.websocket import websocket_connect

from agentcom import Hub
from agentcom.protocol import messages as m

from .wire import eventually, identify

pytestmark = pytest.mark.anyio


async def test_identify_with_a_token_answers_identified(hub: Hub, raw_ws) -> None:
    token = hub.create_agent_token("agent-1")
    ws = await raw_ws(hub)
    await ws.send(m.Identify(agent_id="agent-1", token=token, protocol_version=1, name="laptop",
                             capabilities=["shell"], models=["llama3.2"]))
    assert await ws.recv() == {"type": "identified", "agent_id": "agent-1", "protocol_version": 1,
                               "heartbeat_ms": 15000, "lease_ms": 60000}
    [agent] = hub.core.snapshot()["agents"]
    assert (agent["agent_id"], agent["name"], agent["state"], agent["capabilities"]) == (
        "agent-1", "laptop", "idle", ["shell"])


@pytest.mark.parametrize("first", [m.Ping(), m.TaskAccepted(task_id="t", generation=1),
                                   m.TaskComplete(task_id="t", generation=1, result=None)])  # type: ignore[arg-type]
async def test_any_other_first_frame_is_not_identified(hub: Hub, raw_ws, first) -> None:
    ws = await raw_ws(hub)
    if isinstance(first, m.TaskComplete):
        await ws.send({"type": "task_complete", "task_id": "t", "generation": 1})  # bad *and* unidentified
        await ws.error("validation_failed")
        first = m.Ping()
    await ws.send(first)
    frame = await ws.error("not_identified")
    assert "identify" in frame["message"]
    token = hub.create_agent_token("agent-1")  # the socket stays usable: identify now works
    await ws.send(m.Identify(agent_id="agent-1", token=token, protocol_version=1))
    await ws.expect("identified")
    assert hub.core.agents["agent-1"].online


@pytest.mark.parametrize("case", ["wrong-token", "no-token-minted", "other-agents-token", "revoked"])
async def test_a_bad_token_is_unauthorized_then_closed_with_1008(hub: Hub, raw_ws, case: str) -> None:
    other = hub.create_agent_token("agent-2")
    token = {"wrong-token": "acs_not-a-real-token", "no-token-minted": other, "other-agents-token": other}.get(case)
    agent_id = "agent-1" if case != "no-token-minted" else "agent-3"
    if case in ("wrong-token", "other-agents-token"):
        hub.create_agent_token("agent-1")
    if case == "revoked":
        token = hub.create_agent_token("agent-1")
        from agentcom.store.tokens import revoke_token
        revoke_token(hub.conn, "agent-1")
    ws = await raw_ws(hub)
    await ws.send(m.Identify(agent_id=agent_id, token=token, protocol_version=1))
    frame = await ws.error("unauthorized")
    assert agent_id in frame["message"] and token not in frame["message"]
    assert await ws.closed() == (1008, "unauthorized")
    assert agent_id not in hub.core.agents


async def test_ping_answers_pong_with_a_timestamp(hub: Hub, sidecar_ws) -> None:
    sidecar = await sidecar_ws(hub)
    before = hub.core.clock()
    await sidecar.send(m.Ping())
    pong = await sidecar.expect("pong")
    assert set(pong) == {"type", "timestamp"} and pong["timestamp"] >= before


async def test_any_frame_renews_liveness(hub: Hub, sidecar_ws) -> None:
    sidecar = await sidecar_ws(hub)
    agent = hub.core.agents["agent-1"]
    agent.last_seen = 0
    await sidecar.nothing_else()
    assert agent.last_seen > 0
    agent.last_seen = 0
    await sidecar.send("{not json")  # "any frame": a bad one too
    await sidecar.error("invalid_json")
    assert agent.last_seen > 0


async def test_a_second_identify_is_invalid_state(hub: Hub, sidecar_ws) -> None:
    sidecar = await sidecar_ws(hub)
    await sidecar.send(m.Identify(agent_id="agent-1", token="acs_whatever", protocol_version=1))
    await sidecar.error("invalid_state")
    await sidecar.nothing_else()


@pytest.mark.parametrize(("raw", "code"), [
    ("{not json", "invalid_json"),
    ('["ping"]', "validation_failed"),
    ('{"type": "task_teleport"}', "unknown_type"),
    ('{"type": "task_accepted", "task_id": "t"}', "validation_failed"),
    ('{"type": "task_accepted", "task_id": "t", "generation": "one"}', "validation_failed"),
    ('{"type": "cancel_task", "task_id": "t"}', "unknown_type"),
    pytest.param('{"type": "task_accepted", "x": ' + "[" * 5000 + "]" * 5000 + "}", "invalid_json", id="deep"),
])
async def test_bad_frames_are_answered_and_change_nothing(hub: Hub, sidecar_ws, raw: str, code: str) -> None:
    hub.submit_dict({"description": "one task"})
    sidecar = await sidecar_ws(hub)
    assign = await sidecar.assignment()
    before = hub.core.task_detail(assign["task_id"])
    await sidecar.send(raw)
    frame = await sidecar.error(code)
    if code == "validation_failed" and "task_accepted" in raw:
        assert frame["message_type"] == "task_accepted"
        assert frame["errors"][0]["field"] == "generation"
    await sidecar.nothing_else()
    assert hub.core.task_detail(assign["task_id"]) == before
    await sidecar.run(assign)  # the session still works


async def test_a_binary_frame_is_decoded_like_text(hub: Hub, sidecar_ws) -> None:
    sidecar = await sidecar_ws(hub)
    await sidecar.send(b'{"type": "ping"}')
    await sidecar.expect("pong")


async def test_twenty_bad_frames_close_the_socket_with_1008(make_hub, sidecar_ws) -> None:
    hub = await make_hub(bad_frame_limit=20)
    sidecar = await sidecar_ws(hub)
    for i in range(20):
        await sidecar.send("{bad")
        await sidecar.error("invalid_json")
    await sidecar.nothing_else()  # twenty are tolerated...
    await sidecar.send('{"type": "nope"}')  # ...the 21st within the window is not
    await sidecar.error("unknown_type")
    assert await sidecar.closed() == (1008, "too many bad frames")


async def test_a_frame_over_max_frame_bytes_closes_with_1009(make_hub, sidecar_ws) -> None:
    hub = await make_hub(max_frame_bytes=64 * 1024)
    sidecar = await sidecar_ws(hub)
    await sidecar.send({"type": "ping", "padding": "x" * (64 * 1024)})
    code, _ = await sidecar.closed()
    assert code == 1009


async def test_a_frame_over_one_mib_closes_with_1009_by_default(hub: Hub, raw_ws) -> None:
    assert hub.settings.max_frame_bytes == 1_048_576
    ws = await raw_ws(hub)
    await ws.send({"type": "ping", "padding": "x" * 1_048_576})
    code, _ = await ws.closed()
    assert code == 1009


async def test_a_frame_just_under_the_limit_is_fine(make_hub, sidecar_ws) -> None:
    hub = await make_hub(max_frame_bytes=64 * 1024)
    sidecar = await sidecar_ws(hub)
    frame = {"type": "ping", "padding": ""}
    frame["padding"] = "x" * (64 * 1024 - len(json.dumps(frame)))
    await sidecar.send(frame)
    await sidecar.expect("pong")


async def test_a_new_connection_of_the_same_agent_replaces_the_old(hub: Hub, sidecar_ws) -> None:
    first = await sidecar_ws(hub)
    token = hub.create_agent_token("agent-1")
    second = await identify(hub, "agent-1", token)
    code, _ = await first.closed()
    assert code == 1000
    await second.nothing_else()
    assert len(hub.core.agents) == 1 and hub.core.agents["agent-1"].online
    second.close()


async def test_a_browser_page_cannot_open_the_sidecar_socket(hub: Hub) -> None:
    request = HTTPRequest(hub.ws_url, headers={"Origin": "http://evil.example"})
    with pytest.raises(HTTPClientError) as info:
        await websocket_connect(request)
    assert info.value.code == 403


async def test_agents_are_listed_while_connected_and_leave_when_gone(hub: Hub, sidecar_ws) -> None:
    sidecar = await sidecar_ws(hub, "agent-9", capabilities=["gpu"])
    assert [a["agent_id"] for a in hub.core.snapshot()["agents"]] == ["agent-9"]
    seen: list[dict] = []
    hub.core.pubsub.subscribe(lambda topic, msg: seen.append(msg), ("agents",))
    sidecar.close()
    await eventually(lambda: {"kind": "agent_left", "agent_id": "agent-9"} in seen, "agent_left published")
    assert hub.core.snapshot()["agents"] == []


async def test_frames_in_flight_for_a_cancelled_task_are_not_abuse(hub: Hub, api, sidecar_ws) -> None:
    """Progress already on the wire when a task is cancelled is answered, but never gets the sidecar closed."""
    sidecar = await sidecar_ws(hub)
    task_id = await api.submit()
    assign = await sidecar.assignment()
    await sidecar.accept(assign)
    hub.core.cancel(task_id)
    for seq in range(1, 41):  # more than bad_frame_limit, all sent before the sidecar reads task_cancelled
        event = m.ExecutionEvent(event_type="token", text="x", timestamp=seq, seq=seq)
        await sidecar.send(m.TaskProgress(task_id=task_id, generation=assign["generation"], execution_event=event))
    await sidecar.expect("task_cancelled", task_id=task_id)
    for _ in range(40):
        await sidecar.error("invalid_state")
    await sidecar.nothing_else()  # still connected
    nxt = await api.submit()
    assert (await sidecar.assignment())["task_id"] == nxt


def test_an_identify_whose_endpoint_write_fails_leaves_no_agent_online(tmp_path) -> None:
    """The endpoints table refuses the write (as a full disk would): store_unavailable, and no ghost agent
    that tasks could be assigned to; the session's close has nothing to undo and a retry works."""
    import asyncio

    from agentcom.protocol import codec

    hub = Hub(db_path=str(tmp_path / "hub.db"), routing="model")
    try:
        token = hub.create_agent_token("agent-1")
        hub.conn.execute("CREATE TRIGGER boom BEFORE INSERT ON endpoints "
                         "BEGIN SELECT RAISE(ABORT, 'database or disk is full'); END")
        frames: list[object] = []
        session = hub.new_sidecar_session(frames.append, lambda code, reason: None, address="10.0.0.9")
        identify_frame = codec.encode(m.Identify(agent_id="agent-1", token=token, protocol_version=1,
                                                 ollama_url="http://10.0.0.9:11434"))
        session.on_text(identify_frame)
        assert [(type(f).__name__, getattr(f, "error", None)) for f in frames] == [("ErrorFrame", "store_unavailable")]
        assert session.agent is None and "agent-1" not in hub.core.agents
        assert hub.endpoints_view() == []  # not half registered in memory either
        hub.conn.execute("DROP TRIGGER boom")
        session.on_text(identify_frame)
        assert type(frames[-1]).__name__ == "Identified" and hub.core.agents["agent-1"].online
        assert [e["endpoint_id"] for e in hub.endpoints_view()] == ["10.0.0.9:11434"]
    finally:
        asyncio.run(hub.close())


def test_an_unexpected_error_in_a_frame_is_answered_and_escapes_nothing(tmp_path) -> None:
    """A defect while handling a frame (here the token check itself fails) must not abort the socket
    with the hub and the session disagreeing: the peer hears of it and may try again."""
    import asyncio

    from agentcom.hub.session import SidecarSession
    from agentcom.protocol import codec

    hub = Hub(db_path=str(tmp_path / "hub.db"))
    try:
        def broken_check(agent_id: str, token: str) -> bool:
            raise RuntimeError("token backend broke")

        frames: list[object] = []
        session = SidecarSession(hub.core, frames.append, lambda code, reason: None, broken_check)
        session.on_text(codec.encode(m.Identify(agent_id="agent-1", token="t", protocol_version=1)))
        assert [(type(f).__name__, getattr(f, "error", None), getattr(f, "message_type", None)) for f in frames] == [
            ("ErrorFrame", "protocol_error", "identify")]
        assert "internal error" in frames[0].message  # type: ignore[attr-defined]
        assert session.agent is None and hub.core.agents == {} and not session.closed
    finally:
        asyncio.run(hub.close())
