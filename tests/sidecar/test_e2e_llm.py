"""The Ollama and Claude executors end to end: a hub, a real sidecar subprocess, the stand-in servers.

Each test starts one hub and one sidecar (``--concurrency 2``) wired to an Ollama stand-in and
an Anthropic stand-in, and plays its scenario on both backends at once, one task per backend
("lane"); each stand-in has its own fault queue, so the lanes do not disturb each other. The
sidecar talks to the stand-ins through the official ``ollama`` / ``anthropic`` clients; the
tests read what the hub recorded (HTTP API, pub/sub) and what each stand-in saw (requests,
open streams). Expected token counts come from replaying the sidecar's own recorded request
through the official client (the stand-ins answer deterministically); expected prices from
the shipped table's numbers, written out here.
"""

from __future__ import annotations

import asyncio
from contextlib import asynccontextmanager
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any, AsyncIterator, Awaitable, Callable

import anthropic
import ollama
import pytest

from agentcom.executors import RetryPolicy
from agentcom.pricing import PriceTable
from agentcom.standin import AnthropicStandin, OllamaStandin, RecordedRequest, Standin

from .harness import Env, SidecarProcess, e2e, eventually

pytestmark = pytest.mark.usefixtures("anyio_backend")

MILLION = Decimal(1_000_000)
FINAL = ("completed", "failed", "dead_letter", "cancelled")
UNPRICED_MODEL = "claude-unpriced-9"  # in no price table


@dataclass
class Lane:
    """One backend as the tests drive it: its tier, its stand-in, the price its runs are compared at."""

    name: str
    tier: str
    model: str
    generate_path: str
    equivalent_price: tuple[Decimal, Decimal]
    """USD per million input / output tokens that the Claude-equivalent cost is computed with."""
    standin: Standin
    env: Env

    async def submit(self, description: str, tier: str | None = None, **fields: Any) -> str:
        return await self.env.api.submit(description, complexity_tier=tier or self.tier, **fields)

    async def finished(self, task_id: str) -> dict[str, Any]:
        return await eventually(lambda: self.env.api.status_is(task_id, *FINAL), f"{self.name} task {task_id} to end")

    def generations(self) -> list[RecordedRequest]:
        """The generation requests this stand-in received (not health probes), in order."""
        return [r for r in self.standin.requests if r.path == self.generate_path]

    async def replay(self, body: dict[str, Any]) -> tuple[int, int, str]:
        """(tokens in, tokens out, text) of ``body`` asked again, unstreamed, through the official client."""
        if isinstance(self.standin, OllamaStandin):
            client = ollama.AsyncClient(host=self.standin.url)
            answer = await client.chat(model=body["model"], messages=body["messages"], options=body.get("options"),
                                       stream=False)
            return answer.prompt_eval_count or 0, answer.eval_count or 0, answer.message.content or ""
        claude = anthropic.AsyncAnthropic(base_url=self.standin.url, api_key="sk-test-standin", max_retries=0)
        try:
            message = await claude.messages.create(**{k: v for k, v in body.items() if k != "stream"})
        finally:
            await claude.close()
        text = "".join(block.text for block in message.content if block.type == "text")
        return message.usage.input_tokens, message.usage.output_tokens, text


@dataclass
class World:
    env: Env
    sidecar: SidecarProcess
    lanes: list[Lane]

    async def each_lane(self, scenario: Callable[[Lane], Awaitable[None]]) -> None:
        """Play ``scenario`` on every lane at once; a failure names its backend."""
        async def one(lane: Lane) -> None:
            try:
                await scenario(lane)
            except AssertionError as exc:
                raise AssertionError(f"[{lane.name}] {exc}") from exc

        await asyncio.gather(*(one(lane) for lane in self.lanes))


@asynccontextmanager
async def world(tmp_path: Path) -> AsyncIterator[World]:
    """Explicit routing: standard -> Ollama, complex -> Claude Haiku 4.5, trivial -> an unpriced Claude model."""
    targets = {"standard": "ollama:simulated-llama3.2", "complex": "claude:claude-haiku-4-5",
               "trivial": f"claude:{UNPRICED_MODEL}"}
    async with e2e(tmp_path, routing="explicit", tier_targets=targets) as env:
        ollama_standin, anthropic_standin = await env.ollama(), await env.anthropic()
        lanes = [
            # a local run is compared with the reference model, Sonnet 4.5: 3 / 15 per million
            Lane("ollama", "standard", "simulated-llama3.2", "/api/chat", (Decimal(3), Decimal(15)),
                 ollama_standin, env),
            # a simulated Claude run is compared with the model it simulates, Haiku 4.5: 1 / 5 per million
            Lane("claude", "complex", "claude-haiku-4-5", "/v1/messages", (Decimal(1), Decimal(5)),
                 anthropic_standin, env),
        ]
        sidecar = await env.sidecar("agent-1", "--concurrency", "2", "--ollama-url", ollama_standin.url,
                                    "--anthropic-base-url", anthropic_standin.url)
        yield World(env, sidecar, lanes)
        assert "Traceback" not in sidecar.output()


def of_task(events: list[dict[str, Any]], task_id: str, kind: str | None = None) -> list[dict[str, Any]]:
    return [e for e in events if e["task_id"] == task_id and (kind is None or e["event_type"] == kind)]


@pytest.mark.anyio
async def test_streamed_runs_record_exact_tokens_and_costs_and_an_unpriced_model_stays_null(tmp_path: Path) -> None:
    async with world(tmp_path) as w:
        api, events = w.env.api, w.env.record_events()

        async def streamed_run(lane: Lane) -> None:
            task_id = await lane.submit("Explain what a binary search does and when it beats a linear scan")
            task = await lane.finished(task_id)
            assert task["status"] == "completed", task["last_error"]
            [request] = lane.generations()
            assert request.body["stream"] is True and request.body["model"] == lane.model
            tokens_in, tokens_out, text = await lane.replay(request.body)
            assert tokens_in > 0 and tokens_out > 1

            streamed = of_task(events, task_id, "token")
            assert streamed and {e["agent_id"] for e in streamed} == {"agent-1"}
            assert "".join(e["text"] for e in streamed) == text == task["result"]["output"]
            counts = [e["tokens_so_far"] for e in streamed]
            assert None not in counts and counts == sorted(counts)
            if lane.name == "ollama":  # one chunk per token: the running count ends at the final eval_count
                assert counts[-1] == tokens_out

            [row] = await api.executions(task_id)
            assert (row["status"], row["target_type"]) == ("success", lane.name)
            assert row["model_used"] == "simulated-" + lane.model.removeprefix("simulated-")
            assert (row["tokens_in"], row["tokens_out"]) == (tokens_in, tokens_out)
            assert (row["cache_read_tokens"], row["cache_write_tokens"]) == (0, 0)
            assert row["estimated_cost_usd"] == 0  # a stand-in (simulated) run never costs money
            price_in, price_out = lane.equivalent_price
            expected = (price_in * tokens_in + price_out * tokens_out) / MILLION
            assert row["equivalent_claude_cost_usd"] == float(expected)
            assert row["price_table"] == PriceTable.load().version

        await w.each_lane(streamed_run)

        claude = w.lanes[1]
        assert isinstance(claude.standin, AnthropicStandin)
        claude.standin.model_prefix = ""  # answer as the real API does, under the bare id: nothing prices it
        task_id = await claude.submit("Refactor the billing module into separate services", tier="trivial")
        task = await claude.finished(task_id)
        assert task["status"] == "completed", task["last_error"]
        [row] = await api.executions(task_id)
        assert row["model_used"] == UNPRICED_MODEL and row["tokens_in"] > 0 and row["tokens_out"] > 0
        assert row["estimated_cost_usd"] is None  # unknown, never reported as free
        assert row["equivalent_claude_cost_usd"] is None  # an unknown Claude model has no honest estimate
        warnings = [e["text"] for e in of_task(events, task_id, "status") if e["text"].startswith("warning:")]
        assert len(warnings) == 1 and UNPRICED_MODEL in warnings[0] and "no price" in warnings[0]


@pytest.mark.anyio
async def test_backend_errors_are_retried_only_when_transient(tmp_path: Path) -> None:
    """429: retried inside the one execution; 400: failed at once; 5xx every time: dead letter."""
    per_attempt = RetryPolicy().attempts  # the executor's own tries inside one hub attempt
    async with world(tmp_path) as w:
        api, events = w.env.api, w.env.record_events()

        async def errors(lane: Lane) -> None:
            lane.standin.fail_next(1, 429)
            transient = await lane.submit("Suggest three unit tests for a date parser")
            task = await lane.finished(transient)
            assert task["status"] == "completed" and task["attempts"] == 1, task["last_error"]
            assert len(lane.generations()) == 2  # the 429, then the answer
            [row] = await api.executions(transient)
            assert row["status"] == "success" and row["tokens_out"] > 0
            assert any("retrying" in e["text"] for e in of_task(events, transient, "status"))

            lane.standin.fail_next(1, 400)
            rejected = await lane.submit("Write a docstring for a function that merges two sorted lists")
            task = await lane.finished(rejected)
            assert task["status"] == "failed" and task["attempts"] == 1  # not retried, not dead-lettered
            assert "400" in task["last_error"]
            assert len(lane.generations()) == 3  # asked once
            [row] = await api.executions(rejected)
            assert row["status"] == "failed" and "400" in row["error"]
            assert of_task(events, rejected, "error")

            lane.standin.fail_next(2 * per_attempt, 500)
            doomed = await lane.submit("Summarise the trade-offs of SQLite's WAL mode", max_attempts=2)
            task = await lane.finished(doomed)
            assert task["status"] == "dead_letter" and task["attempts"] == 2
            assert "500" in task["last_error"]
            assert len(lane.generations()) == 3 + 2 * per_attempt  # every fault consumed, nothing asked after
            rows = await api.executions(doomed)
            assert [r["status"] for r in rows] == ["failed", "failed"]
            assert len({r["generation"] for r in rows}) == 2  # one row per hub attempt

        await w.each_lane(errors)


@pytest.mark.anyio
async def test_cancel_mid_stream_closes_the_backend_stream(tmp_path: Path) -> None:
    async with world(tmp_path) as w:
        api, events = w.env.api, w.env.record_events()

        async def cancel(lane: Lane) -> None:
            lane.standin.hang_next(1, after_chunks=2)  # the stream stays open until the client drops it
            task_id = await lane.submit("Design a security review of the token store and its rotation")
            await eventually(lambda: of_task(events, task_id, "token"), f"{lane.name}: first tokens at the hub")
            assert lane.standin.active_streams == 1
            assert (await api.cancel(task_id))["status"] == "cancelled"
            seen = len(of_task(events, task_id))
            await eventually(lambda: lane.standin.active_streams == 0, f"{lane.name}: the stream to close",
                             timeout=15)

            after = await lane.submit("Explain what a binary search does")  # the sidecar is free again
            assert (await lane.finished(after))["status"] == "completed"
            assert len(lane.generations()) == 2  # the cancelled request was not retried
            assert len(of_task(events, task_id)) == seen  # nothing more was published for it
            assert (await api.task(task_id))["status"] == "cancelled"
            assert await api.executions(task_id) == []

        await w.each_lane(cancel)
