"""EndpointRegistry against real local servers: health rules, timer, callback, persistence."""

from __future__ import annotations

import asyncio
from typing import Any

import anyio
import pytest

from agentcom.errors import ValidationFailed
from agentcom.routing import EndpointChange, EndpointRegistry
from agentcom.routing.endpoint_store import load_endpoints

pytestmark = [pytest.mark.anyio, pytest.mark.usefixtures("anyio_backend")]  # one backend (see conftest)

FAST = {"interval_ms": 50, "timeout_ms": 3_000}  # generous: success must not depend on machine load


def make(changes: list[EndpointChange] | None = None, **kwargs: Any) -> EndpointRegistry:
    options = {**FAST, **kwargs}
    if changes is not None:
        options["on_change"] = changes.append
    return EndpointRegistry(**options)


async def test_healthy_ollama_lists_models_and_loaded_models(llm_server, changes, db) -> None:
    server = llm_server("healthy", models=["llama3.2:latest", "qwen2.5-coder:7b"], loaded=["qwen2.5-coder:7b"])
    registry = make(changes, conn=db)
    registry.register(server.address, name="box")
    view = await registry.check(server.address)
    assert view is not None and view.status == "healthy"
    assert view.models == ("llama3.2:latest", "qwen2.5-coder:7b")
    assert view.loaded_models == ("qwen2.5-coder:7b",)
    assert {"/api/tags", "/api/ps"} <= set(server.hits)
    assert [c.event for c in changes] == ["endpoint_registered", "endpoint_changed"]
    assert changes[1].previous_status == "unknown" and changes[1].endpoint.status == "healthy"
    stored = load_endpoints(db)
    assert [(e.endpoint_id, e.status, e.models, e.name) for e in stored] == [
        (server.address, "healthy", ("llama3.2:latest", "qwen2.5-coder:7b"), "box")
    ]


async def test_unhealthy_after_two_failures_and_healthy_after_one_success(llm_server, changes) -> None:
    server = llm_server("healthy")
    registry = make(changes)
    registry.register(server.address)
    assert (await registry.check(server.address)).status == "healthy"
    server.mode = "failing"
    first = await registry.check(server.address)
    assert first.status == "healthy" and first.consecutive_failures == 1 and "500" in first.last_error
    second = await registry.check(server.address)
    assert second.status == "unhealthy" and second.consecutive_failures == 2
    server.mode = "healthy"
    back = await registry.check(server.address)
    assert back.status == "healthy" and back.consecutive_failures == 0 and back.last_error is None
    statuses = [(c.previous_status, c.endpoint.status) for c in changes if c.event == "endpoint_changed"]
    assert ("healthy", "unhealthy") in statuses and statuses[-1] == ("unhealthy", "healthy")


async def test_new_endpoint_that_fails_stays_unknown_then_unhealthy(llm_server) -> None:
    server = llm_server("failing")
    registry = make()
    registry.register(server.address)
    assert (await registry.check(server.address)).status == "unknown"
    assert (await registry.check(server.address)).status == "unhealthy"


async def test_slow_endpoint_times_out_as_a_failure(llm_server) -> None:
    server = llm_server("slow")
    registry = make(timeout_ms=200)
    registry.register(server.address)
    view = await registry.check(server.address)
    assert view.consecutive_failures == 1
    assert "200 ms" in view.last_error or "timed out" in view.last_error
    server.release.set()


async def test_garbage_body_is_a_failure_not_a_crash(llm_server) -> None:
    for mode in ("garbage", "wrong_shape"):  # a loop, not parametrize: see conftest on test runners
        server = llm_server(mode)
        registry = make()
        registry.register(server.address)
        await registry.check(server.address)
        view = await registry.check(server.address)
        assert view.status == "unhealthy", mode
        assert "unexpected response body" in view.last_error, mode


async def test_refused_connection_is_a_failure(closed_port) -> None:
    registry = make()
    endpoint = registry.register(f"127.0.0.1:{closed_port}")
    view = await registry.check(endpoint.endpoint_id)
    assert view.consecutive_failures == 1 and view.last_error


async def test_old_ollama_without_api_ps_is_still_healthy(llm_server) -> None:
    server = llm_server("no_ps", loaded=["llama3.2:latest"])
    registry = make()
    registry.register(server.address)
    view = await registry.check(server.address)
    assert view.status == "healthy" and view.loaded_models == ()


async def test_openai_compatible_endpoint_health_from_v1_models(llm_server) -> None:
    server = llm_server("healthy", models=["smollm2-135m-instruct"])
    registry = make()
    registry.register(server.url, kind="openai")
    view = await registry.check(server.address)
    assert view.kind == "openai" and view.status == "healthy"
    assert view.models == ("smollm2-135m-instruct",)
    assert "/v1/models" in server.hits


async def test_openai_compatible_endpoint_failures(llm_server) -> None:
    for mode in ("failing", "garbage", "wrong_shape", "slow"):
        server = llm_server(mode)
        registry = make(timeout_ms=200)
        registry.register(server.address, kind="openai")
        await registry.check(server.address)
        view = await registry.check(server.address)
        assert view.status == "unhealthy" and view.last_error, mode


async def test_check_all_runs_endpoints_concurrently(llm_server) -> None:
    slow = [llm_server("slow") for _ in range(3)]
    good = llm_server("healthy")
    registry = make()
    for server in (*slow, good):
        registry.register(server.address)
    round_ = asyncio.ensure_future(registry.check_all())
    while not all(s.hits for s in slow):  # checked one after the other, the 2nd would wait for the 1st
        await asyncio.sleep(0.01)
    assert all(registry.get(s.address).consecutive_failures == 0 for s in slow)  # all three still pending
    for server in slow:
        server.release.set()  # answer (with an empty body) instead of waiting for the timeout
    await round_
    views = {e.endpoint_id: e for e in registry.endpoints()}
    assert views[good.address].status == "healthy"
    assert all(views[s.address].consecutive_failures == 1 for s in slow)


async def test_reregistering_keeps_health(llm_server, changes) -> None:
    server = llm_server("healthy")
    registry = make(changes)
    registry.register(server.address)
    await registry.check(server.address)
    again = registry.register_sidecar("agent-1", server.url)
    assert again.status == "healthy" and again.models
    assert again.source == "manual" and again.agent_id == "agent-1"  # manual stays manual
    assert registry.register(server.address) is registry.get(server.address)
    assert sum(c.event == "endpoint_registered" for c in changes) == 2  # no event when nothing changed


async def test_timer_checks_new_and_known_endpoints_until_stopped(llm_server, changes) -> None:
    first = llm_server("healthy")
    registry = make(changes)
    registry.register(first.address)
    registry.start()
    registry.start()  # idempotent
    try:
        with anyio.fail_after(5):
            while registry.get(first.address).status != "healthy":
                await asyncio.sleep(0.01)
            second = llm_server("healthy")
            registry.register(second.address)  # probed at once, not after an interval
            while registry.get(second.address).status != "healthy":
                await asyncio.sleep(0.01)
            first.mode = "failing"
            while registry.get(first.address).status != "unhealthy":
                await asyncio.sleep(0.01)
    finally:
        await registry.stop()
    assert not registry.running
    hits = len(first.hits)
    await asyncio.sleep(0.2)
    assert len(first.hits) == hits  # stopped means stopped
    await registry.stop()  # twice is fine


async def test_stop_cancels_probes_in_flight(llm_server) -> None:
    server = llm_server("slow")
    registry = make(timeout_ms=30_000, interval_ms=30_000)
    registry.register(server.address)
    registry.start()
    with anyio.fail_after(5):
        while not server.hits:
            await asyncio.sleep(0.01)
        await registry.stop()


async def test_callback_errors_do_not_break_the_registry(llm_server) -> None:
    def broken(change: EndpointChange) -> None:
        raise RuntimeError("subscriber bug")

    server = llm_server("healthy")
    registry = make(on_change=broken)
    registry.register(server.address)
    assert (await registry.check(server.address)).status == "healthy"


async def test_unregister_during_a_check_drops_the_result(llm_server, changes, db) -> None:
    server = llm_server("slow")
    registry = make(changes, conn=db)
    registry.register(server.address)
    pending = asyncio.ensure_future(registry.check(server.address))
    while not server.hits:
        await asyncio.sleep(0.01)
    assert registry.unregister(server.address)
    server.release.set()
    assert await pending is None
    assert registry.get(server.address) is None and load_endpoints(db) == []
    assert changes[-1].event == "endpoint_removed"
    assert not registry.unregister(server.address)


async def test_load_restores_endpoints_with_unknown_health(llm_server, db) -> None:
    server = llm_server("healthy")
    first = make(conn=db)
    first.register(server.address, name="gpu")
    await first.check(server.address)
    second = make(conn=db)
    assert second.load() == 1
    view = second.get(server.address)
    assert view.status == "unknown" and view.name == "gpu" and view.models  # models kept as a hint
    assert (await second.check(server.address)).status == "healthy"


def test_bad_addresses_are_validation_errors() -> None:
    registry = EndpointRegistry()
    for bad, field in [("", "host"), ("ftp://box", "host"), ("box:99999", "host"), ("http://u:pw@box", "host"),
                       ("two words", "host"), ("box/api", "host")]:
        with pytest.raises(ValidationFailed) as info:
            registry.register(bad)
        assert info.value.errors[0]["field"] == field, bad
    with pytest.raises(ValidationFailed) as info:
        registry.register("box", port=0)
    assert info.value.errors == [{"field": "port", "error": "must be an integer between 1 and 65535, got 0"}]
    with pytest.raises(ValidationFailed) as info:
        registry.register("box", kind="vllm")
    assert info.value.errors[0]["field"] == "kind"
    with pytest.raises(ValidationFailed) as info:
        registry.register_sidecar("agent-1", "not a url")
    assert info.value.errors[0]["field"] == "ollama_url"
    assert registry.endpoints() == []


def test_sidecar_loopback_url_is_registered_under_its_peer_address() -> None:
    registry = EndpointRegistry()
    view = registry.register_sidecar("agent-7", "http://localhost:11434", peer_host="10.0.0.7")
    assert view.endpoint_id == "10.0.0.7:11434" and view.source == "auto" and view.agent_id == "agent-7"
    local = registry.register_sidecar("agent-8", "http://localhost:11434", peer_host="127.0.0.1")
    assert local.endpoint_id == "127.0.0.1:11434"
    remote = registry.register_sidecar("agent-9", "http://gpu-box:11500", peer_host="10.0.0.9")
    assert remote.endpoint_id == "gpu-box:11500"


def test_resources_are_keyed_by_endpoint_and_expire() -> None:
    from agentcom.routing import ResourceReport

    now = [1_000_000]
    registry = EndpointRegistry(clock=lambda: now[0], resource_ttl_ms=90_000)
    view = registry.register_sidecar("agent-1", "http://10.0.0.5:11434")
    registry.report_agent_resources("agent-1", ResourceReport(reported_at=now[0], cpu_percent=10))
    registry.report_resources("nobody:1", ResourceReport(reported_at=now[0]))
    assert set(registry.snapshot().resources) == {view.endpoint_id}
    now[0] += 90_001
    assert registry.snapshot().resources == {}
