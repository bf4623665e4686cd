"""Outcomes on the wire: a result too big for one frame is cut, never re-sent for ever."""

from __future__ import annotations

import msgspec

from agentcom.protocol import codec
from agentcom.protocol import messages as m
from agentcom.sidecar.runtime import fit_frame

from .frames import result


def test_an_outcome_too_big_for_a_frame_is_cut_to_fit() -> None:
    """Escaping makes 512 Ki characters of output more than 1 MiB; the oldest output goes."""
    output = "\x01é\n" * (524_288 // 3) + "the end"
    final = m.TaskComplete(task_id="t", generation=1, result=msgspec.structs.replace(result(), output=output))
    assert len(codec.encode(final).encode()) > 1_048_576
    fitted = fit_frame(final, 1_048_576 - 1_024)
    assert len(codec.encode(fitted).encode()) <= 1_048_576 - 1_024
    assert fitted.result.output.endswith("the end") and "earlier characters cut" in fitted.result.output
    small = m.TaskFailed(task_id="t", generation=1, error="boom")
    assert fit_frame(small, 1_000) is small
