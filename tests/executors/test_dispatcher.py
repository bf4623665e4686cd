"""Dispatcher: executor choice by target type, registration, pricing, failures, wire-valid results."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, AsyncIterator

import msgspec
import pytest

from agentcom.errors import ExecutorError, PricingError
from agentcom.executors import Dispatcher, Outcome, Output, Step
from agentcom.pricing import PriceTable
from agentcom.protocol.messages import TaskAssign, TaskComplete, TaskFailed

pytestmark = [pytest.mark.anyio, pytest.mark.usefixtures("anyio_backend")]  # one backend (see conftest)


class ScriptedExecutor:
    """A real (if trivial) executor: replays fixed steps, as an extra backend would stream them."""

    def __init__(self, target_type: str, steps: list[Step], raises: Exception | None = None) -> None:
        self.target_type = target_type
        self.steps = steps
        self.raises = raises
        self.closed = False

    async def run(self, task: TaskAssign) -> AsyncIterator[Step]:
        try:
            for step in self.steps:
                yield step
            if self.raises is not None:
                raise self.raises
        finally:
            self.closed = True


def ok(model: str | None, tokens_in: int = 1000, tokens_out: int = 500, **extra: Any) -> Outcome:
    return Outcome(output="done", model_used=model, tokens_in=tokens_in, tokens_out=tokens_out, **extra)


def wire_valid(finished: Any, task: TaskAssign) -> None:
    """The result survives encoding and strict decoding as the frame the sidecar will send."""
    if finished.ok:
        frame: Any = TaskComplete(task_id=task.task_id, generation=task.generation, result=finished.result)
    else:
        frame = TaskFailed(task_id=task.task_id, generation=task.generation, error=finished.error,
                           retryable=finished.retryable, result=finished.result)
    assert msgspec.json.decode(msgspec.json.encode(frame), type=type(frame)) == frame


async def test_built_in_target_types(prices: PriceTable, workdir: Path) -> None:
    assert Dispatcher(prices, workdir=workdir).target_types == ("claude", "ollama", "sidecar")


async def test_unknown_target_type_is_refused_and_retryable(make_task: Any, recorder: Any, prices: PriceTable,
                                                            workdir: Path) -> None:
    """Another sidecar may have the executor: refused before acceptance, and retryable if run anyway."""
    task = make_task("carrier-pigeon")
    dispatcher = Dispatcher(prices, workdir=workdir)
    reason = "no executor for target type 'carrier-pigeon' on this sidecar (it has: claude, ollama, sidecar)"
    assert dispatcher.refusal(task) == reason
    finished = await dispatcher.execute(task, recorder)
    assert finished.error == reason
    assert finished.retryable is True and finished.result.status == "failed"
    wire_valid(finished, task)


async def test_a_missing_workdir_is_refused_and_retryable(make_task: Any, recorder: Any, prices: PriceTable,
                                                         tmp_path: Path) -> None:
    task = make_task("sidecar", metadata={"shell_command": "true"})
    dispatcher = Dispatcher(prices, workdir=tmp_path / "gone")
    reason = dispatcher.refusal(task)
    assert reason is not None and "does not exist" in reason
    finished = await dispatcher.execute(task, recorder)
    assert finished.error == reason and finished.retryable is True


async def test_a_bad_task_is_not_refused_but_fails_for_good(make_task: Any, recorder: Any, prices: PriceTable,
                                                           workdir: Path) -> None:
    """No command is the task's fault, the same on every sidecar: accepted, then failed without retry."""
    task = make_task("sidecar")
    dispatcher = Dispatcher(prices, workdir=workdir)
    assert dispatcher.refusal(task) is None
    finished = await dispatcher.execute(task, recorder)
    assert finished.error is not None and "no metadata.shell_command" in finished.error
    assert finished.retryable is False


async def test_shell_run_is_free_without_equivalent(make_task: Any, recorder: Any, prices: PriceTable,
                                                    workdir: Path) -> None:
    task = make_task("sidecar", metadata={"shell_command": [sys.executable, "-c", "print('hi')"]})
    finished = await Dispatcher(prices, workdir=workdir).execute(task, recorder)
    result = finished.result
    assert finished.ok and result.status == "success" and result.output == "hi\n"
    assert result.model_used == "shell"
    assert (result.estimated_cost_usd, result.equivalent_claude_cost_usd) == (0, None)
    assert result.price_table == "agentcom-2026-11"
    assert isinstance(result.execution_ms, int) and result.execution_ms >= 0
    assert recorder.texts("stdout") == ["hi"]
    wire_valid(finished, task)


async def test_failed_shell_run(make_task: Any, recorder: Any, prices: PriceTable, workdir: Path) -> None:
    task = make_task("sidecar", metadata={"shell_command": "false"})
    finished = await Dispatcher(prices, workdir=workdir).execute(task, recorder)
    assert finished.error == "exit code 1" and finished.retryable is False
    assert finished.result.status == "failed"
    assert recorder.texts("error") == ["exit code 1"]
    wire_valid(finished, task)


async def test_registering_an_executor_is_one_line(make_task: Any, recorder: Any, prices: PriceTable,
                                                   workdir: Path) -> None:
    dispatcher = Dispatcher(prices, workdir=workdir)
    dispatcher.register(ScriptedExecutor("openai", [Output(kind="token", text="x"), ok("qwen2.5-coder:7b")]))
    assert "openai" in dispatcher.target_types
    finished = await dispatcher.execute(make_task("openai", model="qwen2.5-coder:7b"), recorder)
    assert finished.ok and recorder.texts("token") == ["x"]
    assert finished.result.estimated_cost_usd == 0
    assert finished.result.equivalent_claude_cost_usd == 0.0105


@pytest.mark.parametrize(("endpoint", "base_url"), [("api.example.com:443", None),
                                                    (None, "https://inference.example.com/v1")])
async def test_a_local_model_name_on_a_cloud_openai_server_is_not_free(make_task: Any, recorder: Any,
                                                                      prices: PriceTable, workdir: Path,
                                                                      endpoint: str | None,
                                                                      base_url: str | None) -> None:
    """The server the run reached decides: `qwen*` is free on this machine's server, unpriced on a public one."""
    executor = ScriptedExecutor("openai", [ok("qwen2.5-coder:7b")])
    executor.base_url = base_url  # type: ignore[attr-defined]
    dispatcher = Dispatcher(prices, workdir=workdir, executors={"openai": executor})
    finished = await dispatcher.execute(make_task("openai", model="qwen2.5-coder:7b", endpoint=endpoint), recorder)
    assert finished.ok and finished.result.estimated_cost_usd is None
    (warning,) = recorder.texts("status")
    assert "no price for model 'qwen2.5-coder:7b'" in warning and "example.com" in warning
    local = Dispatcher(prices, workdir=workdir, executors={"openai": ScriptedExecutor("openai", [ok("qwen2.5-coder:7b")])})
    nearby = await local.execute(make_task("openai", model="qwen2.5-coder:7b", endpoint="127.0.0.1:8080"), recorder)
    assert nearby.result.estimated_cost_usd == 0 and nearby.result.equivalent_claude_cost_usd == 0.0105


async def test_executors_mapping_in_the_constructor(make_task: Any, recorder: Any, prices: PriceTable,
                                                    workdir: Path) -> None:
    local = ScriptedExecutor("whatever", [ok("SmolLM2-135M-Instruct")])
    dispatcher = Dispatcher(prices, workdir=workdir, executors={"local": local})
    finished = await dispatcher.execute(make_task("local"), recorder)
    assert finished.result.model_used == "SmolLM2-135M-Instruct"
    assert (finished.result.estimated_cost_usd, finished.result.equivalent_claude_cost_usd) == (0, 0.0105)


@pytest.mark.parametrize(("model", "cost"), [("claude-sonnet-4-5", 0.0105), ("claude-opus-4-5-20251101", 0.0175)])
async def test_claude_runs_are_priced(make_task: Any, recorder: Any, prices: PriceTable, workdir: Path,
                                      model: str, cost: float) -> None:
    dispatcher = Dispatcher(prices, workdir=workdir, executors={"claude": ScriptedExecutor("claude", [ok(model)])})
    result = (await dispatcher.execute(make_task("claude", model=model), recorder)).result
    assert result.estimated_cost_usd == result.equivalent_claude_cost_usd == cost
    assert result.price_table == prices.version


async def test_cache_tokens_are_priced_and_reported(make_task: Any, recorder: Any, prices: PriceTable,
                                                    workdir: Path) -> None:
    outcome = ok("claude-sonnet-4-5", cache_read_tokens=10_000, cache_write_tokens=2_000)
    dispatcher = Dispatcher(prices, workdir=workdir, executors={"claude": ScriptedExecutor("claude", [outcome])})
    result = (await dispatcher.execute(make_task("claude", model="claude-sonnet-4-5"), recorder)).result
    assert (result.cache_read_tokens, result.cache_write_tokens) == (10_000, 2_000)
    assert result.estimated_cost_usd == pytest.approx(0.0105 + 0.003 + 0.0075)


async def test_unknown_cloud_model_is_never_silently_free(make_task: Any, recorder: Any, prices: PriceTable,
                                                          workdir: Path) -> None:
    dispatcher = Dispatcher(prices, workdir=workdir,
                            executors={"claude": ScriptedExecutor("claude", [ok("claude-sonnet-9")])})
    task = make_task("claude", model="claude-sonnet-9")
    finished = await dispatcher.execute(task, recorder)
    assert finished.ok
    assert finished.result.estimated_cost_usd is None and finished.result.equivalent_claude_cost_usd is None
    (warning,) = recorder.texts("status")
    assert "no price for model 'claude-sonnet-9'" in warning and prices.version in warning
    wire_valid(finished, task)


async def test_model_falls_back_to_the_routing_decision(make_task: Any, recorder: Any, prices: PriceTable,
                                                        workdir: Path) -> None:
    dispatcher = Dispatcher(prices, workdir=workdir, executors={"claude": ScriptedExecutor("claude", [ok(None)])})
    result = (await dispatcher.execute(make_task("claude", model="claude-haiku-4-5"), recorder)).result
    assert result.model_used == "claude-haiku-4-5" and result.estimated_cost_usd == 0.0035


async def test_executor_error_becomes_a_failure(make_task: Any, recorder: Any, prices: PriceTable,
                                                workdir: Path) -> None:
    executor = ScriptedExecutor("claude", [Output(kind="token", text="a")], ExecutorError("backend gone", retryable=True))
    dispatcher = Dispatcher(prices, workdir=workdir, executors={"claude": executor})
    finished = await dispatcher.execute(make_task("claude", model="claude-sonnet-4-5"), recorder)
    assert (finished.error, finished.retryable) == ("backend gone", True)
    assert executor.closed


async def test_executor_bug_fails_the_task_not_the_sidecar(make_task: Any, recorder: Any, prices: PriceTable,
                                                           workdir: Path, caplog: pytest.LogCaptureFixture) -> None:
    executor = ScriptedExecutor("claude", [], RuntimeError("oops"))
    dispatcher = Dispatcher(prices, workdir=workdir, executors={"claude": executor})
    finished = await dispatcher.execute(make_task("claude", model="claude-sonnet-4-5"), recorder)
    # retryable, as the sidecar rules for a runner crash: nothing says the next attempt meets the same fault
    assert finished.error == "claude executor crashed: RuntimeError: oops" and finished.retryable is True
    assert "claude executor crashed on task task-1" in caplog.text


@pytest.mark.parametrize(("target", "model", "endpoint", "unknown"), [
    ("claude", "claude-sonnet-4-5", None, True),
    ("openai", "qwen2.5-coder:7b", "api.example.com:443", True),
    ("openai", "qwen2.5-coder:7b", "127.0.0.1:8080", False),
    ("ollama", "llama3.2", None, False),
])
async def test_a_crashed_paid_run_is_unpriced_not_free(make_task: Any, recorder: Any, prices: PriceTable,
                                                       workdir: Path, target: str, model: str, endpoint: str | None,
                                                       unknown: bool) -> None:
    """A crash may come after a paid request: its usage is unknown, so its cost is null (counted as
    unpriced at the hub), never 0; a crash on a local server or a free target costs nothing."""
    dispatcher = Dispatcher(prices, workdir=workdir, executors={target: ScriptedExecutor(target, [], RuntimeError("x"))})
    finished = await dispatcher.execute(make_task(target, model=model, endpoint=endpoint), recorder)
    assert finished.retryable is True
    if unknown:
        assert finished.result.estimated_cost_usd is None and finished.result.equivalent_claude_cost_usd is None
        assert any("its cost is unknown" in text for text in recorder.texts("status"))
    else:
        assert finished.result.estimated_cost_usd == 0 and recorder.texts("status") == []
    wire_valid(finished, make_task(target, model=model, endpoint=endpoint))


async def test_executor_without_outcome(make_task: Any, recorder: Any, prices: PriceTable, workdir: Path) -> None:
    dispatcher = Dispatcher(prices, workdir=workdir, executors={"claude": ScriptedExecutor("claude", [])})
    finished = await dispatcher.execute(make_task("claude", model="claude-sonnet-4-5"), recorder)
    assert finished.error == "claude executor ended without an outcome" and finished.retryable


async def test_on_output_errors_propagate_and_close_the_executor(make_task: Any, prices: PriceTable,
                                                                 workdir: Path) -> None:
    executor = ScriptedExecutor("claude", [Output(kind="token", text="a"), ok("claude-sonnet-4-5")])
    dispatcher = Dispatcher(prices, workdir=workdir, executors={"claude": executor})

    async def broken(output: Output) -> None:
        raise ConnectionResetError("hub gone")

    with pytest.raises(ConnectionResetError):
        await dispatcher.execute(make_task("claude", model="claude-sonnet-4-5"), broken)
    assert executor.closed


async def test_huge_output_is_cut_to_the_wire_limit(make_task: Any, recorder: Any, prices: PriceTable,
                                                    workdir: Path) -> None:
    outcome = Outcome(output="y" * 600_000 + "END", model_used="llama3", error="e" * 5_000, retryable=True)
    dispatcher = Dispatcher(prices, workdir=workdir, executors={"ollama": ScriptedExecutor("ollama", [outcome])})
    task = make_task("ollama", model="llama3")
    finished = await dispatcher.execute(task, recorder)
    assert len(finished.result.output) == 524_288 and finished.result.output.endswith("END")
    assert finished.result.output.startswith("[... ")
    assert finished.error is not None and len(finished.error) == 4_000
    wire_valid(finished, task)


@pytest.mark.parametrize(("extra", "attempts"), [({"attempts": "2"}, 2), ({}, None), ({"attempts": "many"}, None)])
async def test_result_attempts_come_from_the_executor(make_task: Any, recorder: Any, prices: PriceTable,
                                                      workdir: Path, extra: dict[str, str], attempts: int | None) -> None:
    """RESULT ``attempts`` is the executor's count of backend tries; absent when it counted none."""
    outcome = ok("claude-sonnet-4-5", extra=extra)
    dispatcher = Dispatcher(prices, workdir=workdir, executors={"claude": ScriptedExecutor("claude", [outcome])})
    task = make_task("claude", model="claude-sonnet-4-5")
    finished = await dispatcher.execute(task, recorder)
    assert finished.result.attempts == attempts
    wire_valid(finished, task)


def test_reference_model_must_be_priced(prices: PriceTable, workdir: Path) -> None:
    with pytest.raises(PricingError, match="reference model 'llama3'"):
        Dispatcher(prices, workdir=workdir, reference_model="llama3")


async def test_reference_model_is_configurable(make_task: Any, recorder: Any, prices: PriceTable,
                                               workdir: Path) -> None:
    dispatcher = Dispatcher(prices, workdir=workdir, reference_model="claude-opus-4-5",
                            executors={"ollama": ScriptedExecutor("ollama", [ok("llama3")])})
    result = (await dispatcher.execute(make_task("ollama", model="llama3"), recorder)).result
    assert result.equivalent_claude_cost_usd == 0.0175
