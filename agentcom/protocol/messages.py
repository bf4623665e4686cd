"""Every frame of the AgentCom wire protocol, version 1, as a msgspec Struct.

These Structs *are* the protocol (see docs/protocol.md): hub, sidecar and dashboard
code build and read frames only through them. Each frame is a tagged Struct whose tag
is its wire ``type``; one union per direction is decoded by ``agentcom.protocol.codec``.
Unknown extra fields are accepted (forward compatible); missing or mistyped fields fail
validation with the JSON path of the culprit.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta, Struct

PROTOCOL_VERSION = 1

AgentId = Annotated[str, Meta(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:@-]*$")]
TaskId = Annotated[str, Meta(min_length=1, max_length=64)]
Generation = Annotated[int, Meta(ge=0)]
Token = Annotated[str, Meta(min_length=1, max_length=256)]
ShortText = Annotated[str, Meta(max_length=256)]
Description = Annotated[str, Meta(min_length=1, max_length=10_000)]
ErrorText = Annotated[str, Meta(max_length=4_000)]
Percent = Annotated[float, Meta(ge=0, le=100)]
# Upper bounds keep every stored number inside SQLite's 64-bit INTEGER, sums over many rows included
# (USD is stored as integer nano-USD): a frame beyond them is refused instead of failing in the store.
MAX_COUNT = 10**12
MAX_USD = 1_000_000.0
NonNegInt = Annotated[int, Meta(ge=0, le=MAX_COUNT)]
Usd = Annotated[float, Meta(ge=0, le=MAX_USD)]
Priority = Literal["urgent", "high", "normal", "low"]
Tier = Literal["trivial", "standard", "complex", "unknown"]
EventType = Literal["token", "stdout", "stderr", "status", "error", "tool_call"]
AckStatus = Literal["accepted", "complete", "retried", "dead_letter"]

PRIORITIES: tuple[str, ...] = ("urgent", "high", "normal", "low")
TIERS: tuple[str, ...] = ("trivial", "standard", "complex", "unknown")


class _Frame(Struct, frozen=True, kw_only=True, tag_field="type"):
    """Base of all frames: tagged by ``type``, immutable, keyword-only."""


# --------------------------------------------------------------------------- shared shapes


class FileHint(Struct, frozen=True, kw_only=True):
    path: Annotated[str, Meta(min_length=1, max_length=1024)]
    reason: Annotated[str, Meta(max_length=1024)] | None = None


class VerificationStep(Struct, frozen=True, kw_only=True):
    type: Annotated[str, Meta(min_length=1, max_length=64)]
    target: Annotated[str, Meta(min_length=1, max_length=1024)]
    description: Annotated[str, Meta(max_length=1024)] | None = None


class KeywordSignals(Struct, frozen=True, kw_only=True):
    complex: bool
    trivial: bool


class ComplexitySignals(Struct, frozen=True, kw_only=True):
    word_count: NonNegInt
    file_count: NonNegInt
    verification_count: NonNegInt
    keywords: KeywordSignals


class InferredComplexity(Struct, frozen=True, kw_only=True):
    tier: Tier
    confidence: Annotated[float, Meta(ge=0, le=1)]
    signals: ComplexitySignals


class Complexity(Struct, frozen=True, kw_only=True):
    effective_tier: Tier
    source: Literal["explicit", "inferred"]
    explicit_tier: Tier | None
    inferred: InferredComplexity


class RoutingDecision(Struct, frozen=True, kw_only=True):
    effective_tier: Tier
    target_type: str
    selected_endpoint: str | None
    selected_model: str | None
    fallback_used: bool
    fallback_from_tier: str | None
    fallback_reason: str | None
    candidate_count: NonNegInt
    classification_reason: str
    estimated_cost_tier: str
    decided_at: int


class ExecutionEvent(Struct, frozen=True, kw_only=True):
    """One piece of streamed output (EVENT in the protocol)."""

    event_type: EventType
    text: Annotated[str, Meta(max_length=262_144)]
    tokens_so_far: NonNegInt | None = None
    model: ShortText | None = None
    timestamp: int
    seq: NonNegInt


class ExecutionResult(Struct, frozen=True, kw_only=True):
    """What a finished execution reports (RESULT in the protocol).

    Costs are USD; ``estimated_cost_usd`` is ``None`` when the model has no price
    (an unknown cloud model is never silently free).
    """

    status: Literal["success", "failed"]
    output: Annotated[str, Meta(max_length=524_288)]
    model_used: ShortText | None
    tokens_in: NonNegInt
    tokens_out: NonNegInt
    estimated_cost_usd: Usd | None
    equivalent_claude_cost_usd: Usd | None
    execution_ms: NonNegInt
    price_table: ShortText
    cache_read_tokens: NonNegInt = 0
    cache_write_tokens: NonNegInt = 0
    verification_status: ShortText | None = None
    attempts: NonNegInt | None = None


class ResumeEntry(Struct, frozen=True, kw_only=True):
    task_id: TaskId
    generation: Generation


# --------------------------------------------------------------------------- sidecar -> hub


class Identify(_Frame, tag="identify", kw_only=True):
    agent_id: AgentId
    token: Token
    protocol_version: Literal[1]
    name: ShortText | None = None
    capabilities: Annotated[list[Annotated[str, Meta(min_length=1, max_length=64)]], Meta(max_length=64)] = []
    ollama_url: Annotated[str, Meta(max_length=512)] | None = None
    models: Annotated[list[ShortText], Meta(max_length=256)] = []
    resume: Annotated[list[ResumeEntry], Meta(max_length=64)] = []
    concurrency: Annotated[int, Meta(ge=1, le=64)] = 1


class Ping(_Frame, tag="ping", kw_only=True):
    pass


class TaskAccepted(_Frame, tag="task_accepted", kw_only=True):
    task_id: TaskId
    generation: Generation


class TaskRejected(_Frame, tag="task_rejected", kw_only=True):
    task_id: TaskId
    generation: Generation
    reason: ErrorText


class TaskProgress(_Frame, tag="task_progress", kw_only=True):
    task_id: TaskId
    generation: Generation
    progress: Percent | None = None
    execution_event: ExecutionEvent | None = None


class TaskComplete(_Frame, tag="task_complete", kw_only=True):
    task_id: TaskId
    generation: Generation
    result: ExecutionResult


class TaskFailed(_Frame, tag="task_failed", kw_only=True):
    task_id: TaskId
    generation: Generation
    error: ErrorText
    retryable: bool = True
    result: ExecutionResult | None = None


Megabytes = Annotated[float, Meta(ge=0, le=1e9)]
Slots = Annotated[int, Meta(ge=0, le=100_000)]


class EndpointResources(Struct, frozen=True, kw_only=True):
    """One LLM endpoint as the reporting sidecar sees it; any figure may be left out (unknown).

    ``endpoint``: ``host:port`` or a URL, as in ``identify.ollama_url`` or a routing decision's
    ``selected_endpoint``. ``free_slots``: tasks the sidecar could still run against it now;
    ``in_flight``: requests running on it that the sidecar knows of; ``loaded_models``: models it
    holds in memory (Ollama's ``/api/ps``). Machine figures describe the host serving it.
    """

    endpoint: Annotated[str, Meta(min_length=1, max_length=512)]
    free_slots: Slots | None = None
    in_flight: Slots | None = None
    loaded_models: Annotated[list[ShortText], Meta(max_length=256)] | None = None
    cpu_percent: Percent | None = None
    ram_total_mb: Megabytes | None = None
    ram_free_mb: Megabytes | None = None
    vram_total_mb: Megabytes | None = None
    vram_free_mb: Megabytes | None = None


class ResourceReport(_Frame, tag="resource_report", kw_only=True):
    """Free capacity of the endpoints a sidecar uses (an addition to the spec; see docs/protocol.md)."""

    endpoints: Annotated[list[EndpointResources], Meta(min_length=1, max_length=64)]


SidecarInbound = (Identify | Ping | TaskAccepted | TaskRejected | TaskProgress | TaskComplete | TaskFailed
                  | ResourceReport)
LIFECYCLE_FRAMES = (TaskAccepted, TaskRejected, TaskComplete, TaskFailed)

# --------------------------------------------------------------------------- hub -> sidecar


class Identified(_Frame, tag="identified", kw_only=True):
    agent_id: str
    protocol_version: int = PROTOCOL_VERSION
    heartbeat_ms: int
    lease_ms: int
    # Additions (docs/protocol.md): hub settings a sidecar adopts unless its own flag was given, and
    # the version of the hub's price table. Left out of the frame when unset, so a hub that does not
    # send them (or a test building the spec's frame) encodes exactly the spec's fields. No limits on
    # purpose: a value the sidecar cannot use is ignored there with a warning, never a refused frame.
    batch_interval_ms: int | msgspec.UnsetType = msgspec.UNSET
    reference_model: str | msgspec.UnsetType = msgspec.UNSET
    price_table: str | msgspec.UnsetType = msgspec.UNSET


class Pong(_Frame, tag="pong", kw_only=True):
    timestamp: int


class TaskContinue(_Frame, tag="task_continue", kw_only=True):
    task_id: str
    generation: int


class TaskReassign(_Frame, tag="task_reassign", kw_only=True):
    task_id: str


class TaskAssign(_Frame, tag="task_assign", kw_only=True):
    task_id: TaskId
    generation: Generation
    description: str
    priority: Priority
    metadata: dict[str, Any] = {}
    assigned_at: int
    file_hints: list[FileHint] = []
    success_criteria: list[str] = []
    verification_steps: list[VerificationStep] = []
    complexity: Complexity
    routing_decision: RoutingDecision


class TaskAck(_Frame, tag="task_ack", kw_only=True):
    task_id: str
    status: AckStatus


class TaskCancelled(_Frame, tag="task_cancelled", kw_only=True):
    task_id: str
    generation: int


class ErrorFrame(_Frame, tag="error", kw_only=True, omit_defaults=True):
    error: str
    message: str
    message_type: str | None = None
    errors: list[dict[str, str]] | None = None
    retry_after_ms: int | None = None
    task_id: str | None = None


SidecarOutbound = Identified | Pong | TaskContinue | TaskReassign | TaskAssign | TaskAck | TaskCancelled | ErrorFrame

# --------------------------------------------------------------------------- dashboard <-> hub


class RequestSnapshot(_Frame, tag="request_snapshot", kw_only=True):
    pass


class CancelTask(_Frame, tag="cancel_task", kw_only=True):
    task_id: TaskId


class RetryTask(_Frame, tag="retry_task", kw_only=True):
    task_id: TaskId


class Subscribe(_Frame, tag="subscribe", kw_only=True):
    task_id: TaskId | None = None


DashboardInbound = RequestSnapshot | CancelTask | RetryTask | Subscribe | Ping


class SnapshotFrame(_Frame, tag="snapshot", kw_only=True):
    data: dict[str, Any]


class EventsFrame(_Frame, tag="events", kw_only=True):
    data: list[dict[str, Any]]


class ExecutionEventFrame(_Frame, tag="execution_event", kw_only=True):
    task_id: str
    generation: int
    agent_id: str | None
    event_type: str
    text: str
    tokens_so_far: int | None
    model: str | None
    timestamp: int
    seq: int


class Dropped(_Frame, tag="dropped", kw_only=True):
    count: int


class CommandResult(_Frame, tag="command_result", kw_only=True):
    """Answer to a dashboard's ``cancel_task`` / ``retry_task`` (an addition to the spec)."""

    command: str
    task_id: str
    status: str


DashboardOutbound = SnapshotFrame | EventsFrame | ExecutionEventFrame | Dropped | CommandResult | Pong | ErrorFrame

ALL_INBOUND_TYPES: dict[str, type[Struct]] = {
    cls.__struct_config__.tag: cls  # type: ignore[misc]
    for cls in (Identify, Ping, TaskAccepted, TaskRejected, TaskProgress, TaskComplete, TaskFailed, ResourceReport,
                RequestSnapshot, CancelTask, RetryTask, Subscribe)
}


def to_builtins(obj: Any) -> Any:
    """A Struct (or anything msgspec encodes) as plain JSON-able Python values."""
    return msgspec.to_builtins(obj)
