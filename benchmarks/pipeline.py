"""Tokens per second of the embedded model through the whole pipeline versus llama-cpp-python alone.

Pipeline: a task POSTed to an in-process ``agentcom.Hub`` (``routing="model"``, standard tier ->
``local``), classified and routed, assigned over a real WebSocket to a real
``agentcom sidecar --local-model auto`` process, run by its dispatcher and LocalLlamaExecutor,
streamed back by its progress emitter. Timed from the POST until the hub publishes the task
as completed; tokens are counted at the hub: ``tokens_out`` of the executions row (the
model's own usage), checked against the last token event's ``tokens_so_far``.

Direct: ``llama_cpp.Llama`` on the same GGUF with the same n_ctx, seed and threads, one
streamed ``create_chat_completion`` of the same messages, same max_tokens, temperature 0,
timed from the call to its last chunk.

Every prompt runs ``--repeat`` times on each side; the side that goes first alternates, so
both see the same sequence of prompts (llama.cpp reuses a cached prompt prefix on both)
and a burst of load elsewhere falls on both. Both must produce the same text and token
count, or the comparison is void. Prints figures; asserts nothing.

    python benchmarks/pipeline.py [--max-tokens 128] [--repeat 3] [--threads N]

``--threads`` gives both sides N threads (the sidecar's ``--local-threads``); without it both
use llama-cpp-python's defaults. On a machine shared with other work, 1 thread suffers least
from llama.cpp's threads waiting for each other.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import llama_cpp
from tornado.httpclient import AsyncHTTPClient

from agentcom.executors.local_model import find_local_model
from agentcom.hub import Hub

PROMPTS = [
    "Count from 1 to 1000, one number per line.",
    "Explain in detail how a hash table works.",
    "Write a long story about a robot who learns to paint.",
    "List fifty fruits, one per line.",
]


@dataclass
class Run:
    seconds: float
    first_token_s: float
    tokens: int
    text: str
    cpu_s: float = 0.0  # CPU time of every process on that side (less swayed by other work than wall time)


def process_cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process so far, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Pipeline:
    """An in-process hub and one sidecar process with the embedded model."""

    def __init__(self, root: Path, threads: int | None) -> None:
        self.root = root
        self.threads = threads
        self.hub: Hub | None = None
        self.proc: asyncio.subprocess.Process | None = None
        self.http = AsyncHTTPClient()
        self._first_token: dict[str, float] = {}
        self._done: dict[str, asyncio.Future[float]] = {}
        self._last_count: dict[str, int] = {}

    async def start(self) -> None:
        self.hub = await Hub(db_path=str(self.root / "hub.db"), port=0, routing="model",
                             tier_targets={"standard": "local"}, lease_ms=60_000).start()
        self.hub.core.pubsub.subscribe(self._on_event, ("execution", "tasks"))
        token = self.hub.create_agent_token("bench")
        self._log = open(self.root / "sidecar.log", "wb")
        threads = ("--local-threads", str(self.threads)) if self.threads else ()
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "agentcom", "sidecar", "--hub", self.hub.url, "--agent-id", "bench",
            "--token", token, "--state-dir", str(self.root / "state"), "--workdir", str(self.root),
            "--local-model", "auto", *threads, stdout=self._log, stderr=self._log)
        while "bench" not in self.hub.core.agents:
            if self.proc.returncode is not None:
                raise SystemExit(f"sidecar exited: {(self.root / 'sidecar.log').read_text()}")
            await asyncio.sleep(0.05)

    def _on_event(self, topic: str, message: dict[str, Any]) -> None:
        now = time.perf_counter()
        if topic == "execution":
            if message["event_type"] == "token":
                self._first_token.setdefault(message["task_id"], now)
                self._last_count[message["task_id"]] = message["tokens_so_far"] or 0
        elif message.get("kind") == "task" and message["task"]["status"] in ("completed", "failed", "dead_letter"):
            done = self._done.get(message["task"]["task_id"])
            if done is not None and not done.done():
                done.set_result(now)

    async def run(self, prompt: str, max_tokens: int) -> Run:
        assert self.hub is not None
        body = {"description": prompt, "complexity_tier": "standard",
                "metadata": {"max_tokens": max_tokens, "temperature": 0}}
        headers = {"Authorization": f"Bearer {self.hub.admin_token}"}
        assert self.proc is not None
        cpu_before = time.process_time() + process_cpu_s(self.proc.pid)
        started = time.perf_counter()
        answer = await self.http.fetch(self.hub.url + "/agentcom/api/tasks", method="POST", body=json.dumps(body),
                                       headers=headers)
        task_id = json.loads(answer.body)["task_id"]
        done = self._done.setdefault(task_id, asyncio.get_running_loop().create_future())
        ended = await asyncio.wait_for(done, 600)
        cpu_s = time.process_time() + process_cpu_s(self.proc.pid) - cpu_before
        task = json.loads((await self.http.fetch(f"{self.hub.url}/agentcom/api/tasks/{task_id}", headers=headers)).body)
        if task["status"] != "completed":
            raise SystemExit(f"pipeline run failed: {task.get('last_error')}")
        tokens = task["result"]["tokens_out"]
        if self._last_count.get(task_id, 0) > tokens:
            raise SystemExit(f"token events counted {self._last_count[task_id]} tokens, usage says {tokens}")
        return Run(ended - started, self._first_token[task_id] - started, tokens, task["result"]["output"], cpu_s)

    async def stop(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.terminate()
            await self.proc.wait()
            self._log.close()
        if self.hub is not None:
            await self.hub.stop()


def run_direct(llama: Any, prompt: str, max_tokens: int, tokens: int) -> Run:
    """One streamed completion straight from llama-cpp-python (``tokens``: its count, from the reference)."""
    messages = [{"role": "user", "content": prompt}]
    cpu_before = time.process_time()
    started = time.perf_counter()
    first = 0.0
    pieces = []
    for chunk in llama.create_chat_completion(messages=messages, max_tokens=max_tokens, temperature=0, stream=True):
        text = chunk["choices"][0]["delta"].get("content") or ""
        if text and not first:
            first = time.perf_counter()
        pieces.append(text)
    ended = time.perf_counter()
    return Run(ended - started, first - started, tokens, "".join(pieces), time.process_time() - cpu_before)


def usage_of(llama: Any, prompt: str, max_tokens: int) -> tuple[str, int]:
    answer = llama.create_chat_completion(messages=[{"role": "user", "content": prompt}], max_tokens=max_tokens,
                                          temperature=0)
    return answer["choices"][0]["message"]["content"], answer["usage"]["completion_tokens"]


def tps(runs: list[Run]) -> float:
    return sum(r.tokens for r in runs) / sum(r.seconds for r in runs)


async def main(max_tokens: int, repeat: int, threads: int | None) -> None:
    path = find_local_model("auto")
    kwargs: dict[str, Any] = {"n_threads": threads, "n_threads_batch": threads} if threads else {}
    llama = llama_cpp.Llama(model_path=str(path), verbose=False, n_ctx=2048, seed=0, **kwargs)  # as LocalLlamaExecutor
    with tempfile.TemporaryDirectory() as tmp:
        pipeline = Pipeline(Path(tmp), threads)
        await pipeline.start()
        try:
            references = {p: usage_of(llama, p, max_tokens) for p in PROMPTS}
            warm = await pipeline.run(PROMPTS[0], max_tokens)  # loads the model in the sidecar
            if (warm.text, warm.tokens) != references[PROMPTS[0]]:
                raise SystemExit("pipeline and direct call disagree: the comparison would be meaningless")
            direct: dict[str, list[Run]] = {p: [] for p in PROMPTS}
            piped: dict[str, list[Run]] = {p: [] for p in PROMPTS}
            for rep in range(repeat):
                for i, prompt in enumerate(PROMPTS):
                    text, tokens = references[prompt]
                    sides = ["direct", "pipeline"] if (rep + i) % 2 == 0 else ["pipeline", "direct"]
                    for side in sides:
                        if side == "direct":
                            run = run_direct(llama, prompt, max_tokens, tokens)
                            direct[prompt].append(run)
                        else:
                            run = await pipeline.run(prompt, max_tokens)
                            piped[prompt].append(run)
                        if (run.text, run.tokens) != (text, tokens):
                            raise SystemExit(f"{side} run of {prompt!r} differs from the reference")
        finally:
            await pipeline.stop()
    llama.close()

    print(f"model {path.name}; max_tokens {max_tokens}, temperature 0; {len(PROMPTS)} prompts x {repeat} runs "
          f"a side, order alternating; threads {threads or 'default'}; python {sys.version.split()[0]}")
    print(f"{'prompt':48} {'tokens':>6} {'direct tok/s':>13} {'pipeline tok/s':>15} {'overhead':>9}")
    for prompt in PROMPTS:
        d, p = tps(direct[prompt]), tps(piped[prompt])
        print(f"{prompt[:47]:48} {direct[prompt][0].tokens:6d} {d:13.1f} {p:15.1f} {(d / p - 1) * 100:+8.1f}%")
    all_direct = [r for runs in direct.values() for r in runs]
    all_piped = [r for runs in piped.values() for r in runs]
    d, p = tps(all_direct), tps(all_piped)
    paired = [pr.seconds / dr.seconds - 1 for prompt in PROMPTS for dr, pr in zip(direct[prompt], piped[prompt])]
    print(f"{'all (total tokens / total seconds)':48} {sum(r.tokens for r in all_direct) // repeat:6d} "
          f"{d:13.1f} {p:15.1f} {(d / p - 1) * 100:+8.1f}%")
    print(f"overhead per run (pipeline time / direct time - 1): median {statistics.median(paired) * 100:+.1f}%, "
          f"min {min(paired) * 100:+.1f}%, max {max(paired) * 100:+.1f}%")
    cpu_direct, cpu_piped = sum(r.cpu_s for r in all_direct), sum(r.cpu_s for r in all_piped)
    print(f"CPU time (all processes of a side): direct {cpu_direct * 1000 / sum(r.tokens for r in all_direct):.1f} ms "
          f"a token, pipeline (hub + sidecar) {cpu_piped * 1000 / sum(r.tokens for r in all_piped):.1f} ms a token, "
          f"overhead {(cpu_piped / cpu_direct - 1) * 100:+.1f}%")
    print(f"time to first token: direct median {statistics.median(r.first_token_s for r in all_direct) * 1000:.0f} ms, "
          f"pipeline (POST -> first token event at the hub) median "
          f"{statistics.median(r.first_token_s for r in all_piped) * 1000:.0f} ms")
    print(f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs (other work skews both sides)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-tokens", type=int, default=128)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None, help="CPU threads of both models (default: llama.cpp's)")
    args = parser.parse_args()
    asyncio.run(main(args.max_tokens, args.repeat, args.threads))
