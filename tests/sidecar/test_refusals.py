"""Which failures are retryable, end to end: a real hub, real sidecars, the real Dispatcher.

A sidecar whose own set-up cannot run a task (no API key, no Ollama endpoint, no executor for the
target) rejects it, and the hub gives it to a sidecar that can, instead of the task ending
``failed``. An executor that crashes fails the task retryably, whether the dispatcher catches the
crash or the sidecar's runtime does: both follow one rule.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any, AsyncIterator

import pytest

from agentcom.executors import Dispatcher, Output, Step
from agentcom.pricing import PriceTable
from agentcom.protocol.messages import TaskAssign
from agentcom.sidecar.runtime import Sidecar

from .harness import Env, e2e, eventually

pytestmark = pytest.mark.usefixtures("anyio_backend")

EXPLICIT = {"routing": "explicit"}  # route by tier alone, at once: these tests are about who runs it


async def identified(env: Env, agent_id: str) -> Any:
    return await eventually(lambda: env.hub.core.agents.get(agent_id), f"{agent_id} to identify")


@pytest.mark.anyio
@pytest.mark.parametrize("backend", ["claude", "ollama"])
async def test_a_sidecar_that_cannot_run_a_task_rejects_it_and_another_runs_it(tmp_path: Path, backend: str) -> None:
    """The first sidecar lacks the key (claude) or the Ollama server (ollama) the second one has."""
    targets = {"claude": "claude:claude-sonnet-4-5", "ollama": "ollama:simulated-llama3.2"}
    async with e2e(tmp_path, **EXPLICIT, tier_targets={"standard": targets[backend]}) as env:
        api = env.api
        standin: Any
        if backend == "claude":
            standin = await env.anthropic()
            lacking = await env.sidecar("a-lacking", "--anthropic-base-url", standin.url, env={"ANTHROPIC_API_KEY": ""})
            await identified(env, "a-lacking")  # first to join: first to be offered the task
            await env.sidecar("b-able", "--anthropic-base-url", standin.url)
        else:
            standin = await env.ollama()
            lacking = await env.sidecar("a-lacking")
            await identified(env, "a-lacking")
            await env.sidecar("b-able", "--ollama-url", standin.url)
        await identified(env, "b-able")

        task_id = await api.submit("Explain what a binary search does", complexity_tier="standard")
        task = await eventually(lambda: api.status_is(task_id, "completed", "failed", "dead_letter"),
                                "the task to finish")
        assert task["status"] == "completed"
        assert task["attempts"] == 2  # offered to the sidecar that could not, then to the one that could
        [row] = await api.executions(task_id)  # the rejection ran nothing
        assert (row["agent_id"], row["status"]) == ("b-able", "success")
        assert "rejected, this sidecar cannot run it" in lacking.output()


@pytest.mark.anyio
async def test_a_target_no_sidecar_has_is_rejected_until_dead_letter_not_failed(tmp_path: Path) -> None:
    """Nobody can run it: each rejection uses an attempt, and the task ends in dead letter (retryable,
    revivable by `retry` once a sidecar with the executor joins), with nothing executed."""
    async with e2e(tmp_path, **EXPLICIT, tier_targets={"standard": "local:smollm2"}) as env:
        api = env.api
        await env.sidecar("agent-1")  # no --local-model: no executor for the local target
        await identified(env, "agent-1")
        task_id = await api.submit("Explain what a binary search does", complexity_tier="standard", max_attempts=2)
        task = await eventually(lambda: api.status_is(task_id, "completed", "failed", "dead_letter"),
                                "the task to finish")
        assert (task["status"], task["attempts"]) == ("dead_letter", 2)
        assert "cannot run it here: no executor for target type 'local'" in task["last_error"]
        assert await api.executions(task_id) == []


class CrashingExecutor:
    """A backend with a bug: it raises after its first output, as an unexpected library error would."""

    target_type = "claude"  # stands in for the claude backend of this sidecar

    async def run(self, task: TaskAssign) -> AsyncIterator[Step]:
        yield Output(kind="status", text="starting")
        raise RuntimeError("unexpected state in the backend")


class CrashingRunner:
    """A runner that raises past the dispatcher (the sidecar runtime's own safety net catches it)."""

    async def execute(self, task: TaskAssign, on_output: Any) -> Any:
        raise RuntimeError("unexpected state in the runner")


@pytest.mark.anyio
@pytest.mark.parametrize("where", ["dispatcher", "runtime"])
async def test_an_executor_crash_is_retried_then_dead_lettered(tmp_path: Path, where: str) -> None:
    """One rule wherever the crash is caught: retryable (max_attempts bounds it), never ``failed`` at once."""
    async with e2e(tmp_path, **EXPLICIT, tier_targets={"standard": "claude:claude-sonnet-4-5"}) as env:
        api = env.api
        runner: Any = CrashingRunner()
        if where == "dispatcher":
            runner = Dispatcher(PriceTable.load(), workdir=env.workdir, executors={"claude": CrashingExecutor()})
        sidecar = Sidecar(env.hub.url, "agent-1", env.hub.create_agent_token("agent-1"), workdir=env.workdir,
                          state_dir=tmp_path / "state", runner=runner, resource_interval_s=3_600)
        serving = asyncio.create_task(sidecar.run())
        try:
            task_id = await api.submit("Explain what a binary search does", complexity_tier="standard",
                                       max_attempts=2)
            task = await eventually(lambda: api.status_is(task_id, "completed", "failed", "dead_letter"),
                                    "the task to finish")
            assert (task["status"], task["attempts"]) == ("dead_letter", 2)
            assert "RuntimeError: unexpected state in the" in task["last_error"]
            rows = await api.executions(task_id)
            assert len(rows) == 2 and {r["status"] for r in rows} == {"failed"}
        finally:
            sidecar.stop()
            await asyncio.wait_for(serving, 30)
