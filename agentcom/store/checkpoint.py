"""Copying the WAL back into the database file, away from the hub's event loop.

SQLite checkpoints on the connection that commits once the WAL passes
``wal_autocheckpoint`` pages: the commit that crosses it copies thousands of pages and
syncs the file, and the hub's loop stands still meanwhile (tens of milliseconds, every
second or two under load: the paced benchmark's p99). ``Checkpointer`` runs PASSIVE
checkpoints on a connection of its own, in a thread, a few times a second: SQLite lets
the hub go on committing to the WAL while a checkpoint copies, and releases the GIL while
it works. The hub's connection keeps a far higher ``wal_autocheckpoint`` only as a
backstop, should this thread fall behind or fail.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading

log = logging.getLogger(__name__)

INTERVAL_S = 1.0  # about as often as wal_autocheckpoint = 10000 copied the WAL back under load; idle, it costs nothing
BACKSTOP_PAGES = 50_000  # the hub's own wal_autocheckpoint while a Checkpointer runs (~200 MB of WAL)


class Checkpointer:
    """PASSIVE checkpoints of the database at ``path`` from a thread; ``stop()`` before closing the store.

    A daemon thread, so a hub never stopped does not keep its process from exiting: between
    checkpoints it waits on an event, and a checkpoint cut short leaves the WAL as it was."""

    def __init__(self, path: str | os.PathLike[str], interval_s: float = INTERVAL_S) -> None:
        self.path = os.fspath(path)
        self.interval_s = interval_s
        self.checkpoints = 0  # completed checkpoint calls, for tests and curiosity
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_error = ""

    def start(self) -> Checkpointer:
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="agentcom-checkpoint", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        """Wait for the current checkpoint, if any, and end the thread."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def _run(self) -> None:
        try:
            conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        except sqlite3.Error as exc:
            log.error("cannot open %s for checkpoints (%s); the hub checkpoints on its own connection", self.path, exc)
            return
        try:
            conn.execute("PRAGMA synchronous = NORMAL")  # sync the WAL before copying, the file after
            while not self._stop.wait(self.interval_s):
                self._checkpoint(conn)
        finally:
            conn.close()

    def _checkpoint(self, conn: sqlite3.Connection) -> None:
        try:
            conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
            self.checkpoints += 1
            if self._last_error:
                log.info("checkpoints of %s work again", self.path)
                self._last_error = ""
        except sqlite3.Error as exc:  # a full or read-only disk: the hub reports it; say it once here
            if str(exc) != self._last_error:
                log.warning("checkpoint of %s failed (%s); retried every %.2f s", self.path, exc, self.interval_s)
                self._last_error = str(exc)
