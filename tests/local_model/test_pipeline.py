"""The local model tier end to end: a real hub routes a task, a real sidecar runs it on SmolLM2.

Two ways to reach the model: ``python -m llama_cpp.server`` through the ``openai`` executor
(the endpoint registered through the endpoints API under ``routing="model"``, or given to
the sidecar with ``--openai-url`` under the explicit router), and the embedded model
(``--local-model auto``, target ``local``). Each run must stream token events to the hub,
record exactly one executions row whose token counts are what the model itself reports,
priced at 0 with a Claude-equivalent above 0; a cancel must stop generation.

Wall times of cancels are printed, never asserted (the machine is shared).
"""

from __future__ import annotations

import argparse
import asyncio
import re
import threading
import time
from pathlib import Path
from typing import Any

import openai
import pytest

from agentcom.executors.dispatch import Dispatcher
from agentcom.executors.local_llama import LocalLlamaExecutor
from agentcom.pricing import PriceTable
from agentcom.sidecar import Sidecar
from agentcom.sidecar.cli import UsageError, add_arguments, build_sidecar
from sidecar.harness import Env, e2e, eventually

from .conftest import LlamaServer

pytestmark = pytest.mark.usefixtures("anyio_backend")

PROMPT = "Explain what a binary search does."
LONG_PROMPT = "Count from 1 to 1000, one number per line."  # greedy SmolLM2 goes on for hundreds of tokens
MAX_TOKENS = 32
SMOLLM2 = "smollm2-135m-instruct (local)"
# A model run keeps a core busy: a lease this long survives a sidecar starved by other work.
LEASE: dict[str, Any] = {"lease_ms": 30_000}
MODEL_ROUTING: dict[str, Any] = {"routing": "model", "health_interval_ms": 60_000, "fallback_wait_ms": 60_000, **LEASE}


def generation(max_tokens: int = MAX_TOKENS) -> dict[str, Any]:
    return {"max_tokens": max_tokens, "temperature": 0}


def tokens_of(events: list[dict[str, Any]], task_id: str) -> list[dict[str, Any]]:
    return [e for e in events if e["task_id"] == task_id and e["event_type"] == "token"]


async def server_usage(server: LlamaServer, prompt: str, max_tokens: int = MAX_TOKENS) -> tuple[str, int, int]:
    """What llama.cpp's server answers and reports as usage for the same request, not streamed."""
    async with openai.AsyncOpenAI(base_url=f"http://{server.endpoint}/v1", api_key="x") as client:
        answer = await client.chat.completions.create(
            model="smollm2", messages=[{"role": "user", "content": prompt}], max_tokens=max_tokens, temperature=0)
    assert answer.usage is not None
    return answer.choices[0].message.content or "", answer.usage.prompt_tokens, answer.usage.completion_tokens


async def run_to_completion(env: Env, prompt: str = PROMPT) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Submit a standard task; its final state and the token events the hub published for it."""
    events = env.record_events()
    task_id = await env.api.submit(prompt, complexity_tier="standard", metadata=generation())
    task = await eventually(lambda: env.api.status_is(task_id, "completed", "failed", "dead_letter"),
                            f"{task_id} to finish", timeout=120)
    assert task["status"] == "completed", task
    return task, tokens_of(events, task_id)


def check_run(task: dict[str, Any], tokens: list[dict[str, Any]], rows: list[dict[str, Any]],
              expected: tuple[str, int, int]) -> dict[str, Any]:
    """Streamed tokens, output and the one executions row agree with what the model reports."""
    text, prompt_tokens, completion_tokens = expected
    assert len(tokens) > 3, "tokens are streamed as they come, not only in the result"
    assert "".join(e["text"] for e in tokens) == task["result"]["output"] == text
    assert text.strip()
    counts = [e["tokens_so_far"] for e in tokens]
    assert counts == sorted(counts) and counts[-1] <= completion_tokens
    [row] = rows
    assert row["status"] == "success"
    assert (row["tokens_in"], row["tokens_out"]) == (prompt_tokens, completion_tokens)
    assert row["estimated_cost_usd"] == 0
    assert row["equivalent_claude_cost_usd"] > 0
    return row


# --------------------------------------------------------------------------- llama.cpp's server, openai executor


async def register(env: Env, server: LlamaServer) -> dict[str, Any]:
    host, port = server.endpoint.split(":")
    await env.api.call("POST", "/agentcom/api/endpoints", {"host": host, "port": int(port), "kind": "openai"})

    async def healthy() -> dict[str, Any] | None:
        views = await env.api.call("GET", "/agentcom/api/endpoints")
        return next((v for v in views if v["endpoint_id"] == server.endpoint and v["status"] == "healthy"), None)

    return await eventually(healthy, "the llama.cpp endpoint to be healthy")


@pytest.mark.anyio
async def test_model_routing_sends_a_standard_task_to_the_registered_llama_cpp_server(
    tmp_path: Path, llama_server: LlamaServer,
) -> None:
    async with e2e(tmp_path, tier_targets={"standard": "openai"}, **MODEL_ROUTING) as env:
        endpoint = await register(env, llama_server)
        await env.sidecar("agent-1")
        task, tokens = await run_to_completion(env)

        decision = task["routing_decision"]
        assert (decision["target_type"], decision["selected_endpoint"]) == ("openai", llama_server.endpoint)
        assert decision["selected_model"] == endpoint["models"][0] and decision["selected_model"].endswith(".gguf")
        row = check_run(task, tokens, await env.api.executions(task["task_id"]),
                        await server_usage(llama_server, PROMPT))
        assert row["model_used"] == decision["selected_model"]


@pytest.mark.anyio
async def test_explicit_routing_reaches_the_server_the_sidecar_was_given(
    tmp_path: Path, llama_server: LlamaServer,
) -> None:
    async with e2e(tmp_path, tier_targets={"standard": "openai"}, routing="explicit", **LEASE) as env:
        await env.sidecar("agent-1", "--openai-url", f"http://{llama_server.endpoint}")
        task, tokens = await run_to_completion(env)

        assert task["routing_decision"]["selected_endpoint"] is None
        row = check_run(task, tokens, await env.api.executions(task["task_id"]),
                        await server_usage(llama_server, PROMPT))
        assert row["model_used"].endswith(".gguf"), "the server's own model, asked of it"


async def cancel_after_tokens(env: Env, task_id: str, events: list[dict[str, Any]]) -> tuple[float, int]:
    """Wait for three streamed tokens, cancel through the API; (when the answer came, events seen by then)."""
    await eventually(lambda: len(tokens_of(events, task_id)) >= 3, "tokens to stream", timeout=120)
    answer = await env.api.cancel(task_id)
    acked_at, seen = time.perf_counter(), len(events)
    assert answer["status"] == "cancelled"
    return acked_at, seen


async def after_the_cancel(env: Env, task_id: str, events: list[dict[str, Any]], seen: int) -> None:
    """A next task through the same sidecar, then: nothing of the cancelled one arrived late."""
    follow_up = await env.api.submit("Say hi.", complexity_tier="standard", metadata=generation(4))
    await eventually(lambda: env.api.status_is(follow_up, "completed"), "the next task to complete", timeout=120)
    assert not [e for e in events[seen:] if e["task_id"] == task_id], "events of the cancelled run after its ack"
    assert (await env.api.task(task_id))["status"] == "cancelled"
    assert await env.api.executions(task_id) == []


@pytest.mark.anyio
async def test_cancel_hangs_up_on_llama_cpp_server_and_stops_the_stream(
    tmp_path: Path, llama_server: LlamaServer,
) -> None:
    async with e2e(tmp_path, tier_targets={"standard": "openai"}, **MODEL_ROUTING) as env:
        await register(env, llama_server)
        await env.sidecar("agent-1")
        events = env.record_events()
        log_before = len(llama_server.log())
        task_id = await env.api.submit(LONG_PROMPT, complexity_tier="standard", metadata=generation(1500))
        acked_at, seen = await cancel_after_tokens(env, task_id, events)

        # llama_cpp.server stops its generator when it sees the client gone, and says so
        await eventually(lambda: "Disconnected from client" in llama_server.log()[log_before:],
                         "llama_cpp.server to see the client hang up", timeout=120)
        print(f"\ncancel -> llama_cpp.server stopped generating: {time.perf_counter() - acked_at:.3f} s")
        streamed = len(tokens_of(events, task_id))
        await after_the_cancel(env, task_id, events, seen)
        assert streamed < 1500


# --------------------------------------------------------------------------- the embedded model


@pytest.mark.anyio
@pytest.mark.parametrize("routing", ["explicit", "model"])
async def test_the_embedded_model_runs_a_routed_task_in_a_sidecar_process(
    tmp_path: Path, direct_llama: Any, routing: str,
) -> None:
    async with e2e(tmp_path, tier_targets={"standard": "local"}, **{**MODEL_ROUTING, "routing": routing}) as env:
        threads = ("--local-threads", "1") if routing == "explicit" else ()
        await env.sidecar("agent-1", "--local-model", "auto", *threads)
        task, tokens = await run_to_completion(env)

        assert task["routing_decision"]["target_type"] == "local"
        reference = direct_llama.create_chat_completion(messages=[{"role": "user", "content": PROMPT}],
                                                        max_tokens=MAX_TOKENS, temperature=0)
        expected = (reference["choices"][0]["message"]["content"], reference["usage"]["prompt_tokens"],
                    reference["usage"]["completion_tokens"])
        row = check_run(task, tokens, await env.api.executions(task["task_id"]), expected)
        assert row["model_used"] == SMOLLM2
        assert {e["model"] for e in tokens} == {SMOLLM2}
        agents = {a["agent_id"]: a for a in await env.api.call("GET", "/agentcom/api/agents")}
        assert SMOLLM2 in agents["agent-1"]["models"], "the sidecar announces the model it embeds"


@pytest.mark.anyio
async def test_cancel_stops_the_embedded_model_in_an_in_process_sidecar(
    tmp_path: Path, local_executor: LocalLlamaExecutor,
) -> None:
    """In process, so the model's own count of sampled tokens shows when generation stopped."""
    async with e2e(tmp_path, tier_targets={"standard": "local"}, **LEASE) as env:
        runner = Dispatcher(PriceTable.load(), workdir=tmp_path, executors={"local": local_executor})
        sidecar = Sidecar(env.hub.url, "agent-1", env.hub.create_agent_token("agent-1"), state_dir=tmp_path / "state",
                          workdir=tmp_path, runner=runner)
        serving = asyncio.create_task(sidecar.run())
        try:
            events = env.record_events()
            before = local_executor.generated_tokens
            task_id = await env.api.submit(LONG_PROMPT, complexity_tier="standard", metadata=generation(1500))
            acked_at, seen = await cancel_after_tokens(env, task_id, events)
            at_ack = local_executor.generated_tokens
            await eventually(lambda: not sidecar.running_tasks and not _llama_worker(task_id),
                             "the generation to stop", timeout=120)
            stopped_in = time.perf_counter() - acked_at
            after = local_executor.generated_tokens
            print(f"\ncancel -> embedded model stopped: {stopped_in:.3f} s, "
                  f"{after - at_ack} tokens sampled after the cancel was answered, {after - before} in all")
            await after_the_cancel(env, task_id, events, seen)
            assert after - before < 1500, "the model ran on to max_tokens"
            assert local_executor.generated_tokens - after <= 4 + 1, "only the 4-token follow-up ran since"
        finally:
            sidecar.stop()
            await serving


def _llama_worker(task_id: str) -> bool:
    return any(t.name == f"agentcom-llama-{task_id}" and t.is_alive() for t in threading.enumerate())


# --------------------------------------------------------------------------- the sidecar's flag


def sidecar_args(tmp_path: Path, *extra: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return parser.parse_args(["--hub", "http://127.0.0.1:1", "--agent-id", "a", "--token", "t",
                              "--state-dir", str(tmp_path), *extra])


@pytest.mark.parametrize(("extra", "message"), [
    (("--openai-url", "ftp://llm:21"), "--openai-url: endpoint must be 'host:port' or an http(s) URL"),
    (("--openai-url", "http://"), "--openai-url: endpoint must be 'host:port' or an http(s) URL"),
    (("--local-threads", "2"), "--local-threads needs --local-model"),
    (("--local-model", "auto", "--local-threads", "0"), "--local-threads must be a positive integer, got 0"),
])
def test_bad_local_tier_flags_are_usage_errors(extra: tuple[str, ...], message: str, tmp_path: Path) -> None:
    with pytest.raises(UsageError, match=re.escape(message)):
        build_sidecar(sidecar_args(tmp_path, *extra))
