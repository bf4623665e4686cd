"""Claude executor through the official anthropic client against the stand-in, over loopback HTTP."""

from __future__ import annotations

import asyncio
import socket
from decimal import Decimal
from typing import Any

import pytest

from agentcom.executors import ClaudeExecutor, Dispatcher, Output, RetryPolicy
from agentcom.executors._prompt import task_prompt
from agentcom.pricing import PriceTable
from agentcom.standin import AnthropicStandin, reply_for

pytestmark = [pytest.mark.anyio, pytest.mark.usefixtures("anyio_backend")]  # one backend (see conftest)

MODEL = "claude-sonnet-4-5"
LONG_SYSTEM = "You are a meticulous coding agent; keep changes small and explain them. " * 30


def dispatcher(prices: PriceTable, workdir: Any, standin: AnthropicStandin, retry: RetryPolicy,
               **options: Any) -> Dispatcher:
    d = Dispatcher(prices, workdir=workdir)
    d.register(ClaudeExecutor(api_key="test-key", base_url=standin.url, retry=retry, **options))
    return d


def api_key_sent(headers: dict[str, str]) -> str | None:
    """The key as the SDK sent it: ``x-api-key`` or, in newer releases, a bearer token."""
    return headers.get("x-api-key") or headers.get("authorization", "").removeprefix("Bearer ") or None


def claude_task(make_task: Any, **metadata: Any) -> Any:
    return make_task("claude", model=MODEL, metadata=metadata)


async def test_streams_text_and_reports_usage(make_task: Any, recorder: Any, prices: PriceTable, workdir: Any,
                                              fast_retry: RetryPolicy, anthropic_standin: AnthropicStandin) -> None:
    task = claude_task(make_task)
    finished = await dispatcher(prices, workdir, anthropic_standin, fast_retry).execute(task, recorder)
    result = finished.result
    tokens = recorder.kind("token")
    assert len(tokens) > 1
    assert "".join(o.text for o in tokens) == result.output == reply_for(task_prompt(task))
    counts = [o.tokens_so_far for o in tokens]
    assert counts == sorted(counts) and counts[0] >= 1
    assert finished.ok and result.status == "success" and result.attempts == 1
    assert result.model_used == "simulated-claude-sonnet-4-5"
    assert result.tokens_in > 0 and result.tokens_out > 0
    assert result.cache_read_tokens == result.cache_write_tokens == 0
    assert result.estimated_cost_usd == 0  # simulated: no money spent
    assert result.equivalent_claude_cost_usd == float(Decimal(3 * result.tokens_in + 15 * result.tokens_out) / 10**6)
    request = anthropic_standin.requests[-1]
    assert api_key_sent(request.headers) == "test-key"
    assert request.body["model"] == MODEL and request.body["stream"] is True
    assert request.body["max_tokens"] == 4096


async def test_prompt_caching_tokens(make_task: Any, recorder: Any, prices: PriceTable, workdir: Any,
                                     fast_retry: RetryPolicy, anthropic_standin: AnthropicStandin) -> None:
    d = dispatcher(prices, workdir, anthropic_standin, fast_retry)
    task = claude_task(make_task, cache_prompt=True, system=LONG_SYSTEM)
    first = (await d.execute(task, recorder)).result
    second = (await d.execute(task, recorder)).result
    assert first.cache_write_tokens > 0 and first.cache_read_tokens == 0
    assert second.cache_read_tokens == first.cache_write_tokens and second.cache_write_tokens == 0
    assert anthropic_standin.requests[-1].body["system"][0]["cache_control"] == {"type": "ephemeral"}
    reads = Decimal(second.tokens_in * 3 + second.tokens_out * 15) + Decimal("0.30") * second.cache_read_tokens
    assert second.equivalent_claude_cost_usd == float(reads / 10**6)


@pytest.mark.parametrize("status", [429, 500, 529])
async def test_transient_errors_are_retried(make_task: Any, recorder: Any, prices: PriceTable, workdir: Any,
                                           fast_retry: RetryPolicy, anthropic_standin: AnthropicStandin,
                                           status: int) -> None:
    anthropic_standin.fail_next(2, status)
    finished = await dispatcher(prices, workdir, anthropic_standin, fast_retry).execute(claude_task(make_task), recorder)
    assert finished.ok
    assert len(anthropic_standin.requests) == 3
    assert finished.result.attempts == 3  # RESULT says how many tries the answer took
    retries = recorder.texts("status")
    assert len(retries) == 2 and all(f"Anthropic API {status}" in t for t in retries)


async def test_overloaded_during_the_stream_is_retried(make_task: Any, recorder: Any, prices: PriceTable,
                                                       workdir: Any, fast_retry: RetryPolicy,
                                                       anthropic_standin: AnthropicStandin) -> None:
    anthropic_standin.fail_next(1, 529, midstream=True, after_chunks=2)
    task = claude_task(make_task)
    finished = await dispatcher(prices, workdir, anthropic_standin, fast_retry).execute(task, recorder)
    assert finished.ok and finished.result.output == reply_for(task_prompt(task))
    assert "overloaded_error during the stream" in recorder.texts("status")[0]


async def test_retries_run_out(make_task: Any, recorder: Any, prices: PriceTable, workdir: Any,
                               fast_retry: RetryPolicy, anthropic_standin: AnthropicStandin) -> None:
    anthropic_standin.fail_next(3, 529)
    finished = await dispatcher(prices, workdir, anthropic_standin, fast_retry).execute(claude_task(make_task), recorder)
    assert finished.error is not None
    assert "529 overloaded_error: Overloaded (after 3 attempts)" in finished.error
    assert finished.retryable is True and finished.result.status == "failed"
    assert finished.result.attempts == 3
    assert finished.result.tokens_in == 0 and finished.result.estimated_cost_usd == 0


@pytest.mark.parametrize("status", [400, 403])
async def test_client_errors_are_not_retried(make_task: Any, recorder: Any, prices: PriceTable, workdir: Any,
                                             fast_retry: RetryPolicy, anthropic_standin: AnthropicStandin,
                                             status: int) -> None:
    anthropic_standin.fail_next(1, status)
    finished = await dispatcher(prices, workdir, anthropic_standin, fast_retry).execute(claude_task(make_task), recorder)
    assert finished.error is not None and f"Anthropic API {status}" in finished.error
    assert finished.retryable is False
    assert len(anthropic_standin.requests) == 1 and recorder.kind("status") == []


async def test_unknown_model_is_not_retried(make_task: Any, recorder: Any, prices: PriceTable, workdir: Any,
                                            fast_retry: RetryPolicy, anthropic_standin: AnthropicStandin) -> None:
    task = make_task("claude", model="claude-nonexistent-9")
    anthropic_standin.fail_next(1, 404, message="model: claude-nonexistent-9")
    finished = await dispatcher(prices, workdir, anthropic_standin, fast_retry).execute(task, recorder)
    assert finished.error is not None and "404 not_found_error: model: claude-nonexistent-9" in finished.error
    assert not finished.retryable


async def test_missing_api_key_is_the_sidecars_problem_and_retryable(
        make_task: Any, recorder: Any, prices: PriceTable, workdir: Any, anthropic_standin: AnthropicStandin,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A sidecar without a key cannot run the task; one with a key can: refused up front, retryable if run."""
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    d = Dispatcher(prices, workdir=workdir, anthropic_base_url=anthropic_standin.url)
    task = claude_task(make_task)
    refusal = d.refusal(task)
    assert refusal is not None and "ANTHROPIC_API_KEY" in refusal
    finished = await d.execute(task, recorder)
    assert finished.error == refusal and finished.retryable
    assert anthropic_standin.requests == []
    monkeypatch.setenv("ANTHROPIC_API_KEY", "env-key")
    assert d.refusal(task) is None


async def test_api_key_from_environment(make_task: Any, recorder: Any, prices: PriceTable, workdir: Any,
                                        anthropic_standin: AnthropicStandin, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", "env-key")
    d = Dispatcher(prices, workdir=workdir, anthropic_base_url=anthropic_standin.url)
    assert (await d.execute(claude_task(make_task), recorder)).ok
    assert api_key_sent(anthropic_standin.requests[-1].headers) == "env-key"


async def test_no_model_is_a_clear_failure(make_task: Any, recorder: Any, prices: PriceTable, workdir: Any,
                                           fast_retry: RetryPolicy, anthropic_standin: AnthropicStandin) -> None:
    d = dispatcher(prices, workdir, anthropic_standin, fast_retry)
    finished = await d.execute(make_task("claude"), recorder)
    # the routing named no model and no sidecar has a default one: the same everywhere, so not retryable
    assert finished.error is not None and "no Claude model" in finished.error and not finished.retryable
    assert d.refusal(make_task("claude")) is None


async def test_connection_refused_is_retryable(make_task: Any, recorder: Any, prices: PriceTable, workdir: Any,
                                               fast_retry: RetryPolicy) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    d = Dispatcher(prices, workdir=workdir)
    d.register(ClaudeExecutor(api_key="k", base_url=f"http://127.0.0.1:{port}", retry=fast_retry))
    finished = await d.execute(claude_task(make_task), recorder)
    assert finished.error is not None and "cannot reach the Anthropic API" in finished.error
    assert finished.retryable is True and len(recorder.kind("status")) == 2


async def test_stalled_stream_times_out_and_is_retried(make_task: Any, recorder: Any, prices: PriceTable,
                                                       workdir: Any, fast_retry: RetryPolicy,
                                                       anthropic_standin: AnthropicStandin) -> None:
    anthropic_standin.hang_next(1, after_chunks=1)
    d = dispatcher(prices, workdir, anthropic_standin, fast_retry, timeout_s=0.3)
    finished = await d.execute(claude_task(make_task), recorder)
    assert finished.ok and len(anthropic_standin.requests) == 2
    assert recorder.kind("status") != []


async def test_cancellation_aborts_the_http_stream(make_task: Any, prices: PriceTable, workdir: Any,
                                                   fast_retry: RetryPolicy, anthropic_standin: AnthropicStandin,
                                                   eventually: Any) -> None:
    anthropic_standin.hang_next(1, after_chunks=2)  # the stream only ends if the client drops it
    first_token = asyncio.Event()

    async def on_output(output: Output) -> None:
        if output.kind == "token":
            first_token.set()

    d = dispatcher(prices, workdir, anthropic_standin, fast_retry)
    running = asyncio.create_task(d.execute(claude_task(make_task), on_output))
    await asyncio.wait_for(first_token.wait(), 10)
    assert anthropic_standin.active_streams == 1
    running.cancel()
    with pytest.raises(asyncio.CancelledError):
        await running
    assert await eventually(lambda: anthropic_standin.active_streams == 0)
