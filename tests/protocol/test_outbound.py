"""What the hub sends: every outbound frame encodes to protocol.md's JSON and decodes back to itself."""

from __future__ import annotations

import json
from typing import Any

import msgspec
import pytest

from agentcom.errors import (InvalidJson, InvalidState, NotFound, NotIdentified, RateLimited, StaleGeneration,
                             Unauthorized, UnknownType, ValidationFailed)
from agentcom.protocol import codec
from agentcom.protocol import messages as m

from .samples import DASHBOARD_OUTBOUND, SIDECAR_OUTBOUND

DECODERS = {"sidecar": (codec.sidecar_outbound_decoder, SIDECAR_OUTBOUND),
            "dashboard": (codec.dashboard_outbound_decoder, DASHBOARD_OUTBOUND)}
CASES = [(side, kind) for side, (_, samples) in DECODERS.items() for kind in samples]


def test_the_samples_cover_every_outbound_type() -> None:
    for side, (decoder, samples) in DECODERS.items():
        assert set(samples) == set(decoder.types), side


@pytest.mark.parametrize(("side", "kind"), CASES)
def test_round_trip(side: str, kind: str) -> None:
    decoder, samples = DECODERS[side]
    frame = decoder.decode(json.dumps(samples[kind]))
    text = codec.encode(frame)
    assert isinstance(text, str)
    assert json.loads(text) == samples[kind]
    assert decoder.decode(text) == frame
    assert decoder.decode(text.encode()) == frame


def test_task_assign_carries_every_field_of_the_protocol() -> None:
    frame = codec.sidecar_outbound_decoder.decode(json.dumps(SIDECAR_OUTBOUND["task_assign"]))
    wire = json.loads(codec.encode(frame))
    assert set(wire) == {"type", "task_id", "generation", "description", "priority", "metadata", "assigned_at",
                         "file_hints", "success_criteria", "verification_steps", "complexity", "routing_decision"}
    assert set(wire["routing_decision"]) == {
        "effective_tier", "target_type", "selected_endpoint", "selected_model", "fallback_used", "fallback_from_tier",
        "fallback_reason", "candidate_count", "classification_reason", "estimated_cost_tier", "decided_at"}
    assert set(wire["complexity"]) == {"effective_tier", "source", "explicit_tier", "inferred"}
    assert set(wire["complexity"]["inferred"]["signals"]) == {"word_count", "file_count", "verification_count",
                                                              "keywords"}


def test_task_assign_refuses_a_routing_value_that_is_not_json_scalar() -> None:
    bad = json.loads(json.dumps(SIDECAR_OUTBOUND["task_assign"]))
    bad["routing_decision"]["selected_model"] = {"repr": "<Endpoint object at 0x7f>"}
    with pytest.raises(ValidationFailed) as info:
        codec.sidecar_outbound_decoder.decode(json.dumps(bad))
    assert info.value.errors[0]["field"] == "routing_decision.selected_model"


def test_identified_defaults_to_protocol_version_1() -> None:
    wire = json.loads(codec.encode(m.Identified(agent_id="a", heartbeat_ms=1, lease_ms=2)))
    assert wire == {"type": "identified", "agent_id": "a", "protocol_version": 1, "heartbeat_ms": 1, "lease_ms": 2}


@pytest.mark.parametrize(("exc", "expected"), [
    (InvalidJson("frame is not valid JSON"), {"error": "invalid_json"}),
    (ValidationFailed("bad", [{"field": "generation", "error": "Expected `int`"}], message_type="task_accepted"),
     {"error": "validation_failed", "message_type": "task_accepted",
      "errors": [{"field": "generation", "error": "Expected `int`"}]}),
    (UnknownType("nope", known_types=["ping"]), {"error": "unknown_type"}),
    (NotIdentified("identify first"), {"error": "not_identified"}),
    (Unauthorized("bad token"), {"error": "unauthorized"}),
    (StaleGeneration("old", task_id="task-1"), {"error": "stale_generation", "task_id": "task-1"}),
    (InvalidState("cancelled", task_id="task-1"), {"error": "invalid_state", "task_id": "task-1"}),
    (NotFound("no such task", task_id="task-9"), {"error": "not_found", "task_id": "task-9"}),
    (RateLimited("slow down", retry_after_ms=120), {"error": "rate_limited", "retry_after_ms": 120}),
])
def test_every_error_code_becomes_its_error_frame(exc: Any, expected: dict[str, Any]) -> None:
    wire = json.loads(codec.encode(codec.error_frame(exc)))
    assert wire == {"type": "error", "message": exc.message, **expected}
    assert codec.sidecar_outbound_decoder.decode(json.dumps(wire)) == codec.error_frame(exc)
    body = codec.error_body(exc)
    assert body["error"] == expected["error"] and body["message"] == exc.message


def test_frames_are_immutable() -> None:
    frame = m.TaskAck(task_id="t", status="complete")
    with pytest.raises(AttributeError):
        frame.status = "retried"  # type: ignore[misc]
    assert msgspec.structs.asdict(frame) == {"task_id": "t", "status": "complete"}
