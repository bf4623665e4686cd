"""Backoff arithmetic of RetryPolicy (deterministic: no jitter)."""

from __future__ import annotations

import pytest

from agentcom.executors import RetryPolicy


def test_exponential_backoff_is_capped() -> None:
    policy = RetryPolicy(attempts=6, base_delay_s=0.5, factor=2, max_delay_s=3)
    assert [policy.delay(n) for n in range(1, 6)] == [0.5, 1.0, 2.0, 3, 3]


def test_retry_after_is_honoured_up_to_the_cap() -> None:
    policy = RetryPolicy(base_delay_s=0.5, max_delay_s=8)
    assert policy.delay(1, retry_after=5) == 5
    assert policy.delay(1, retry_after=60) == 8
    assert policy.delay(3, retry_after=0.1) == 2.0  # never shorter than the backoff


@pytest.mark.parametrize("kwargs", [{"attempts": 0}, {"base_delay_s": -1}, {"factor": 0.5}])
def test_invalid_policies(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        RetryPolicy(**kwargs)  # type: ignore[arg-type]
