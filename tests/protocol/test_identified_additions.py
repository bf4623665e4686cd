"""``identified``'s optional additions (batch_interval_ms, reference_model, price_table): absent from the
spec's frame, decoded when present, and never a reason for a sidecar to refuse the frame."""

from __future__ import annotations

import json

import msgspec

from agentcom.protocol import codec
from agentcom.protocol import messages as m

SPEC_FRAME = {"type": "identified", "agent_id": "a", "protocol_version": 1, "heartbeat_ms": 1, "lease_ms": 2}


def test_the_spec_frame_decodes_with_the_additions_unset() -> None:
    frame = codec.sidecar_outbound_decoder.decode(json.dumps(SPEC_FRAME))
    assert isinstance(frame, m.Identified)
    assert frame.batch_interval_ms is frame.reference_model is frame.price_table is msgspec.UNSET


def test_the_additions_round_trip() -> None:
    frame = m.Identified(agent_id="a", heartbeat_ms=1, lease_ms=2, batch_interval_ms=250,
                         reference_model="claude-opus-4-5", price_table="agentcom-2026-11+team-1")
    wire = json.loads(codec.encode(frame))
    assert wire == {**SPEC_FRAME, "batch_interval_ms": 250, "reference_model": "claude-opus-4-5",
                    "price_table": "agentcom-2026-11+team-1"}
    assert codec.sidecar_outbound_decoder.decode(json.dumps(wire)) == frame


def test_a_value_a_sidecar_cannot_use_still_decodes() -> None:
    """The sidecar ignores it with a warning; refusing the frame would leave it reconnecting for ever."""
    frame = codec.sidecar_outbound_decoder.decode(json.dumps({**SPEC_FRAME, "batch_interval_ms": -5,
                                                              "reference_model": "x" * 1000}))
    assert isinstance(frame, m.Identified) and frame.batch_interval_ms == -5
