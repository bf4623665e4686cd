"""Render at most once per interval, on the running asyncio loop, without threads.

``request()`` only sets a dirty flag and, if no render is pending, schedules one with
``loop.call_later`` for the moment the interval since the previous render is over (at once
after a quiet spell, so a lone change shows immediately). However many requests arrive in
between, one render happens. With no running loop (plain scripts, doctests) a request
renders at once if the interval has passed and otherwise stays dirty until the next request
or ``flush()``.
"""

from __future__ import annotations

import asyncio
import time
from typing import Callable


class RenderThrottle:
    def __init__(self, render: Callable[[], None], interval: float = 0.1) -> None:
        if interval < 0:
            raise ValueError(f"interval must be >= 0 seconds, got {interval}")
        self._render = render
        self.interval = interval
        self.dirty = False
        self.renders = 0
        self._last = float("-inf")
        self._handle: asyncio.TimerHandle | None = None
        self._closed = False

    def request(self) -> None:
        """Something changed: render soon, at most once per interval."""
        if self._closed:
            return
        self.dirty = True
        if self._handle is not None:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            if time.monotonic() - self._last >= self.interval:
                self.flush()
            return
        delay = max(0.0, self._last + self.interval - time.monotonic())
        self._handle = loop.call_later(delay, self._fire)

    def _fire(self) -> None:
        self._handle = None
        if self.dirty and not self._closed:
            self.flush()

    def flush(self) -> None:
        """Render now if anything changed since the last render."""
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        if not self.dirty or self._closed:
            return
        self.dirty = False
        self._last = time.monotonic()
        self.renders += 1
        self._render()

    def close(self) -> None:
        self._closed = True
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
