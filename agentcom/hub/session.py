"""One sidecar connection: identify first, then frames dispatched into the hub core.

Transport-free: the Tornado handler feeds raw text in and gets frames out through
``send``. Bad frames are answered with an error frame and change nothing; too many of
them within a window close the socket with 1008 and have its address refused for a
while (``agentcom.hub.guard``), as do too many identifies with a bad token.

Rate budgets are per connection and separate, so a flood of one kind never starves
another: ``task_progress`` has ``progress_rate_limit`` frames per second, every other
frame but the lifecycle ones (ping, identify again) ``frame_rate_limit``; lifecycle frames
(``task_accepted``, ``task_complete``, ``task_failed``, ``task_rejected``) are never
limited. A frame over its budget is answered ``rate_limited`` with ``retry_after_ms``.
A frame whose write the store refuses is answered ``store_unavailable``; the session
goes on.

Each frame's writes join the store's group commit for this loop turn; frames out (acks
above all) and closes wait in an outbox until that commit, so a sidecar never hears of
a write that a crash could still lose.
"""

from __future__ import annotations

import collections
import logging
import sqlite3
from typing import TYPE_CHECKING, Callable

import msgspec

from agentcom.errors import (InvalidState, NotFound, NotIdentified, ProtocolError, RateLimited, StaleGeneration,
                             StoreUnavailable, Unauthorized)
from agentcom.hub.agents import Agent
from agentcom.hub.core import HubCore
from agentcom.protocol import codec
from agentcom.protocol import messages as m

if TYPE_CHECKING:
    from agentcom.hub.guard import AddressGuard

log = logging.getLogger(__name__)

CLOSE_POLICY = 1008


class RateWindow:
    """Counts events in a sliding window; ``hit`` says whether the limit is now exceeded.

    An event over the limit is refused and not counted, so the window holds at most
    ``limit`` entries however hard a peer floods."""

    def __init__(self, limit: int, window_ms: int) -> None:
        self.limit, self.window_ms = limit, window_ms
        self._hits: collections.deque[int] = collections.deque()

    def hit(self, now: int) -> bool:
        while self._hits and now - self._hits[0] > self.window_ms:
            self._hits.popleft()
        if len(self._hits) >= self.limit:
            return True
        self._hits.append(now)
        return False

    def active(self, now: int) -> bool:
        """Whether any counted event is still inside the window."""
        return bool(self._hits) and now - self._hits[-1] <= self.window_ms

    def retry_after(self, now: int) -> int:
        return max(1, self.window_ms - (now - self._hits[0])) if self._hits else 0

    def charge(self, now: int, kind: str) -> None:
        """Count one ``kind`` frame against this budget; RateLimited (with when to retry) once it is spent."""
        if self.hit(now):
            raise RateLimited(f"{kind} rate limit exceeded ({self.limit}/s on this connection)",
                              retry_after_ms=self.retry_after(now))


def _abuse(exc: ProtocolError, frame: msgspec.Struct | None) -> bool:
    """Whether a refused frame counts towards closing the socket."""
    if isinstance(exc, (RateLimited, StoreUnavailable)) or exc.extra.get("message_type") == "resource_report":
        return False  # a report the hub cannot use is dropped; routing only loses a hint
    # progress still on the wire when its task was cancelled or handed to another generation is a race
    return not (isinstance(frame, m.TaskProgress) and isinstance(exc, (StaleGeneration, InvalidState, NotFound)))


_UNLIMITED = (m.TaskAccepted, m.TaskComplete, m.TaskFailed, m.TaskRejected)  # lifecycle: always processed


class SidecarSession:
    def __init__(self, core: HubCore, send: Callable[[msgspec.Struct], None], close: Callable[[int, str], None],
                 verify_token: Callable[[str, str], bool], *, address: str = "",
                 guard: AddressGuard | None = None) -> None:
        self.core = core
        self.address = address  # the peer's IP ("" in-process): what cool-downs are kept by
        self._guard = guard if address else None
        self._send = send
        self._close = close
        self._verify = verify_token
        self.agent: Agent | None = None
        self.closed = False
        self._group = core.store.group
        self._outbox: list[msgspec.Struct | tuple[int, str]] = []  # frames, or (code, reason) for a close
        # Set by a transport that can put several frames into one socket write: a commit usually
        # releases two or three frames per connection (acks and the next task_assign).
        self.send_many: Callable[[list[msgspec.Struct]], None] | None = None
        s = core.settings
        self._bad = RateWindow(s.bad_frame_limit, s.bad_frame_window_ms)
        self._progress = RateWindow(s.progress_rate_limit, 1000)
        self._frames = RateWindow(s.frame_rate_limit, 1000)

    def send(self, frame: msgspec.Struct) -> None:
        if self.closed:
            return
        if self._group.active:
            self._hold(frame)
        else:
            self._send(frame)

    def close(self, code: int, reason: str) -> None:
        if self.closed:
            return
        self.closed = True
        if self._group.active or self._outbox:
            self._hold((code, reason))  # after the frames before it, e.g. ``unauthorized``
        else:
            self._close(code, reason)

    def _hold(self, item: msgspec.Struct | tuple[int, str]) -> None:
        if not self._outbox:
            self._group.after_commit(self._release)
        self._outbox.append(item)

    def _release(self, committed: bool) -> None:
        items, self._outbox = self._outbox, []
        if not committed:  # what they acknowledge is gone: let the sidecar reconnect and resume
            self.closed = True
            self._close(1011, "the hub could not store this connection's last frames")
            return
        frames: list[msgspec.Struct] = []
        for item in items:
            if isinstance(item, tuple):
                self._send_all(frames)
                self._close(*item)
            else:
                frames.append(item)
        self._send_all(frames)

    def _send_all(self, frames: list[msgspec.Struct]) -> None:
        """Send held frames in order, in one write where the transport can."""
        if len(frames) > 1 and self.send_many is not None:
            self.send_many(frames)
        else:
            for frame in frames:
                self._send(frame)
        frames.clear()

    def on_text(self, raw: str | bytes) -> None:
        self._group.begin()
        if self.agent is not None:
            self.core.touch(self.agent)  # any frame, even a bad one, shows the sidecar is alive
        frame = None
        try:
            try:
                frame = codec.sidecar_decoder.decode(raw)
                self._dispatch(frame)
            except sqlite3.Error as exc:  # a store access outside the core's guarded writes (token, reports)
                self._group.refused(exc)
                raise StoreUnavailable(f"the hub cannot use its store now ({exc})") from None
        except ProtocolError as exc:
            if isinstance(exc, StoreUnavailable) and isinstance(getattr(frame, "task_id", None), str):
                exc.extra.setdefault("task_id", frame.task_id)  # type: ignore[union-attr]  # which outcome to send again
            if isinstance(exc, StoreUnavailable) and not self._outbox and not self.closed:
                # acknowledges nothing, so it need not wait for this turn's commit, which a write
                # SQLite rolled back whole (disk full) fails: the session goes on
                self._send(codec.error_frame(exc))
            else:
                self.send(codec.error_frame(exc))
            if isinstance(exc, Unauthorized):
                if self._guard is not None:
                    self._guard.bad_identify(self.address)
                self.close(CLOSE_POLICY, "unauthorized")
            elif isinstance(exc, RateLimited) and self.agent is None:  # the address is cooling down
                self.close(CLOSE_POLICY, "too many failures from this address; try again later")
            elif _abuse(exc, frame) and self._bad.hit(self.core.clock()):
                if self._guard is not None:
                    self._guard.abusive(self.address)
                self.close(CLOSE_POLICY, "too many bad frames")
        except Exception:  # a defect must not abort the socket with the core still counting the agent online
            kind = getattr(getattr(frame, "__struct_config__", None), "tag", None)
            log.exception("internal error handling a %s frame from %s", kind or "sidecar", self.address or "in-process")
            if self.agent is None and isinstance(frame, m.Identify):
                ghost = self.core.agents.get(frame.agent_id)
                if ghost is not None and ghost.send == self.send:  # registered before the failure
                    self.core.disconnect(ghost)
            self.send(codec.error_frame(ProtocolError(f"internal error handling {kind or 'this frame'}; "
                                                      "nothing more was done with it", message_type=kind)))

    def _dispatch(self, frame: msgspec.Struct) -> None:
        if self.agent is None:
            if not isinstance(frame, m.Identify):
                raise NotIdentified(f"the first frame must be identify, got {frame.__struct_config__.tag}")
            if self._guard is not None:
                self._guard.check_identify(self.address)  # before the token is looked at
            if not self._verify(frame.agent_id, frame.token):
                raise Unauthorized(f"token is not valid for agent {frame.agent_id!r}")
            self.agent = self.core.connect(frame, self.send, self.close, peer_host=self.address or None)
            return
        core, agent = self.core, self.agent
        if not isinstance(frame, _UNLIMITED):
            budget = self._progress if isinstance(frame, m.TaskProgress) else self._frames
            budget.charge(core.clock(), frame.__struct_config__.tag)
        match frame:
            case m.Ping():
                self.send(m.Pong(timestamp=core.clock()))
            case m.TaskProgress():
                core.progress(agent, frame)
            case m.TaskAccepted():
                core.accepted(agent, frame)
            case m.TaskComplete():
                core.complete(agent, frame)
            case m.TaskFailed():
                core.failed(agent, frame)
            case m.TaskRejected():
                core.rejected(agent, frame)
            case m.ResourceReport():
                report = getattr(core.router, "resource_report", None)
                if report is not None:  # routing by explicit tier scores no endpoint: nothing to file
                    report(agent, frame, core.clock())
            case m.Identify():
                raise InvalidState("already identified on this connection")

    def on_close(self) -> None:
        self.closed = True
        if self.agent is not None:
            self.core.disconnect(self.agent)
