"""The hub with ``routing = "model"``: classification, fallback and the endpoint API, over loopback."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from tornado.httpclient import AsyncHTTPClient
from tornado.websocket import websocket_connect

import agentcom


async def _next_assign(ws: Any) -> dict[str, Any]:
    while True:
        frame = json.loads(await asyncio.wait_for(ws.read_message(), 30))
        if frame["type"] == "task_assign":
            return frame


async def _scenario(db: Path) -> dict[str, Any]:
    hub = agentcom.Hub(db_path=str(db), port=0, routing="model", fallback_wait_ms=100, health_interval_ms=60_000)
    await hub.start()
    try:
        token = hub.create_agent_token("router-test")
        ws = await websocket_connect(hub.ws_url)
        await ws.write_message(json.dumps({"type": "identify", "agent_id": "router-test", "token": token,
                                           "protocol_version": 1, "concurrency": 4}))
        client, headers = AsyncHTTPClient(), {"Authorization": f"Bearer {hub.admin_token}"}

        async def submit(body: dict[str, Any]) -> dict[str, Any]:
            answer = await client.fetch(hub.url + "/agentcom/api/tasks", method="POST", body=json.dumps(body),
                                        headers=headers)
            return json.loads(answer.body)

        out: dict[str, Any] = {}
        out["complex_submit"] = await submit({"description": "refactor the security layer of the auth module"})
        out["complex_assign"] = await _next_assign(ws)
        out["standard_submit"] = await submit({"description": "write a function that parses dates",
                                               "complexity_tier": "standard"})
        out["standard_assign"] = await _next_assign(ws)
        bad = await client.fetch(hub.url + "/agentcom/api/endpoints", method="POST", raise_error=False,
                                 body=json.dumps({"host": "not a host!"}), headers=headers)
        out["bad_endpoint"] = (bad.code, json.loads(bad.body))
        snap = await client.fetch(hub.url + "/agentcom/api/snapshot", headers=headers)
        out["routing_stats"] = json.loads(snap.body)["routing_stats"]
        ws.close()
        return out
    finally:
        await hub.stop()


def test_model_routing_classifies_and_falls_back(tmp_path: Path) -> None:
    out = asyncio.run(_scenario(tmp_path / "hub.db"))
    assert out["complex_submit"]["complexity"]["source"] == "inferred"
    assert out["complex_submit"]["complexity"]["effective_tier"] == "complex"
    decision = out["complex_assign"]["routing_decision"]
    assert (decision["target_type"], decision["selected_model"]) == ("claude", "claude-sonnet-4-5")
    assert decision["fallback_used"] is False
    # no healthy Ollama endpoint: after fallback_wait_ms the standard task escalates to complex
    fallback = out["standard_assign"]["routing_decision"]
    assert fallback["fallback_used"] is True
    assert fallback["fallback_from_tier"] == "standard"
    assert fallback["target_type"] == "claude"
    assert out["bad_endpoint"][0] == 422
    assert out["bad_endpoint"][1]["error"] == "validation_failed"
    assert out["routing_stats"]["fallback_count"] >= 1


async def _identify(hub: Any, agent_id: str, **fields: Any) -> Any:
    ws = await websocket_connect(hub.ws_url)
    await ws.write_message(json.dumps({"type": "identify", "agent_id": agent_id, "token": hub.create_agent_token(agent_id),
                                       "protocol_version": 1, **fields}))
    return ws


async def _default_hub_scenario(db: Path) -> dict[str, Any]:
    from agentcom.standin import OllamaStandin

    # fallback_wait_ms far beyond any assignment awaited here: a task that arrives was routed, not escalated
    hub = agentcom.Hub(db_path=str(db), port=0, fallback_wait_ms=600_000, health_interval_ms=60_000)
    await hub.start()
    ollama = await OllamaStandin().start()
    try:
        out: dict[str, Any] = {"routing": hub.settings.routing}
        own = await _identify(hub, "with-ollama", ollama_url=ollama.url)
        hub.submit_dict({"description": "write a function that parses dates", "complexity_tier": "standard"})
        out["own_endpoint"] = (await _next_assign(own))["routing_decision"]
        own.close()

        bare = await _identify(hub, "bare")
        assert hub.remove_endpoint(out["own_endpoint"]["selected_endpoint"])  # no endpoint is left
        parked = hub.submit_dict({"description": "explain what a binary search does", "complexity_tier": "standard"})
        out["parked_status"] = hub.core.tasks[parked.task_id].status
        hub.settings.tier_targets = {**hub.settings.tier_targets, "standard": "local"}  # while the hub runs
        out["after_change"] = (await _next_assign(bare))["routing_decision"]
        bare.close()
        return out
    finally:
        await ollama.stop()
        await hub.stop()


def test_the_default_is_model_routing_and_it_follows_live_setting_changes(tmp_path: Path) -> None:
    out = asyncio.run(_default_hub_scenario(tmp_path / "hub.db"))
    assert out["routing"] == "model"
    # a sidecar's own Ollama is registered, checked and used at once, with no fallback wait
    assert out["own_endpoint"]["target_type"] == "ollama"
    assert out["own_endpoint"]["selected_endpoint"] is not None
    assert out["own_endpoint"]["fallback_used"] is False
    # with no healthy endpoint the task waits; the new tier map applies to it without a restart
    assert out["parked_status"] == "queued"
    assert out["after_change"]["target_type"] == "local"
    assert out["after_change"]["fallback_used"] is False


async def _self_served_scenario(db: Path) -> dict[str, Any]:
    hub = agentcom.Hub(db_path=str(db), port=0, fallback_wait_ms=600_000, health_interval_ms=60_000)
    await hub.start()
    try:
        out: dict[str, Any] = {}
        plain = await _identify(hub, "plain")
        parked = hub.submit_dict({"description": "explain what a binary search does", "complexity_tier": "standard"})
        out["parked_status"] = hub.core.tasks[parked.task_id].status
        # a sidecar with an embedded model connects: the parked standard task goes to it, not to `plain`
        local = await _identify(hub, "embedded", capabilities=["serves:local"])
        out["local"] = await _next_assign(local)
        hub.settings.tier_targets = {**hub.settings.tier_targets, "standard": "openai:smollm2"}
        own = await _identify(hub, "own-openai", capabilities=["serves:openai"])
        hub.submit_dict({"description": "write a function that parses dates", "complexity_tier": "standard"})
        out["openai"] = await _next_assign(own)
        out["stats"] = hub.router.stats()
        # both fail without a result (a crashed sidecar): the embedded model's run is free whatever it
        # used; the openai run went to the sidecar's own server, which the hub cannot place: unknown
        for ws, assign in ((local, out["local"]), (own, out["openai"])):
            await ws.write_message(json.dumps({"type": "task_failed", "task_id": assign["task_id"],
                                               "generation": assign["generation"], "error": "crashed",
                                               "retryable": False}))
            while json.loads(await asyncio.wait_for(ws.read_message(), 30))["type"] != "task_ack":
                pass
        out["costs"] = {target: hub.conn.execute("SELECT cost_nusd FROM executions WHERE task_id=?",
                                                 (out[target]["task_id"],)).fetchone()[0]
                        for target in ("local", "openai")}
        for ws in (plain, local, own):
            ws.close()
        return out
    finally:
        await hub.stop()


def test_a_sidecar_that_serves_a_standard_task_itself_gets_it_without_the_fallback_wait(tmp_path: Path) -> None:
    out = asyncio.run(_self_served_scenario(tmp_path / "hub.db"))
    assert out["parked_status"] == "queued"  # no endpoint and no sidecar serving one: it waits
    local = out["local"]["routing_decision"]
    assert (local["target_type"], local["selected_endpoint"], local["selected_model"]) == ("local", None, None)
    assert (local["fallback_used"], local["fallback_from_tier"], local["fallback_reason"]) == \
        (True, "standard", "no_healthy_endpoint")
    assert local["effective_tier"] == "standard" and local["estimated_cost_tier"] == "local"
    openai = out["openai"]["routing_decision"]
    assert (openai["target_type"], openai["selected_endpoint"], openai["selected_model"]) == ("openai", None, "smollm2")
    assert openai["fallback_used"] is False
    assert out["stats"]["by_target"] == {"local": 1, "openai": 1}
    assert out["costs"] == {"local": 0, "openai": None}
