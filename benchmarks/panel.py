"""How fast an ExecutionPanel ingests execution events, and how much memory it keeps, in a kernel.

Run: ``python benchmarks/panel.py [--where kernel|process|both] [--events 100000] [--tasks 20]
[--naive 2000] [--memory-tasks 1000] [--seed 7]``

``--where kernel`` (the default) measures where the panel lives: the script starts a real
ipykernel (jupyter_client, this Python), runs the measurement in it as a cell with top-level
``await`` on the kernel's own loop, and relays what the kernel prints. There every view
update is a widget comm message the kernel serializes and sends on iopub (the script is the
client that receives them, and counts them and their size per step). ``--where process`` runs
the same code under ``asyncio.run`` in this process, with no kernel (widget updates go
nowhere), for comparison; ``both`` runs the two.

The path measured is the notebook's: each event arrives as dashboard-socket JSON text, is
decoded (msgspec, as ``FeedStream`` does), applied to the panel's ``Feed`` (bounded deque per
task) and marks the panel dirty; the panel redraws its one ``HTML`` widget at most ten times
a second on the running asyncio loop. Events are fed in bursts of 1,000 with the loop running
in between (as between socket reads in a kernel), so the throttled renders happen inside the
timed run. Figures:

- wall time to ingest N events, events/s, the CPU time it took (the fairer figure on a busy
  machine: the process's threads only, not its wait for a core), how many renders (HTML
  value updates) it took, and the resident memory before and after (Linux);
- peak traced memory (tracemalloc, a separate run: tracing slows Python down) and the memory
  still held afterwards, after N and after 2N events (bounded: both are the same order), for
  ``--tasks`` tasks and again for ``--memory-tasks`` tasks (where the feed's total budget, not
  the per-task one, is what bounds it); and the peak RSS of the process that ran it (the
  inputs, N frames of JSON text, included);
- for contrast, ``ipywidgets.Output.append_stdout`` per event for ``--naive`` events (each
  append re-sends the whole outputs tuple: quadratic), extrapolated to N, labelled as such.

Target: under 1 s for 100,000 events, memory bounded by the buffers, not by N.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import random
import resource
import sys
import tempfile
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


async def ingest(panel: ExecutionPanel, frames: list[Any], decode: bool, burst: int = 1_000) -> tuple[float, float]:
    """Wall and CPU seconds (all of this process's threads: a kernel's iopub thread sends the updates)."""
    decoder = msgspec.json.Decoder().decode
    apply = panel.feed.apply
    started, cpu = time.perf_counter(), time.process_time()
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
    return time.perf_counter() - started, time.process_time() - cpu


def new_panel() -> tuple[ExecutionPanel, list[int]]:
    panel = ExecutionPanel(Feed(), interval=0.1)
    updates: list[int] = []             # sizes of the HTML values sent, one per view update
    panel.view.observe(lambda change: updates.append(len(change["new"])), "value")
    return panel, updates


def rss_mib() -> float | None:
    """This process's resident memory now (Linux), or None."""
    try:
        with open("/proc/self/statm", encoding="ascii") as handle:
            return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError, IndexError):
        return None


async def timed(frames: list[bytes]) -> None:
    n = len(frames)
    gc.collect()
    before = rss_mib()
    panel, updates = new_panel()
    seconds, cpu = await ingest(panel, frames, decode=True)
    print(f"ingest {n:,} events from JSON text: {seconds:.3f} s ({n / seconds:,.0f} events/s; {cpu:.3f} s CPU), "
          f"{len(updates)} HTML updates, last view {len(panel.view.value) / 1024:.0f} KiB", flush=True)
    gc.collect()
    after = rss_mib()
    if before is not None and after is not None:
        print(f"resident memory: {before:,.0f} MiB before (inputs included), {after:,.0f} MiB after the ingest "
              f"(+{after - before:,.0f} MiB)", flush=True)
    started = time.perf_counter()
    for _ in range(20):
        panel.refresh()
    print(f"one full render of the panel (all tasks view): {(time.perf_counter() - started) / 20 * 1000:.2f} ms",
          flush=True)
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
          f"{len(feed.streams)} tasks kept, {feed.timeline.maxlen:,} in the timeline)", flush=True)
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
          f"quadratic extrapolation to {n:,}: ~{estimate:,.0f} s (an estimate)", flush=True)
    out.close()


async def run(events: int, tasks: int, naive_count: int, memory_tasks: int, seed: int) -> None:
    """Every measurement, in order, on the running loop (a kernel's, or asyncio.run's)."""
    frames = make_frames(events, tasks, seed)
    print(f"{events:,} execution events over {tasks} tasks, {sum(map(len, frames)) / 2**20:.1f} MiB of JSON", flush=True)
    await timed(frames)
    await memory(frames, tasks)
    if memory_tasks:
        await memory(make_frames(events, memory_tasks, seed), memory_tasks)
    peak_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024   # KiB on Linux
    print(f"peak RSS of the process that ran this (before the Output contrast): {peak_rss:,.0f} MiB", flush=True)
    if naive_count:
        naive(frames, naive_count, events)


# --------------------------------------------------------------------------- in a kernel

KERNEL_CELL = """
import importlib.util, sys
_spec = importlib.util.spec_from_file_location("agentcom_panel_benchmark", {path!r})
_bench = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = _bench
_spec.loader.exec_module(_bench)
import ipykernel
print(f"in an ipykernel {{ipykernel.__version__}} (pid {{__import__('os').getpid()}}), on its loop", flush=True)
await _bench.run({events}, {tasks}, {naive}, {memory_tasks}, {seed})
"""


def in_kernel(args: argparse.Namespace) -> int:
    """Run ``run`` as a cell of a fresh ipykernel; relay its output and count the widget messages it sends."""
    from jupyter_client.manager import KernelManager

    cell = KERNEL_CELL.format(path=os.path.abspath(__file__), events=args.events, tasks=args.tasks,
                              naive=args.naive, memory_tasks=args.memory_tasks, seed=args.seed)
    step = {"messages": 0, "bytes": 0}
    total = {"messages": 0, "bytes": 0}
    failed: list[str] = []
    pending: list[str] = []

    def on_message(msg: dict[str, Any]) -> None:
        kind = msg["msg_type"]
        if kind in ("comm_open", "comm_msg", "comm_close"):
            size = len(json.dumps(msg["content"], default=str))
            for counter in (step, total):
                counter["messages"] += 1
                counter["bytes"] += size
        elif kind == "stream":
            pending.append(msg["content"]["text"])     # a line may come in several chunks
            *lines, rest = "".join(pending).split("\n")
            pending[:] = [rest]
            for line in lines:
                print(f"  {line}", flush=True)
                if step["messages"]:
                    print(f"    (the kernel sent {step['messages']:,} widget messages, "
                          f"{step['bytes'] / 2**20:.2f} MiB, for this step)")
                    step["messages"] = step["bytes"] = 0
        elif kind == "error":
            failed.append("\n".join(msg["content"]["traceback"]))

    with tempfile.TemporaryFile("w+") as kernel_log:
        manager = KernelManager()
        manager.start_kernel(stderr=kernel_log)
        client = manager.client()
        client.start_channels()
        try:
            client.wait_for_ready(timeout=120)
            print("== in a kernel: every view update is a widget message on iopub ==", flush=True)
            reply = client.execute_interactive(cell, timeout=args.timeout, output_hook=on_message)
        finally:
            client.stop_channels()
            manager.shutdown_kernel(now=True)
        if pending and pending[0]:
            print(f"  {pending[0]}", flush=True)
        if reply["content"]["status"] != "ok" or failed:
            kernel_log.seek(0)
            print("the kernel run failed:", *failed, kernel_log.read()[-4000:], sep="\n", file=sys.stderr)
            return 1
    print(f"  widget messages received from the kernel in all: {total['messages']:,}, "
          f"{total['bytes'] / 2**20:.2f} MiB", flush=True)
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--where", choices=("kernel", "process", "both"), default="kernel",
                        help="run the measurement in a real ipykernel (default), in this process, or both")
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--tasks", type=int, default=20)
    parser.add_argument("--naive", type=int, default=2_000, help="events for the Output.append_stdout contrast (0: skip)")
    parser.add_argument("--memory-tasks", type=int, default=1_000,
                        help="tasks for the second memory run, where the total event budget binds (0: skip)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--timeout", type=float, default=1_800, help="seconds the kernel run may take")
    args = parser.parse_args()
    status = 0
    if args.where in ("kernel", "both"):
        status = in_kernel(args)
    if args.where in ("process", "both"):
        print("== in this process (asyncio.run, no kernel: view updates go nowhere) ==", flush=True)
        asyncio.run(run(args.events, args.tasks, args.naive, args.memory_tasks, args.seed))
    return status


if __name__ == "__main__":
    sys.exit(main())
