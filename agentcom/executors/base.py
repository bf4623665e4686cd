"""The one interface every backend (shell, Ollama, Claude, OpenAI-compatible, embedded) implements.

An executor turns a ``TaskAssign`` into a stream of ``Output`` pieces and finally one
``Outcome``. It knows nothing about sockets, batching or sequence numbers: the sidecar's
progress emitter stamps ``seq``/``timestamp`` and batches tokens; the dispatcher prices
the outcome. Cancellation is ``asyncio`` cancellation of ``run``: an executor must kill
its process group / close its HTTP stream in ``finally``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import AsyncIterator, Literal, Protocol, Union

from agentcom.protocol.messages import TaskAssign

OutputKind = Literal["token", "stdout", "stderr", "status", "error", "tool_call"]


@dataclass(frozen=True, slots=True)
class Output:
    """A piece of streamed output; becomes an EVENT once the emitter stamps it."""

    kind: OutputKind
    text: str
    tokens_so_far: int | None = None
    model: str | None = None


@dataclass(frozen=True, slots=True)
class Outcome:
    """How the run ended, before pricing. ``error`` set means failure."""

    output: str
    model_used: str | None
    tokens_in: int = 0
    tokens_out: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    error: str | None = None
    retryable: bool = False
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.error is None


Step = Union[Output, Outcome]


class Executor(Protocol):
    """A backend. ``run`` yields Output pieces and ends by yielding exactly one Outcome."""

    target_type: str

    def run(self, task: TaskAssign) -> AsyncIterator[Step]: ...
