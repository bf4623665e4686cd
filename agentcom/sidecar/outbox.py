"""Frames waiting for the hub, in order, across disconnections.

Why a queue of its own: frames are produced whether or not a socket is up (a task keeps
streaming while the hub restarts), and the writer must resume where it stopped. Lifecycle
frames are never dropped here. Progress frames are: while disconnected the buffer is
bounded and the oldest progress goes first (``seq`` lets dashboards see the gap); while
connected producers wait for room instead (``room``), which passes the socket's pace back
to the executor. Completions are also journalled, so even a crash cannot lose them.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Iterable

import msgspec

from agentcom.protocol import messages as m

DEFAULT_HIGH_WATER = 512
DEFAULT_MAX_BUFFERED = 10_000


class Outbox:
    """An ordered, bounded, pausable queue of outgoing frames."""

    def __init__(self, *, high_water: int = DEFAULT_HIGH_WATER, max_buffered: int = DEFAULT_MAX_BUFFERED) -> None:
        self._frames: deque[msgspec.Struct] = deque()
        self._high_water = high_water
        self._max_buffered = max_buffered
        self._changed = asyncio.Event()
        self._drained = asyncio.Event()
        self._drained.set()
        self._open = False  # a writer is attached and the gate is up
        self.dropped_progress = 0

    def __len__(self) -> int:
        return len(self._frames)

    def put(self, frame: msgspec.Struct) -> None:
        self._frames.append(frame)
        self._drained.clear()
        if not self._open and len(self._frames) > self._max_buffered:
            self._drop_oldest_progress()
        self._changed.set()

    def put_front(self, frames: Iterable[msgspec.Struct]) -> None:
        """Give frames back (a write failed): they go out first next time."""
        items = list(frames)
        if items:
            self._frames.extendleft(reversed(items))
            self._drained.clear()
            self._changed.set()

    def discard(self, task_id: str, generation: int | None = None) -> int:
        """Forget every queued frame of a task (generation), e.g. after a cancel."""
        keep = deque(f for f in self._frames if not _belongs(f, task_id, generation))
        removed = len(self._frames) - len(keep)
        self._frames = keep
        self._note_drained()
        return removed

    def discard_lifecycle(self, task_ids: set[str]) -> int:
        """Forget queued lifecycle frames of these tasks: the resume handshake re-sends them."""
        keep = deque(f for f in self._frames
                     if not (isinstance(f, m.LIFECYCLE_FRAMES) and getattr(f, "task_id", None) in task_ids))
        removed = len(self._frames) - len(keep)
        self._frames = keep
        self._note_drained()
        return removed

    def open(self) -> None:
        """Let the writer take frames (connected and resumed)."""
        self._open = True
        self._changed.set()

    def close(self) -> None:
        """Hold frames (disconnected); producers stop waiting for room."""
        self._open = False
        self._changed.set()

    async def take(self, limit: int) -> list[msgspec.Struct]:
        """Wait until the gate is open and frames are queued, then take up to ``limit``."""
        while not (self._open and self._frames):
            self._changed.clear()
            await self._changed.wait()
        batch = [self._frames.popleft() for _ in range(min(limit, len(self._frames)))]
        self._note_drained()
        return batch

    async def room(self) -> None:
        """Wait while a connected writer is behind by more than the high-water mark."""
        while self._open and len(self._frames) > self._high_water:
            self._changed.clear()
            await self._changed.wait()

    async def drained(self) -> None:
        await self._drained.wait()

    def _note_drained(self) -> None:
        self._changed.set()  # wakes producers waiting in room()
        if not self._frames:
            self._drained.set()

    def _drop_oldest_progress(self) -> None:
        for i, frame in enumerate(self._frames):
            if isinstance(frame, m.TaskProgress):
                del self._frames[i]
                self.dropped_progress += 1
                return


def _belongs(frame: msgspec.Struct, task_id: str, generation: int | None) -> bool:
    if getattr(frame, "task_id", None) != task_id:
        return False
    return generation is None or getattr(frame, "generation", None) == generation
