"""Frames waiting for the hub, in order, across disconnections.

Why a queue of its own: frames are produced whether or not a socket is up (a task keeps
streaming while the hub restarts), and the writer must resume where it stopped. Lifecycle
frames are never dropped here. Progress frames are: while disconnected the buffer is
bounded and the oldest progress goes first (``seq`` lets dashboards see the gap); while
connected producers wait for room instead (``room``), which passes the socket's pace back
to the executor. Completions are also journalled, so even a crash cannot lose them.

``congested`` tells the emitters to gather stdout/stderr lines into fewer EVENTs: the
queue is backed up, or the hub asked for a pause (``rate_limited``), during which the
writer takes nothing.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from typing import Iterable

import msgspec

from agentcom.protocol import messages as m

DEFAULT_HIGH_WATER = 512
DEFAULT_MAX_BUFFERED = 10_000
CONGESTED_FRAMES = 64


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
        self._paused_until = 0.0  # time.monotonic() before which the writer takes nothing
        self.dropped_progress = 0

    def __len__(self) -> int:
        return len(self._frames)

    @property
    def congested(self) -> bool:
        return len(self._frames) > CONGESTED_FRAMES or time.monotonic() < self._paused_until

    def pause(self, seconds: float) -> bool:
        """Hold the writer for ``seconds`` (the hub said ``rate_limited``). True if not already paused."""
        until = time.monotonic() + max(0.0, seconds)
        was_paused = time.monotonic() < self._paused_until
        self._paused_until = max(self._paused_until, until)
        return not was_paused

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
        """Wait until the gate is open, no pause holds and frames are queued; take up to ``limit``."""
        while True:
            wait = self._paused_until - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
                continue
            if self._open and self._frames:
                break
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
