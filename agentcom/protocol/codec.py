"""Decoding and encoding of frames, and the one place that turns errors into error frames.

Decoding is fast in the common case (one typed msgspec decoder per direction) and
precise in the bad case: a frame that fails is decoded again step by step, so the answer
says whether the JSON was broken, the type unknown, or which field was wrong and why.
"""

from __future__ import annotations

import re
from typing import Any, TypeVar

import msgspec

from agentcom.errors import InvalidJson, ProtocolError, UnknownType, ValidationFailed
from agentcom.protocol import messages as m

T = TypeVar("T")

_encoder = msgspec.json.Encoder()
_PATH_RE = re.compile(r"^(?P<msg>.*?)(?: - at `\$(?P<path>[^`]*)`)?$", re.S)
_MISSING_RE = re.compile(r"(?:missing required|contains unknown) field `(?P<field>.+)`$", re.S)  # a name may hold backticks


def encode(frame: msgspec.Struct) -> str:
    """Encode a frame as a JSON text frame."""
    return _encoder.encode(frame).decode()


def encode_bytes(obj: Any) -> bytes:
    return _encoder.encode(obj)


class FrameDecoder:
    """Decodes one direction's frames (a union of tagged Structs)."""

    def __init__(self, union: Any) -> None:
        self._decoder = msgspec.json.Decoder(union)
        members = union.__args__ if hasattr(union, "__args__") else (union,)
        self._by_tag: dict[str, type[msgspec.Struct]] = {
            cls.__struct_config__.tag: cls for cls in members  # type: ignore[misc]
        }

    @property
    def types(self) -> tuple[str, ...]:
        return tuple(sorted(self._by_tag))

    def decode(self, raw: str | bytes) -> Any:
        try:
            return self._decoder.decode(raw)
        except msgspec.DecodeError:
            pass
        except RecursionError:
            raise InvalidJson("frame is not valid JSON: nested too deeply") from None
        self._diagnose(raw)
        raise AssertionError("unreachable")  # pragma: no cover

    def _diagnose(self, raw: str | bytes) -> None:
        try:
            obj = msgspec.json.decode(raw)
        except msgspec.DecodeError as exc:
            raise InvalidJson(f"frame is not valid JSON: {exc}") from None
        except RecursionError:  # a deep array or scalar nest fails the typed decoder first, then lands here
            raise InvalidJson("frame is not valid JSON: nested too deeply") from None
        if not isinstance(obj, dict):
            raise ValidationFailed(
                f"a frame must be a JSON object, got {_json_kind(obj)}",
                [{"field": "$", "error": f"expected object, got {_json_kind(obj)}"}],
            )
        frame_type = obj.get("type")
        if not isinstance(frame_type, str):
            got = "nothing" if frame_type is None else _json_kind(frame_type)
            raise ValidationFailed(
                f"`type` must be a string, got {got}",
                [{"field": "type", "error": f"required string, got {got}"}],
            )
        cls = self._by_tag.get(frame_type)
        if cls is None:
            shown = repr(frame_type) if len(frame_type) <= 64 else f"{frame_type[:64]!r}... ({len(frame_type)} chars)"
            raise UnknownType(  # the type is echoed cut short: an error never sends a huge frame back
                f"unknown frame type {shown}; expected one of {', '.join(self.types)}",
                known_types=list(self.types),
            )
        try:
            msgspec.convert(obj, cls)
        except msgspec.ValidationError as exc:
            raise validation_error(exc, message_type=frame_type) from None
        raise ValidationFailed("frame failed validation", [], message_type=frame_type)  # pragma: no cover


def validation_error(exc: msgspec.ValidationError, message_type: str | None = None) -> ValidationFailed:
    """msgspec's path-bearing message as ``validation_failed`` with ``[{field, error}]``."""
    text = str(exc)
    match = _PATH_RE.match(text)
    msg = match.group("msg") if match else text
    path = (match.group("path") or "") if match else ""
    missing = _MISSING_RE.search(msg)
    field = path.lstrip(".")
    if missing:
        field = f"{field}.{missing.group('field')}" if field else missing.group("field")
    field = field or "$"
    where = f" (at `{field}`)" if field != "$" else ""
    prefix = f"{message_type}: " if message_type else ""
    return ValidationFailed(f"{prefix}{msg}{where}", [{"field": field, "error": msg}], message_type=message_type)


def convert(obj: Any, cls: type[T]) -> T:
    """Validate already-parsed JSON (an HTTP body) against a Struct, raising ValidationFailed."""
    try:
        return msgspec.convert(obj, cls)
    except msgspec.ValidationError as exc:
        raise validation_error(exc) from None


def error_frame(exc: ProtocolError) -> m.ErrorFrame:
    return m.ErrorFrame(
        error=exc.code,
        message=exc.message,
        message_type=exc.extra.get("message_type"),
        errors=exc.extra.get("errors"),
        retry_after_ms=exc.extra.get("retry_after_ms"),
        task_id=exc.extra.get("task_id"),
    )


def error_body(exc: ProtocolError) -> dict[str, Any]:
    """The JSON body of an HTTP error answer."""
    body: dict[str, Any] = {"error": exc.code, "message": exc.message}
    for key, value in exc.extra.items():
        if value is not None:
            body[key] = value
    return body


def _json_kind(value: Any) -> str:
    return {
        dict: "object", list: "array", str: "string", int: "integer", float: "number", bool: "boolean",
        type(None): "null",
    }.get(type(value), type(value).__name__)


sidecar_decoder = FrameDecoder(m.SidecarInbound)
dashboard_decoder = FrameDecoder(m.DashboardInbound)
sidecar_outbound_decoder = FrameDecoder(m.SidecarOutbound)
dashboard_outbound_decoder = FrameDecoder(m.DashboardOutbound)
