"""Retrying one executor attempt with exponential backoff.

An attempt is an async generator of ``Step``s that raises ``BackendError`` when the
backend fails; ``with_retries`` runs it again after a delay while the error is
retryable and attempts remain, announcing each retry as a ``status`` Output. Output
already streamed by a failed attempt stays streamed (dashboards saw it); the final
Outcome only carries the successful attempt's text. Delays are deterministic (no
jitter): one sidecar runs one task at a time, so there is no herd to spread.

The final Outcome says how many attempts were made in ``extra["attempts"]`` (success or
failure); the dispatcher reports it as RESULT ``attempts``.
"""

from __future__ import annotations

import asyncio
import dataclasses
from contextlib import aclosing
from dataclasses import dataclass
from typing import AsyncGenerator, Callable

from agentcom.errors import ExecutorError
from agentcom.executors.base import Outcome, Output, Step

__all__ = ["BackendError", "RetryPolicy", "with_retries"]


class BackendError(ExecutorError):
    """A backend call failed. ``retry_after`` (seconds) is the server's hint, if any;
    ``partial_output`` is what the failed attempt had produced."""

    def __init__(self, message: str, *, retryable: bool, retry_after: float | None = None,
                 status: int | None = None, partial_output: str = "") -> None:
        super().__init__(message, retryable=retryable)
        self.retry_after = retry_after
        self.status = status
        self.partial_output = partial_output


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """``attempts`` tries in all; the n-th retry waits ``base_delay_s * factor**(n-1)``,
    capped at ``max_delay_s`` (a server's Retry-After is honoured up to the same cap)."""

    attempts: int = 3
    base_delay_s: float = 0.5
    factor: float = 2.0
    max_delay_s: float = 8.0

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError(f"attempts must be >= 1, got {self.attempts}")
        if self.base_delay_s < 0 or self.max_delay_s < 0 or self.factor < 1:
            raise ValueError("delays must be >= 0 and factor >= 1")

    def delay(self, retry: int, retry_after: float | None = None) -> float:
        """Seconds to wait before retry number ``retry`` (1-based)."""
        backoff = self.base_delay_s * self.factor ** (retry - 1)
        if retry_after is not None and retry_after > backoff:
            backoff = retry_after
        return min(backoff, self.max_delay_s)


async def with_retries(attempt: Callable[[], AsyncGenerator[Step, None]], policy: RetryPolicy, *,
                       label: str, model: str | None) -> AsyncGenerator[Step, None]:
    """Run ``attempt`` until it succeeds, fails for good, or attempts run out; always
    end with exactly one Outcome."""
    for number in range(1, policy.attempts + 1):
        try:
            async with aclosing(attempt()) as steps:
                async for step in steps:
                    if isinstance(step, Outcome):
                        step = dataclasses.replace(step, extra={**step.extra, "attempts": str(number)})
                    yield step
            return
        except BackendError as exc:
            last = number == policy.attempts
            if not exc.retryable or last:
                suffix = f" (after {number} attempts)" if number > 1 else ""
                yield Outcome(output=exc.partial_output, model_used=model, error=f"{exc}{suffix}",
                              retryable=exc.retryable, extra={"attempts": str(number)})
                return
            wait = policy.delay(number, exc.retry_after)
            restart = "; the answer restarts" if exc.partial_output else ""
            yield Output(kind="status", model=model,
                         text=f"{label}: {exc}; retrying in {wait:.2f}s (attempt {number + 1} of {policy.attempts})"
                              f"{restart}")
            await asyncio.sleep(wait)
