"""Dispatcher: picks the executor for a task's target type, runs it, prices the result.

The sidecar hands every ``task_assign`` to ``Dispatcher.execute`` and gets back a
``Finished``: a wire-ready ``ExecutionResult`` plus the failure text and retry flag
for ``task_failed``. Executors are registered by target type (``sidecar`` = shell,
``ollama``, ``claude`` built in); adding one is a single ``register`` call::

    dispatcher.register(OpenAIExecutor(...))          # uses executor.target_type
    dispatcher.register(LocalExecutor(...), "local")  # or name the target type

Cost is priced here, once, with the price table's version recorded. An unpriced cloud
model is reported with a null cost and a warning Output, never as free.

``retryable`` says whether another attempt could succeed, not whether this one was the
task's fault: a problem with this sidecar's own set-up (no executor for the target, no API
key, no Ollama endpoint, no workdir) is retryable, since another sidecar can run the task;
``refusal`` names it before the task is accepted, so the sidecar can reject the task
instead. An executor that crashes (an unexpected exception, or no outcome) is retryable too:
nothing says the next attempt will meet the same fault, and ``max_attempts`` bounds the cost
of being wrong. Non-retryable is kept for what is known to fail everywhere: a bad task
(no command, bad metadata), a non-zero exit, a 4xx from the API.
"""

from __future__ import annotations

import logging
import time
from contextlib import aclosing
from dataclasses import dataclass
from pathlib import Path
from typing import Awaitable, Callable, Mapping

from agentcom.errors import ExecutorError
from agentcom.executors._retry import RetryPolicy
from agentcom.executors.base import Executor, Outcome, Output
from agentcom.executors.claude import ClaudeExecutor
from agentcom.executors.ollama import OllamaExecutor
from agentcom.executors.process_groups import ProcessGroup
from agentcom.executors.shell import ShellExecutor
from agentcom.pricing import DEFAULT_REFERENCE_MODEL, PriceTable
from agentcom.protocol.messages import ExecutionResult, TaskAssign

__all__ = ["Dispatcher", "Finished", "OnOutput"]

log = logging.getLogger("agentcom.executors")

OnOutput = Callable[[Output], Awaitable[None]]

MAX_OUTPUT_CHARS = 524_288  # RESULT.output limit
MAX_ERROR_CHARS = 4_000  # task_failed.error limit
MAX_MODEL_CHARS = 256


@dataclass(frozen=True, slots=True)
class Finished:
    """A priced execution. ``error`` set means send ``task_failed`` (with ``retryable``)."""

    result: ExecutionResult
    error: str | None
    retryable: bool

    @property
    def ok(self) -> bool:
        return self.error is None


def _tail(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    marker = f"[... {len(text) - limit} earlier characters cut ...]\n"
    return marker + text[len(text) - limit + len(marker):]


_USAGE_UNKNOWN = {"usage": "unknown"}  # Outcome.extra of a run that ended without reporting its usage


class Dispatcher:
    """Runs tasks on the executor for their ``routing_decision.target_type``."""

    def __init__(self, prices: PriceTable, *, workdir: str | Path, ollama_url: str | None = None,
                 ollama_model: str | None = None, anthropic_base_url: str | None = None,
                 anthropic_api_key: str | None = None, reference_model: str = DEFAULT_REFERENCE_MODEL,
                 retry: RetryPolicy | None = None, executors: Mapping[str, Executor] | None = None,
                 on_spawn: Callable[[ProcessGroup], None] | None = None) -> None:
        prices.check_reference(reference_model)  # a bad reference model is a start-up error
        self.prices = prices
        self.reference_model = reference_model
        self._executors: dict[str, Executor] = {}
        self.register(ShellExecutor(workdir, on_spawn=on_spawn))
        self.register(OllamaExecutor(default_url=ollama_url, default_model=ollama_model, retry=retry))
        self.register(ClaudeExecutor(api_key=anthropic_api_key, base_url=anthropic_base_url, retry=retry))
        for target_type, executor in (executors or {}).items():
            self.register(executor, target_type)

    def register(self, executor: Executor, target_type: str | None = None) -> None:
        """Route ``target_type`` (default: the executor's own) to ``executor``, replacing any other."""
        self._executors[target_type or executor.target_type] = executor

    @property
    def target_types(self) -> tuple[str, ...]:
        return tuple(sorted(self._executors))

    def executor_for(self, target_type: str) -> Executor | None:
        return self._executors.get(target_type)

    def refusal(self, task: TaskAssign) -> str | None:
        """Why this sidecar cannot run ``task`` (its set-up lacks what the task needs), or None.

        Asked before the task is accepted: the sidecar then rejects it, and the hub gives it to
        another sidecar. Only the sidecar's own set-up counts here; a bad task is for ``execute``
        to fail."""
        target = task.routing_decision.target_type
        executor = self._executors.get(target)
        if executor is None:
            return f"no executor for target type {target!r} on this sidecar (it has: {', '.join(self.target_types)})"
        check = getattr(executor, "refusal", None)  # optional: executors with set-up needs have one
        return check(task) if check is not None else None

    async def execute(self, task: TaskAssign, on_output: OnOutput) -> Finished:
        """Run ``task``, passing each Output to ``on_output``; cancellation propagates
        (after the executor has stopped its process or stream)."""
        started = time.monotonic()
        target = task.routing_decision.target_type
        executor = self._executors.get(target)
        if executor is None:
            outcome = Outcome(output="", model_used=task.routing_decision.selected_model, retryable=True,
                              error=self.refusal(task))
        else:
            outcome = await self._drive(executor, task, on_output)
        execution_ms = int((time.monotonic() - started) * 1000)
        return await self._finish(task, outcome, execution_ms, on_output)

    async def _drive(self, executor: Executor, task: TaskAssign, on_output: OnOutput) -> Outcome:
        target = task.routing_decision.target_type
        fallback_model = task.routing_decision.selected_model
        async with aclosing(executor.run(task)) as steps:  # type: ignore[type-var]
            while True:
                try:
                    step = await anext(steps)
                except StopAsyncIteration:  # an executor bug: retryable, like a crash
                    return Outcome(output="", model_used=fallback_model, retryable=True, extra=dict(_USAGE_UNKNOWN),
                                   error=f"{target} executor ended without an outcome")
                except ExecutorError as exc:
                    return Outcome(output="", model_used=fallback_model, error=str(exc), retryable=exc.retryable)
                except Exception as exc:  # an executor bug must fail the task, not the sidecar
                    log.exception("%s executor crashed on task %s", target, task.task_id)
                    return Outcome(output="", model_used=fallback_model, retryable=True, extra=dict(_USAGE_UNKNOWN),
                                   error=f"{target} executor crashed: {type(exc).__name__}: {exc}")
                if isinstance(step, Outcome):
                    return step
                await on_output(step)

    async def _finish(self, task: TaskAssign, outcome: Outcome, execution_ms: int, on_output: OnOutput) -> Finished:
        target = task.routing_decision.target_type
        model = outcome.model_used or task.routing_decision.selected_model
        # The server an ``openai`` run reached decides whether local model names are free there.
        endpoint = task.routing_decision.selected_endpoint or getattr(self._executors.get(target), "base_url", None)
        cost = self.prices.cost_of_run(target, model, outcome.tokens_in, outcome.tokens_out,
                                       outcome.cache_read_tokens, outcome.cache_write_tokens,
                                       reference_model=self.reference_model,
                                       endpoint=endpoint if isinstance(endpoint, str) else None,
                                       usage_known=outcome.extra.get("usage") != "unknown")
        if cost.warning:
            await on_output(Output(kind="status", text=f"warning: {cost.warning}", model=model))
        error = outcome.error[:MAX_ERROR_CHARS] if outcome.error is not None else None
        if error is not None:
            await on_output(Output(kind="error", text=error, model=model))
        result = ExecutionResult(
            status="success" if error is None else "failed",
            output=_tail(outcome.output, MAX_OUTPUT_CHARS),
            model_used=model[:MAX_MODEL_CHARS] if model else None,
            tokens_in=outcome.tokens_in,
            tokens_out=outcome.tokens_out,
            cache_read_tokens=outcome.cache_read_tokens,
            cache_write_tokens=outcome.cache_write_tokens,
            estimated_cost_usd=float(cost.cost_usd) if cost.cost_usd is not None else None,
            equivalent_claude_cost_usd=(float(cost.equivalent_claude_cost_usd)
                                        if cost.equivalent_claude_cost_usd is not None else None),
            execution_ms=execution_ms,
            price_table=self.prices.version,
            attempts=_attempts(outcome),
        )
        return Finished(result=result, error=error, retryable=outcome.retryable if error is not None else False)


def _attempts(outcome: Outcome) -> int | None:
    """The backend attempts the executor made (its retries included), when it counted them."""
    value = outcome.extra.get("attempts")
    try:
        return int(value) if value is not None and int(value) >= 0 else None
    except ValueError:
        return None
