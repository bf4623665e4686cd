"""Every fault at once, at random: hub crashes, sidecar crashes and freezes, links cut.

An ``agentcom hub`` child process (fixed port, restarted on the same file after each
SIGKILL) sits behind ``support.Relay``; three ``agentcom sidecar`` processes reach it
through the relay and run short shell tasks that log each run. Faults chosen by the
printed seed hit whatever is going on at that moment. At the end: every task completed,
exactly one execution row each, the run that counted happened and none ran at a later
generation, every journal is empty, and the hub's totals equal its rows.
"""

from __future__ import annotations

import asyncio
import random
import signal
import time
from collections import Counter
from pathlib import Path
from typing import Callable

import pytest

from cli.conftest import HubProcess
from sidecar.harness import Api, eventually

from .support import (Relay, count_tasks, free_port, journal_tasks, read_db, record_run, runs_by_task, start_sidecars,
                      usd_nano)

pytestmark = pytest.mark.anyio

TASKS = 120
FAULTS = 10
FAULT_KINDS = ("hub_kill", "sidecar_kill", "sidecar_freeze", "cut_client", "cut_hub", "cut_client", "cut_hub")


async def test_random_crashes_freezes_and_cuts_lose_nothing_and_complete_nothing_twice(
        tmp_path: Path, hub_process: Callable[..., HubProcess], cli_env: dict[str, str], fault_seed: int) -> None:
    rng = random.Random(fault_seed)
    db = tmp_path / "hub.db"
    port = free_port()
    flags = ("--port", str(port), "--lease-ms", "2500", "--heartbeat-ms", "200")
    hub = hub_process(db, *flags)
    api = Api(hub.url, hub.admin_token)
    relay = await Relay(port).start()
    runs_log, work = tmp_path / "runs.log", tmp_path / "work"
    work.mkdir()
    sidecars = await start_sidecars(relay.url, db, cli_env, work, 3, "--concurrency", "2")
    started = time.monotonic()
    task_ids = [await api.submit(f"job {i}", complexity_tier="trivial", max_attempts=20, metadata={
        "shell_command": record_run(runs_log, f"sleep {rng.uniform(0.05, 0.4):.3f}"), "shell": True})
        for i in range(TASKS)]

    done: Counter[str] = Counter()
    try:
        for _ in range(FAULTS):
            await asyncio.sleep(rng.uniform(0.2, 0.8))
            kind = rng.choice(FAULT_KINDS)
            if kind == "hub_kill":
                assert hub.stop(signal.SIGKILL)[0] == -signal.SIGKILL
                hub = hub_process(db, *flags)
            elif kind == "sidecar_kill":
                victim = rng.choice(sidecars)
                victim.send_signal(signal.SIGKILL)
                await victim.wait()
                await victim.start()
            elif kind == "sidecar_freeze":
                victim = rng.choice(sidecars)
                victim.send_signal(signal.SIGSTOP)
                await asyncio.sleep(rng.uniform(0.2, 4.0))  # sometimes past the lease
                victim.send_signal(signal.SIGCONT)
            else:
                relay.cut(kind.removeprefix("cut_"))
            done[kind] += 1
        print(f"faults {dict(done)} by {time.monotonic() - started:.1f} s")
        await eventually(lambda: count_tasks(db, "completed") == TASKS, "every task completed", timeout=120)
        await eventually(lambda: not any(journal_tasks(s.state_dir) for s in sidecars), "every journal empty")
    finally:
        for sidecar in sidecars:
            sidecar.send_signal(signal.SIGCONT)
            await sidecar.stop()
        await relay.stop()
    snapshot = await api.call("GET", "/agentcom/api/snapshot")
    code, _, err = hub.stop(signal.SIGTERM)
    assert code == 0, err

    rows = read_db(db, "SELECT task_id, generation, status, cost_nusd FROM executions")
    assert sorted(t for t, _, _, _ in rows) == sorted(task_ids)  # one execution row per task
    assert {s for _, _, s, _ in rows} == {"success"}
    runs = runs_by_task(runs_log)
    for task_id, generation, _, _ in rows:
        assert max(runs[task_id]) == generation, (task_id, generation, runs[task_id])  # the run that counted, the last
    assert snapshot["queue"]["completed"] == TASKS
    assert usd_nano(snapshot["totals"]["cost_usd"]) == sum(c for _, _, _, c in rows)
    assert read_db(db, "PRAGMA integrity_check") == [("ok",)]
    again = sum(len(g) > 1 for g in runs.values())
    print(f"{TASKS} tasks through {sum(done.values())} faults: all completed once, {again} ran more than once, "
          f"{relay.accepted} sidecar connections, {time.monotonic() - started:.1f} s")
