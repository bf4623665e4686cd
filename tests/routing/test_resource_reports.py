"""``resource_report`` frames and the hub's own in-flight counts steer endpoint choice (``routing = "model"``).

A real hub on loopback, two real (fake-model) Ollama servers registered through the HTTP
API, and a sidecar speaking the protocol over a real WebSocket.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from tornado.httpclient import AsyncHTTPClient
from tornado.websocket import WebSocketClientConnection, websocket_connect

import agentcom
from agentcom.routing import ResourceReport

pytestmark = [pytest.mark.anyio, pytest.mark.usefixtures("anyio_backend")]

WAIT_S = 10.0  # bound for a frame to arrive; never a timing assertion
STANDARD = {"description": "write a function that parses dates", "complexity_tier": "standard"}


class Wire:
    """One hub, its admin API and one identified sidecar socket."""

    def __init__(self, hub: agentcom.Hub, ws: WebSocketClientConnection) -> None:
        self.hub, self.ws = hub, ws
        self.http = AsyncHTTPClient(force_instance=True)

    async def api(self, method: str, path: str, body: Any = None) -> Any:
        answer = await self.http.fetch(self.hub.url + path, method=method, raise_error=True,
                                       body=None if body is None else json.dumps(body),
                                       headers={"Authorization": f"Bearer {self.hub.admin_token}"})
        return json.loads(answer.body)

    async def send(self, frame: dict[str, Any]) -> None:
        await self.ws.write_message(json.dumps(frame))

    async def recv(self) -> dict[str, Any]:
        raw = await asyncio.wait_for(self.ws.read_message(), WAIT_S)
        assert raw is not None, (self.ws.close_code, self.ws.close_reason)
        return dict(json.loads(raw))

    async def assigned_endpoint(self) -> tuple[str, int, str]:
        """Submit a standard task; (task_id, generation, selected_endpoint) of its assignment."""
        await self.api("POST", "/agentcom/api/tasks", STANDARD)
        frame = await self.recv()
        assert frame["type"] == "task_assign", frame
        return frame["task_id"], frame["generation"], frame["routing_decision"]["selected_endpoint"]

    async def complete(self, task_id: str, generation: int) -> None:
        result = {"status": "success", "output": "ok", "model_used": "llama3.2:latest", "tokens_in": 1,
                  "tokens_out": 1, "estimated_cost_usd": 0.0, "equivalent_claude_cost_usd": None,
                  "execution_ms": 1, "price_table": "test"}
        await self.send({"type": "task_complete", "task_id": task_id, "generation": generation, "result": result})
        assert (await self.recv())["type"] == "task_ack"

    async def answer_to_ping(self) -> dict[str, Any]:
        """The next frame after a ping: the pong itself when the frames before were answered by nothing."""
        await self.send({"type": "ping"})
        return await self.recv()

    async def close(self) -> None:
        self.ws.close()
        self.http.close()
        await self.hub.stop()


async def _wire(tmp_path: Path, llm_server: Any) -> tuple[Wire, list[str]]:
    servers = [llm_server("healthy", models=["llama3.2:latest"], loaded=[]) for _ in range(2)]
    hub = agentcom.Hub(db_path=str(tmp_path / "hub.db"), port=0, host="127.0.0.1", routing="model",
                       fallback_wait_ms=60_000, health_interval_ms=3_600_000)
    await hub.start()
    ws = await websocket_connect(hub.ws_url)
    wire = Wire(hub, ws)
    endpoints = sorted([(await wire.api("POST", "/agentcom/api/endpoints", {"host": s.url}))["endpoint_id"]
                        for s in servers])
    assert [e["status"] for e in await wire.api("GET", "/agentcom/api/endpoints")] == ["healthy", "healthy"]
    await wire.send({"type": "identify", "agent_id": "gpu-agent", "token": hub.create_agent_token("gpu-agent"),
                     "protocol_version": 1, "concurrency": 8})
    assert (await wire.recv())["type"] == "identified"
    return wire, endpoints


async def test_a_report_moves_work_to_the_endpoint_with_room_and_the_model_loaded(tmp_path: Path, llm_server) -> None:
    wire, (first, second) = await _wire(tmp_path, llm_server)
    try:
        for _ in range(2):  # nothing reported, nothing running: the tie goes to the smaller id, every time
            task_id, generation, endpoint = await wire.assigned_endpoint()
            assert endpoint == first
            await wire.complete(task_id, generation)
        on_first, on_second = await wire.assigned_endpoint(), await wire.assigned_endpoint()
        assert (on_first[2], on_second[2]) == (first, second)  # a sidecar reports on endpoints it has tasks on
        await wire.send({"type": "resource_report", "endpoints": [
            {"endpoint": first, "free_slots": 0, "in_flight": 3, "cpu_percent": 90.0},
            {"endpoint": f"http://{second}", "free_slots": 4, "in_flight": 0, "loaded_models": ["llama3.2:latest"],
             "cpu_percent": 10.0, "ram_total_mb": 64_000, "ram_free_mb": 48_000},
        ]})
        assert (await wire.answer_to_ping())["type"] == "pong"  # accepted: no error frame
        task_id, generation, endpoint = await wire.assigned_endpoint()
        assert endpoint == second
        resources = wire.hub.registry.snapshot().resources
        assert resources[second].loaded_models == ("llama3.2:latest",) and resources[first].free_slots == 0
    finally:
        await wire.close()


async def test_the_hubs_own_tasks_in_flight_spread_work_and_are_released(tmp_path: Path, llm_server) -> None:
    wire, (first, second) = await _wire(tmp_path, llm_server)
    try:
        a = await wire.assigned_endpoint()
        b = await wire.assigned_endpoint()
        assert (a[2], b[2]) == (first, second)  # the first one is busy with a
        assert wire.hub.router.in_flight() == {first: 1, second: 1}
        await wire.complete(a[0], a[1])
        assert wire.hub.router.in_flight() == {second: 1}
        c = await wire.assigned_endpoint()
        assert c[2] == first  # free again, and second still runs b
        await wire.api("POST", f"/agentcom/api/tasks/{c[0]}/cancel", {})
        assert (await wire.recv())["type"] == "task_cancelled"
        assert wire.hub.router.in_flight() == {second: 1}
    finally:
        await wire.close()


async def test_a_bad_report_is_answered_with_an_error_and_changes_nothing(tmp_path: Path, llm_server) -> None:
    wire, (first, second) = await _wire(tmp_path, llm_server)
    try:
        running = await wire.assigned_endpoint()
        assert running[2] == first  # a sidecar reports on endpoints it has tasks on
        good = {"endpoint": first, "free_slots": 2, "cpu_percent": 20.0}
        await wire.send({"type": "resource_report", "endpoints": [good]})
        assert (await wire.answer_to_ping())["type"] == "pong"
        before = dict(wire.hub.registry.snapshot().resources)
        assert before == {first: ResourceReport(reported_at=before[first].reported_at, cpu_percent=20.0, free_slots=2)}
        bad_reports = [
            ([{"endpoint": second, "cpu_percent": 150}], "endpoints[0].cpu_percent"),
            ([{"endpoint": second, "free_slots": -1}], "endpoints[0].free_slots"),
            ([], "endpoints"),
            ([{"endpoint": second, "free_slots": 0}, {"endpoint": "not a host!", "free_slots": 9}],
             "endpoints[1].endpoint"),
            ([{"endpoint": second, "free_slots": 0}, {"endpoint": first, "ram_total_mb": 1000, "ram_free_mb": 2000}],
             "endpoints[1].ram_free_mb"),
        ]
        for endpoints, field in bad_reports:
            await wire.send({"type": "resource_report", "endpoints": endpoints})
            error = await wire.recv()
            assert (error["type"], error["error"], error["message_type"]) == ("error", "validation_failed",
                                                                               "resource_report"), error
            assert error["errors"][0]["field"] == field, error
            assert wire.hub.registry.snapshot().resources == before  # not even the entries before the bad one
        await wire.complete(*running[:2])
        _, _, endpoint = await wire.assigned_endpoint()
        assert endpoint == first  # the good report still stands: first has room, second reported nothing
    finally:
        await wire.close()


async def test_reports_for_unknown_endpoints_are_skipped_and_explicit_routing_ignores_reports(tmp_path: Path) -> None:
    hub = agentcom.Hub(db_path=str(tmp_path / "hub.db"), port=0, host="127.0.0.1")
    await hub.start()
    wire = Wire(hub, await websocket_connect(hub.ws_url))
    try:
        report = {"type": "resource_report", "endpoints": [{"endpoint": "elsewhere:11434", "free_slots": 1}]}
        await wire.send(report)
        assert (await wire.recv())["error"] == "not_identified"
        await wire.send({"type": "identify", "agent_id": "a", "token": hub.create_agent_token("a"),
                         "protocol_version": 1})
        assert (await wire.recv())["type"] == "identified"
        await wire.send(report)
        assert (await wire.answer_to_ping())["type"] == "pong"
    finally:
        await wire.close()


class _HeldRunner:
    """Runs each task until the test releases it, so what is in flight stays put while the hub looks."""

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.started: list[str] = []

    async def execute(self, task: Any, on_output: Any) -> Any:
        from types import SimpleNamespace

        from agentcom.protocol import messages as m

        self.started.append(task.task_id)
        await self.release.wait()
        return SimpleNamespace(error=None, retryable=False, result=m.ExecutionResult(
            status="success", output="ok", model_used="llama3.2:latest", tokens_in=1, tokens_out=1,
            estimated_cost_usd=0.0, equivalent_claude_cost_usd=None, execution_ms=1, price_table="test"))


async def _until(probe: Any, what: str) -> Any:
    for _ in range(int(WAIT_S / 0.02)):
        value = probe()
        if value:
            return value
        await asyncio.sleep(0.02)
    raise AssertionError(f"never happened: {what}")


async def test_the_sidecar_reports_its_endpoint_on_connect_and_when_work_starts(tmp_path: Path, llm_server) -> None:
    from agentcom.sidecar.runtime import Sidecar

    server = llm_server("healthy", models=["llama3.2:latest"], loaded=["llama3.2:latest"])
    hub = agentcom.Hub(db_path=str(tmp_path / "hub.db"), port=0, host="127.0.0.1", routing="model",
                       fallback_wait_ms=60_000, health_interval_ms=3_600_000)
    await hub.start()
    runner = _HeldRunner()
    sidecar = Sidecar(hub.url, "box", hub.create_agent_token("box"), ollama_url=server.url, state_dir=tmp_path / "sc",
                      concurrency=3, runner=runner, resource_interval_s=3_600)
    serving = asyncio.create_task(sidecar.run())
    http = AsyncHTTPClient(force_instance=True)
    try:
        resources = hub.registry.snapshot
        report = await _until(lambda: resources().resources.get(server.address), "a report on connect")
        assert (report.free_slots, report.in_flight, report.loaded_models) == (3, 0, ("llama3.2:latest",))
        assert report.ram_total_mb and report.ram_free_mb is not None and report.ram_free_mb <= report.ram_total_mb
        await hub.registry.check_all()  # the auto-registered endpoint is healthy: standard work goes there
        await http.fetch(hub.url + "/agentcom/api/tasks", method="POST", body=json.dumps(STANDARD),
                         headers={"Authorization": f"Bearer {hub.admin_token}"})
        await _until(lambda: runner.started, "the task started")
        report = await _until(lambda: (r := resources().resources.get(server.address)) and r.in_flight == 1 and r,
                              "a report of the running task")
        assert report.free_slots == 2
    finally:
        runner.release.set()
        sidecar.stop()
        await asyncio.wait_for(serving, WAIT_S)
        http.close()
        await hub.stop()


def test_a_remote_sidecars_loopback_ollama_url_is_registered_at_its_address(tmp_path: Path) -> None:
    """The hub's session for a socket from 10.1.2.3 (as the handler builds it) registers that machine's Ollama."""
    from agentcom.protocol import codec
    from agentcom.protocol import messages as m

    hub = agentcom.Hub(db_path=str(tmp_path / "hub.db"), routing="model")
    try:
        frames: list[Any] = []
        for agent_id, address in (("remote", "10.1.2.3"), ("local", "127.0.0.1")):
            session = hub.new_sidecar_session(frames.append, lambda code, reason: None, address=address)
            session.on_text(codec.encode(m.Identify(agent_id=agent_id, token=hub.create_agent_token(agent_id),
                                                    protocol_version=1, ollama_url="http://localhost:11434")))
        assert [type(f).__name__ for f in frames] == ["Identified", "Identified"]
        owners = {e["endpoint_id"]: e["agent_id"] for e in hub.endpoints_view()}
        assert owners == {"10.1.2.3:11434": "remote", "127.0.0.1:11434": "local"}
    finally:
        asyncio.run(hub.close())


def test_a_remote_sidecars_two_names_for_its_endpoint_are_merged_and_bad_reports_never_close(tmp_path: Path) -> None:
    """A sidecar at 10.0.0.5 with ``ollama_url`` http://localhost:11434 names its endpoint both ways (the
    URL, and the address tasks were routed to): one endpoint, its tasks in flight added up. Reports the
    hub refuses are answered but are no abuse: the socket stays open and the address is not refused."""
    from agentcom.protocol import codec
    from agentcom.protocol import messages as m

    hub = agentcom.Hub(db_path=str(tmp_path / "hub.db"), routing="model", bad_frame_limit=3)
    try:
        frames: list[Any] = []
        closed: list[tuple[int, str]] = []
        session = hub.new_sidecar_session(frames.append, lambda code, reason: closed.append((code, reason)),
                                          address="10.0.0.5")
        session.on_text(codec.encode(m.Identify(agent_id="a1", token=hub.create_agent_token("a1"), protocol_version=1,
                                                ollama_url="http://localhost:11434")))
        session.on_text(json.dumps({"type": "resource_report", "endpoints": [
            {"endpoint": "http://localhost:11434", "free_slots": 1, "in_flight": 1, "cpu_percent": 40.0},
            {"endpoint": "10.0.0.5:11434", "free_slots": 1, "in_flight": 2}]}))
        assert [type(f).__name__ for f in frames] == ["Identified"]
        report = hub.registry.snapshot().resources["10.0.0.5:11434"]
        assert (report.free_slots, report.in_flight, report.cpu_percent) == (1, 3, 40.0)
        bad = json.dumps({"type": "resource_report", "endpoints": [
            {"endpoint": "10.0.0.5:11434", "ram_total_mb": 1000, "ram_free_mb": 2000}]})
        for _ in range(5):  # over bad_frame_limit
            session.on_text(bad)
        assert [getattr(f, "error", None) for f in frames[1:]] == ["validation_failed"] * 5
        assert closed == [] and not session.closed and hub.guard.refused_for("10.0.0.5")[0] == 0
        assert hub.registry.snapshot().resources["10.0.0.5:11434"] == report
    finally:
        asyncio.run(hub.close())


async def test_reports_count_only_where_the_sidecar_works_and_add_up_across_sidecars(tmp_path: Path, llm_server) -> None:
    """Two sidecars run a task each on one endpoint: their free slots add up whatever order they report
    in (one busy sidecar does not make the endpoint look full), and a third sidecar with no task there
    and no claim on it cannot file figures for it."""
    server = llm_server("healthy", models=["llama3.2:latest"], loaded=[])
    hub = agentcom.Hub(db_path=str(tmp_path / "hub.db"), port=0, host="127.0.0.1", routing="model",
                       fallback_wait_ms=60_000, health_interval_ms=3_600_000)
    await hub.start()
    wires: dict[str, Wire] = {}
    try:
        for agent_id in ("a", "b"):
            wires[agent_id] = wire = Wire(hub, await websocket_connect(hub.ws_url))
            await wire.send({"type": "identify", "agent_id": agent_id, "token": hub.create_agent_token(agent_id),
                             "protocol_version": 1, "concurrency": 4})
            assert (await wire.recv())["type"] == "identified"
        endpoint = (await wires["a"].api("POST", "/agentcom/api/endpoints", {"host": server.url}))["endpoint_id"]
        for _ in range(2):
            await wires["a"].api("POST", "/agentcom/api/tasks", STANDARD)
        for agent_id in ("a", "b"):
            frame = await wires[agent_id].recv()
            assert (frame["type"], frame["routing_decision"]["selected_endpoint"]) == ("task_assign", endpoint)
        await wires["b"].send({"type": "resource_report", "endpoints": [{"endpoint": endpoint, "free_slots": 3,
                                                                          "in_flight": 1}]})
        assert (await wires["b"].answer_to_ping())["type"] == "pong"
        await wires["a"].send({"type": "resource_report", "endpoints": [{"endpoint": endpoint, "free_slots": 0,
                                                                          "in_flight": 1, "cpu_percent": 50.0}]})
        assert (await wires["a"].answer_to_ping())["type"] == "pong"
        report = hub.registry.snapshot().resources[endpoint]
        assert (report.free_slots, report.in_flight, report.cpu_percent) == (3, 2, 50.0)
        wires["c"] = wire = Wire(hub, await websocket_connect(hub.ws_url))  # c has no task there
        await wire.send({"type": "identify", "agent_id": "c", "token": hub.create_agent_token("c"),
                         "protocol_version": 1})
        assert (await wire.recv())["type"] == "identified"
        await wire.send({"type": "resource_report", "endpoints": [{"endpoint": endpoint, "free_slots": 0,
                                                                   "in_flight": 9, "cpu_percent": 100.0}]})
        assert (await wire.answer_to_ping())["type"] == "pong"
        assert hub.registry.snapshot().resources[endpoint] == report  # c speaks for nothing there
    finally:
        for wire in wires.values():
            wire.ws.close()
            wire.http.close()
        await hub.stop()
