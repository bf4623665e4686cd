"""Decoding what sidecars and dashboards send: valid frames, and every way a frame can be bad.

Each bad frame must become one precise error (``ProtocolError`` with the wire code the hub
answers with); ``validation_failed`` names the message type and the failing field.
"""

from __future__ import annotations

import copy
import json
from typing import Any

import msgspec
import pytest

from agentcom.errors import InvalidJson, ProtocolError, UnknownType, ValidationFailed
from agentcom.protocol import codec
from agentcom.protocol import messages as m

from .samples import DASHBOARD_INBOUND, SIDECAR_INBOUND

DECODERS = {"sidecar": (codec.sidecar_decoder, SIDECAR_INBOUND), "dashboard": (codec.dashboard_decoder, DASHBOARD_INBOUND)}


def _cases() -> list[tuple[str, str]]:
    return [(side, kind) for side, (_, samples) in DECODERS.items() for kind in samples]


def _struct(kind: str) -> type[msgspec.Struct]:
    return m.ALL_INBOUND_TYPES[kind]


def _fields(kind: str) -> list[msgspec.structs.FieldInfo]:
    return list(msgspec.structs.fields(_struct(kind)))


def _fail(decoder: codec.FrameDecoder, raw: str | bytes) -> ProtocolError:
    with pytest.raises(ProtocolError) as info:
        decoder.decode(raw)
    return info.value


def _wire(exc: ProtocolError) -> dict[str, Any]:
    """The error frame the peer would receive, as JSON."""
    return json.loads(codec.encode(codec.error_frame(exc)))


def test_the_samples_cover_every_inbound_type() -> None:
    for side, (decoder, samples) in DECODERS.items():
        assert set(samples) == set(decoder.types), side


@pytest.mark.parametrize(("side", "kind"), _cases())
def test_every_valid_frame_decodes_to_its_struct(side: str, kind: str) -> None:
    decoder, samples = DECODERS[side]
    frame = decoder.decode(json.dumps(samples[kind]))
    assert isinstance(frame, _struct(kind))
    assert msgspec.to_builtins(frame) == samples[kind]
    assert decoder.decode(codec.encode(frame)) == frame  # and back again


@pytest.mark.parametrize(("side", "kind"), _cases())
def test_optional_fields_may_be_left_out(side: str, kind: str) -> None:
    decoder, samples = DECODERS[side]
    minimal = {k: v for k, v in samples[kind].items()
               if k == "type" or any(f.encode_name == k and f.required for f in _fields(kind))}
    assert isinstance(decoder.decode(json.dumps(minimal)), _struct(kind))


def _required() -> list[tuple[str, str, str]]:
    return [(side, kind, f.encode_name) for side, kind in _cases() for f in _fields(kind) if f.required]


@pytest.mark.parametrize(("side", "kind", "field"), _required())
def test_each_missing_required_field_is_named(side: str, kind: str, field: str) -> None:
    decoder, samples = DECODERS[side]
    frame = {k: v for k, v in samples[kind].items() if k != field}
    exc = _fail(decoder, json.dumps(frame))
    assert isinstance(exc, ValidationFailed)
    wire = _wire(exc)
    assert wire["type"] == "error" and wire["error"] == "validation_failed"
    assert wire["message_type"] == kind
    assert [e["field"] for e in wire["errors"]] == [field]
    assert "missing required field" in wire["errors"][0]["error"]
    assert field in wire["message"]


@pytest.mark.parametrize(("side", "kind", "field"),
                         [(side, kind, f.encode_name) for side, kind in _cases() for f in _fields(kind)])
def test_a_wrongly_typed_field_is_named(side: str, kind: str, field: str) -> None:
    decoder, samples = DECODERS[side]
    frame = copy.deepcopy(samples[kind])
    frame[field] = [[[]]]  # valid JSON, never a valid value of any field
    exc = _fail(decoder, json.dumps(frame))
    assert isinstance(exc, ValidationFailed)
    [error] = _wire(exc)["errors"]
    assert error["field"] == field or error["field"].startswith((f"{field}[", f"{field}."))
    assert error["error"].startswith("Expected")


@pytest.mark.parametrize(("kind", "field", "value", "path", "says"), [
    ("task_accepted", "generation", "1", "generation", "Expected `int`, got `str`"),
    ("task_accepted", "generation", -1, "generation", ">= 0"),
    ("task_accepted", "generation", 1.5, "generation", "Expected `int`, got `float`"),
    ("task_accepted", "task_id", 7, "task_id", "Expected `str`, got `int`"),
    ("task_accepted", "task_id", "", "task_id", "length >= 1"),
    ("task_failed", "retryable", "yes", "retryable", "Expected `bool`, got `str`"),
    ("task_progress", "progress", 101, "progress", "<= 100"),
    ("task_progress", "execution_event", {"event_type": "token"}, "execution_event.text", "missing required field"),
    ("identify", "protocol_version", 2, "protocol_version", "Invalid enum value 2"),
    ("identify", "agent_id", "a" * 129, "agent_id", "length <= 128"),
    ("identify", "agent_id", "bad id", "agent_id", "matching regex"),
    ("identify", "capabilities", ["ok", 3], "capabilities[1]", "Expected `str`, got `int`"),
    ("identify", "resume", [{"task_id": "t"}], "resume[0].generation", "missing required field"),
    ("task_complete", "result", {**SIDECAR_INBOUND["task_complete"]["result"], "status": "ok"}, "result.status",
     "Invalid enum value 'ok'"),
    ("task_complete", "result", {**SIDECAR_INBOUND["task_complete"]["result"], "tokens_in": -3}, "result.tokens_in",
     ">= 0"),
    ("task_complete", "result", {**SIDECAR_INBOUND["task_complete"]["result"], "estimated_cost_usd": "free"},
     "result.estimated_cost_usd", "got `str`"),
])
def test_wrong_values_say_what_was_expected_and_where(kind: str, field: str, value: Any, path: str, says: str) -> None:
    frame = copy.deepcopy(SIDECAR_INBOUND[kind]) | {field: value}
    wire = _wire(_fail(codec.sidecar_decoder, json.dumps(frame)))
    assert wire["error"] == "validation_failed" and wire["message_type"] == kind
    assert wire["errors"] == [{"field": path, "error": wire["errors"][0]["error"]}]
    assert says in wire["errors"][0]["error"]


def test_extra_fields_are_accepted_for_forward_compatibility() -> None:
    frame = codec.sidecar_decoder.decode(json.dumps({**SIDECAR_INBOUND["ping"], "future": {"x": 1}}))
    assert frame == m.Ping()


def test_an_unknown_type_lists_the_known_ones() -> None:
    exc = _fail(codec.sidecar_decoder, '{"type": "task_explode", "task_id": "x"}')
    assert isinstance(exc, UnknownType)
    wire = _wire(exc)
    assert wire["error"] == "unknown_type"
    assert "task_explode" in wire["message"] and "task_complete" in wire["message"]


def test_a_dashboard_frame_is_unknown_on_the_sidecar_socket_and_back() -> None:
    assert _fail(codec.sidecar_decoder, '{"type": "cancel_task", "task_id": "x"}').code == "unknown_type"
    assert _fail(codec.dashboard_decoder, '{"type": "task_accepted", "task_id": "x", "generation": 1}').code == (
        "unknown_type")


@pytest.mark.parametrize("raw", ['{"type": "ping"', "{type: 'ping'}", "", "   ", '{"type": "ping"} x', b"\xff\xfe{}",
                                 "NaN", '{"type": "task_progress", "task_id": "t", "generation": 1, "progress": 1e400}'])
def test_invalid_json_is_invalid_json(raw: str | bytes) -> None:
    exc = _fail(codec.sidecar_decoder, raw)
    assert isinstance(exc, InvalidJson)
    wire = _wire(exc)
    assert wire["error"] == "invalid_json" and wire["message"].startswith("frame is not valid JSON")
    assert "errors" not in wire and "message_type" not in wire  # empty fields are left out


@pytest.mark.parametrize(("raw", "kind"), [("[]", "array"), ('"ping"', "string"), ("42", "integer"), ("null", "null"),
                                           ("true", "boolean"), ("[{\"type\": \"ping\"}]", "array")])
def test_a_frame_that_is_not_an_object_is_refused(raw: str, kind: str) -> None:
    wire = _wire(_fail(codec.sidecar_decoder, raw))
    assert wire["error"] == "validation_failed"
    assert wire["errors"] == [{"field": "$", "error": f"expected object, got {kind}"}]


@pytest.mark.parametrize(("frame", "got"), [({}, "nothing"), ({"type": None}, "nothing"), ({"type": 3}, "integer"),
                                            ({"type": ["ping"]}, "array")])
def test_type_must_be_a_string(frame: dict[str, Any], got: str) -> None:
    wire = _wire(_fail(codec.sidecar_decoder, json.dumps(frame)))
    assert wire["error"] == "validation_failed"
    assert wire["errors"] == [{"field": "type", "error": f"required string, got {got}"}]


@pytest.mark.parametrize("decoder", [codec.sidecar_decoder, codec.dashboard_decoder])
def test_json_nested_too_deeply_is_invalid_json(decoder: codec.FrameDecoder) -> None:
    depth = 5_000
    exc = _fail(decoder, '{"type": "ping", "x": ' + "[" * depth + "]" * depth + "}")
    assert isinstance(exc, InvalidJson) and "deep" in exc.message


def test_bytes_and_text_decode_alike() -> None:
    raw = json.dumps(SIDECAR_INBOUND["task_complete"])
    assert codec.sidecar_decoder.decode(raw) == codec.sidecar_decoder.decode(raw.encode())


def test_http_bodies_are_validated_with_field_names() -> None:
    from agentcom.protocol.api import TaskSubmission

    assert codec.convert({"description": "x"}, TaskSubmission).priority == "normal"
    with pytest.raises(ValidationFailed) as info:
        codec.convert({"description": "x", "priority": "asap"}, TaskSubmission)
    assert info.value.errors[0]["field"] == "priority"
    assert "message_type" not in codec.error_body(info.value)
    with pytest.raises(ValidationFailed) as info:
        codec.convert({"description": "x", "colour": "red"}, TaskSubmission)
    assert info.value.errors[0]["field"] == "colour"
