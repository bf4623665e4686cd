"""Opening the SQLite file: WAL mode, migrations, and clear errors for bad paths.

One connection per hub, used from the hub's event loop thread only. Writes are short
transactions; WAL with synchronous=NORMAL keeps every committed write across a process
kill (SIGKILL) while costing no fsync per commit. Under load, ``GroupCommit`` puts the
writes of one event-loop turn into one transaction; whatever acknowledges them waits for
its commit.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import operator
import os
import sqlite3
import time
import weakref
from pathlib import Path
from typing import Any, Callable, Iterator

log = logging.getLogger(__name__)

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
            # Checkpoints (WAL -> DB, with fsync) run on the hub's loop: fewer, larger ones write back
            # hot pages once instead of many times. 10000 pages = a WAL of up to ~40 MB.
            conn.execute("PRAGMA wal_autocheckpoint = 10000")
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


class transaction:  # noqa: N801 - used like the context manager function it replaces
    """BEGIN IMMEDIATE ... COMMIT, rolled back on any error: ``with transaction(conn): ...``.

    Inside an open transaction (a group commit, or an outer ``transaction``) it is a
    savepoint: an error rolls back this block alone and the outer one goes on. A class
    rather than ``@contextmanager``: it runs several times per task.

    ``single=True`` promises the block runs at most one statement itself, and otherwise
    only ``GroupCommit.defer`` rows. Inside an open group it then sets no savepoint (two
    statements per write saved): SQLite undoes a failing statement by itself, and the rows
    the block deferred are dropped with it.
    """

    __slots__ = ("conn", "nested", "single", "savepoint", "group", "mark")

    def __init__(self, conn: sqlite3.Connection, *, single: bool = False) -> None:
        self.conn = conn
        self.nested = False
        self.single = single
        self.savepoint = False
        self.group: GroupCommit | None = None  # the open group this block runs in, whose deferred rows it owns
        self.mark = 0  # how many rows the group had deferred before this block

    def __enter__(self) -> sqlite3.Connection:
        group = _armed.get(id(self.conn)) if _armed else None
        if group is not None and not self.conn.in_transaction:
            group._open()  # the turn's first write opens its group
        self.nested = self.conn.in_transaction
        if self.nested and group is not None and group._pending is not None:
            self.group, self.mark = group, len(group._deferred)
        self.savepoint = self.nested and not (self.single and self.group is not None)
        if self.savepoint:
            self.conn.execute("SAVEPOINT nested")
        elif not self.nested:
            self.conn.execute("BEGIN IMMEDIATE")
        return self.conn

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: object) -> None:
        if kind is not None and self.group is not None:
            if self.conn.in_transaction:  # what the block deferred goes with it
                del self.group._deferred[self.mark:]
            else:  # SQLite dropped the whole turn: nothing it deferred may ever be written
                self.group._lost = True
                self.group._deferred.clear()
        if self.nested and not self.savepoint:  # SQLite undid the failing statement itself
            return
        if not self.conn.in_transaction:
            # SQLite rolled the whole transaction back itself (SQLITE_FULL, SQLITE_IOERR, ...): there is
            # no savepoint to undo; an open group notices at its commit and reports the turn as failed.
            if kind is None and not self.nested:
                raise sqlite3.OperationalError("SQLite rolled this transaction back before its commit")
            return
        if self.nested:
            if kind is not None:
                self.conn.execute("ROLLBACK TO nested")
            self.conn.execute("RELEASE nested")
        elif kind is not None:
            self.conn.execute("ROLLBACK")
        else:
            try:
                self.conn.execute("COMMIT")
            except sqlite3.Error:
                if self.conn.in_transaction:  # e.g. SQLITE_BUSY leaves it open: never leave it dangling
                    with contextlib.suppress(sqlite3.Error):
                        self.conn.execute("ROLLBACK")
                raise
            if _refused and (group := _refused.get(id(self.conn))) is not None:
                group.written()  # a write outside a group commit went through: the store writes again


_statement = operator.itemgetter(0)
_armed: dict[int, GroupCommit] = {}  # id(conn) -> the group armed for this loop turn
# id(conn) -> its group, while a refused write is on record (weak: a closed hub's store is not kept alive)
_refused: weakref.WeakValueDictionary[int, GroupCommit] = weakref.WeakValueDictionary()
RECHECK_MS = 5_000  # a refusal older than this is checked again with one small write before it is reported


class GroupCommit:
    """One transaction for all the writes of one event-loop turn (group commit).

    ``begin()`` arms it for this turn (when an asyncio loop runs) and schedules ``commit()``
    for the end of the turn; the turn's first ``transaction()`` opens it, and every
    ``transaction()`` inside is a savepoint. A commit costs about as much as the writes of
    several frames, so under load this multiplies the store's throughput; a turn that writes
    nothing (pings, progress) opens nothing. The price: nothing that acknowledges a write
    (a frame to a sidecar, an HTTP answer) may leave before the commit. While ``active``
    (writes pending), register such things with ``after_commit(fn)``: ``fn(True)`` runs after
    the commit (at once if nothing is pending), ``fn(False)`` if the commit failed and the
    writes are gone.

    A full disk (SQLITE_FULL) or a failed write (SQLITE_IOERR) makes SQLite roll back the
    whole transaction, not just the failing statement: the earlier writes of the turn are
    gone too. So a turn whose transaction vanished, or whose COMMIT failed, is failed as a
    whole: what opened after the loss is rolled back as well, every ``on_failure`` hook runs
    (the hub core reloads its memory from the file), then every waiter gets ``False``.

    ``defer(sql, params)`` holds an INSERT that nothing in the turn reads back (history
    lines, execution rows) until just before the commit, where the rows of each statement
    go in one ``executemany``: a quarter of the cost of one ``execute`` each. Rows of one
    statement keep their order; rows of different statements may be written in any order,
    so only rows that no other deferred row depends on may be deferred. A read that must
    see them settles first (``settle``). Outside an open group it runs at once.
    """

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        self._armed = False
        self._pending: list[Callable[[bool], None]] | None = None  # None: no writes pending
        self._deferred: list[tuple[str, tuple[Any, ...]]] = []
        self._lost = False  # this turn's transaction vanished under it
        self.on_failure: list[Callable[[], None]] = []
        self.failure: tuple[int, str] | None = None  # (unix ms, error) of the last refused write, until one commits

    def refused(self, exc: BaseException) -> None:
        """Note a write the store refused, for ``/health``: kept until a commit succeeds again."""
        self.failure = (int(time.time() * 1000), str(exc) or type(exc).__name__)
        _refused[id(self.conn)] = self

    def written(self) -> None:
        """A write committed: the refusal on record, if any, no longer holds."""
        self.failure = None
        _refused.pop(id(self.conn), None)

    def current_failure(self) -> tuple[int, str] | None:
        """The refusal on record, if it still holds: one older than ``RECHECK_MS`` is checked again
        with one small real write, since an idle hub (one a load balancer took out of rotation
        for its 503) writes nothing that would clear it. A turn with writes of its own is left
        alone: its commit decides."""
        failure = self.failure
        if failure is None or time.time() * 1000 - failure[0] < RECHECK_MS:
            return failure
        if self.conn.in_transaction or _armed.get(id(self.conn)) is self:
            return failure
        try:
            with transaction(self.conn):  # commits on its own: a success clears the record
                self.conn.execute("INSERT OR REPLACE INTO meta(key, value) VALUES ('write_checked_at', ?)",
                                  (str(int(time.time() * 1000)),))
        except sqlite3.Error as exc:
            self.refused(exc)
        return self.failure

    @property
    def active(self) -> bool:
        """Writes of this turn are pending: acknowledgements must wait for ``commit``."""
        return self._pending is not None

    def begin(self) -> None:
        if self._armed or self.conn.in_transaction:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # no loop (CLI, plain scripts): each transaction commits on its own
        self._armed = True
        _armed[id(self.conn)] = self
        loop.call_soon(self.commit)

    def defer(self, sql: str, params: tuple[Any, ...]) -> int | None:
        """Run ``sql`` at this turn's commit: None. When no group transaction is open it runs at
        once, and the answer is how many rows it changed."""
        if self._pending is not None and self.conn.in_transaction:
            self._deferred.append((sql, params))
            return None
        return self.conn.execute(sql, params).rowcount

    def settle(self) -> None:
        """Write what waits for the commit now, so that a read in this turn sees it."""
        if self._deferred:
            if not self.conn.in_transaction or self._lost:  # the turn is lost: never write its rows on their own
                self._deferred.clear()
                return
            self.flush()

    def flush(self) -> None:
        """Write the deferred rows now, inside the open transaction (before a read of them, or
        the commit): the rows of each statement in one ``executemany``.

        A failure loses the turn as a whole, as any write that SQLite refuses mid-turn may."""
        deferred, self._deferred = self._deferred, []
        deferred.sort(key=_statement)  # stable: each statement's rows keep their order
        try:
            for sql, rows in itertools.groupby(deferred, key=_statement):
                self.conn.executemany(sql, [params for _, params in rows])
        except sqlite3.Error:
            self._lost = True
            raise

    def _open(self) -> None:
        if self._pending is not None:
            self._lost = True  # opened before in this turn: SQLite rolled that transaction back
        self._deferred.clear()
        self.conn.execute("BEGIN IMMEDIATE")
        if self._pending is None:
            self._pending = []

    def after_commit(self, callback: Callable[[bool], None]) -> None:
        if self._pending is None:
            callback(True)
        else:
            self._pending.append(callback)

    def commit(self) -> None:
        if self._armed:
            self._armed = False
            _armed.pop(id(self.conn), None)
        pending, self._pending = self._pending, None
        if pending is None:
            return
        ok = self.conn.in_transaction and not self._lost
        try:
            if ok:
                self.settle()
                self.conn.execute("COMMIT")
            else:
                log.error("a write of this turn failed and SQLite rolled back the turn's transaction; "
                          "its writes are lost and not acknowledged")
        except sqlite3.Error as exc:
            ok = False
            log.error("group commit failed, its writes are lost and not acknowledged: %s", exc)
            self.refused(exc)
        self._lost = False
        self._deferred.clear()
        if ok:
            if self.failure is not None:
                self.written()
        elif self.failure is None:
            self.refused(sqlite3.OperationalError("SQLite rolled this turn's transaction back"))
        if not ok:
            if self.conn.in_transaction:
                with contextlib.suppress(sqlite3.Error):
                    self.conn.execute("ROLLBACK")
            for hook in self.on_failure:
                try:
                    hook()
                except Exception:  # noqa: BLE001 - the waiters below must still hear of the failure
                    log.exception("group commit failure hook failed")
        for callback in pending:
            try:
                callback(ok)
            except Exception:  # noqa: BLE001 - one failing waiter must not keep the others waiting
                log.exception("after-commit callback failed")

    async def committed(self) -> bool:
        """Wait for the commit of this turn's writes (at once if none are pending); False if it failed."""
        if self._pending is None:
            return True
        done: asyncio.Future[bool] = asyncio.get_running_loop().create_future()

        def resolve(ok: bool) -> None:
            if not done.done():
                done.set_result(ok)

        self._pending.append(resolve)
        return await done
