"""benchmarks/soak.py end to end at a tiny scale: its exit status is what CI and people rely on.

Real processes throughout (the ``agentcom hub`` CLI, the sidecar process, dashboards over
WebSockets); a handful of sidecars and two seconds keep it cheap.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

SOAK = Path(__file__).resolve().parents[2] / "benchmarks" / "soak.py"
SMALL = ["--duration", "2", "--drain-s", "5", "--sidecars", "6", "--dashboards", "2", "--rate", "10", "--sample-s", "0.5",
         "--work-ms", "60"]


def run_soak(*extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(SOAK), *SMALL, *extra], capture_output=True, text=True, timeout=120)


def test_clean_run_accounts_for_every_task_and_event() -> None:
    done = run_soak()
    assert done.returncode == 0, done.stdout + done.stderr
    assert re.search(r"throughput\s+20 tasks completed", done.stdout), done.stdout
    # 20 tasks x 3 events: sent, published by the hub and received by both dashboards, nothing unaccounted
    assert re.search(r"events\s+sent 60, hub published 60; per dashboard received 60\.\.60, told dropped 0 "
                     r"\(hub counted 0\), unaccounted 0", done.stdout), done.stdout
    assert re.search(r"errors\s+0\n", done.stdout), done.stdout


def test_sidecars_closed_by_the_hub_fail_the_run() -> None:
    # a lease shorter than the sidecars' heartbeat: the hub closes the idle ones, which the soak must count
    done = run_soak("--hub-setting", "lease_ms=300")
    assert done.returncode == 1, done.stdout + done.stderr
    assert re.search(r"sidecar disconnects: [1-6]\n", done.stdout), done.stdout
    assert "lease expired" in done.stdout


def test_rss_bound_is_enforced() -> None:
    # a bound no process can meet (RSS never shrinks by a megabyte per run here): the run must fail on it alone
    done = run_soak("--rss-bound-mb", "-1000")
    assert done.returncode == 1, done.stdout + done.stderr
    assert "GROWING" in done.stdout
    assert re.search(r"errors\s+0\n", done.stdout), done.stdout
