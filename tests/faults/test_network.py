"""Connections cut under sidecars and dashboards, through a relay between them and the hub.

The hub is an ``agentcom hub`` child process; sidecars (``agentcom sidecar`` processes) and
dashboards (``FeedStream``, the client's reconnecting dashboard socket) reach it through
``support.Relay``, which can reset either end of every live link. A cut never stops a
sidecar's work: it reconnects, resumes, and each task runs and completes exactly once. A
cut dashboard never disturbs the hub: it reconnects, and every snapshot it is sent is
consistent in itself (queue counts add up, money matches the completions counted).
"""

from __future__ import annotations

import asyncio
import random
import signal
import time
from pathlib import Path
from typing import Any, Callable

import pytest

from agentcom.client import Feed, FeedStream
from cli.conftest import HubProcess, agentcom
from sidecar.harness import Api, eventually

from .support import (Ledger, RecordingSidecar, Relay, count_tasks, job_cost, read_db, record_run, runs_by_task,
                      start_sidecars, usd_nano)

pytestmark = pytest.mark.anyio

HUB_FLAGS = ("--lease-ms", "2500", "--heartbeat-ms", "200", "--batch-interval-ms", "50")


async def _relayed_hub(hub_process: Callable[..., HubProcess], db: Path) -> tuple[HubProcess, Relay, Api]:
    """A hub child process, a relay in front of it, and the admin API (straight to the hub)."""
    hub = hub_process(db, *HUB_FLAGS)
    relay = await Relay(int(hub.url.rsplit(":", 1)[1])).start()
    return hub, relay, Api(hub.url, hub.admin_token)


@pytest.mark.parametrize("side", ["client", "hub"])
async def test_a_link_cut_mid_task_resumes_and_the_task_runs_and_completes_once(
        tmp_path: Path, hub_process: Callable[..., HubProcess], cli_env: dict[str, str], side: str) -> None:
    db = tmp_path / "hub.db"
    hub, relay, api = await _relayed_hub(hub_process, db)
    runs_log, work = tmp_path / "runs.log", tmp_path / "work"
    work.mkdir()
    [sidecar] = await start_sidecars(relay.url, db, cli_env, work, 1, "--concurrency", "3")
    try:
        task_id = await api.submit("survives a cut", complexity_tier="trivial", metadata={
            "shell_command": record_run(runs_log, "sleep 1.5; echo finished"), "shell": True})
        await eventually(lambda: task_id in runs_by_task(runs_log), "the task started")
        before = await api.task(task_id)
        assert before["status"] == "working"
        assert relay.cut(side) == 1
        done = await eventually(lambda: api.status_is(task_id, "completed", "failed", "dead_letter"), "the outcome")
    finally:
        await sidecar.stop()
        await relay.stop()
    assert sidecar.output().count("identified as") == 2  # it reconnected, once
    assert relay.accepted == 2
    assert done["status"] == "completed" and done["result"]["output"].strip() == "finished"
    assert (done["generation"], done["attempts"]) == (before["generation"], 1)  # continued, not reassigned
    assert runs_by_task(runs_log)[task_id] == [before["generation"]]  # the work itself never stopped
    assert not any(h["event"] in ("reclaimed", "rejected") for h in done["history"])
    assert read_db(db, "SELECT count(*) FROM executions WHERE task_id = ?", task_id) == [(1,)]
    code, _, err = hub.stop(signal.SIGTERM)
    assert code == 0, err


async def test_a_link_gone_silent_is_given_up_by_both_ends_and_the_task_completes_once(
        tmp_path: Path, hub_process: Callable[..., HubProcess], cli_env: dict[str, str]) -> None:
    db = tmp_path / "hub.db"
    hub, relay, api = await _relayed_hub(hub_process, db)
    runs_log, work = tmp_path / "runs.log", tmp_path / "work"
    work.mkdir()
    [sidecar] = await start_sidecars(relay.url, db, cli_env, work, 1)
    try:
        task_id = await api.submit("outlives a dead link", complexity_tier="trivial", metadata={
            "shell_command": record_run(runs_log, "sleep 1; echo finished"), "shell": True})
        await eventually(lambda: task_id in runs_by_task(runs_log), "the task started")
        assert relay.freeze() == 1  # no FIN, no RST: nothing more arrives either way
        done = await eventually(lambda: api.status_is(task_id, "completed", "failed", "dead_letter"), "the outcome")
    finally:
        await sidecar.stop()
        await relay.stop()
    assert "no word from the hub" in sidecar.output()  # the sidecar noticed by itself
    assert sidecar.output().count("identified as") == 2 and relay.accepted == 2
    reclaim = next(h for h in done["history"] if h["event"] == "reclaimed")  # so did the hub
    assert reclaim["details"] == {"reason": "lease expired"}
    assert done["status"] == "completed"
    runs = runs_by_task(runs_log)[task_id]
    assert runs == sorted(set(runs)) and runs[-1] == done["generation"]  # each generation once, the last counted
    assert read_db(db, "SELECT generation FROM executions WHERE task_id = ?", task_id) == [(done["generation"],)]
    code, _, err = hub.stop(signal.SIGTERM)
    assert code == 0, err


async def test_links_cut_at_random_during_a_workload_every_task_runs_and_completes_once(
        tmp_path: Path, hub_process: Callable[..., HubProcess], cli_env: dict[str, str], fault_seed: int) -> None:
    rng = random.Random(fault_seed)
    tasks, cuts = 60, 8
    db = tmp_path / "hub.db"
    hub, relay, api = await _relayed_hub(hub_process, db)
    runs_log, work = tmp_path / "runs.log", tmp_path / "work"
    work.mkdir()
    [sidecar] = await start_sidecars(relay.url, db, cli_env, work, 1, "--concurrency", "3")
    started = time.monotonic()
    task_ids = [await api.submit(f"job {i}", complexity_tier="trivial", metadata={
        "shell_command": record_run(runs_log, f"sleep {rng.uniform(0.05, 0.4):.3f}"), "shell": True})
        for i in range(tasks)]
    sides = []
    try:
        for _ in range(cuts):
            await asyncio.sleep(rng.uniform(0.1, 0.6))
            await eventually(lambda: relay.live(), "the sidecar connected again")
            sides.append(rng.choice(("client", "hub")))
            relay.cut(sides[-1])
        await eventually(lambda: count_tasks(db, "completed") == tasks, "every task completed", timeout=90)
    finally:
        await sidecar.stop()
        await relay.stop()
    print(f"{tasks} tasks, links cut at {sides}: {relay.accepted} connections, {time.monotonic() - started:.1f} s")
    # every task ran once: no cut stopped or repeated any work
    assert {t: len(g) for t, g in runs_by_task(runs_log).items()} == {t: 1 for t in task_ids}
    rows = dict(read_db(db, "SELECT task_id, count(*) FROM executions GROUP BY task_id"))
    assert rows == {t: 1 for t in task_ids}
    assert relay.accepted == cuts + 1
    code, _, err = hub.stop(signal.SIGTERM)
    assert code == 0, err


async def test_a_dashboard_link_cut_reconnects_to_consistent_snapshots_and_the_hub_runs_on(
        tmp_path: Path, hub_process: Callable[..., HubProcess], cli_env: dict[str, str], fault_seed: int) -> None:
    rng = random.Random(fault_seed)
    tasks, cuts = 600, 4
    db = tmp_path / "hub.db"
    hub, relay, api = await _relayed_hub(hub_process, db)
    feed = Feed()
    snapshots: list[tuple[int, dict[str, Any]]] = []  # (connection number, snapshot)
    feed.add_listener(lambda kind, data: snapshots.append((stream.connects, data)) if kind == "snapshot" else None)
    for i in range(tasks):
        await api.submit(f"task {i}")  # every one costs job_cost("task i") = job 0's price
    stream = FeedStream(feed, relay.url, hub.admin_token, initial_backoff=0.05, max_backoff=0.2).start()
    await stream.wait_open()
    unit_cost, _ = job_cost("no number")
    token = agentcom("token", "create", "agent-1", "--db", str(db), env=cli_env).stdout.strip()
    ledger = Ledger()
    sidecar = RecordingSidecar(hub.url, "agent-1", token, ledger, concurrency=1).start()  # straight to the hub
    sides = []
    try:
        for n in range(cuts):
            await eventually(lambda: ledger.acked and snapshots[-1][0] == n + 1 and relay.live(), "a snapshot")
            await asyncio.sleep(rng.uniform(0, 0.3))
            sides.append(rng.choice(("client", "hub")))
            assert relay.cut(sides[-1]) == 1
            assert (await api.call("GET", "/agentcom/health")) is not None and hub.proc.poll() is None
        await eventually(lambda: len(ledger.acked) == tasks, "every task completed", timeout=90)
        await eventually(lambda: snapshots[-1][0] == cuts + 1, "the dashboard back after the last cut")
        final = await api.call("GET", "/agentcom/api/snapshot")
        await eventually(lambda: feed.queue == final["queue"], "the dashboard caught up")
    finally:
        await sidecar.stop()
        await stream.stop()
        await relay.stop()
    print(f"dashboard links cut at {sides}; {len(snapshots)} snapshots, completed in them "
          f"{[s['queue']['completed'] for _, s in snapshots]}")
    assert stream.connects == cuts + 1
    assert {n for n, _ in snapshots} == set(range(1, cuts + 2))  # a fresh one on every connection
    for _, snap in snapshots:
        queue, totals = snap["queue"], snap["totals"]
        assert sum(queue.values()) == tasks, queue  # every task counted once, in one state
        assert usd_nano(totals["cost_usd"]) == queue["completed"] * usd_nano(unit_cost), (queue, totals)
        assert totals["tokens_in"] == 3 * queue["completed"], (queue, totals)
    completed = [s["queue"]["completed"] for _, s in snapshots]
    assert completed == sorted(completed)
    assert usd_nano(feed.totals["cost_usd"]) == usd_nano(final["totals"]["cost_usd"]) == tasks * usd_nano(unit_cost)
    code, _, err = hub.stop(signal.SIGTERM)
    assert code == 0, err
