"""How fast an ExecutionPanel ingests execution events, and how much memory it keeps.

Run: ``python benchmarks/panel.py [--events 100000] [--tasks 20] [--naive 2000] [--seed 7]``

The path measured is the notebook's: each event arrives as dashboard-socket JSON text, is
decoded (msgspec, as ``FeedStream`` does), applied to the panel's ``Feed`` (bounded deque per
task) and marks the panel dirty; the panel redraws its one ``HTML`` widget at most ten times
a second on the running asyncio loop. Events are fed in bursts of 1,000 with the loop running
in between (as between socket reads in a kernel), so the throttled renders happen inside the
timed run. Figures:

- wall time to ingest N events, events/s, and how many renders (HTML value updates) it took;
- peak traced memory (tracemalloc, a separate run: tracing slows Python down) and the memory
  still held afterwards, after N and after 2N events (bounded: both are the same order), for
  ``--tasks`` tasks and again for 1,000 tasks (where the feed's total budget, not the
  per-task one, is what bounds it);
- for contrast, ``ipywidgets.Output.append_stdout`` per event for ``--naive`` events (each
  append re-sends the whole outputs tuple: quadratic), extrapolated to N, labelled as such.

Target: under 1 s for 100,000 events, memory bounded by the buffers, not by N.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import random
import time
import tracemalloc
from typing import Any

import msgspec

from agentcom.client import Feed
from agentcom.widgets import ExecutionPanel

KINDS = ("token",) * 14 + ("stdout",) * 3 + ("stderr", "status", "error")
WORDS = ("refactor", "the", "parser", "<tag>", "ok", "tests", "passed", "error:", "line", "42", "&", "done")


def make_frames(n: int, tasks: int, seed: int) -> list[bytes]:
    rng = random.Random(seed)
    encoder = msgspec.json.Encoder()
    seqs = [0] * tasks
    frames = []
    for i in range(n):
        t = rng.randrange(tasks)
        seqs[t] += 1
        kind = rng.choice(KINDS)
        text = " ".join(rng.choice(WORDS) for _ in range(rng.randint(2, 10))) + ("\n" if kind != "token" else " ")
        frames.append(encoder.encode({
            "type": "execution_event", "task_id": f"task-{t:016x}", "generation": 1, "agent_id": f"agent-{t % 4}",
            "event_type": kind, "text": text, "tokens_so_far": seqs[t] * 3, "model": "qwen2.5-coder:7b",
            "timestamp": 1_700_000_000_000 + i, "seq": seqs[t],
        }))
    return frames


async def ingest(panel: ExecutionPanel, frames: list[Any], decode: bool, burst: int = 1_000) -> float:
    decoder = msgspec.json.Decoder().decode
    apply = panel.feed.apply
    started = time.perf_counter()
    for start in range(0, len(frames), burst):
        chunk = frames[start:start + burst]
        if decode:
            for raw in chunk:
                apply(decoder(raw))
        else:
            for frame in chunk:
                apply(frame)
        await asyncio.sleep(0)          # the loop runs between socket reads; throttled renders fire here
    panel._throttle.flush()             # the final frame the user sees
    return time.perf_counter() - started


def new_panel() -> tuple[ExecutionPanel, list[int]]:
    panel = ExecutionPanel(Feed(), interval=0.1)
    updates: list[int] = []             # sizes of the HTML values sent, one per view update
    panel.view.observe(lambda change: updates.append(len(change["new"])), "value")
    return panel, updates


async def timed(frames: list[bytes]) -> None:
    n = len(frames)
    panel, updates = new_panel()
    seconds = await ingest(panel, frames, decode=True)
    print(f"ingest {n:,} events from JSON text: {seconds:.3f} s ({n / seconds:,.0f} events/s), "
          f"{len(updates)} HTML updates, last view {len(panel.view.value) / 1024:.0f} KiB")
    started = time.perf_counter()
    for _ in range(20):
        panel.refresh()
    print(f"one full render of the panel (all tasks view): {(time.perf_counter() - started) / 20 * 1000:.2f} ms")
    panel.close()


async def memory(frames: list[bytes], tasks: int) -> None:
    n = len(frames)
    gc.collect()
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    panel, _ = new_panel()
    await ingest(panel, frames, decode=True)
    gc.collect()
    held_n, peak = tracemalloc.get_traced_memory()
    await ingest(panel, frames, decode=True)     # N more: the buffers are full, nothing should grow
    gc.collect()
    held_2n = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    feed = panel.feed
    kept = sum(len(s.events) for s in feed.streams.values()) + len(feed.timeline)
    print(f"memory, {tasks:,} tasks: peak {(peak - base) / 2**20:.1f} MiB while ingesting {n:,}; held {(held_n - base) / 2**20:.1f} MiB "
          f"after {n:,} and {(held_2n - base) / 2**20:.1f} MiB after {2 * n:,} "
          f"({kept:,} events buffered: at most {feed.events_per_task:,} per task and {feed.max_events:,} in all, "
          f"{len(feed.streams)} tasks kept, {feed.timeline.maxlen:,} in the timeline)")
    panel.close()


def naive(frames: list[bytes], count: int, n: int) -> None:
    import ipywidgets as w

    decoder = msgspec.json.Decoder().decode
    out = w.Output()
    started = time.perf_counter()
    for raw in frames[:count]:
        out.append_stdout(decoder(raw)["text"])
    seconds = time.perf_counter() - started
    estimate = seconds * (n / count) ** 2
    print(f"for contrast, Output.append_stdout per event: {count:,} events took {seconds:.3f} s; "
          f"quadratic extrapolation to {n:,}: ~{estimate:,.0f} s (an estimate)")
    out.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--tasks", type=int, default=20)
    parser.add_argument("--naive", type=int, default=2_000, help="events for the Output.append_stdout contrast (0: skip)")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    frames = make_frames(args.events, args.tasks, args.seed)
    print(f"{args.events:,} execution events over {args.tasks} tasks, {sum(map(len, frames)) / 2**20:.1f} MiB of JSON")
    asyncio.run(timed(frames))
    asyncio.run(memory(frames, args.tasks))
    if args.naive:
        naive(frames, args.naive, args.events)
    asyncio.run(memory(make_frames(args.events, 1_000, args.seed), 1_000))


if __name__ == "__main__":
    main()
