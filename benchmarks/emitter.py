"""How many execution events a sidecar pushes through its emitter to a real hub.

Run: ``python benchmarks/emitter.py [--events 100000] [--tokens 200000] [--lines 100000]``

Three runs, each against an in-process ``agentcom.Hub`` over loopback, each counting what
the hub *publishes* on its ``execution`` topic (what dashboards would receive):

1. ``stdout`` lines from an in-process ``Sidecar`` whose runner emits as fast as it can
   (yielding to the loop between lines, as an executor reading a pipe does). Frames are
   paced at ``max_events_per_s`` (2 000/s by default, under the hub's 5 000/s budget); the
   surplus is gathered into multi-line EVENTs, so every line arrives. Hub and sidecar
   share one loop here: a floor for a deployment where they run on different cores.
2. ``token`` outputs through the same path: batched into 100 ms windows, so the figure is
   tokens/s accepted and the frames actually sent.
3. A real sidecar process running a shell task that prints N lines: pipe, shell executor,
   emitter, socket, hub, end to end.

Prints figures only (no assertions), with the load average before and after (the figures
mean little on a busy machine). The hub's progress budget (5 000 frames/s per session by
default) shows up as ``rate_limited`` answers when a run exceeds it.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import shlex
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Awaitable, Callable

from agentcom.executors.base import Output, OutputKind
from agentcom.executors.dispatch import Finished
from agentcom.hub import Hub
from agentcom.protocol import messages as m
from agentcom.sidecar import Sidecar


class Firehose:
    """A runner that emits ``count`` outputs of one kind as fast as the sidecar takes them."""

    def __init__(self, kind: OutputKind, count: int) -> None:
        self.kind, self.count = kind, count
        self.started = self.ended = 0.0

    async def execute(self, task: m.TaskAssign, on_output: Callable[[Output], Awaitable[None]]) -> Finished:
        self.started = time.perf_counter()
        for i in range(self.count):
            await on_output(Output(kind=self.kind, text=f"{i} ", tokens_so_far=i + 1 if self.kind == "token" else None,
                                   model="bench" if self.kind == "token" else None))
            await asyncio.sleep(0)  # a real executor awaits its pipe or stream between pieces
        self.ended = time.perf_counter()
        result = m.ExecutionResult(status="success", output="", model_used="bench", tokens_in=0, tokens_out=self.count,
                                   estimated_cost_usd=0.0, equivalent_claude_cost_usd=None, execution_ms=0,
                                   price_table="bench")
        return Finished(result=result, error=None, retryable=False)


class Counter:
    """Counts what the hub publishes for one task and notes when it completes."""

    def __init__(self, hub: Hub) -> None:
        self.events = 0
        self.lines = 0
        self.chars = 0
        self.last_seq = 0
        self.last_tokens = 0
        self.done = asyncio.Event()
        self.last_at = 0.0
        hub.core.pubsub.subscribe(self._on, ("execution", "tasks"))

    def _on(self, topic: str, message: dict[str, Any]) -> None:
        if topic == "execution":
            self.events += 1
            self.chars += len(message["text"])
            if message["event_type"] in ("stdout", "stderr"):
                self.lines += message["text"].count("\n") + 1
            self.last_seq = message["seq"]
            if message["event_type"] == "token" and message["tokens_so_far"] is not None:
                self.last_tokens = message["tokens_so_far"]
            self.last_at = time.perf_counter()
        elif message.get("kind") == "task" and message["task"]["status"] == "completed":
            self.done.set()


async def in_process(kind: OutputKind, count: int, root: Path) -> None:
    async with Hub(db_path=str(root / f"{kind}.db"), port=0) as hub:
        rejected = _count_rate_limited()
        runner = Firehose(kind, count)
        sidecar = Sidecar(hub.url, "bench", hub.create_agent_token("bench"), state_dir=root / f"state-{kind}",
                          runner=runner)
        serving = asyncio.create_task(sidecar.run())
        counter = Counter(hub)
        hub.submit_dict({"description": "firehose", "complexity_tier": "trivial", "metadata": {"shell_command": "x"}})
        await asyncio.wait_for(counter.done.wait(), 600)
        sidecar.stop()
        await serving
        elapsed = counter.last_at - runner.started
        if kind == "token":
            print(f"  tokens (in-process sidecar): {counter.last_tokens}/{count} tokens reached the hub in "
                  f"{elapsed:.2f}s = {count / elapsed:,.0f} tokens/s, "
                  f"sent as {counter.events} frames ({counter.events / elapsed:,.1f} frames/s, "
                  f"{count / max(counter.events, 1):,.0f} tokens a frame); rate_limited answers: {rejected()}")
        else:
            print(f"  {kind} lines (in-process sidecar): {counter.lines}/{count} reached the hub in {elapsed:.2f}s "
                  f"= {counter.lines / elapsed:,.0f} lines/s, in {counter.events} EVENTs "
                  f"({counter.events / elapsed:,.0f} frames/s); last seq {counter.last_seq}; "
                  f"rate_limited answers: {rejected()}")


async def subprocess_shell(lines: int, root: Path) -> None:
    async with Hub(db_path=str(root / "shell.db"), port=0) as hub:
        token = hub.create_agent_token("bench-proc")
        log = open(root / "sidecar.log", "wb")
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "agentcom", "sidecar", "--hub", hub.url, "--agent-id", "bench-proc",
            "--token", token, "--state-dir", str(root / "state-proc"), "--workdir", str(root),
            stdout=log, stderr=log)
        while "bench-proc" not in hub.core.agents:
            if proc.returncode is not None:
                log.close()
                raise SystemExit(f"the sidecar exited with {proc.returncode} before identifying: "
                                 f"{(root / 'sidecar.log').read_text(errors='replace')[-2000:]}")
            await asyncio.sleep(0.05)
        counter = Counter(hub)
        code = f"import sys\nfor i in range({lines}): sys.stdout.write(f'line {{i}}\\n')"
        started = time.perf_counter()
        hub.submit_dict({"description": "print lines", "complexity_tier": "trivial",
                         "metadata": {"shell_command": f"{shlex.quote(sys.executable)} -c {shlex.quote(code)}"}})
        await asyncio.wait_for(counter.done.wait(), 600)
        elapsed = time.perf_counter() - started
        proc.terminate()
        await proc.wait()
        log.close()
        print(f"  stdout lines (sidecar process, shell executor): {counter.lines}/{lines} lines in {counter.events} "
              f"EVENTs, {elapsed:.2f}s from submit to completion = {counter.lines / elapsed:,.0f} lines/s")


def _count_rate_limited() -> Callable[[], int]:
    """Counts the hub's rate_limited answers by watching the sidecar's log of them."""
    seen = [0]

    class Tap(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if "rate_limited" in record.getMessage():
                seen[0] += 1

    logging.getLogger("agentcom.sidecar").addHandler(Tap())
    return lambda: seen[0]


async def main(args: argparse.Namespace) -> None:
    print(f"emitter benchmark (python {sys.version.split()[0]}, batch window 100 ms, {os.cpu_count()} cores, "
          f"load average {_load()})")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        await in_process("stdout", args.events, root)
        await in_process("token", args.tokens, root)
        await subprocess_shell(args.lines, root)
    print(f"  load average after: {_load()}")


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--tokens", type=int, default=200_000)
    parser.add_argument("--lines", type=int, default=100_000)
    asyncio.run(main(parser.parse_args()))
