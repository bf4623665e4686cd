"""Ollama executor through the official client against the stand-in, over loopback HTTP."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import pytest

from agentcom.executors import Dispatcher, OllamaExecutor, Output, RetryPolicy
from agentcom.executors._prompt import system_prompt, task_prompt
from agentcom.pricing import PriceTable
from agentcom.standin import OllamaStandin, count_tokens, reply_for

pytestmark = [pytest.mark.anyio, pytest.mark.usefixtures("anyio_backend")]  # one backend (see conftest)

MODEL = "simulated-llama3.2"


def dispatcher(prices: PriceTable, workdir: Any, retry: RetryPolicy, **ollama: Any) -> Dispatcher:
    d = Dispatcher(prices, workdir=workdir)
    d.register(OllamaExecutor(retry=retry, **ollama))
    return d


async def test_streams_tokens_and_reports_counts(make_task: Any, recorder: Any, prices: PriceTable, workdir: Any,
                                                 fast_retry: RetryPolicy, ollama_standin: OllamaStandin) -> None:
    task = make_task("ollama", model=MODEL, endpoint=ollama_standin.endpoint)
    finished = await dispatcher(prices, workdir, fast_retry).execute(task, recorder)
    result = finished.result
    expected = reply_for(task_prompt(task))
    tokens = recorder.kind("token")
    assert "".join(o.text for o in tokens) == expected == result.output
    assert [o.tokens_so_far for o in tokens] == list(range(1, len(tokens) + 1))
    assert all(o.model == MODEL for o in tokens)
    assert finished.ok and result.status == "success"
    assert result.model_used == MODEL
    assert result.tokens_out == len(tokens) == count_tokens(expected)
    assert result.tokens_in == count_tokens(system_prompt(task)) + count_tokens(task_prompt(task)) + 8
    assert result.estimated_cost_usd == 0
    expected_equivalent = prices.equivalent(result.tokens_in, result.tokens_out)
    assert expected_equivalent is not None and result.equivalent_claude_cost_usd == float(expected_equivalent)
    assert result.price_table == prices.version
    sent = ollama_standin.requests[-1].body
    assert sent["model"] == MODEL and sent["stream"] is True
    assert [m["role"] for m in sent["messages"]] == ["system", "user"]


async def test_default_url_and_model_when_routing_names_none(make_task: Any, recorder: Any, prices: PriceTable,
                                                             workdir: Any, fast_retry: RetryPolicy,
                                                             ollama_standin: OllamaStandin) -> None:
    d = Dispatcher(prices, workdir=workdir, ollama_url=ollama_standin.url, ollama_model="simulated-qwen2.5-coder",
                   retry=fast_retry)
    finished = await d.execute(make_task("ollama"), recorder)
    assert finished.ok and finished.result.model_used == "simulated-qwen2.5-coder"


async def test_no_endpoint_or_model_is_the_sidecars_problem_and_retryable(make_task: Any, recorder: Any,
                                                                          prices: PriceTable, workdir: Any) -> None:
    """Neither the routing nor this sidecar names an endpoint (or model): a sidecar with one can run the
    task, so the dispatcher refuses it up front, and a run fails retryably."""
    d = Dispatcher(prices, workdir=workdir)
    no_endpoint_task = make_task("ollama", model=MODEL)
    refusal = d.refusal(no_endpoint_task)
    assert refusal is not None and "no Ollama endpoint" in refusal
    no_endpoint = await d.execute(no_endpoint_task, recorder)
    assert no_endpoint.error == refusal and no_endpoint.retryable
    no_model_task = make_task("ollama", endpoint="127.0.0.1:1")
    refusal = d.refusal(no_model_task)
    assert refusal is not None and "no Ollama model" in refusal
    no_model = await d.execute(no_model_task, recorder)
    assert no_model.error == refusal and no_model.retryable
    configured = Dispatcher(prices, workdir=workdir, ollama_url="127.0.0.1:1", ollama_model=MODEL)
    assert configured.refusal(make_task("ollama")) is None


@pytest.mark.parametrize("status", [429, 500, 503])
async def test_transient_errors_are_retried(make_task: Any, recorder: Any, prices: PriceTable, workdir: Any,
                                           fast_retry: RetryPolicy, ollama_standin: OllamaStandin,
                                           status: int) -> None:
    ollama_standin.fail_next(2, status)
    task = make_task("ollama", model=MODEL, endpoint=ollama_standin.endpoint)
    finished = await dispatcher(prices, workdir, fast_retry).execute(task, recorder)
    assert finished.ok
    assert len(ollama_standin.requests) == 3
    assert finished.result.attempts == 3  # RESULT says how many tries the answer took
    retries = recorder.texts("status")
    assert len(retries) == 2 and all(f"answered {status}" in t and "retrying" in t for t in retries)
    assert "attempt 2 of 3" in retries[0] and "attempt 3 of 3" in retries[1]


async def test_retries_run_out(make_task: Any, recorder: Any, prices: PriceTable, workdir: Any,
                               fast_retry: RetryPolicy, ollama_standin: OllamaStandin) -> None:
    ollama_standin.fail_next(5, 500)
    task = make_task("ollama", model=MODEL, endpoint=ollama_standin.endpoint)
    finished = await dispatcher(prices, workdir, fast_retry).execute(task, recorder)
    assert finished.error is not None and "answered 500" in finished.error and "after 3 attempts" in finished.error
    assert finished.retryable is True
    assert finished.result.status == "failed" and finished.result.estimated_cost_usd == 0
    assert finished.result.attempts == 3
    assert len(ollama_standin.requests) == 3
    assert recorder.texts("error") == [finished.error]


@pytest.mark.parametrize("status", [400, 404])
async def test_client_errors_are_not_retried(make_task: Any, recorder: Any, prices: PriceTable, workdir: Any,
                                             fast_retry: RetryPolicy, ollama_standin: OllamaStandin,
                                             status: int) -> None:
    ollama_standin.fail_next(1, status)
    task = make_task("ollama", model=MODEL, endpoint=ollama_standin.endpoint)
    finished = await dispatcher(prices, workdir, fast_retry).execute(task, recorder)
    assert finished.error is not None and f"answered {status}" in finished.error
    assert finished.retryable is False
    assert len(ollama_standin.requests) == 1 and recorder.kind("status") == []


async def test_unknown_model_is_not_retried(make_task: Any, recorder: Any, prices: PriceTable, workdir: Any,
                                            fast_retry: RetryPolicy, ollama_standin: OllamaStandin) -> None:
    task = make_task("ollama", model="llama3.2", endpoint=ollama_standin.endpoint)
    finished = await dispatcher(prices, workdir, fast_retry).execute(task, recorder)
    assert finished.error is not None and 'model "llama3.2" not found' in finished.error
    assert not finished.retryable and len(ollama_standin.requests) == 1


async def test_midstream_failure_is_retried(make_task: Any, recorder: Any, prices: PriceTable, workdir: Any,
                                            fast_retry: RetryPolicy, ollama_standin: OllamaStandin) -> None:
    ollama_standin.fail_next(1, 500, midstream=True, after_chunks=3)
    task = make_task("ollama", model=MODEL, endpoint=ollama_standin.endpoint)
    finished = await dispatcher(prices, workdir, fast_retry).execute(task, recorder)
    assert finished.ok and finished.result.output == reply_for(task_prompt(task))
    assert len(recorder.kind("token")) == 3 + finished.result.tokens_out  # the broken attempt's tokens were shown
    assert "during generation" in recorder.texts("status")[0]
    assert recorder.texts("status")[0].endswith("the answer restarts")


async def test_connection_refused_is_retryable(make_task: Any, recorder: Any, prices: PriceTable, workdir: Any,
                                               fast_retry: RetryPolicy) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again: nothing listens there
    task = make_task("ollama", model=MODEL, endpoint=f"127.0.0.1:{port}")
    finished = await dispatcher(prices, workdir, fast_retry).execute(task, recorder)
    assert finished.error is not None and f"cannot connect to Ollama at http://127.0.0.1:{port}" in finished.error
    assert finished.retryable is True and len(recorder.kind("status")) == 2


async def test_silent_server_times_out_and_is_retried(make_task: Any, recorder: Any, prices: PriceTable,
                                                      workdir: Any, fast_retry: RetryPolicy,
                                                      ollama_standin: OllamaStandin) -> None:
    ollama_standin.hang_next(1, after_chunks=2)
    task = make_task("ollama", model=MODEL, endpoint=ollama_standin.endpoint)
    finished = await dispatcher(prices, workdir, fast_retry, read_timeout_s=0.3).execute(task, recorder)
    assert finished.ok
    assert "timed out" in recorder.texts("status")[0]


async def test_max_tokens_limits_the_answer(make_task: Any, recorder: Any, prices: PriceTable, workdir: Any,
                                            fast_retry: RetryPolicy, ollama_standin: OllamaStandin) -> None:
    task = make_task("ollama", model=MODEL, endpoint=ollama_standin.endpoint, metadata={"max_tokens": 5})
    finished = await dispatcher(prices, workdir, fast_retry).execute(task, recorder)
    assert finished.ok and finished.result.tokens_out == 5
    assert ollama_standin.requests[-1].body["options"] == {"num_predict": 5}


async def test_cancellation_aborts_the_http_stream(make_task: Any, prices: PriceTable, workdir: Any,
                                                   fast_retry: RetryPolicy, ollama_standin: OllamaStandin,
                                                   eventually: Any) -> None:
    ollama_standin.hang_next(1, after_chunks=2)  # the stream only ends if the client drops it
    first_token = asyncio.Event()

    async def on_output(output: Output) -> None:
        if output.kind == "token":
            first_token.set()

    task = make_task("ollama", model=MODEL, endpoint=ollama_standin.endpoint)
    running = asyncio.create_task(dispatcher(prices, workdir, fast_retry).execute(task, on_output))
    await asyncio.wait_for(first_token.wait(), 10)
    assert ollama_standin.active_streams == 1
    running.cancel()
    with pytest.raises(asyncio.CancelledError):
        await running
    assert await eventually(lambda: ollama_standin.active_streams == 0)
