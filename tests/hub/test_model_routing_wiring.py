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
