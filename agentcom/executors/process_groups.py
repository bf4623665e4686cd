"""The process group a shell task started, identified well enough to kill it after a crash.

Why: a shell command runs in its own session, so a timeout or a cancel can kill everything
it started. When the sidecar itself dies (SIGKILL, the OOM killer) nothing kills that group:
the command runs on as an orphan while the restarted sidecar, told by the hub to continue,
runs the task again. So the sidecar journals a ``ProcessGroup`` as soon as the command has
spawned and, when it starts again, kills every recorded group that is still the same one.

"Still the same" is checked in ``/proc``, never assumed from a pid: the leader must have the
start time (clock ticks after boot) and boot it was recorded with, so a pid the kernel has
since handed to someone else is never signalled. When the leader has exited but members
remain (a command's background jobs), the group id has not been reused (Linux hands out no
pid that is still a process group's id), and a member is recognised by the
``AGENTCOM_TASK_ID`` / ``AGENTCOM_GENERATION`` the shell executor put in its environment.
Without ``/proc`` (not Linux) nothing can be identified, and nothing is killed.
"""

from __future__ import annotations

import os
import signal
from dataclasses import dataclass
from pathlib import Path

__all__ = ["ProcessGroup", "alive", "kill", "record"]

_PROC = Path("/proc")


@dataclass(frozen=True, slots=True)
class ProcessGroup:
    """A spawned command's process group: ``pgid`` is its leader's pid (it started the session)."""

    task_id: str
    generation: int
    pgid: int
    start_time: int  # the leader's start, in clock ticks after boot (/proc/PID/stat field 22); -1 unknown
    boot_id: str | None

    def __post_init__(self) -> None:
        # read back from a journal file: a damaged record must never make killpg hit pid 0, 1 or -1
        ints = (self.generation, self.pgid, self.start_time)
        if (not isinstance(self.task_id, str) or any(isinstance(v, bool) or not isinstance(v, int) for v in ints)
                or self.pgid <= 1 or not (self.boot_id is None or isinstance(self.boot_id, str))):
            raise ValueError(f"not a process group record: {self!r}")


@dataclass(frozen=True, slots=True)
class _Stat:
    state: str
    pgrp: int
    start_time: int


def _stat(pid: int) -> _Stat | None:
    try:
        text = (_PROC / str(pid) / "stat").read_text()
    except (OSError, ValueError):
        return None
    fields = text.rsplit(")", 1)[-1].split()  # the command name, in parentheses, may hold spaces
    try:  # after the name: state(3) ppid(4) pgrp(5) ... starttime(22)
        return _Stat(state=fields[0], pgrp=int(fields[2]), start_time=int(fields[19]))
    except (IndexError, ValueError):
        return None


def _boot_id() -> str | None:
    try:
        return (_PROC / "sys" / "kernel" / "random" / "boot_id").read_text().strip() or None
    except OSError:
        return None


def record(pid: int, task_id: str, generation: int) -> ProcessGroup | None:
    """The group whose leader is ``pid`` (just spawned with ``start_new_session``); None without /proc.

    A leader already gone (a command that only started background jobs) is recorded with start time
    -1: its members can still be recognised by their environment."""
    if not (_PROC / "self" / "stat").exists():
        return None
    stat = _stat(pid)
    return ProcessGroup(task_id=task_id, generation=generation, pgid=pid,
                        start_time=stat.start_time if stat is not None else -1, boot_id=_boot_id())


def _ours(pid: int, group: ProcessGroup) -> bool:
    """Whether ``pid`` carries the task's marker in its environment (only readable for our own uid)."""
    try:
        environ = (_PROC / str(pid) / "environ").read_bytes().split(b"\0")
    except OSError:
        return False
    return (f"AGENTCOM_TASK_ID={group.task_id}".encode() in environ
            and f"AGENTCOM_GENERATION={group.generation}".encode() in environ)


def _members(group: ProcessGroup) -> list[int]:
    """Running (not zombie) processes of ``group``, or [] when the group is gone or is not ours."""
    if group.boot_id is not None and group.boot_id != _boot_id():
        return []  # recorded before a reboot: that group died with it
    leader = _stat(group.pgid)
    leader_ours = leader is not None and leader.pgrp == group.pgid and leader.start_time == group.start_time
    members: list[int] = []
    ours = leader_ours
    try:
        names = os.listdir(_PROC)
    except OSError:
        return []
    for name in names:
        if not name.isdigit():
            continue
        pid = int(name)
        stat = leader if pid == group.pgid else _stat(pid)
        if stat is None or stat.pgrp != group.pgid or stat.state in ("Z", "X"):
            continue
        if pid == group.pgid and not leader_ours:
            continue  # the pid now belongs to someone else
        members.append(pid)
        ours = ours or _ours(pid, group)
    return members if ours else []


def alive(group: ProcessGroup) -> bool:
    """Whether any process of this very group still runs."""
    return bool(_members(group))


def kill(group: ProcessGroup) -> bool:
    """SIGKILL the group if it is still this one and still running; True when a signal was sent."""
    if group.pgid == os.getpgrp() or not _members(group):
        return False  # never our own group, whatever a journal says
    try:
        os.killpg(group.pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        return False
    return True
