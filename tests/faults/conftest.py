"""The fault suite runs hubs as ``agentcom hub`` child processes: the fixtures of tests/cli do that."""

from __future__ import annotations

import os
import random

import pytest

from pathlib import Path

from cli.conftest import clean_env, hub_process  # noqa: F401  (fixtures shared with the CLI tests)


@pytest.fixture
def cli_env(tmp_path: Path) -> dict[str, str]:
    """The CLI tests' environment, with explicit routing: the suite tests recovery, not where work runs
    (model routing would hold every untiered task ``fallback_wait_ms`` for an endpoint first)."""
    home = tmp_path / "home"
    home.mkdir()
    return {**clean_env(home), "AGENTCOM_ROUTING": "explicit"}


@pytest.fixture
def fault_seed() -> int:
    """The seed of this run's random faults: ``AGENTCOM_FAULT_SEED`` replays one; printed so a failure can be."""
    seed = int(os.environ.get("AGENTCOM_FAULT_SEED") or random.randrange(2**32))
    print(f"fault seed: {seed} (replay with AGENTCOM_FAULT_SEED={seed})")
    return seed
