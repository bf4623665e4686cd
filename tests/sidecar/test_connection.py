"""Reconnect delays (``connection.Backoff``): exponential growth, a cap, and jitter within its range.

Why it matters: a hub restart drops every sidecar at once; without jitter they would all come back
in the same instant, and without the cap a long outage would leave sidecars asleep long after the
hub is back.
"""

from __future__ import annotations

import random
from typing import Iterator

import pytest

from agentcom.sidecar.connection import Backoff

SAMPLES = 400


@pytest.fixture(autouse=True)
def seeded() -> Iterator[None]:
    """Backoff draws from the module-level generator: a fixed seed makes every run draw the same
    (and the generator's state is given back afterwards)."""
    state = random.getstate()
    random.seed(20_260_101)
    yield
    random.setstate(state)


def draws(backoff: Backoff, attempt: int) -> list[float]:
    return [backoff.delay(attempt) for _ in range(SAMPLES)]


def test_delays_double_with_each_attempt_within_equal_jitter() -> None:
    """Attempt n waits between half and all of ``base * 2**n``: each range starts where the last ended."""
    backoff = Backoff(base_s=0.5, cap_s=1_000.0)
    for attempt in range(8):
        ceiling = 0.5 * 2 ** attempt
        delays = draws(backoff, attempt)
        assert all(ceiling / 2 <= d <= ceiling for d in delays), attempt
        # jitter spreads over the range (not a fixed point at either end)
        assert max(delays) - min(delays) > ceiling / 2 * 0.9, attempt
    assert min(draws(backoff, 5)) >= max(draws(backoff, 4))  # later attempts never wait less


def test_delays_stop_growing_at_the_cap() -> None:
    backoff = Backoff(base_s=0.5, cap_s=30.0)
    for attempt in (6, 7, 10, 30, 31, 10_000):  # 0.5 * 2**6 = 32 > 30: capped from attempt 6 on
        delays = draws(backoff, attempt)
        assert all(15.0 <= d <= 30.0 for d in delays), attempt
        assert max(delays) > 29.0 and min(delays) < 16.0, attempt  # the whole jitter range, up to the cap
    assert all(d <= 16.0 for d in draws(backoff, 5))  # below the cap it still grows: 0.5 * 2**5 = 16


def test_a_small_cap_bounds_even_the_first_delay() -> None:
    """``--reconnect-max 0.1`` (the CLI's floor) must hold from the first attempt."""
    backoff = Backoff(base_s=0.5, cap_s=0.1)
    assert all(0.05 <= d <= 0.1 for attempt in range(5) for d in draws(backoff, attempt))
