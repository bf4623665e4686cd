"""The scheduler's cost per assignment with a long queue and many idle sidecars.

    python benchmarks/scheduler.py [--queues 100000 50000 10000 1000] [--sidecars 500]
                                   [--endpoints 8] [--modes explicit model] [--executions 10000]
                                   [--gc-freeze] [--profile]

The real path, in one process: a ``HubService`` (its SQLite store in a temporary
directory, its ``HubCore`` and its router) restarted on a store that holds the queue, so the
queue is rebuilt from the file as after a crash. The sidecars are the hub's own
``SidecarSession`` objects, fed raw JSON frames and writing every frame they are sent
through a transport that encodes it as the socket handler does and keeps it. In ``model``
mode the sidecars' ``ollama_url`` point at stand-in Ollama servers on loopback, checked
once by the endpoint registry, and a daily budget makes the guard run on every cloud task
over ``--executions`` runs already finished today.

Tasks are a mix of the four tiers and four priorities. For each mode and queue length:

- load: rebuilding the in-memory queue from the store at start-up;
- batch: every sidecar finishes its task while scheduling is held back, then one
  ``schedule()`` pass (its group commit included) assigns a task to each of the idle
  sidecars: the scheduler's worst fan-out, every idle sidecar offered to every task;
- cycle: one sidecar's ``task_complete`` in, its ack and its next ``task_assign`` out,
  commit included, one sidecar after another; ``complete only`` is the same frame with
  scheduling held back, so cycle minus complete-only is what the assignment adds.

Figures are medians or means of one run on a shared machine: compare runs, not digits. The
cycle's p99 is mostly the garbage collector walking the loaded queue (``--gc-freeze`` shows it).

Target (issue 3): < 1 ms per assignment, not growing with the queue's length.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import gc
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import msgspec

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agentcom.hub.service import HubService  # noqa: E402
from dispatch import print_profile  # noqa: E402
from agentcom.protocol import codec  # noqa: E402
from agentcom.protocol import messages as m  # noqa: E402
from agentcom.protocol.api import TaskSubmission  # noqa: E402
from agentcom.store.db import transaction  # noqa: E402
from agentcom.store.tasks import Task  # noqa: E402

SAMPLES: list[dict[str, Any]] = [  # one of each tier; the trivial one carries the shell command it needs
    {"description": "fix typo in README", "complexity_tier": "trivial", "metadata": {"shell_command": "true"}},
    {"description": "write a function that parses ISO dates and add tests for it", "complexity_tier": "standard"},
    {"description": "refactor the security layer of the auth module and migrate the sessions table"},
    {"description": "look at the logs and tell me what happened last night around the outage"},
]
RESULT = m.ExecutionResult(status="success", output="ok", model_used=None, tokens_in=10, tokens_out=20,
                           estimated_cost_usd=0.0, equivalent_claude_cost_usd=None, execution_ms=1,
                           price_table="bench")


class Sidecars:
    """N identified sessions on one hub; what each was last assigned."""

    def __init__(self, service: HubService, count: int, ollama_urls: list[str]) -> None:
        self.service = service
        self.sessions: dict[str, Any] = {}
        self.assigned: dict[str, tuple[str, int]] = {}
        self.frames = 0
        self.bytes = 0
        for i in range(count):
            agent_id = f"bench-{i:04d}"
            token = service.create_agent_token(agent_id)
            session = service.new_sidecar_session(self._transport(agent_id), lambda code, reason: None)
            self.sessions[agent_id] = session
            hello = m.Identify(agent_id=agent_id, token=token, protocol_version=1,
                               ollama_url=ollama_urls[i % len(ollama_urls)] if ollama_urls else None)
            self.feed(agent_id, codec.encode_bytes(hello))

    def _transport(self, agent_id: str) -> Callable[[msgspec.Struct], None]:
        def send(frame: msgspec.Struct) -> None:
            data = codec.encode_bytes(frame)  # what the socket handler writes
            self.frames += 1
            self.bytes += len(data)
            if isinstance(frame, m.TaskAssign):
                self.assigned[agent_id] = (frame.task_id, frame.generation)
            elif isinstance(frame, m.ErrorFrame):
                raise SystemExit(f"{agent_id} got an error frame: {data.decode()}")
        return send

    def feed(self, agent_id: str, raw: bytes) -> None:
        """One frame in, and the end of its loop turn (the group commit releases the answers)."""
        self.sessions[agent_id].on_text(raw)
        self.service.store.group.commit()

    def accept_all(self) -> None:
        for agent_id, (task_id, generation) in list(self.assigned.items()):
            self.feed(agent_id, codec.encode_bytes(m.TaskAccepted(task_id=task_id, generation=generation)))

    def complete(self, agent_id: str) -> None:
        task_id, generation = self.assigned.pop(agent_id)
        self.feed(agent_id, codec.encode_bytes(m.TaskComplete(task_id=task_id, generation=generation, result=RESULT)))


def fill(db_path: str, settings: dict[str, Any], count: int, seed: int, executions: int) -> None:
    """``count`` queued tasks written to a fresh store, classified by the mode's own router, and
    ``executions`` priced runs finished earlier today (what the budget guard sums)."""
    service = HubService(db_path=db_path, **settings)
    try:
        rng = random.Random(seed)
        samples = [(s, service.router.classify(msgspec.convert(s, TaskSubmission))) for s in SAMPLES]
        now = int(time.time() * 1000)
        with transaction(service.store.conn):
            for i in range(count):
                body, complexity = samples[i % len(samples)]
                service.store.insert(Task(
                    task_id=f"task-{now:012x}{i:012x}", description=body["description"], priority=rng.randrange(4),
                    status="queued", max_attempts=3, created_at=now, updated_at=now, complexity=complexity,
                    metadata=dict(body.get("metadata", {})),
                ))
            for i in range(executions):
                service.store.record_execution({
                    "task_id": f"done-{i:08d}", "generation": 1, "agent_id": "earlier", "tier": "complex",
                    "target_type": "claude", "endpoint": None, "model_used": "claude-sonnet-4-5", "tokens_in": 1000,
                    "tokens_out": 500, "cache_read_tokens": 0, "cache_write_tokens": 0, "cost_nusd": 10_000_000,
                    "equivalent_claude_cost_nusd": 10_000_000, "execution_ms": 1000, "status": "success",
                    "error": None, "fallback_used": 0, "completed_at": now - rng.randrange(min(now % 86_400_000, 3_600_000) + 1),
                    "price_table": "bench",
                })
    finally:
        service.conn.close()


def _per(seconds: float, count: int) -> float:
    return seconds / max(count, 1) * 1e6


def _held(service: HubService) -> Callable[[], None]:
    """Hold scheduling back (sidecars go idle, nothing is assigned); returns the undo."""
    service.core.schedule = lambda: 0  # type: ignore[method-assign]
    return lambda: service.core.__dict__.pop("schedule", None)


async def run_one(mode: str, queue: int, args: argparse.Namespace, workdir: str, ollama_urls: list[str],
                  profile: cProfile.Profile | None) -> dict[str, float]:
    settings: dict[str, Any] = {"routing": mode, "lease_ms": 3_600_000, "heartbeat_ms": 3_600_000,
                                "fallback_wait_ms": 5_000, "health_interval_ms": 3_600_000}
    if mode == "model":
        settings["budget_daily_usd"] = 1_000.0
    db_path = os.path.join(workdir, f"{mode}-{queue}-{time.monotonic_ns()}.db")
    # the warm-up and the batch take a task per sidecar each; the cycles run from queue + cycles/2 to queue - cycles/2
    fill(db_path, settings, queue + args.sidecars * 2 + args.cycles // 2, args.seed, args.executions)
    started = time.perf_counter()
    service = HubService(db_path=db_path, **settings)
    load_s = time.perf_counter() - started
    if args.gc_freeze:
        gc.freeze()  # the loaded queue leaves the collector's generations
    try:
        if service.registry is not None:
            for url in ollama_urls:
                service.registry.register(url)
            await service.registry.check_all()
            unhealthy = [e.endpoint_id for e in service.registry.endpoints() if not e.healthy]
            if unhealthy:
                raise SystemExit(f"stand-in endpoints not healthy: {unhealthy}")
        sidecars = Sidecars(service, args.sidecars, ollama_urls if mode == "model" else [])
        if len(sidecars.assigned) != args.sidecars:
            raise SystemExit(f"warm-up assigned {len(sidecars.assigned)} of {args.sidecars} sidecars")
        sidecars.accept_all()
        core = service.core

        # complete only, then one batch: every sidecar idle, one schedule() pass assigns them all
        release = _held(service)
        complete_times = []
        for agent_id in list(sidecars.assigned):
            t0 = time.perf_counter()
            sidecars.complete(agent_id)
            complete_times.append(time.perf_counter() - t0)
        release()
        ready_before = len(core.ready)
        if profile is not None:
            profile.enable()
        started = time.perf_counter()
        service.store.group.begin()
        assigned = core.schedule()
        service.store.group.commit()
        batch_s = time.perf_counter() - started
        if assigned != args.sidecars:
            raise SystemExit(f"batch assigned {assigned} of {args.sidecars}")
        sidecars.accept_all()

        # cycles: one completion in, one assignment out
        order = sorted(sidecars.assigned)
        cycle_times = []
        for i in range(args.cycles):
            agent_id = order[i % len(order)]
            t0 = time.perf_counter()
            sidecars.complete(agent_id)
            cycle_times.append(time.perf_counter() - t0)
            if agent_id not in sidecars.assigned:
                raise SystemExit(f"cycle {i}: {agent_id} got nothing")
            task_id, generation = sidecars.assigned[agent_id]
            sidecars.feed(agent_id, codec.encode_bytes(m.TaskAccepted(task_id=task_id, generation=generation)))
        if profile is not None:
            profile.disable()
        return {
            "batch_at": ready_before, "cycles_at": ready_before - assigned - args.cycles // 2, "load_s": load_s, "complete_us": statistics.median(complete_times) * 1e6,
            "batch_us": _per(batch_s, assigned), "cycle_us": statistics.median(cycle_times) * 1e6,
            "cycle_p99_us": sorted(cycle_times)[int(len(cycle_times) * 0.99)] * 1e6,
        }
    finally:
        await service.close()
        if args.gc_freeze:
            gc.unfreeze()


async def bench(args: argparse.Namespace) -> None:
    from agentcom.standin import OllamaStandin

    standins = [await OllamaStandin().start() for _ in range(args.endpoints)] if "model" in args.modes else []
    urls = [s.url for s in standins]
    profile = cProfile.Profile(time.process_time) if args.profile else None
    print(f"scheduler: {args.sidecars} sidecars (concurrency 1), queue rebuilt from SQLite, {args.cycles} cycles, "
          f"{os.cpu_count()} cores, Python {sys.version.split()[0]}")
    if args.gc_freeze:
        print("  gc.freeze() after loading the queue")
    print(f"  model mode: {args.endpoints} stand-in Ollama endpoints, daily budget set; "
          f"{args.executions} runs finished earlier today; figures in us, "
          "cycle and complete-only: median")
    print(f"  {'mode':8} {'queue':>7} {'load s':>7} {'batch at':>8} {'batch/assign':>13} {'cycle':>7} "
          f"{'cycle p99':>10} {'complete only':>14} {'assign in cycle':>16}")
    try:
        with tempfile.TemporaryDirectory(prefix="agentcom-scheduler-") as workdir:
            for mode in args.modes:
                for queue in args.queues:
                    r = await run_one(mode, queue, args, workdir, urls, profile)
                    print(f"  {mode:8} {r['cycles_at']:7d} {r['load_s']:7.2f} {r['batch_at']:8d} {r['batch_us']:13.0f} {r['cycle_us']:7.0f} "
                          f"{r['cycle_p99_us']:10.0f} {r['complete_us']:14.0f} "
                          f"{r['cycle_us'] - r['complete_us']:16.0f}", flush=True)
    finally:
        for standin in standins:
            await standin.stop()
    print("  target: < 1000 us per assignment, flat across queue lengths")
    if profile is not None:
        print_profile(profile, args.profile_sort, args.profile_lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--queues", type=int, nargs="+", default=[100_000, 50_000, 10_000, 1_000])
    parser.add_argument("--sidecars", type=int, default=500)
    parser.add_argument("--cycles", type=int, default=1_000)
    parser.add_argument("--endpoints", type=int, default=8)
    parser.add_argument("--modes", nargs="+", choices=["explicit", "model"], default=["explicit", "model"])
    parser.add_argument("--executions", type=int, default=10_000,
                        help="runs already finished today (the budget guard sums them)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--gc-freeze", action="store_true",
                        help="gc.freeze() once the queue is loaded, so collections skip the long-lived tasks")
    parser.add_argument("--profile", action="store_true", help="cProfile the batch and the cycles (CPU time)")
    parser.add_argument("--profile-sort", default="tottime")
    parser.add_argument("--profile-lines", type=int, default=30)
    asyncio.run(bench(parser.parse_args()))


if __name__ == "__main__":
    main()
