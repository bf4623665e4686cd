"""The sidecar journal: what survives a restart, atomic rewrites, damage and locking."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from agentcom.executors.process_groups import ProcessGroup
from agentcom.protocol import messages as m
from agentcom.sidecar.journal import JOURNAL_FILE, Journal, JournalError

from .frames import assign, result


def test_a_task_in_hand_survives_a_restart(tmp_path: Path) -> None:
    journal = Journal(tmp_path)
    task = assign("task-a", 2, command="echo hi")
    journal.start(task)
    journal.mark_accepted("task-a")
    journal.reserve_seq("task-a", 1000)

    again = Journal(tmp_path)
    [entry] = again.entries()
    assert (entry.task_id, entry.generation, entry.state, entry.accepted_acked, entry.seq_reserved, entry.runs) == (
        "task-a", 2, "running", True, 1000, 1)
    assert entry.assign_frame() == task
    assert again.resume_entries() == [m.ResumeEntry(task_id="task-a", generation=2)]


def test_an_outcome_stays_until_acknowledged(tmp_path: Path) -> None:
    journal = Journal(tmp_path)
    journal.start(assign("task-a", 1))
    final = m.TaskComplete(task_id="task-a", generation=1, result=result())
    journal.finish(final)
    stale = m.TaskFailed(task_id="task-a", generation=0, error="old")
    journal.finish(stale)  # another generation's outcome never overwrites this one

    entry = Journal(tmp_path).get("task-a")
    assert entry is not None and entry.state == "finished"
    assert entry.final_frame() == final

    failed = m.TaskFailed(task_id="task-b", generation=4, error="boom", retryable=False, result=result("failed"))
    journal.start(assign("task-b", 4))
    journal.finish(failed)
    assert Journal(tmp_path).get("task-b").final_frame() == failed  # type: ignore[union-attr]

    assert journal.remove("task-a", generation=9) is None  # wrong generation: kept
    assert journal.remove("task-a") is not None
    assert [e.task_id for e in Journal(tmp_path).entries()] == ["task-b"]


def test_a_rerun_is_counted(tmp_path: Path) -> None:
    journal = Journal(tmp_path)
    journal.start(assign("task-a", 1))
    journal.rerun("task-a")
    assert Journal(tmp_path).get("task-a").runs == 2  # type: ignore[union-attr]
    assert journal.rerun("unknown") is None


def test_a_damaged_journal_is_kept_aside_not_fatal(tmp_path: Path) -> None:
    (tmp_path / JOURNAL_FILE).write_text('{"version": 1, "tasks": [{"task_id": ')
    journal = Journal(tmp_path)
    assert journal.entries() == []
    assert any(p.name.startswith(f"{JOURNAL_FILE}.corrupt-") for p in tmp_path.iterdir())
    journal.start(assign())
    assert len(Journal(tmp_path)) == 1


def test_process_groups_survive_a_restart_until_their_run_ends(tmp_path: Path) -> None:
    """What a sidecar killed mid-task leaves for the next one to kill; gone once the run is over."""
    journal = Journal(tmp_path)
    journal.start(assign("task-a", 2))
    first = ProcessGroup(task_id="task-a", generation=2, pgid=4242, start_time=777, boot_id="boot")
    other = ProcessGroup(task_id="task-b", generation=1, pgid=4343, start_time=778, boot_id=None)
    journal.add_process_group(first)
    journal.add_process_group(other)
    assert Journal(tmp_path).process_groups() == [first, other]
    assert Journal(tmp_path).process_groups("task-a") == [first]

    journal.finish(m.TaskComplete(task_id="task-a", generation=2, result=result()))
    assert Journal(tmp_path).process_groups() == [other]  # the run ended: its group went with it
    journal.forget_process_groups([other])
    assert Journal(tmp_path).process_groups() == []


def test_a_damaged_process_group_record_is_skipped_and_the_rest_kept(tmp_path: Path) -> None:
    """A record naming pid 0 would make killpg hit the sidecar's own group: it is never used; a good
    record and the journal's tasks (outcomes the hub has not acknowledged) are kept."""
    bad = {"task_id": "t", "generation": 1, "pgid": 0, "start_time": 5, "boot_id": None}
    unknown_field = {"task_id": "t", "generation": 1, "pgid": 4242, "start_time": 5, "boot_id": None, "new": 1}
    good = {"task_id": "t", "generation": 1, "pgid": 4242, "start_time": 5, "boot_id": None}
    first = Journal(tmp_path)
    first.start(assign("task-1", 1))
    data = json.loads((tmp_path / JOURNAL_FILE).read_text())
    data["process_groups"] = [bad, unknown_field, good]
    (tmp_path / JOURNAL_FILE).write_text(json.dumps(data))
    journal = Journal(tmp_path)
    assert [(g.pgid, g.start_time) for g in journal.process_groups()] == [(4242, 5)]
    assert [e.task_id for e in journal.entries()] == ["task-1"]
    assert not any(p.name.startswith(f"{JOURNAL_FILE}.corrupt-") for p in tmp_path.iterdir())


def test_two_sidecars_cannot_share_a_state_dir(tmp_path: Path) -> None:
    first, second = Journal(tmp_path), Journal(tmp_path)
    first.lock()
    with pytest.raises(JournalError, match="in use by another sidecar"):
        second.lock()
    first.unlock()
    second.lock()
    second.unlock()


_WRITER = textwrap.dedent(
    """
    import sys
    from agentcom.sidecar.journal import Journal
    sys.path.insert(0, sys.argv[2])
    from frames import assign
    journal = Journal(sys.argv[1])
    print("ready", flush=True)
    i = 0
    while True:
        i += 1
        journal.start(assign(f"task-{i % 7}", i, command="x" * (i % 5000)))
        if i % 3 == 0:
            journal.remove(f"task-{(i + 3) % 7}")
    """
)


def test_a_writer_killed_at_any_moment_leaves_a_whole_journal(tmp_path: Path) -> None:
    """SIGKILL a process that rewrites the journal in a loop: every load finds a complete file."""
    helpers = Path(__file__).parent
    for round_no in range(6):
        proc = subprocess.Popen([sys.executable, "-c", _WRITER, str(tmp_path), str(helpers)],
                                stdout=subprocess.PIPE, text=True)
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "ready"
        time.sleep(0.005 * round_no)  # a varying number of rewrites, then kill it mid-flight
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        proc.stdout.close()
        data = json.loads((tmp_path / JOURNAL_FILE).read_text()) if (tmp_path / JOURNAL_FILE).exists() else None
        if data is not None:
            assert data["version"] == 1
        journal = Journal(tmp_path)
        journal.lock()  # the next owner clears the temporary files a killed writer left
        journal.unlock()
        assert sorted(p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")) == []
        assert not any(p.name.startswith(f"{JOURNAL_FILE}.corrupt-") for p in tmp_path.iterdir())
        for entry in journal.entries():
            assert entry.assign_frame().task_id == entry.task_id

