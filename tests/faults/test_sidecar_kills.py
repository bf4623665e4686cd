"""``agentcom sidecar`` processes SIGKILLed and restarted at random during a shell workload.

Three sidecars (concurrency 2, each with its own journal directory) work through short shell
tasks on an ``agentcom hub`` child process. Every few hundred milliseconds one of them,
chosen by the printed seed, is SIGKILLed (mid-task, mid-frame, wherever it is) and
restarted on the same journal. Each task appends its id and generation to a file when it
runs, so the test sees every run. Nothing may be lost (every task completes), nothing
completes twice (one execution row and one ``completed`` event per task), the run that
counted did happen, no run belongs to a generation after the one that completed, and
every journal ends empty (every outcome was acknowledged or handed back).
"""

from __future__ import annotations

import asyncio
import random
import signal
import time
from pathlib import Path
from typing import Callable

import pytest

from cli.conftest import HubProcess
from sidecar.harness import Api, eventually

from .support import journal_tasks, read_db, record_run, runs_by_task, start_sidecars

pytestmark = pytest.mark.anyio

TASKS = 120
SIDECARS = 3
KILLS = 4


async def _remaining(api: Api) -> int:
    snapshot = await api.call("GET", "/agentcom/api/snapshot")
    return TASKS - int(snapshot["queue"]["completed"])


async def _done(api: Api) -> bool:
    return await _remaining(api) == 0


async def test_sidecars_sigkilled_and_restarted_lose_nothing_and_complete_nothing_twice(
        tmp_path: Path, hub_process: Callable[..., HubProcess], cli_env: dict[str, str], fault_seed: int) -> None:
    rng = random.Random(fault_seed)
    db = tmp_path / "hub.db"
    hub = hub_process(db, "--lease-ms", "4000", "--heartbeat-ms", "200")
    api = Api(hub.url, hub.admin_token)
    work = tmp_path / "work"
    work.mkdir()
    runs_log = tmp_path / "runs.log"
    sidecars = await start_sidecars(hub.url, db, cli_env, work, SIDECARS, "--concurrency", "2")
    started = time.monotonic()
    task_ids = []
    for i in range(TASKS):
        command = record_run(runs_log, f"sleep {rng.uniform(0.1, 0.5):.3f}")
        task_ids.append(await api.submit(f"job {i}", complexity_tier="trivial", max_attempts=10,
                                         metadata={"shell_command": command, "shell": True}))

    kills: list[str] = []
    try:
        while len(kills) < KILLS and await _remaining(api) > 10:
            victim = rng.choice(sidecars)  # once it is up and in the middle of something

            async def busy_or_done() -> str | None:
                if "identified as" in victim.output() and journal_tasks(victim.state_dir):
                    return "busy"
                return "done" if await _remaining(api) <= 10 else None

            if await eventually(busy_or_done, f"{victim.agent_id} at work", timeout=60) == "done":
                break
            await asyncio.sleep(rng.uniform(0, 0.3))
            victim.send_signal(signal.SIGKILL)
            assert await victim.wait() == -signal.SIGKILL
            kills.append(victim.agent_id)
            await victim.start()  # on the same --state-dir: its journal
        print(f"killed {kills} by {time.monotonic() - started:.1f} s")
        assert len(kills) >= 2, "the workload ended before the faults"
        await eventually(lambda: _done(api), "every task completed", timeout=90)
        await eventually(lambda: not any(journal_tasks(s.state_dir) for s in sidecars), "every journal empty")
    finally:
        for sidecar in sidecars:
            await sidecar.stop()
    elapsed = time.monotonic() - started
    code, _, err = hub.stop(signal.SIGTERM)
    assert code == 0, err

    assert dict(read_db(db, "SELECT task_id, status FROM tasks")) == {t: "completed" for t in task_ids}
    rows = read_db(db, "SELECT task_id, generation, status FROM executions")
    assert sorted(t for t, _, _ in rows) == sorted(task_ids)  # one execution row per task
    assert {s for _, _, s in rows} == {"success"}
    events = dict(read_db(db, "SELECT task_id, count(*) FROM task_history WHERE event = 'completed' GROUP BY task_id"))
    assert events == {t: 1 for t in task_ids}
    runs = runs_by_task(runs_log)
    for task_id, generation, _ in rows:
        assert generation in runs[task_id], (task_id, generation, runs[task_id])  # the run that counted happened
        assert max(runs[task_id]) == generation, (task_id, generation, runs[task_id])  # none ran after it
    again = sum(1 for gens in runs.values() if len(gens) > 1)
    print(f"{TASKS} shell tasks, {len(kills)} sidecar SIGKILLs: all completed once; {again} ran more than once "
          f"(killed mid-run, run again on resume or after a reclaim); {elapsed:.1f} s")
