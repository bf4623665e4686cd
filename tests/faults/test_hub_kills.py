"""The hub SIGKILLed five times at random points of a 2,000-task workload, restarted on the same DB.

The hub is ``agentcom hub`` in a child process on a fixed port; four protocol sidecars
(``support.RecordingSidecar``) work through the queue, resend unacknowledged outcomes on
resume, and write down every assignment they run and every acknowledgement they get. The
kill points (completions acknowledged so far, plus a few milliseconds) come from the
printed seed. After each restart, before any sidecar is back: the totals the hub reports
equal the sum of its execution rows. At the end: every task is completed or dead-lettered,
no task ran again after its completion was acknowledged, and there is exactly one
execution row per completed task, costs summing to what the hub reports.
"""

from __future__ import annotations

import asyncio
import random
import signal
import time
from pathlib import Path
from typing import Callable

import pytest

from agentcom.client import Feed, FeedStream
from cli.conftest import HubProcess, agentcom
from sidecar.harness import Api, eventually

from .support import (Ledger, RecordingSidecar, count_tasks, free_port, job_cost, journal_tasks, read_db, record_run,
                      runs_by_task, start_sidecars, usd_nano)

pytestmark = pytest.mark.anyio

TASKS = 2_000
UP_FRONT = 1_500  # the rest are submitted while the hub is being killed
KILLS = 5
SIDECARS = 4
PRIORITIES = ("urgent", "high", "normal", "low")


async def _submit(api: Api, rng: random.Random, jobs: range) -> list[str]:
    gate = asyncio.Semaphore(8)

    async def one(i: int, priority: str) -> str:
        async with gate:
            return await api.submit(f"job {i}", priority=priority)

    return list(await asyncio.gather(*(one(i, rng.choice(PRIORITIES)) for i in jobs)))


async def _keep_submitting(api: Api, rng: random.Random, jobs: range, answered: list[str]) -> int:
    """Submit jobs, four at a time, through the crashes; ``answered`` gets the ids the hub returned.

    Returns how many submissions got no answer (the hub died under them): those may or may not exist.
    """
    lost = 0
    todo = iter(jobs)

    async def submitter() -> None:
        nonlocal lost
        for i in todo:
            try:
                answered.append(await api.submit(f"job {i}", priority=rng.choice(PRIORITIES)))
            except (OSError, AssertionError):  # refused while down, or cut off mid-request
                lost += 1
                await asyncio.sleep(0.01)

    await asyncio.gather(*(submitter() for _ in range(4)))
    return lost


async def _ask_for_snapshots(stream: FeedStream) -> None:
    """A fresh snapshot every 250 ms: some come from just before a crash, some from just after."""
    while True:
        await asyncio.sleep(0.25)
        stream.request_snapshot()


async def _totals_match_rows(api: Api, db: Path) -> int:
    """The snapshot's totals equal the sum of the execution rows, in the API and on disk; returns the cost (nUSD)."""
    snapshot = await api.call("GET", "/agentcom/api/snapshot")
    rows = await api.call("GET", "/agentcom/api/executions")
    [(cost_nusd, tokens_in)] = read_db(db, "SELECT coalesce(sum(cost_nusd), 0), coalesce(sum(tokens_in), 0) "
                                           "FROM executions")
    totals = snapshot["totals"]
    assert not any(a["state"] != "offline" for a in snapshot["agents"]), snapshot["agents"]  # nothing moves meanwhile
    assert snapshot["queue"]["completed"] == len(rows), (snapshot["queue"], len(rows))
    assert usd_nano(totals["cost_usd"]) == sum(usd_nano(r["estimated_cost_usd"]) for r in rows) == cost_nusd
    assert totals["tokens_in"] == sum(r["tokens_in"] for r in rows) == tokens_in
    return int(cost_nusd)


async def test_hub_sigkilled_five_times_mid_workload_loses_and_repeats_nothing(
        tmp_path: Path, hub_process: Callable[..., HubProcess], cli_env: dict[str, str], fault_seed: int) -> None:
    rng = random.Random(fault_seed)
    db = tmp_path / "hub.db"
    port = str(free_port())
    flags = ("--port", port, "--lease-ms", "10000", "--heartbeat-ms", "500")
    hub = hub_process(db, *flags)
    tokens = {f"agent-{i}": agentcom("token", "create", f"agent-{i}", "--db", str(db), env=cli_env).stdout.strip()
              for i in range(SIDECARS)}
    api = Api(hub.url, hub.admin_token)
    started = time.monotonic()
    task_ids = await _submit(api, rng, range(UP_FRONT))
    feed, snapshots = Feed(), []  # a dashboard that lives through the crashes
    feed.add_listener(lambda kind, data: kind == "snapshot" and snapshots.append(data["queue"] | data["totals"]))
    stream = FeedStream(feed, hub.url, hub.admin_token, initial_backoff=0.05, max_backoff=0.2).start()
    await stream.wait_open()
    asking = asyncio.ensure_future(_ask_for_snapshots(stream))
    submitter = asyncio.ensure_future(_keep_submitting(api, rng, range(UP_FRONT, TASKS), task_ids))

    ledger, gate = Ledger(), asyncio.Event()
    gate.set()
    sidecars = [RecordingSidecar(hub.url, agent_id, token, ledger, concurrency=rng.randint(1, 8), gate=gate).start()
                for agent_id, token in tokens.items()]
    kill_points = sorted(rng.sample(range(20, TASKS - 100), KILLS))  # reachable though some submissions are lost
    print(f"kill after {kill_points} acknowledged completions")
    try:
        for point in kill_points:
            await eventually(lambda: len(ledger.acked) >= point, f"{point} completions acknowledged", timeout=120)
            await asyncio.sleep(rng.uniform(0, 0.01))
            gate.clear()  # the sidecars stay away until the restarted hub has been checked
            code, _, _ = hub.stop(signal.SIGKILL)
            assert code == -signal.SIGKILL
            hub = hub_process(db, *flags)
            dashboard_connects = stream.connects  # the loop was blocked: it cannot have reconnected yet
            assert hub.url == api.url
            await _totals_match_rows(api, db)
            gate.set()
        lost = await submitter
        submitted_s = time.monotonic() - started
        await eventually(lambda: _settled(db), "every task completed or dead-lettered", timeout=120)
        await eventually(lambda: stream.connects > dashboard_connects, "the dashboard back after the last restart")
    finally:
        submitter.cancel()
        asking.cancel()
        await stream.stop()
        for sidecar in sidecars:
            await sidecar.stop()
    await eventually(lambda: _all_offline(api), "the hub saw the sidecars go")
    total_cost = await _totals_match_rows(api, db)
    elapsed = time.monotonic() - started
    code, _, err = hub.stop(signal.SIGTERM)
    assert code == 0, err

    status = dict(read_db(db, "SELECT task_id, status FROM tasks"))
    assert set(task_ids) <= set(status)  # every submission the hub answered is kept
    assert len(status) <= len(task_ids) + lost
    assert set(status.values()) <= {"completed", "dead_letter"}, sorted(set(status.values()))
    completed = {t for t, s in status.items() if s == "completed"}
    assert ledger.run_after_ack == []  # nothing ran again once its completion was acknowledged
    assert ledger.acked <= completed
    runs = dict(read_db(db, "SELECT task_id, count(*) FROM executions GROUP BY task_id"))
    assert runs == {t: 1 for t in completed}  # one row per completed task, none for the others
    events = dict(read_db(db, "SELECT task_id, count(*) FROM task_history WHERE event = 'completed' GROUP BY task_id"))
    assert events == {t: 1 for t in completed}
    descriptions = dict(read_db(db, "SELECT task_id, description FROM tasks"))
    assert total_cost == sum(usd_nano(job_cost(descriptions[t])[0]) for t in completed)
    assert read_db(db, "PRAGMA integrity_check") == [("ok",)]
    for snap in snapshots:  # every snapshot the dashboard got is consistent in itself
        assert snap["tokens_in"] == 3 * snap["completed"], snap
    completed_seen = [snap["completed"] for snap in snapshots]
    assert completed_seen == sorted(completed_seen), completed_seen  # no completion shown was lost in a crash
    repeated = sum(1 for n in ledger.runs.values() if n > 1)
    print(f"{len(status)} tasks ({lost} submissions unanswered), {KILLS} SIGKILLs: {len(completed)} completed, "
          f"{len(status) - len(completed)} dead-lettered, {len(snapshots)} dashboard snapshots, "
          f"{repeated} run more than once before their ack, {ledger.resent} outcomes resent on resume, "
          f"refused {dict(ledger.refused)}, {ledger.connects} sessions; all submitted by {submitted_s:.1f} s, "
          f"whole run {elapsed:.1f} s")


async def _all_offline(api: Api) -> bool:
    snapshot = await api.call("GET", "/agentcom/api/snapshot")
    return all(a["state"] == "offline" for a in snapshot["agents"])


def _settled(db: Path) -> bool:
    [(open_tasks,)] = read_db(db, "SELECT count(*) FROM tasks WHERE status NOT IN ('completed', 'dead_letter')")
    return open_tasks == 0


async def test_hub_sigkilled_under_agentcom_sidecar_processes_runs_each_generation_once(
        tmp_path: Path, hub_process: Callable[..., HubProcess], cli_env: dict[str, str], fault_seed: int) -> None:
    """The same crash, with ``agentcom sidecar`` processes and their journals: work outlives the hub.

    A sidecar's task keeps running while the hub is down; on resume the hub continues it. So
    each (task, generation) runs at most once: a second run would be work repeated after its
    outcome was acknowledged (or still in hand).
    """
    rng = random.Random(fault_seed)
    tasks, kills = 150, 3
    db = tmp_path / "hub.db"
    flags = ("--port", str(free_port()), "--lease-ms", "10000", "--heartbeat-ms", "200")
    hub = hub_process(db, *flags)
    api = Api(hub.url, hub.admin_token)
    runs_log, work = tmp_path / "runs.log", tmp_path / "work"
    work.mkdir()
    sidecars = await start_sidecars(hub.url, db, cli_env, work, 2, "--concurrency", "3")
    task_ids = [await api.submit(f"job {i}", complexity_tier="trivial", metadata={
        "shell_command": record_run(runs_log, f"sleep {rng.uniform(0.02, 0.2):.3f}"), "shell": True})
        for i in range(tasks)]
    kill_points = sorted(rng.sample(range(10, tasks - 30), kills))
    print(f"kill after {kill_points} completions")
    try:
        for point in kill_points:
            await eventually(lambda: count_tasks(db, "completed") >= point, f"{point} completions", timeout=60)
            await asyncio.sleep(rng.uniform(0, 0.1))
            assert hub.stop(signal.SIGKILL)[0] == -signal.SIGKILL
            hub = hub_process(db, *flags)
        await eventually(lambda: _settled(db), "every task completed or dead-lettered", timeout=90)
        await eventually(lambda: not any(journal_tasks(s.state_dir) for s in sidecars), "every journal empty")
    finally:
        for sidecar in sidecars:
            await sidecar.stop()
    code, _, err = hub.stop(signal.SIGTERM)
    assert code == 0, err

    status = dict(read_db(db, "SELECT task_id, status FROM tasks"))
    assert set(status) == set(task_ids) and set(status.values()) <= {"completed", "dead_letter"}
    completed = {t for t, s in status.items() if s == "completed"}
    rows = read_db(db, "SELECT task_id, generation FROM executions")
    assert sorted(t for t, _ in rows) == sorted(completed)  # one row per completed task
    runs = runs_by_task(runs_log)
    assert all(len(gens) == len(set(gens)) for gens in runs.values()), runs  # no generation ran twice
    for task_id, generation in rows:
        assert max(runs[task_id]) == generation, (task_id, generation, runs[task_id])  # the run that counted, the last
    print(f"{tasks} shell tasks, {kills} hub SIGKILLs: {len(completed)} completed, "
          f"{sum(len(g) > 1 for g in runs.values())} handed out again after a crash")
