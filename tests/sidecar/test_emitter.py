"""The progress emitter: token batching, order, seq, flush, and frames the hub accepts."""

from __future__ import annotations

import asyncio

import pytest

from agentcom.executors.base import Output
from agentcom.protocol import codec
from agentcom.protocol import messages as m
from agentcom.sidecar.emitter import MAX_EVENT_TEXT, SEQ_BLOCK, ProgressEmitter

# naming the fixture keeps anyio's plugin from also parametrizing every test with "trio"
pytestmark = pytest.mark.usefixtures("anyio_backend")

LONG_WINDOW = 600_000  # ms: no window closes during a test, so batching is decided by flush alone


def make(interval: int = LONG_WINDOW, **kwargs) -> tuple[ProgressEmitter, list[m.TaskProgress]]:
    sent: list[m.TaskProgress] = []
    return ProgressEmitter("task-1", 3, sent.append, batch_interval_ms=interval, **kwargs), sent


def events(frames: list[m.TaskProgress]) -> list[m.ExecutionEvent]:
    out = []
    for frame in frames:
        assert frame.execution_event is not None
        out.append(frame.execution_event)
    return out


@pytest.mark.anyio
async def test_tokens_wait_for_their_window_and_flush_as_one_event() -> None:
    emitter, sent = make()
    for i, word in enumerate(["Hel", "lo", ", ", "world"], start=1):
        emitter.emit(Output(kind="token", text=word, tokens_so_far=i, model="llama3.2"))
    assert sent == []
    emitter.flush()
    [event] = events(sent)
    assert (event.event_type, event.text, event.tokens_so_far, event.model, event.seq) == (
        "token", "Hello, world", 4, "llama3.2", 1)
    emitter.flush()
    assert len(sent) == 1  # nothing pending, nothing sent


@pytest.mark.anyio
async def test_other_kinds_go_at_once_after_pending_tokens() -> None:
    emitter, sent = make()
    emitter.emit(Output(kind="token", text="a", tokens_so_far=1))
    emitter.emit(Output(kind="token", text="b", tokens_so_far=2))
    emitter.emit(Output(kind="stdout", text="line\n"))
    emitter.emit(Output(kind="token", text="c", tokens_so_far=3))
    emitter.emit(Output(kind="stderr", text="warn\n"))
    emitter.emit(Output(kind="status", text="done"))
    got = [(e.event_type, e.text, e.seq) for e in events(sent)]
    assert got == [("token", "ab", 1), ("stdout", "line\n", 2), ("token", "c", 3), ("stderr", "warn\n", 4),
                   ("status", "done", 5)]


@pytest.mark.anyio
async def test_the_window_closes_by_itself() -> None:
    sent: list[m.TaskProgress] = []
    arrived = asyncio.Event()

    def send(frame: m.TaskProgress) -> None:
        sent.append(frame)
        arrived.set()

    emitter = ProgressEmitter("task-1", 1, send, batch_interval_ms=5)
    emitter.emit(Output(kind="token", text="x", tokens_so_far=1))
    emitter.emit(Output(kind="token", text="y", tokens_so_far=2))
    await asyncio.wait_for(arrived.wait(), 10)
    [event] = events(sent)
    assert (event.text, event.tokens_so_far) == ("xy", 2)


@pytest.mark.anyio
async def test_seq_counts_every_event_of_the_generation() -> None:
    emitter, sent = make()
    for i in range(25):
        emitter.emit(Output(kind="stdout", text=str(i)))
        if i % 5 == 0:
            emitter.emit(Output(kind="token", text="t"))
    emitter.close()
    seqs = [e.seq for e in events(sent)]
    assert seqs == list(range(1, len(sent) + 1))
    assert emitter.events_sent == len(sent) == emitter.next_seq - 1
    assert all(f.task_id == "task-1" and f.generation == 3 for f in sent)


@pytest.mark.anyio
async def test_a_model_change_starts_a_new_event() -> None:
    emitter, sent = make()
    emitter.emit(Output(kind="token", text="a", model="small"))
    emitter.emit(Output(kind="token", text="b", model="big"))
    emitter.flush()
    assert [(e.text, e.model) for e in events(sent)] == [("a", "small"), ("b", "big")]


@pytest.mark.anyio
async def test_close_flushes_and_discard_drops() -> None:
    emitter, sent = make()
    emitter.emit(Output(kind="token", text="kept"))
    emitter.close()
    emitter.emit(Output(kind="stdout", text="after close"))
    assert [e.text for e in events(sent)] == ["kept"]

    emitter, sent = make()
    emitter.emit(Output(kind="token", text="dropped"))
    emitter.discard()
    emitter.emit(Output(kind="stdout", text="after discard"))
    emitter.flush()
    assert sent == []


@pytest.mark.anyio
async def test_long_text_is_split_into_several_events() -> None:
    emitter, sent = make()
    text = "x" * (2 * MAX_EVENT_TEXT + 10)
    emitter.emit(Output(kind="stdout", text=text))
    assert "".join(e.text for e in events(sent)) == text
    assert [e.seq for e in events(sent)] == [1, 2, 3]


@pytest.mark.anyio
async def test_seq_blocks_are_reserved_ahead_and_a_rerun_continues_above() -> None:
    reserved: list[int] = []
    emitter, sent = make(first_seq=1, on_reserve=reserved.append)
    for _ in range(SEQ_BLOCK + 1):
        emitter.emit(Output(kind="stdout", text="."))
    assert reserved == [SEQ_BLOCK, 2 * SEQ_BLOCK]
    rerun, sent2 = make(first_seq=reserved[-1] + 1, on_reserve=reserved.append)
    rerun.emit(Output(kind="status", text="again"))
    assert events(sent2)[0].seq > events(sent)[-1].seq


@pytest.mark.anyio
async def test_frames_decode_as_the_hub_reads_them() -> None:
    emitter, sent = make()
    emitter.emit(Output(kind="tool_call", text="read_file(a.py)"))
    emitter.emit(Output(kind="token", text="ok", tokens_so_far=7, model="m" * 300))
    emitter.flush()
    for frame in sent:
        decoded = codec.sidecar_decoder.decode(codec.encode(frame))
        assert isinstance(decoded, m.TaskProgress)
        assert decoded == frame
    assert events(sent)[1].model == "m" * 256


@pytest.mark.anyio
async def test_under_congestion_lines_are_gathered_in_order_without_seq_gaps() -> None:
    congested = [False]
    emitter, sent = make(congested=lambda: congested[0])
    emitter.emit(Output(kind="stdout", text="first"))
    congested[0] = True
    for i in range(3):
        emitter.emit(Output(kind="stdout", text=f"out {i}"))
    emitter.emit(Output(kind="stderr", text="err"))
    emitter.emit(Output(kind="stdout", text="out 3"))
    emitter.emit(Output(kind="status", text="half way"))  # never gathered: it flushes what waits
    emitter.emit(Output(kind="stdout", text="out 4"))
    congested[0] = False
    emitter.emit(Output(kind="stdout", text="last"))
    got = [(e.event_type, e.text, e.seq) for e in events(sent)]
    assert got == [("stdout", "first", 1), ("stdout", "out 0\nout 1\nout 2", 2), ("stderr", "err", 3),
                   ("stdout", "out 3", 4), ("status", "half way", 5), ("stdout", "out 4", 6), ("stdout", "last", 7)]


@pytest.mark.anyio
async def test_gathered_lines_are_cut_between_lines() -> None:
    emitter, sent = make(congested=lambda: True)
    line = "y" * 1000
    count = 3 * MAX_EVENT_TEXT // len(line)
    for _ in range(count):
        emitter.emit(Output(kind="stdout", text=line))
    emitter.flush()
    texts = [e.text for e in events(sent)]
    assert len(texts) > 1
    assert all(set(t.split("\n")) == {line} for t in texts)  # whole lines only
    assert sum(t.count("\n") + 1 for t in texts) == count
