"""Opening the SQLite file: WAL mode, migrations, and clear errors for bad paths.

One connection per hub, used from the hub's event loop thread only. Writes are short
transactions; WAL with synchronous=NORMAL keeps every committed write across a process
kill (SIGKILL) while costing no fsync per commit.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from pathlib import Path
from typing import Iterator

from agentcom.errors import StoreError
from agentcom.store.schema import MIGRATIONS, SCHEMA_VERSION


def open_db(path: str | os.PathLike[str], *, readonly: bool = False) -> sqlite3.Connection:
    """Open (creating and migrating unless ``readonly``) the store at ``path``."""
    target = Path(path).expanduser()
    if not readonly:
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"cannot create the directory for the database {target}: {exc.strerror}") from None
        if target.exists() and not os.access(target, os.W_OK):
            raise StoreError(f"database {target} is read-only; the hub needs to write it (check its permissions)")
        if not os.access(target.parent, os.W_OK):
            raise StoreError(f"directory {target.parent} is not writable; the hub needs it for {target.name} and its WAL")
    try:
        if readonly:
            conn = sqlite3.connect(f"file:{target}?mode=ro", uri=True, isolation_level=None, check_same_thread=False)
        else:
            conn = sqlite3.connect(target, isolation_level=None, check_same_thread=False)
        conn.row_factory = sqlite3.Row
        conn.execute("PRAGMA busy_timeout = 5000")
        if not readonly:
            mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if mode.lower() != "wal":
                raise StoreError(f"database {target}: cannot switch to WAL mode (got {mode})")
            conn.execute("PRAGMA synchronous = NORMAL")
            _migrate(conn, target)
        else:
            conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
    except sqlite3.DatabaseError as exc:
        raise StoreError(f"database {target} cannot be used: {exc} (is it an AgentCom database?)") from None
    return conn


def _migrate(conn: sqlite3.Connection, target: Path) -> None:
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    if version > SCHEMA_VERSION:
        raise StoreError(
            f"database {target} has schema version {version}, newer than this AgentCom ({SCHEMA_VERSION}); upgrade AgentCom"
        )
    for number in range(version, SCHEMA_VERSION):
        with transaction(conn):
            for statement in _statements(MIGRATIONS[number]):
                conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {number + 1}")


def _statements(script: str) -> Iterator[str]:
    """Split a migration script into statements (ours never put ';' inside literals)."""
    for chunk in script.split(";"):
        lines = [line.split("--", 1)[0] for line in chunk.splitlines()]
        statement = "\n".join(lines).strip()
        if statement:
            yield statement


@contextlib.contextmanager
def transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """BEGIN IMMEDIATE ... COMMIT, rolled back on any error; nests as a no-op."""
    if conn.in_transaction:
        yield conn
        return
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
