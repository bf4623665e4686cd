"""The progress emitter: executor ``Output`` pieces in, ``task_progress`` frames out.

Why it exists: a model streams one token at a time, and a frame per token would flood the
hub and every dashboard. So ``token`` pieces are gathered into windows of
``batch_interval_ms`` (text concatenated, the latest ``tokens_so_far`` and model kept) and
sent as one EVENT when the window closes. Every other kind (stdout, stderr, status, error,
tool_call) goes out at once, after any pending tokens, so the wire keeps the order the
executor produced. Each EVENT gets the next ``seq`` of its task generation (one more than
the previous), so a dashboard can tell a gap from silence.

Under congestion (``congested()`` true: the outbox is backed up or the hub asked the
sidecar to slow down) ``stdout``/``stderr`` lines are gathered the same way, joined by
newlines, so a chatty command is never slowed down or cut by the pace of the socket:
fewer, larger EVENTs carry every line, in order, with no gap in ``seq``.

The emitter never touches a socket: it hands finished frames to a plain ``send`` callable
(the sidecar's outbox), which keeps it synchronous and its ordering trivial. ``seq`` values
can be reserved in blocks through ``on_reserve`` (hi/lo allocation): the sidecar journals
the block's end, so a re-run after a crash continues above every seq already used.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Callable

from agentcom.protocol import messages as m

if TYPE_CHECKING:  # the executors package imports every backend SDK; the emitter needs none of them
    from agentcom.executors.base import Output

DEFAULT_BATCH_INTERVAL_MS = 100
_JOINERS = {"token": "", "stdout": "\n", "stderr": "\n"}  # kinds that can be gathered, and their glue
MAX_EVENT_TEXT = 65_536  # characters per EVENT; longer text is split (frames stay far below 1 MiB)
SEQ_BLOCK = 1_000

SendFrame = Callable[[m.TaskProgress], None]


def now_ms() -> int:
    return int(time.time() * 1000)


class ProgressEmitter:
    """Stamps, batches and sends the output of one task generation.

    ``emit`` may be called from any coroutine on the sidecar's loop; the batching timer
    uses the running loop. ``flush`` sends pending tokens now (call it before
    ``task_complete``/``task_failed``); ``close`` flushes and stops; ``discard`` drops
    everything pending and sends nothing more (a cancelled generation).
    """

    def __init__(
        self,
        task_id: str,
        generation: int,
        send: SendFrame,
        *,
        batch_interval_ms: int = DEFAULT_BATCH_INTERVAL_MS,
        first_seq: int = 1,
        on_reserve: Callable[[int], None] | None = None,
        congested: Callable[[], bool] | None = None,
        clock: Callable[[], int] = now_ms,
    ) -> None:
        if batch_interval_ms <= 0:
            raise ValueError(f"batch_interval_ms must be positive, got {batch_interval_ms}")
        self.task_id = task_id
        self.generation = generation
        self._send = send
        self._interval_s = batch_interval_ms / 1000
        self._clock = clock
        self._next_seq = first_seq
        self._on_reserve = on_reserve
        self._reserved = first_seq - 1 if on_reserve else None
        self._congested = congested or (lambda: False)
        self._pending: list[str] = []
        self._pending_kind = "token"
        self._pending_chars = 0
        self._pending_tokens: int | None = None
        self._pending_model: str | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._closed = False
        self.events_sent = 0

    @property
    def next_seq(self) -> int:
        return self._next_seq

    @property
    def closed(self) -> bool:
        return self._closed

    def emit(self, out: Output) -> None:
        """Take one piece of output: tokens wait for their window, the rest go at once."""
        if self._closed:
            return
        if out.kind == "token" or (out.kind in _JOINERS and self._congested()):
            self._gather(out)
            return
        self.flush()
        for piece in _split(out.text):
            self._send_event(out.kind, piece, out.tokens_so_far, out.model)

    def flush(self) -> None:
        """Send what is gathered (if anything) as one EVENT now."""
        self._cancel_timer()
        if not self._pending:
            return
        text = _JOINERS[self._pending_kind].join(self._pending)
        kind, tokens, model = self._pending_kind, self._pending_tokens, self._pending_model
        self._pending, self._pending_chars = [], 0
        self._pending_tokens = None
        for piece in _split(text, lines=kind != "token"):
            self._send_event(kind, piece, tokens, model)

    def close(self) -> None:
        """Flush and stop: later ``emit`` calls are ignored."""
        if not self._closed:
            self.flush()
            self._closed = True

    def discard(self) -> None:
        """Drop pending tokens and send nothing more (the generation was cancelled)."""
        self._cancel_timer()
        self._pending, self._pending_chars = [], 0
        self._closed = True

    # ------------------------------------------------------------------ internals

    def _gather(self, out: Output) -> None:
        if self._pending and (out.kind != self._pending_kind or out.model != self._pending_model):
            self.flush()  # one EVENT has one kind and names one model
        self._pending_kind = out.kind
        self._pending.append(out.text)
        self._pending_chars += len(out.text)
        self._pending_model = out.model
        if out.tokens_so_far is not None:
            self._pending_tokens = out.tokens_so_far
        if self._pending_chars >= MAX_EVENT_TEXT:
            self.flush()
        elif self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(self._interval_s, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        if not self._closed:
            self.flush()

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _send_event(self, kind: str, text: str, tokens: int | None, model: str | None) -> None:
        seq = self._take_seq()
        event = m.ExecutionEvent(
            event_type=kind,  # type: ignore[arg-type]  # Output.kind and EventType are the same Literal
            text=text,
            tokens_so_far=tokens,
            model=model[:256] if model else None,
            timestamp=self._clock(),
            seq=seq,
        )
        self._send(m.TaskProgress(task_id=self.task_id, generation=self.generation, execution_event=event))
        self.events_sent += 1

    def _take_seq(self) -> int:
        seq = self._next_seq
        if self._on_reserve is not None and self._reserved is not None and seq > self._reserved:
            self._reserved = seq + SEQ_BLOCK - 1
            self._on_reserve(self._reserved)
        self._next_seq += 1
        return seq


def _split(text: str, lines: bool = False) -> list[str]:
    """Text cut into EVENT-sized pieces; an empty text is still one (empty) event.

    Gathered lines (``lines``) are cut at a newline where there is one, the newline itself
    dropped: it is the glue between two line events, so each piece is whole lines.
    """
    pieces = []
    while len(text) > MAX_EVENT_TEXT:
        cut = text.rfind("\n", 0, MAX_EVENT_TEXT + 1) if lines else -1
        if cut > 0:
            pieces.append(text[:cut])
            text = text[cut + 1:]
        else:
            pieces.append(text[:MAX_EVENT_TEXT])
            text = text[MAX_EVENT_TEXT:]
    pieces.append(text)
    return pieces
