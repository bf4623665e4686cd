"""Bodies of the HTTP API (interface.md), validated like frames."""

from __future__ import annotations

from typing import Annotated, Any

from msgspec import Meta, Struct

from agentcom.protocol.messages import AgentId, Description, FileHint, Priority, TaskId, Tier, VerificationStep


class TaskSubmission(Struct, kw_only=True, forbid_unknown_fields=True):
    """``POST /agentcom/api/tasks``. Unknown fields are refused so a typo never passes silently."""

    description: Description
    priority: Priority = "normal"
    complexity_tier: Tier | None = None
    metadata: dict[str, Any] = {}
    file_hints: Annotated[list[FileHint], Meta(max_length=200)] = []
    success_criteria: Annotated[list[Annotated[str, Meta(max_length=2000)]], Meta(max_length=100)] = []
    verification_steps: Annotated[list[VerificationStep], Meta(max_length=50)] = []
    needed_capabilities: Annotated[list[Annotated[str, Meta(min_length=1, max_length=64)]], Meta(max_length=32)] = []
    max_attempts: Annotated[int, Meta(ge=1, le=100)] | None = None
    depends_on: Annotated[list[TaskId], Meta(max_length=100)] = []
    assign_to: AgentId | None = None


class EndpointRegistration(Struct, kw_only=True, forbid_unknown_fields=True):
    """``POST /agentcom/api/endpoints``."""

    host: Annotated[str, Meta(min_length=1, max_length=512)]
    port: Annotated[int, Meta(ge=1, le=65535)] | None = None
    name: Annotated[str, Meta(max_length=256)] | None = None
    kind: Annotated[str, Meta(pattern="^(ollama|openai)$")] = "ollama"
