"""The embedded SmolLM2 through LocalLlamaExecutor: streaming, usage, determinism, cancel, errors."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any, Callable

import pytest

from agentcom.errors import ConfigError
from agentcom.executors.base import Outcome, Output, Step
from agentcom.executors.local_llama import LocalLlamaExecutor
from agentcom.executors.openai_compat import task_messages
from agentcom.protocol.messages import TaskAssign

# Naming the fixture keeps anyio's plugin from also parametrizing every test with "trio".
pytestmark = pytest.mark.usefixtures("anyio_backend")

MakeTask = Callable[..., TaskAssign]
# Greedy SmolLM2 counts on for well over 100 tokens here: long enough to cancel mid-way.
LONG_PROMPT = "Count from 1 to 1000, one number per line."


async def collect(executor: LocalLlamaExecutor, task: TaskAssign) -> tuple[list[Output], Outcome]:
    outputs: list[Output] = []
    outcomes: list[Outcome] = []
    async for step in executor.run(task):
        (outputs if isinstance(step, Output) else outcomes).append(step)  # type: ignore[arg-type]
    assert len(outcomes) == 1, "a run ends with exactly one Outcome"
    return outputs, outcomes[0]


def worker_threads(task_id: str) -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == f"agentcom-llama-{task_id}" and t.is_alive()]


async def wait_for_workers_to_end(task_id: str, patience_s: float = 30.0) -> None:
    for _ in range(int(patience_s / 0.02)):
        if not worker_threads(task_id):
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"worker thread for {task_id} still running after {patience_s} s")


@pytest.mark.anyio
@pytest.mark.parametrize(("prompt", "max_tokens", "finish"), [
    ("Write a haiku about unit tests.", 16, "length"),
    ("Say hi.", 32, "stop"),
])
async def test_streams_tokens_and_reports_the_models_own_usage(
    local_executor: LocalLlamaExecutor, direct_llama: Any, task_factory: MakeTask,
    prompt: str, max_tokens: int, finish: str,
) -> None:
    task = task_factory(prompt, max_tokens=max_tokens)
    outputs, outcome = await collect(local_executor, task)

    assert outcome.ok, outcome.error
    assert outcome.model_used == "smollm2-135m-instruct (local)"
    assert outcome.extra["finish_reason"] == finish
    assert len(outputs) > 3 and all(o.kind == "token" and o.model == outcome.model_used for o in outputs)
    assert "".join(o.text for o in outputs) == outcome.output and outcome.output.strip()
    counts = [o.tokens_so_far or 0 for o in outputs]
    assert counts == sorted(counts) and counts[-1] <= outcome.tokens_out

    reference = direct_llama.create_chat_completion(messages=task_messages(task), temperature=0,
                                                    max_tokens=max_tokens)
    assert (outcome.tokens_in, outcome.tokens_out) == (
        reference["usage"]["prompt_tokens"], reference["usage"]["completion_tokens"])
    assert outcome.output == reference["choices"][0]["message"]["content"]


@pytest.mark.anyio
async def test_is_deterministic_at_temperature_zero(local_executor: LocalLlamaExecutor, task_factory: MakeTask) -> None:
    task = task_factory("Name three fruits.", max_tokens=12)
    first = await collect(local_executor, task)
    second = await collect(local_executor, task)
    assert first[1].output == second[1].output
    assert [o.text for o in first[0]] == [o.text for o in second[0]]


@pytest.mark.anyio
async def test_metadata_max_tokens_caps_the_generation(local_executor: LocalLlamaExecutor, task_factory: MakeTask) -> None:
    _, outcome = await collect(local_executor, task_factory(LONG_PROMPT, max_tokens=5))
    assert outcome.tokens_out == 5
    assert outcome.extra["finish_reason"] == "length"


@pytest.mark.anyio
async def test_generation_runs_off_the_event_loop(local_executor: LocalLlamaExecutor, task_factory: MakeTask) -> None:
    """The loop keeps turning while the model works, and the work happens in the run's worker thread."""
    ticks = 0
    ticking = True

    async def ticker() -> None:
        nonlocal ticks
        while ticking:
            ticks += 1
            await asyncio.sleep(0)

    tick_task = asyncio.create_task(ticker())
    task = task_factory(LONG_PROMPT, max_tokens=24, task_id="off-loop")
    saw_worker = False
    tokens = 0
    async for step in local_executor.run(task):
        if isinstance(step, Output):
            tokens += 1
            saw_worker = saw_worker or bool(worker_threads("off-loop"))
    ticking = False
    await tick_task
    assert saw_worker
    assert ticks > tokens


@pytest.mark.anyio
async def test_one_generation_at_a_time_per_model(local_executor: LocalLlamaExecutor, task_factory: MakeTask) -> None:
    tasks = [task_factory("Name a colour.", max_tokens=8, task_id=f"par-{i}") for i in range(2)]
    sequential = [(await collect(local_executor, t))[1].output for t in tasks]
    concurrent = await asyncio.gather(*(collect(local_executor, t) for t in tasks))
    assert [outcome.output for _, outcome in concurrent] == sequential


async def _consume_then_cancel(local_executor: LocalLlamaExecutor, task: TaskAssign, how: str) -> tuple[int, list[Step]]:
    """Read three tokens, then stop the run as a sidecar would; return tokens sampled at that point."""
    steps: list[Step] = []
    three_tokens = asyncio.Event()

    async def consume() -> None:
        async for step in local_executor.run(task):
            steps.append(step)
            if len(steps) == 3:
                if how == "aclose":
                    return  # leaving the loop: the async generator is closed
                three_tokens.set()

    consumer = asyncio.create_task(consume())
    if how == "cancel":
        await three_tokens.wait()
        consumer.cancel()
        with pytest.raises(asyncio.CancelledError):
            await consumer
    else:
        await consumer
    return local_executor.generated_tokens, steps


@pytest.mark.anyio
@pytest.mark.parametrize("how", ["cancel", "aclose"])
async def test_cancelling_stops_generation(local_executor: LocalLlamaExecutor, task_factory: MakeTask, how: str) -> None:
    task = task_factory(LONG_PROMPT, max_tokens=400, task_id=f"stop-{how}")
    before = local_executor.generated_tokens
    at_cancel, steps = await _consume_then_cancel(local_executor, task, how)
    await wait_for_workers_to_end(task.task_id)
    after = local_executor.generated_tokens

    assert not any(isinstance(s, Outcome) for s in steps)
    assert after - at_cancel <= 2, f"{after - at_cancel} tokens sampled after the run was stopped"
    assert after - before < 40, "the model ran on instead of stopping"


@pytest.mark.anyio
async def test_bad_metadata_fails_without_retry(local_executor: LocalLlamaExecutor, task_factory: MakeTask) -> None:
    _, outcome = await collect(local_executor, task_factory(max_tokens=0))
    assert not outcome.ok and not outcome.retryable
    assert outcome.error == "metadata.max_tokens must be a positive integer, got 0"


@pytest.mark.anyio
async def test_an_unknown_selected_model_is_refused(local_executor: LocalLlamaExecutor, task_factory: MakeTask) -> None:
    _, outcome = await collect(local_executor, task_factory(model="gpt-4o"))
    assert not outcome.ok and not outcome.retryable
    assert "no model 'gpt-4o'" in (outcome.error or "")


@pytest.mark.anyio
async def test_selected_model_may_name_the_default(local_executor: LocalLlamaExecutor, task_factory: MakeTask) -> None:
    _, outcome = await collect(local_executor, task_factory(model="smollm2-135m-instruct", max_tokens=2))
    assert outcome.ok and outcome.tokens_out == 2


@pytest.mark.anyio
async def test_a_file_that_is_not_a_model_fails_cleanly(tmp_path: Path, task_factory: MakeTask) -> None:
    junk = tmp_path / "junk.gguf"
    junk.write_bytes(b"NOT A GGUF FILE" * 64)
    executor = LocalLlamaExecutor(junk)
    outputs, outcome = await collect(executor, task_factory())
    assert outputs == []
    assert not outcome.ok and not outcome.retryable
    assert outcome.model_used == "junk (local)"
    assert "Failed to load model" in (outcome.error or "")


@pytest.mark.parametrize(("kwargs", "message"), [({"max_tokens": 0}, "max_tokens must be a positive integer, got 0"),
                                                 ({"n_threads": 0}, "n_threads must be a positive integer, got 0")])
def test_bad_settings_fail_at_construction(kwargs: dict[str, int], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        LocalLlamaExecutor(**kwargs)  # type: ignore[arg-type]
