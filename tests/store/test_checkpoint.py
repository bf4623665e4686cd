"""WAL checkpoints from a thread of their own: the file catches up while the writer keeps committing."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

from agentcom.store.checkpoint import Checkpointer, database_file
from agentcom.store.db import open_db


def _write_rows(path: Path, checkpointer: Checkpointer | None) -> int:
    """300 rows of 2 kB committed one by one by a writer that never checkpoints; the file's size after."""
    conn = open_db(path)
    conn.execute("PRAGMA wal_autocheckpoint = 0")  # only the thread (if any) copies the WAL back
    try:
        if checkpointer is not None:
            checkpointer.start()
        for i in range(300):
            conn.execute("INSERT INTO meta(key, value) VALUES (?, ?)", (f"k{i}", "v" * 2000))
        deadline = time.monotonic() + 10
        while checkpointer is not None and checkpointer.checkpoints < 3 and time.monotonic() < deadline:
            time.sleep(0.01)
        return path.stat().st_size
    finally:
        if checkpointer is not None:
            checkpointer.stop()
        conn.execute("PRAGMA wal_autocheckpoint = 0")
        conn.close()


def test_the_thread_copies_the_wal_into_the_file_while_the_writer_commits(tmp_path: Path) -> None:
    alone = _write_rows(tmp_path / "alone.db", None)
    checkpointer = Checkpointer(str(tmp_path / "hub.db"), interval_s=0.01)
    helped = _write_rows(tmp_path / "hub.db", checkpointer)
    assert checkpointer.checkpoints >= 3
    assert alone < 300 * 2000 < helped  # without the thread the rows are still only in the WAL


def test_stop_ends_the_thread_and_start_runs_it_again(tmp_path: Path) -> None:
    path = tmp_path / "hub.db"
    open_db(path).close()
    checkpointer = Checkpointer(str(path), interval_s=0.01).start()
    checkpointer.stop()
    assert checkpointer._thread is None
    checkpointer.start()
    deadline = time.monotonic() + 10
    while checkpointer.checkpoints == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    checkpointer.stop()
    assert checkpointer.checkpoints > 0


def test_a_store_it_cannot_open_is_logged_not_raised_and_never_said_to_work(tmp_path: Path, caplog) -> None:
    said: list[bool] = []
    checkpointer = Checkpointer(str(tmp_path / "missing" / "hub.db"), interval_s=0.01, on_working=said.append).start()
    assert checkpointer._thread is not None
    checkpointer._thread.join(10)
    checkpointer.stop()
    assert "checkpoints of" in caplog.text and "stopped" in caplog.text
    assert checkpointer.checkpoints == 0 and said == []


def test_it_says_when_it_works_and_when_it_stopped(tmp_path: Path) -> None:
    path = tmp_path / "hub.db"
    open_db(path).close()
    said: list[bool] = []
    checkpointer = Checkpointer(str(path), interval_s=0.01, on_working=said.append).start()
    deadline = time.monotonic() + 10
    while not said and time.monotonic() < deadline:
        time.sleep(0.01)
    assert said == [True]
    checkpointer.stop()
    assert said == [True, False]


def test_the_file_is_the_one_sqlite_opened_whatever_the_path_was_spelled(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    conn = open_db("~/stores/../stores/hub.db")
    try:
        assert database_file(conn) == str((tmp_path / "stores" / "hub.db").resolve())
    finally:
        conn.close()
    memory = sqlite3.connect(":memory:")
    assert database_file(memory) == "" and Checkpointer("").start()._thread is None
    memory.close()
