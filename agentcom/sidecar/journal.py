"""The sidecar's local journal: the tasks in hand, kept in one JSON file.

Why: a sidecar can crash or lose its connection at any moment, and a task must never be
silently lost. Every task is journalled before ``task_accepted`` is sent and stays until
the hub acknowledges its outcome (``task_ack``) or takes it away (``task_reassign``,
``task_cancelled``). On start the sidecar lists the journal in ``identify.resume``; a
``running`` entry the hub continues is run again (the process that ran it is gone), a
``finished`` one has its stored final frame sent again.

The journal also holds the process groups the running tasks' commands started
(``process_groups``), from spawn until the run ends: a sidecar killed outright cannot stop
them, so the next one to start on this state directory kills those still running before
their tasks can run again.

Each change rewrites the whole file through a temporary file, ``fsync`` and
``os.replace``, so a reader sees the old journal or the new one, never half of each.
The file is small: at most ``concurrency`` running tasks plus unacknowledged outcomes.
A lock file keeps two sidecars from sharing a state directory.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from agentcom.errors import AgentComError
from agentcom.executors.process_groups import ProcessGroup
from agentcom.protocol import codec
from agentcom.protocol import messages as m

log = logging.getLogger(__name__)

JOURNAL_VERSION = 1
JOURNAL_FILE = "journal.json"
LOCK_FILE = "sidecar.lock"

EntryState = Literal["running", "finished"]
FinalFrame = m.TaskComplete | m.TaskFailed


class JournalError(AgentComError):
    """The state directory cannot be used (locked by another sidecar, not writable)."""


@dataclass
class JournalEntry:
    """One task in hand. ``assign`` and ``final`` are frames as plain JSON values."""

    task_id: str
    generation: int
    assign: dict[str, Any]
    state: EntryState = "running"
    accepted_acked: bool = False
    final: dict[str, Any] | None = None
    seq_reserved: int = 0
    runs: int = 1
    updated_at: int = field(default_factory=lambda: int(time.time() * 1000))

    def assign_frame(self) -> m.TaskAssign:
        return codec.convert(self.assign, m.TaskAssign)

    def final_frame(self) -> FinalFrame | None:
        if self.final is None:
            return None
        if self.final.get("type") == "task_complete":
            return codec.convert(self.final, m.TaskComplete)
        return codec.convert(self.final, m.TaskFailed)


class Journal:
    """The journal of one sidecar, loaded at construction and saved on every change."""

    def __init__(self, state_dir: str | os.PathLike[str]) -> None:
        self.dir = Path(state_dir)
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise JournalError(f"cannot create state directory {self.dir}: {exc.strerror}") from None
        self.path = self.dir / JOURNAL_FILE
        self._lock_fd: int | None = None
        self._entries: dict[str, JournalEntry] = {}
        self._groups: list[ProcessGroup] = []
        self._load()

    # ------------------------------------------------------------------ locking

    def lock(self) -> None:
        """Take the state directory for this process, or raise JournalError."""
        if self._lock_fd is not None:
            return
        fd = os.open(self.dir / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise JournalError(f"state directory {self.dir} is in use by another sidecar") from None
        self._lock_fd = fd
        for leftover in self.dir.glob(f".{JOURNAL_FILE}.*.tmp"):  # a killed writer's half-written files
            leftover.unlink(missing_ok=True)

    def unlock(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # closing releases the flock
            self._lock_fd = None

    # ------------------------------------------------------------------ reading

    def entries(self) -> list[JournalEntry]:
        return list(self._entries.values())

    def get(self, task_id: str) -> JournalEntry | None:
        return self._entries.get(task_id)

    def resume_entries(self) -> list[m.ResumeEntry]:
        """The tasks to offer in ``identify.resume``: running ones first, then unacknowledged outcomes."""
        ordered = sorted(self._entries.values(), key=lambda e: e.state != "running")
        return [m.ResumeEntry(task_id=e.task_id, generation=e.generation) for e in ordered]

    def __len__(self) -> int:
        return len(self._entries)

    def process_groups(self, task_id: str | None = None) -> list[ProcessGroup]:
        """Recorded process groups (of one task, or all)."""
        return [g for g in self._groups if task_id is None or g.task_id == task_id]

    # ------------------------------------------------------------------ changes

    def start(self, assign: m.TaskAssign) -> JournalEntry:
        """Record a task about to run (before ``task_accepted`` goes out)."""
        previous = self._entries.get(assign.task_id)
        if previous is not None and previous.generation == assign.generation:
            previous.state, previous.final = "running", None
            previous.runs += 1
            entry = previous
        else:
            entry = JournalEntry(task_id=assign.task_id, generation=assign.generation, assign=m.to_builtins(assign))
        self._entries[assign.task_id] = entry
        self._save()
        return entry

    def rerun(self, task_id: str) -> JournalEntry | None:
        """Count one more run of a journalled task (after a crash, the hub said continue)."""
        entry = self._entries.get(task_id)
        if entry is not None:
            entry.runs += 1
            entry.state = "running"
            self._save()
        return entry

    def mark_accepted(self, task_id: str) -> None:
        entry = self._entries.get(task_id)
        if entry is not None and not entry.accepted_acked:
            entry.accepted_acked = True
            self._save()

    def reserve_seq(self, task_id: str, upto: int) -> None:
        entry = self._entries.get(task_id)
        if entry is not None:
            entry.seq_reserved = max(entry.seq_reserved, upto)
            self._save()

    def finish(self, frame: FinalFrame) -> None:
        """Keep the outcome until the hub acknowledges it (the run is over: its process groups are
        forgotten in the same write)."""
        entry = self._entries.get(frame.task_id)
        if entry is None or entry.generation != frame.generation:
            return
        entry.state = "finished"
        entry.final = m.to_builtins(frame)
        self._groups = [g for g in self._groups if (g.task_id, g.generation) != (frame.task_id, frame.generation)]
        self._save()

    def add_process_group(self, group: ProcessGroup) -> None:
        """Record a group a task's command just started (before it can outlive a crash unrecorded)."""
        if group not in self._groups:
            self._groups.append(group)
            self._save()

    def forget_process_groups(self, groups: list[ProcessGroup]) -> None:
        """Forget groups that are gone (their run ended, or they were killed)."""
        kept = [g for g in self._groups if g not in groups]
        if len(kept) != len(self._groups):
            self._groups = kept
            self._save()

    def remove(self, task_id: str, generation: int | None = None) -> JournalEntry | None:
        entry = self._entries.get(task_id)
        if entry is None or (generation is not None and entry.generation != generation):
            return None
        del self._entries[task_id]
        self._save()
        return entry

    # ------------------------------------------------------------------ storage

    def _load(self) -> None:
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return
        try:
            data = json.loads(raw)
            if data.get("version") != JOURNAL_VERSION:
                raise ValueError(f"unknown journal version {data.get('version')!r}")
            for item in data["tasks"]:
                entry = JournalEntry(**item)
                entry.assign_frame()  # the frame must still read as a task_assign
                self._entries[entry.task_id] = entry
        except Exception as exc:  # noqa: BLE001  any damage: keep the file aside, never crash on it
            aside = self.path.with_name(f"{JOURNAL_FILE}.corrupt-{int(time.time())}")
            os.replace(self.path, aside)
            self._entries.clear()
            self._groups.clear()
            log.error("sidecar journal %s is unreadable (%s); moved to %s and starting empty", self.path, exc, aside)
            return
        self._groups = []
        for item in data.get("process_groups", []):  # a bad record costs that record, not the tasks' outcomes
            try:
                self._groups.append(ProcessGroup(**item))
            except Exception as exc:  # noqa: BLE001  never signal a group we cannot identify
                log.error("sidecar journal %s: skipping an unusable process group record %r (%s)", self.path, item, exc)

    def _save(self) -> None:
        data: dict[str, Any] = {"version": JOURNAL_VERSION, "tasks": [asdict(e) for e in self._entries.values()]}
        if self._groups:  # absent when empty: journals stay as older sidecars wrote them
            data["process_groups"] = [asdict(g) for g in self._groups]
        write_atomic(self.path, json.dumps(data, separators=(",", ":")).encode())


def write_atomic(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` so that readers see either the old or the new content."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
