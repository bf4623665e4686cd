"""Opening the store: WAL, versioned migrations, and a clear StoreError for every bad path."""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path
from typing import Iterator

import pytest

from agentcom.errors import StoreError
from agentcom.store.db import GroupCommit, open_db, transaction
from agentcom.store.schema import MIGRATIONS, SCHEMA_VERSION


def test_a_new_store_is_in_wal_mode_at_the_latest_schema(tmp_path: Path) -> None:
    path = tmp_path / "nested" / "dir" / "hub.db"
    conn = open_db(path)
    assert path.exists()
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == len(MIGRATIONS) >= 1
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"tasks", "task_history", "executions", "agent_tokens", "meta"} <= tables
    conn.close()


def test_reopening_keeps_data_and_does_not_migrate_again(tmp_path: Path) -> None:
    path = tmp_path / "hub.db"
    conn = open_db(path)
    conn.execute("INSERT INTO meta(key, value) VALUES ('k', 'v')")
    conn.close()
    again = open_db(path)
    assert again.execute("SELECT value FROM meta WHERE key='k'").fetchone()[0] == "v"
    assert again.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    again.close()


def test_an_empty_sqlite_file_is_migrated_from_version_0(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    sqlite3.connect(path).close()
    conn = open_db(path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    conn.close()


def test_a_store_from_a_newer_agentcom_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "future.db"
    raw = sqlite3.connect(path)
    raw.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    raw.close()
    with pytest.raises(StoreError, match=r"newer than this AgentCom.*upgrade"):
        open_db(path)


def test_a_failed_migration_leaves_the_file_as_it_was(tmp_path: Path) -> None:
    path = tmp_path / "half.db"
    raw = sqlite3.connect(path)
    raw.execute("CREATE TABLE tasks (x)")  # migration 1 will collide with this
    raw.close()
    with pytest.raises(StoreError, match="cannot be used"):
        open_db(path)
    raw = sqlite3.connect(path)
    assert raw.execute("PRAGMA user_version").fetchone()[0] == 0
    assert {r[0] for r in raw.execute("SELECT name FROM sqlite_master WHERE type='table'")} == {"tasks"}
    raw.close()


@pytest.mark.parametrize("content", [b"this is not a database\n" * 100, os.urandom(8192),
                                     b"SQLite format 3\x00" + b"\xff" * 4096])
def test_a_corrupt_file_is_a_store_error_naming_it(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "corrupt.db"
    path.write_bytes(content)
    with pytest.raises(StoreError) as info:
        open_db(path)
    message = str(info.value)
    assert str(path) in message and "\n" not in message
    assert "AgentCom database" in message


def test_a_directory_is_not_a_database(tmp_path: Path) -> None:
    (tmp_path / "dir.db").mkdir()
    with pytest.raises(StoreError, match="dir.db"):
        open_db(tmp_path / "dir.db")


def test_a_parent_that_is_a_file_is_a_store_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(StoreError, match="cannot create the directory"):
        open_db(tmp_path / "file" / "hub.db")


def test_transactions_roll_back_on_error(tmp_path: Path) -> None:
    conn = open_db(tmp_path / "hub.db")
    with pytest.raises(RuntimeError):
        with transaction(conn):
            conn.execute("INSERT INTO meta(key, value) VALUES ('a', '1')")
            with transaction(conn):  # nested: part of the outer one
                conn.execute("INSERT INTO meta(key, value) VALUES ('b', '2')")
            raise RuntimeError("boom")
    assert conn.execute("SELECT count(*) FROM meta").fetchone()[0] == 0
    assert not conn.in_transaction
    conn.close()


# --------------------------------------------------------------------------- read-only paths
# Root may write anything, so these run the open in a child process as an unprivileged user.

_UNPRIVILEGED = 65534  # nobody


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A directory an unprivileged child can reach (pytest's tmp_path is private to root)."""
    path = Path(tempfile.mkdtemp(prefix="agentcom-store-ro-"))
    path.chmod(0o755)
    yield path
    for sub in path.rglob("*"):
        sub.chmod(0o755 if sub.is_dir() else 0o644)
    shutil.rmtree(path)


def _open_as_user(path: Path) -> subprocess.CompletedProcess[str]:
    """Open ``path`` in a child that gives up root (after its imports) before it touches the file."""
    code = textwrap.dedent(f"""
        import os, sys
        from agentcom.errors import StoreError
        from agentcom.store.db import open_db
        if os.geteuid() == 0:
            os.setgid({_UNPRIVILEGED})
            os.setuid({_UNPRIVILEGED})
        try:
            open_db({str(path)!r})
        except StoreError as exc:
            print(exc)
            sys.exit(3)
        print("opened")
    """)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)


def test_a_read_only_database_file_is_a_clear_error(shared_dir: Path) -> None:
    path = shared_dir / "hub.db"
    open_db(path).close()
    for p in shared_dir.iterdir():
        p.chmod(0o444)
    shared_dir.chmod(0o777)  # the directory is writable: only the file is not
    done = _open_as_user(path)
    assert done.returncode == 3, done.stderr
    assert "read-only" in done.stdout and str(path) in done.stdout


def test_a_read_only_directory_is_a_clear_error(shared_dir: Path) -> None:
    ro = shared_dir / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    done = _open_as_user(ro / "hub.db")
    assert done.returncode == 3, done.stderr
    assert "not writable" in done.stdout and str(ro) in done.stdout


# --------------------------------------------------------------------------- nesting and group commit


def test_a_nested_transaction_is_a_savepoint_that_rolls_back_alone(tmp_path: Path) -> None:
    conn = open_db(tmp_path / "hub.db")
    with transaction(conn):
        conn.execute("INSERT INTO meta(key, value) VALUES ('kept', '1')")
        with pytest.raises(RuntimeError):
            with transaction(conn):
                conn.execute("INSERT INTO meta(key, value) VALUES ('dropped', '2')")
                raise RuntimeError("boom")
        with transaction(conn):
            conn.execute("INSERT INTO meta(key, value) VALUES ('also-kept', '3')")
    assert [r[0] for r in conn.execute("SELECT key FROM meta ORDER BY key")] == ["also-kept", "kept"]
    conn.close()


def _visible_to_others(path: Path) -> list[str]:
    other = sqlite3.connect(path)
    try:
        return [r[0] for r in other.execute("SELECT key FROM meta ORDER BY key")]
    finally:
        other.close()


def test_without_a_loop_there_is_no_group(tmp_path: Path) -> None:
    conn = open_db(tmp_path / "hub.db")
    group = GroupCommit(conn)
    group.begin()
    assert not group.active and not conn.in_transaction
    ran: list[bool] = []
    group.after_commit(ran.append)
    assert ran == [True]
    conn.close()


@pytest.mark.anyio
async def test_a_group_commits_the_writes_of_one_loop_turn_then_acknowledges(tmp_path: Path,
                                                                             anyio_backend: str) -> None:
    path = tmp_path / "hub.db"
    conn = open_db(path)
    group = GroupCommit(conn)
    events: list[str] = []
    group.begin()
    group.begin()  # idempotent within the turn
    assert not group.active and not conn.in_transaction  # armed: the first write opens it
    ran: list[bool] = []
    group.after_commit(ran.append)  # nothing written yet: nothing to wait for
    assert ran == [True]
    for key in ("a", "b"):
        with transaction(conn):
            conn.execute("INSERT INTO meta(key, value) VALUES (?, '1')", (key,))
        group.after_commit(lambda ok, key=key: events.append(f"ack {key} {ok} {_visible_to_others(path)}"))
    assert _visible_to_others(path) == []  # nothing committed yet, nothing acknowledged yet
    assert events == []
    assert await group.committed() is True
    assert events == ["ack a True ['a', 'b']", "ack b True ['a', 'b']"]
    assert not group.active and not conn.in_transaction
    assert await group.committed() is True  # no group open: at once
    conn.close()


@pytest.mark.anyio
async def test_a_turn_without_writes_opens_no_transaction(tmp_path: Path, anyio_backend: str) -> None:
    import asyncio

    conn = open_db(tmp_path / "hub.db")
    group = GroupCommit(conn)
    group.begin()
    conn.execute("SELECT count(*) FROM meta").fetchone()  # reads do not open it
    await asyncio.sleep(0)
    assert not group.active and not conn.in_transaction
    group.begin()  # the next turn arms it again
    with transaction(conn):
        conn.execute("INSERT INTO meta(key, value) VALUES ('k', 'v')")
    assert group.active and conn.in_transaction
    await group.committed()
    assert not conn.in_transaction and _visible_to_others(tmp_path / "hub.db") == ["k"]
    conn.close()


def test_a_version_1_store_gets_tasks_agent_on_assigned_to_alone(tmp_path: Path) -> None:
    """Migration 2 replaces (assigned_to, status) by (assigned_to): a change of status no longer rewrites it."""
    path = tmp_path / "v1.db"
    raw = sqlite3.connect(path)
    raw.executescript(MIGRATIONS[0])
    raw.execute("PRAGMA user_version = 1")
    raw.execute("INSERT INTO tasks(task_id, description, priority, status, max_attempts, complexity, created_at, "
                "updated_at, assigned_to) VALUES ('t1', 'x', 2, 'working', 3, '{}', 1, 1, 'a')")
    raw.commit()
    raw.close()
    conn = open_db(path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION >= 2
    assert [r[2] for r in conn.execute("PRAGMA index_info(tasks_agent)")] == ["assigned_to"]
    assert conn.execute("SELECT task_id FROM tasks WHERE assigned_to='a'").fetchall()[0][0] == "t1"
    conn.close()


# --------------------------------------------------------------------------- deferred rows


def _keys(conn: sqlite3.Connection) -> list[str]:
    return [r[0] for r in conn.execute("SELECT key FROM meta ORDER BY key")]


_ROW = "INSERT INTO meta(key, value) VALUES (?, ?)"


def test_without_a_group_a_deferred_row_is_written_at_once(tmp_path: Path) -> None:
    conn = open_db(tmp_path / "hub.db")
    GroupCommit(conn).defer(_ROW, ("now", "1"))
    assert not conn.in_transaction and _visible_to_others(tmp_path / "hub.db") == ["now"]
    conn.close()


@pytest.mark.anyio
async def test_deferred_rows_are_written_at_the_commit_and_visible_to_a_flushing_read(tmp_path: Path,
                                                                                      anyio_backend: str) -> None:
    path = tmp_path / "hub.db"
    conn = open_db(path)
    group = GroupCommit(conn)
    group.begin()
    with transaction(conn, single=True):
        conn.execute(_ROW, ("row", "1"))
        group.defer(_ROW, ("deferred-1", "2"))
    group.defer(_ROW, ("deferred-2", "3"))
    assert _keys(conn) == ["row"]  # held back until the commit (or a flush)
    group.flush()
    assert _keys(conn) == ["deferred-1", "deferred-2", "row"]
    group.defer(_ROW, ("deferred-3", "4"))
    assert await group.committed() is True
    assert _visible_to_others(path) == ["deferred-1", "deferred-2", "deferred-3", "row"]
    conn.close()


@pytest.mark.anyio
async def test_a_failed_block_drops_the_rows_it_deferred_and_nothing_else(tmp_path: Path, anyio_backend: str) -> None:
    path = tmp_path / "hub.db"
    conn = open_db(path)
    group = GroupCommit(conn)
    group.begin()
    with transaction(conn, single=True):
        conn.execute(_ROW, ("kept", "1"))
        group.defer(_ROW, ("kept-line", "1"))
    with pytest.raises(sqlite3.IntegrityError):  # single: no savepoint; SQLite undoes the failing statement
        with transaction(conn, single=True):
            group.defer(_ROW, ("dropped-line", "2"))
            conn.execute(_ROW, ("kept", "duplicate key"))
    with pytest.raises(RuntimeError):  # a savepoint block: its writes and its deferred rows go together
        with transaction(conn):
            conn.execute(_ROW, ("dropped", "3"))
            with transaction(conn, single=True):
                conn.execute(_ROW, ("dropped-too", "3"))
                group.defer(_ROW, ("dropped-line-too", "3"))
            raise RuntimeError("boom")
    assert await group.committed() is True
    assert _visible_to_others(path) == ["kept", "kept-line"]
    conn.close()


@pytest.mark.anyio
async def test_a_deferred_row_refused_at_the_commit_fails_the_whole_turn(tmp_path: Path, anyio_backend: str) -> None:
    path = tmp_path / "hub.db"
    conn = open_db(path)
    conn.execute("CREATE TEMP TRIGGER refuse BEFORE INSERT ON meta WHEN NEW.key = 'refused' "
                 "BEGIN SELECT RAISE(ABORT, 'refused'); END")
    group = GroupCommit(conn)
    failures: list[str] = []
    group.on_failure.append(lambda: failures.append("resync"))
    group.begin()
    with transaction(conn, single=True):
        conn.execute(_ROW, ("written", "1"))
        group.defer(_ROW, ("refused", "2"))
    assert await group.committed() is False  # the turn is not acknowledged: its writes are gone
    assert failures == ["resync"]
    assert not conn.in_transaction and _visible_to_others(path) == []
    group.begin()  # the next turn starts clean
    with transaction(conn, single=True):
        conn.execute(_ROW, ("next", "1"))
    assert await group.committed() is True
    assert _visible_to_others(path) == ["next"]
    conn.close()
