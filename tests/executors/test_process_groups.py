"""Process groups recorded for a crash: killed only while they are still the very group recorded.

Real processes, real /proc: a group is killed after its leader is identified by start time, or
(the leader gone) by the task's mark in a member's environment; a pid that now belongs to another
process, or a group without the mark, is left alone.
"""

from __future__ import annotations

import dataclasses
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, Iterator

import pytest

from agentcom.executors import process_groups
from agentcom.executors.process_groups import ProcessGroup

pytestmark = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc (Linux)")

SLEEP = [sys.executable, "-c", "import time; time.sleep(60)"]


def gone(group: ProcessGroup) -> bool:
    """Poll until no process of ``group`` runs; the bound is a safety net, not a measurement."""
    deadline = time.monotonic() + 30
    while process_groups.alive(group):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


@pytest.fixture
def spawn() -> Iterator[Callable[..., subprocess.Popen[bytes]]]:
    """Start commands in their own session, as the shell executor does; reap them all afterwards."""
    started: list[subprocess.Popen[bytes]] = []

    def start(argv: list[str], *, task_id: str = "task-1", generation: int = 1) -> subprocess.Popen[bytes]:
        env = {**os.environ, "AGENTCOM_TASK_ID": task_id, "AGENTCOM_GENERATION": str(generation)}
        proc = subprocess.Popen(argv, env=env, start_new_session=True, stdout=subprocess.PIPE,
                                stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
        started.append(proc)
        return proc

    yield start
    for proc in started:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()


def test_a_recorded_group_is_alive_until_killed(spawn: Callable[..., subprocess.Popen[bytes]]) -> None:
    proc = spawn(SLEEP)
    group = process_groups.record(proc.pid, "task-1", 1)
    assert group is not None and group.pgid == proc.pid and group.start_time >= 0
    assert process_groups.alive(group)
    assert process_groups.kill(group)
    assert proc.wait(timeout=30) == -9
    assert not process_groups.alive(group) and not process_groups.kill(group)


def test_a_pid_that_is_another_process_now_is_never_killed(spawn: Callable[..., subprocess.Popen[bytes]]) -> None:
    """Same pid, another start time: the recorded process is gone and the pid was handed on."""
    proc = spawn(SLEEP, task_id="someone-else")
    group = process_groups.record(proc.pid, "task-1", 1)
    assert group is not None
    recycled = dataclasses.replace(group, start_time=group.start_time + 1)
    assert not process_groups.alive(recycled)
    assert not process_groups.kill(recycled)
    assert proc.poll() is None  # still running


def test_members_left_by_an_exited_leader_are_found_by_their_task_mark(
        spawn: Callable[..., subprocess.Popen[bytes]]) -> None:
    """A command that started a background job and exited: the job runs on in the group."""
    leader = spawn(["/bin/sh", "-c", f"{shlex.join(SLEEP)} >/dev/null 2>&1 & echo $!"], task_id="task-7", generation=3)
    assert leader.stdout is not None
    member = int(leader.stdout.readline())
    group = process_groups.record(leader.pid, "task-7", 3)
    assert group is not None
    leader.wait(timeout=30)  # reaped: only the member is left, in the leader's group
    try:
        assert process_groups.alive(group)
        other_task = dataclasses.replace(group, task_id="task-8")
        assert not process_groups.kill(other_task)  # not marked as that task's: left alone
        assert process_groups.kill(group)
        assert gone(group)  # not our child: init reaps it (or leaves a zombie, which counts as gone)
    finally:
        try:
            os.kill(member, 9)
        except ProcessLookupError:
            pass


def test_a_damaged_record_can_never_name_pid_0_or_1() -> None:
    for pgid in (0, 1, -1):
        with pytest.raises(ValueError):
            ProcessGroup(task_id="t", generation=1, pgid=pgid, start_time=5, boot_id=None)
    with pytest.raises(ValueError):
        ProcessGroup(task_id="t", generation=1, pgid="123", start_time=5, boot_id=None)  # type: ignore[arg-type]


def test_our_own_group_is_never_killed(tmp_path: Path) -> None:
    """Asked in a process of its own (a session leader, so its group is alive and identified): were the
    guard gone, it would kill itself, not the test run."""
    code = ("import os; from agentcom.executors import process_groups; "
            "group = process_groups.record(os.getpid(), 'task-1', 1); "
            "assert process_groups.alive(group); print(process_groups.kill(group))")
    env = {**os.environ, "AGENTCOM_TASK_ID": "task-1", "AGENTCOM_GENERATION": "1"}
    done = subprocess.run([sys.executable, "-c", code], env=env, start_new_session=True, capture_output=True,
                          text=True, timeout=60, cwd=tmp_path)
    assert (done.returncode, done.stdout.strip()) == (0, "False"), done.stderr
