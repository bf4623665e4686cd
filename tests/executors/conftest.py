"""Fixtures for executor tests: task factory, stand-in servers, an output recorder.

The root conftest loads pytest-jupyter, which runs every coroutine test on
``jp_asyncio_loop``: the stand-ins are therefore started on that loop by plain
fixtures (an async fixture would run on anyio's loop and serve nothing). Test modules
mark themselves ``anyio`` *and* use ``anyio_backend`` so anyio does not add a second
(trio) parametrization.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any, Awaitable, Callable

import pytest

from agentcom.executors import Output, RetryPolicy
from agentcom.pricing import PriceTable
from agentcom.protocol.messages import (
    Complexity,
    ComplexitySignals,
    InferredComplexity,
    KeywordSignals,
    RoutingDecision,
    TaskAssign,
)

MakeTask = Callable[..., TaskAssign]


def build_task(target_type: str = "sidecar", *, model: str | None = None, endpoint: str | None = None,
               metadata: dict[str, Any] | None = None, description: str = "Fix the typo in README.md",
               task_id: str = "task-1", generation: int = 1) -> TaskAssign:
    signals = ComplexitySignals(word_count=5, file_count=1, verification_count=0,
                                keywords=KeywordSignals(complex=False, trivial=True))
    return TaskAssign(
        task_id=task_id, generation=generation, description=description, priority="normal",
        metadata=metadata or {}, assigned_at=0,
        complexity=Complexity(effective_tier="standard", source="inferred", explicit_tier=None,
                              inferred=InferredComplexity(tier="standard", confidence=0.5, signals=signals)),
        routing_decision=RoutingDecision(
            effective_tier="standard", target_type=target_type, selected_endpoint=endpoint,
            selected_model=model, fallback_used=False, fallback_from_tier=None, fallback_reason=None,
            candidate_count=1, classification_reason="test", estimated_cost_tier="free", decided_at=0),
    )


@pytest.fixture
def make_task() -> MakeTask:
    return build_task


class Recorder:
    """An ``on_output`` callback that keeps what it is given."""

    def __init__(self) -> None:
        self.outputs: list[Output] = []

    async def __call__(self, output: Output) -> None:
        self.outputs.append(output)

    def kind(self, kind: str) -> list[Output]:
        return [o for o in self.outputs if o.kind == kind]

    def texts(self, kind: str) -> list[str]:
        return [o.text for o in self.kind(kind)]


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture(scope="session")
def prices() -> PriceTable:
    return PriceTable.load()


@pytest.fixture
def fast_retry() -> RetryPolicy:
    return RetryPolicy(attempts=3, base_delay_s=0.001, max_delay_s=0.01)


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    path = tmp_path / "work"
    path.mkdir()
    return path


def _pid_alive(pid: int) -> bool:
    """Whether a process exists and is not a zombie (orphans may wait unreaped under PID 1)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


@pytest.fixture
def pid_alive() -> Callable[[int], bool]:
    return _pid_alive


async def _eventually(predicate: Callable[[], bool], within_s: float = 10.0) -> bool:
    """Poll ``predicate`` until true or ``within_s`` passes (a bound, not a timing check)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within_s
    while not predicate():
        if loop.time() > deadline:
            return False
        await asyncio.sleep(0.02)
    return True


@pytest.fixture
def eventually() -> Callable[..., Awaitable[bool]]:
    return _eventually
