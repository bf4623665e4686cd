"""Copying the WAL back into the database file, away from the hub's event loop.

SQLite checkpoints on the connection that commits once the WAL passes
``wal_autocheckpoint`` pages: the commit that crosses it copies thousands of pages and
syncs the file, and the hub's loop stands still meanwhile (tens of milliseconds, every
second or two under load: the paced benchmark's p99). ``Checkpointer`` runs PASSIVE
checkpoints on a connection of its own, in a thread, once a second: SQLite lets the hub
go on committing to the WAL while a checkpoint copies, and releases the GIL while it
works. Once its first checkpoint succeeded it says so (``on_working``), and the hub
raises its own connection's ``wal_autocheckpoint`` to ``BACKSTOP_PAGES``: a backstop for
a thread that fell behind. Should the thread stop working, the hub puts it back.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from typing import Callable

log = logging.getLogger(__name__)

INTERVAL_S = 1.0  # about as often as wal_autocheckpoint = 10000 copied the WAL back under load; idle, it costs nothing
BACKSTOP_PAGES = 50_000  # the hub's own wal_autocheckpoint while a Checkpointer works (~200 MB of WAL)
STOP_WAIT_S = 5.0  # stop() interrupts a running checkpoint and waits this long at most


def database_file(conn: sqlite3.Connection) -> str:
    """The file behind ``conn``'s main database, as SQLite resolved it ("" for an in-memory one)."""
    for _, name, path in conn.execute("PRAGMA database_list").fetchall():
        if name == "main":
            return str(path or "")
    return ""


class Checkpointer:
    """PASSIVE checkpoints of the database file ``path`` from a thread; ``stop()`` before closing the store.

    A daemon thread, so a hub never stopped does not keep its process from exiting: between
    checkpoints it waits on an event, and a checkpoint cut short leaves the WAL as it was.
    ``on_working(True)`` is called (from the thread) after the first checkpoint that
    succeeded, ``on_working(False)`` when the thread ends after that."""

    def __init__(self, path: str, interval_s: float = INTERVAL_S,
                 on_working: Callable[[bool], None] | None = None) -> None:
        self.path = path
        self.interval_s = interval_s
        self.on_working = on_working
        self.checkpoints = 0  # completed checkpoint calls, for tests and curiosity
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._conn: sqlite3.Connection | None = None
        self._last_error = ""

    def start(self) -> Checkpointer:
        if self._thread is None and self.path:
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="agentcom-checkpoint", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        """End the thread, interrupting the checkpoint it may be running."""
        self._stop.set()
        conn = self._conn
        if conn is not None:
            try:
                conn.interrupt()
            except sqlite3.Error:  # closed meanwhile
                pass
        if self._thread is not None:
            self._thread.join(STOP_WAIT_S)
            if self._thread.is_alive():
                log.warning("the checkpoint thread of %s did not stop within %.0f s", self.path, STOP_WAIT_S)
            self._thread = None

    def _run(self) -> None:
        working = False
        try:
            conn = self._conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            try:
                conn.execute("PRAGMA synchronous = NORMAL")  # sync the WAL before copying, the file after
                while not self._stop.wait(self.interval_s):
                    if self._checkpoint(conn) and not working:
                        working = True
                        self._tell(True)
            finally:
                self._conn = None
                conn.close()
        except sqlite3.Error as exc:
            log.error("checkpoints of %s stopped (%s); the hub checkpoints on its own connection", self.path, exc)
        finally:
            if working:
                self._tell(False)

    def _checkpoint(self, conn: sqlite3.Connection) -> bool:
        try:
            conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        except sqlite3.Error as exc:  # a full or read-only disk (the hub reports it), or stop() interrupting
            if not self._stop.is_set() and str(exc) != self._last_error:
                log.warning("checkpoint of %s failed (%s); retried every %.2f s", self.path, exc, self.interval_s)
                self._last_error = str(exc)
            return False
        self.checkpoints += 1
        if self._last_error:
            log.info("checkpoints of %s work again", self.path)
            self._last_error = ""
        return True

    def _tell(self, working: bool) -> None:
        if self.on_working is not None:
            try:
                self.on_working(working)
            except Exception:  # noqa: BLE001 - e.g. the hub's loop closed meanwhile
                log.debug("checkpoint state change not delivered", exc_info=True)
