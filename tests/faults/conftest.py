"""The fault suite runs hubs as ``agentcom hub`` child processes: the fixtures of tests/cli do that."""

from __future__ import annotations

import os
import random

import pytest

from cli.conftest import cli_env, hub_process  # noqa: F401  (fixtures shared with the CLI tests)


@pytest.fixture
def fault_seed() -> int:
    """The seed of this run's random faults: ``AGENTCOM_FAULT_SEED`` replays one; printed so a failure can be."""
    seed = int(os.environ.get("AGENTCOM_FAULT_SEED") or random.randrange(2**32))
    print(f"fault seed: {seed} (replay with AGENTCOM_FAULT_SEED={seed})")
    return seed
