"""The HTTP API of interface.md over loopback: answers, field-named errors, auth, and never a 500."""

from __future__ import annotations

import csv
import io
import json
from typing import Any

import pytest

from agentcom import Hub

from .wire import Api

pytestmark = pytest.mark.anyio

EXECUTION_COLUMNS = ["task_id", "generation", "agent_id", "tier", "target_type", "model_used", "tokens_in",
                     "tokens_out", "estimated_cost_usd", "equivalent_claude_cost_usd", "savings_usd", "execution_ms",
                     "status", "completed_at", "price_table"]


async def _finished(hub: Hub, api: Api, sidecar_ws, count: int = 2) -> list[str]:
    """``count`` tasks run to completion by one sidecar, plus one that failed for good."""
    sidecar = await sidecar_ws(hub)
    ids = []
    for i in range(count):
        ids.append(await api.submit(description=f"done {i}", complexity_tier="trivial" if i % 2 else "complex"))
        await sidecar.run(await sidecar.assignment())
    ids.append(await api.submit(description="fails", max_attempts=1))
    await sidecar.fail(await sidecar.assignment(), "dead_letter", error="exit 1")
    return ids


# --------------------------------------------------------------------------- submit


async def test_submit_answers_201_with_the_task(hub: Hub, api: Api) -> None:
    response = await api.fetch("POST", "/agentcom/api/tasks", {
        "description": "refactor the parser", "priority": "urgent", "complexity_tier": "complex",
        "metadata": {"shell_command": "make", "timeout_ms": 5000}, "file_hints": [{"path": "parser.py"}],
        "success_criteria": ["green"], "verification_steps": [{"type": "test", "target": "make test"}],
        "needed_capabilities": ["shell"], "max_attempts": 5})
    assert response.code == 201
    body = json.loads(response.body)
    assert body["status"] == "queued" and body["task_id"].startswith("task-")
    assert body["complexity"]["effective_tier"] == "complex" and body["max_attempts"] == 5
    assert response.headers["Location"] == f"/agentcom/api/tasks/{body['task_id']}"
    detail = await api.task(body["task_id"])
    assert (detail["priority"], detail["max_attempts"], detail["needed_capabilities"]) == ("urgent", 5, ["shell"])
    assert detail["metadata"] == {"shell_command": "make", "timeout_ms": 5000}


@pytest.mark.parametrize(("body", "fields"), [
    ({}, ["description"]),
    ({"description": ""}, ["description"]),
    ({"description": "x" * 10_001}, ["description"]),
    ({"description": 42}, ["description"]),
    ({"description": "x", "priority": "asap"}, ["priority"]),
    ({"description": "x", "complexity_tier": "huge"}, ["complexity_tier"]),
    ({"description": "x", "max_attempts": "3"}, ["max_attempts"]),
    ({"description": "x", "max_attempts": 0}, ["max_attempts"]),
    ({"description": "x", "metadata": ["not", "a", "map"]}, ["metadata"]),
    ({"description": "x", "metadata": {"shell_command": ["ls"]}}, ["metadata.shell_command"]),
    ({"description": "x", "metadata": {"shell_command": "  "}}, ["metadata.shell_command"]),
    ({"description": "x", "metadata": {"timeout_ms": 0}}, ["metadata.timeout_ms"]),
    ({"description": "x", "metadata": {"timeout_ms": True}}, ["metadata.timeout_ms"]),
    ({"description": "x", "metadata": {"shell_command": 1, "max_tokens": "many"}},
     ["metadata.shell_command", "metadata.max_tokens"]),
    ({"description": "x", "file_hints": [{"reason": "no path"}]}, ["file_hints[0].path"]),
    ({"description": "x", "verification_steps": [{"type": "test"}]}, ["verification_steps[0].target"]),
    ({"description": "x", "needed_capabilities": "gpu"}, ["needed_capabilities"]),
    ({"description": "x", "depends_on": ["task-nope"]}, ["depends_on"]),
    ({"description": "x", "depends_on": "task-nope"}, ["depends_on"]),
    ({"description": "x", "colour": "red"}, ["colour"]),
    ([], ["$"]),
    ("just a string", ["$"]),
    (None, ["$"]),
])
async def test_bad_submissions_are_422_naming_the_fields(hub: Hub, api: Api, body: Any, fields: list[str]) -> None:
    status, answer = await api.call("POST", "/agentcom/api/tasks", raw=json.dumps(body).encode())
    assert status == 422, answer
    assert answer["error"] == "validation_failed" and answer["message"]
    assert [e["field"] for e in answer["errors"]] == fields
    assert all(e["error"] for e in answer["errors"])
    assert hub.core.snapshot()["queue"]["queued"] == 0


@pytest.mark.parametrize("raw", [b"{bad json", b"", b"\xff\xfe\x00", b'{"description": "x"} trailing',
                                 b'{"description": "x", "metadata": {"a": ' + b"[" * 5000 + b"]" * 5000 + b"}}"],
                         ids=["broken", "empty", "not-utf8", "trailing", "deep"])
async def test_a_body_that_is_not_json_is_a_400(hub: Hub, api: Api, raw: bytes) -> None:
    status, answer = await api.call("POST", "/agentcom/api/tasks", raw=raw)
    assert status in (400, 422), answer
    assert answer["error"] in ("invalid_json", "validation_failed") and answer["message"]


# --------------------------------------------------------------------------- list, get


async def test_list_filters_and_pages(hub: Hub, api: Api, sidecar_ws) -> None:
    done = await _finished(hub, api, sidecar_ws)
    queued = [await api.submit(description=f"q{i}", complexity_tier="trivial", assign_to="agent-away")
              for i in range(3)]
    status, body = await api.call("GET", "/agentcom/api/tasks")
    assert status == 200 and body["count"] == 6
    assert [t["task_id"] for t in body["tasks"]] == list(reversed(done + queued))  # newest first
    assert set(body["tasks"][0]) >= {"task_id", "description", "priority", "status", "generation", "attempts",
                                     "assigned_to", "tier", "routing_decision", "created_at"}
    _, page = await api.call("GET", "/agentcom/api/tasks?limit=2&offset=1")
    assert page["count"] == 6 and [t["task_id"] for t in page["tasks"]] == [queued[1], queued[0]]
    _, body = await api.call("GET", "/agentcom/api/tasks?status=completed")
    assert {t["task_id"] for t in body["tasks"]} == set(done[:2]) and body["count"] == 2
    _, body = await api.call("GET", "/agentcom/api/tasks?status=dead_letter")
    assert [t["task_id"] for t in body["tasks"]] == [done[2]]
    _, body = await api.call("GET", "/agentcom/api/tasks?tier=trivial&status=queued")
    assert body["count"] == 3
    _, body = await api.call("GET", "/agentcom/api/tasks?agent_id=agent-1")
    assert body["count"] == 3
    _, body = await api.call("GET", "/agentcom/api/tasks?agent_id=nobody")
    assert body == {"tasks": [], "count": 0, "limit": 100, "offset": 0}


@pytest.mark.parametrize(("query", "field"), [
    ("limit=abc", "limit"), ("limit=0", "limit"), ("limit=100000", "limit"), ("limit=1.5", "limit"),
    ("offset=-1", "offset"), ("offset=x", "offset"), ("status=bogus", "status"), ("tier=huge", "tier"),
])
async def test_bad_query_parameters_are_422(hub: Hub, api: Api, query: str, field: str) -> None:
    status, body = await api.call("GET", f"/agentcom/api/tasks?{query}")
    assert status == 422 and body["errors"][0]["field"] == field


async def test_get_has_history_and_404_for_unknown_ids(hub: Hub, api: Api, sidecar_ws) -> None:
    [task_id, *_] = await _finished(hub, api, sidecar_ws, count=1)
    detail = await api.task(task_id)
    assert [h["event"] for h in detail["history"]] == ["submitted", "assigned", "accepted", "completed"]
    assert all({"at", "event", "generation", "agent_id", "details"} <= set(h) for h in detail["history"])
    assert detail["result"]["status"] == "success" and detail["routing_decision"]["effective_tier"] == "complex"
    assert detail["complexity"]["effective_tier"] == "complex"
    status, body = await api.call("GET", "/agentcom/api/tasks/task-nope")
    assert status == 404 and body["error"] == "not_found" and "task-nope" in body["message"]


# --------------------------------------------------------------------------- cancel, retry


async def test_cancel_and_retry(hub: Hub, api: Api, sidecar_ws) -> None:
    done, _, dead = await _finished(hub, api, sidecar_ws)
    queued = await api.submit(assign_to="agent-elsewhere")
    assert await api.call("POST", f"/agentcom/api/tasks/{queued}/cancel") == (
        200, {"task_id": queued, "status": "cancelled", "generation": 0})
    status, body = await api.call("POST", f"/agentcom/api/tasks/{queued}/cancel")
    assert status == 409 and body["error"] == "invalid_state"
    status, body = await api.call("POST", f"/agentcom/api/tasks/{done}/cancel")
    assert status == 409 and "completed" in body["message"]
    status, body = await api.call("POST", f"/agentcom/api/tasks/{done}/retry")
    assert status == 409 and body["error"] == "invalid_state"
    assert (await api.call("POST", "/agentcom/api/tasks/task-nope/cancel"))[0] == 404
    assert (await api.call("POST", "/agentcom/api/tasks/task-nope/retry"))[0] == 404
    status, body = await api.call("POST", f"/agentcom/api/tasks/{dead}/retry")
    assert status == 200 and body["task_id"] == dead and body["status"] in ("queued", "assigned")
    status, body = await api.call("POST", f"/agentcom/api/tasks/{dead}/retry")
    assert status == 409  # it is open again
    status, body = await api.call("POST", f"/agentcom/api/tasks/{queued}/retry")
    assert status == 200  # a cancelled task may be retried


# --------------------------------------------------------------------------- agents, snapshot, health


async def test_agents(hub: Hub, api: Api, sidecar_ws) -> None:
    sidecar = await sidecar_ws(hub, "agent-7", name="box", capabilities=["gpu"])
    task_id = await api.submit()
    await sidecar.accept(await sidecar.assignment())
    status, body = await api.call("GET", "/agentcom/api/agents")
    assert status == 200
    [agent] = body
    assert {k: agent[k] for k in ("agent_id", "name", "state", "current_task_id", "capabilities")} == {
        "agent_id": "agent-7", "name": "box", "state": "working", "current_task_id": task_id, "capabilities": ["gpu"]}


async def test_snapshot_has_the_shape_of_protocol_md(hub: Hub, api: Api, sidecar_ws) -> None:
    await _finished(hub, api, sidecar_ws)
    status, snap = await api.call("GET", "/agentcom/api/snapshot")
    assert status == 200
    assert set(snap) == {"timestamp", "uptime_ms", "agents", "queue", "recent_completions", "routing_stats", "totals"}
    assert isinstance(snap["timestamp"], int) and isinstance(snap["uptime_ms"], int) and snap["uptime_ms"] >= 0
    [agent] = snap["agents"]
    assert {"agent_id", "name", "state", "current_task_id", "capabilities", "connected_at"} <= set(agent)
    assert snap["queue"] == {"queued": 0, "assigned": 0, "working": 0, "completed": 2, "failed": 0,
                             "dead_letter": 1, "cancelled": 0}
    assert len(snap["recent_completions"]) == 2
    for completion in snap["recent_completions"]:
        assert {"task_id", "agent_id", "description", "completed_at", "duration_ms", "routing_decision",
                "execution_meta"} <= set(completion)
        assert set(completion["execution_meta"]) == {"model_used", "tokens_in", "tokens_out", "estimated_cost_usd",
                                                     "equivalent_claude_cost_usd", "execution_ms"}
    assert {"by_tier", "by_target", "fallback_count"} <= set(snap["routing_stats"])
    assert sum(snap["routing_stats"]["by_tier"].values()) == 3
    assert set(snap["totals"]) == {"cost_usd", "equivalent_claude_cost_usd", "savings_usd", "tokens_in", "tokens_out",
                                   "executions", "unpriced_executions"}
    assert (snap["totals"]["executions"], snap["totals"]["unpriced_executions"]) == (3, 0)
    # the failed run's tokens and cost count too: they were spent
    assert snap["totals"]["tokens_in"] == 30 and snap["totals"]["cost_usd"] == pytest.approx(0.003)


async def test_health_is_public(hub: Hub, api: Api) -> None:
    status, body = await api.call("GET", "/agentcom/health", token=None)
    assert status == 200 and body["status"] == "ok"


# --------------------------------------------------------------------------- executions


async def test_executions_as_json_csv_and_parquet(hub: Hub, api: Api, sidecar_ws) -> None:
    ids = await _finished(hub, api, sidecar_ws)
    status, rows = await api.call("GET", "/agentcom/api/executions")
    assert status == 200 and [r["task_id"] for r in rows] == ids
    assert all(set(EXECUTION_COLUMNS) <= set(r) for r in rows)
    assert [r["status"] for r in rows] == ["success", "success", "failed"]
    first = rows[0]
    assert (first["tokens_in"], first["tokens_out"], first["model_used"], first["price_table"]) == (
        10, 20, "llama3.2", "test-1")
    assert first["savings_usd"] == pytest.approx(0.003)

    status, text = await api.call("GET", "/agentcom/api/executions?format=csv")
    assert status == 200
    table = list(csv.DictReader(io.StringIO(text.decode())))
    assert [r["task_id"] for r in table] == ids and set(EXECUTION_COLUMNS) <= set(table[0])

    import pyarrow.parquet as pq

    response = await api.fetch("GET", "/agentcom/api/executions?format=parquet")
    assert response.code == 200
    frame = pq.read_table(io.BytesIO(response.body))
    assert frame.num_rows == 3 and set(EXECUTION_COLUMNS) <= set(frame.column_names)
    assert frame.column("task_id").to_pylist() == ids

    cutoff = rows[1]["completed_at"]
    _, later = await api.call("GET", f"/agentcom/api/executions?since={cutoff}")
    assert [r["task_id"] for r in later] == [r["task_id"] for r in rows if r["completed_at"] >= cutoff]
    _, none = await api.call("GET", f"/agentcom/api/executions?since={rows[-1]['completed_at'] + 1}")
    assert none == []


async def test_executions_of_an_empty_hub(hub: Hub, api: Api) -> None:
    assert await api.call("GET", "/agentcom/api/executions") == (200, [])
    status, text = await api.call("GET", "/agentcom/api/executions?format=csv")
    assert status == 200 and text.decode().splitlines()[0].split(",")[:2] == ["task_id", "generation"]
    response = await api.fetch("GET", "/agentcom/api/executions?format=parquet")
    assert response.code == 200


@pytest.mark.parametrize(("query", "field"), [("format=xml", "format"), ("since=yesterday", "since"),
                                              ("since=-5", "since")])
async def test_bad_execution_queries_are_422(hub: Hub, api: Api, query: str, field: str) -> None:
    status, body = await api.call("GET", f"/agentcom/api/executions?{query}")
    assert status == 422 and body["errors"][0]["field"] == field


# --------------------------------------------------------------------------- auth


PROTECTED = [("GET", "/agentcom/api/tasks"), ("POST", "/agentcom/api/tasks"), ("GET", "/agentcom/api/tasks/t"),
             ("POST", "/agentcom/api/tasks/t/cancel"), ("POST", "/agentcom/api/tasks/t/retry"),
             ("GET", "/agentcom/api/agents"), ("GET", "/agentcom/api/snapshot"), ("GET", "/agentcom/api/executions")]


@pytest.mark.parametrize(("method", "path"), PROTECTED)
async def test_the_api_needs_the_admin_token(hub: Hub, api: Api, method: str, path: str) -> None:
    sidecar_token = hub.create_agent_token("agent-1")
    for token in (None, "wrong", sidecar_token, hub.admin_token + "x", ""):
        status, body = await api.call(method, path, {"description": "x"}, token=token)
        assert status == 401, (token, body)
        assert body == {"error": "unauthorized", "message": "missing or invalid admin token"}
    status, body = await api.call(method, path, token=None, headers={"Authorization": f"Basic {hub.admin_token}"})
    assert status == 401
    assert hub.core.snapshot()["queue"]["queued"] == 0


async def test_the_admin_token_may_come_as_a_query_parameter(hub: Hub, api: Api) -> None:
    status, body = await api.call("GET", f"/agentcom/api/snapshot?token={hub.admin_token}", token=None)
    assert status == 200 and "queue" in body


async def test_the_admin_token_file_is_private(hub: Hub) -> None:
    from agentcom.hub.service import admin_token_path

    path = admin_token_path(hub.settings.db_path)
    assert path.read_text().strip() == hub.admin_token
    assert path.stat().st_mode & 0o777 == 0o600


# --------------------------------------------------------------------------- never a 500


BAD_REQUESTS: list[tuple[str, str, bytes | None]] = [
    ("POST", "/agentcom/api/tasks", b'{"description": "x", "metadata": {"timeout_ms": 1e400}}'),
    ("POST", "/agentcom/api/tasks", b'{"description": "x", "max_attempts": 99999999999999999999999}'),
    ("POST", "/agentcom/api/tasks", b'{"description": "\\ud800"}'),
    ("POST", "/agentcom/api/tasks", b'{"description": "x", "depends_on": [""]}'),
    ("POST", "/agentcom/api/tasks", b'{"description": "x", "assign_to": "no spaces allowed"}'),
    ("POST", "/agentcom/api/tasks", b'{"description": "x", "file_hints": {"path": "a"}}'),
    ("POST", "/agentcom/api/tasks", b'{"description": null}'),
    ("POST", "/agentcom/api/tasks", b"\x00\x01\x02"),
    ("GET", "/agentcom/api/tasks?limit=%00", None),
    ("GET", "/agentcom/api/tasks?limit=" + "9" * 5000, None),
    ("GET", "/agentcom/api/tasks?offset=99999999999999999999999999", None),
    ("GET", "/agentcom/api/tasks?status=queued&status=completed", None),
    ("GET", "/agentcom/api/tasks?agent_id=%FF%FE", None),
    ("GET", "/agentcom/api/tasks/%00", None),
    ("GET", "/agentcom/api/tasks/" + "x" * 5000, None),
    ("POST", "/agentcom/api/tasks/%20/cancel", None),
    ("GET", "/agentcom/api/executions?since=99999999999999999999999999", None),
    ("GET", "/agentcom/api/executions?format=", None),
    ("DELETE", "/agentcom/api/tasks", None),
    ("PUT", "/agentcom/api/snapshot", b"{}"),
    ("PATCH", "/agentcom/api/tasks/t", b"{}"),
]


@pytest.mark.parametrize(("method", "path", "raw"), BAD_REQUESTS, ids=range(len(BAD_REQUESTS)))
async def test_bad_input_is_never_a_500(hub: Hub, api: Api, method: str, path: str, raw: bytes | None) -> None:
    response = await api.fetch(method, path, raw=raw)
    assert response.code < 500, (response.code, response.body[:300])
    body = json.loads(response.body)
    if response.code >= 400:
        assert body["error"] and body["message"]
