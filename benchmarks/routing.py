"""How long routing takes per task: classify, route over many endpoints, choose among many agents.

Run: ``python benchmarks/routing.py [--endpoints 50] [--agents 500] [--tasks 2000] [--seed 7]``

Builds a seeded registry snapshot (mixed health, models, resource reports) and a fleet of
idle agents, then times the three calls the hub makes per scheduled task. Prints figures only.
"""

from __future__ import annotations

import argparse
import random
import statistics
import time

from agentcom.routing import (
    AgentView,
    EndpointView,
    RegistrySnapshot,
    ResourceReport,
    RoutingPolicy,
    Spend,
    TaskView,
    choose_agent,
    classify,
    route,
)
from agentcom.routing.addresses import parse_address

WORDS = ("refactor the add fix typo api handler tests retry cache migrate format docs queue store "
         "information parser sidecar endpoint model budget").split()
MODELS = ("llama3.2:latest", "qwen2.5-coder:7b", "nomic-embed-text:latest", "mistral:7b")


def timed(label: str, count: int, call) -> None:  # type: ignore[no-untyped-def]
    samples = []
    for i in range(count):
        start = time.perf_counter_ns()
        call(i)
        samples.append(time.perf_counter_ns() - start)
    samples.sort()
    print(f"{label:<28} median {statistics.median(samples) / 1000:8.1f} us   "
          f"p99 {samples[int(len(samples) * 0.99) - 1] / 1000:8.1f} us   ({count} calls)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--endpoints", type=int, default=50)
    parser.add_argument("--agents", type=int, default=500)
    parser.add_argument("--tasks", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    now = int(time.time() * 1000)

    endpoints = []
    resources = {}
    for i in range(args.endpoints):
        view = EndpointView.new(parse_address(f"10.0.{i // 250}.{i % 250}:11434"), kind="ollama", now=0).replace(
            status=rng.choice(["healthy", "healthy", "healthy", "unhealthy", "unknown"]),
            models=tuple(rng.sample(MODELS, rng.randint(1, 3))), loaded_models=(rng.choice(MODELS),))
        endpoints.append(view)
        resources[view.endpoint_id] = ResourceReport(reported_at=now, cpu_percent=rng.uniform(0, 100),
                                                     vram_total_mb=8000, vram_free_mb=rng.uniform(0, 8000))
    snapshot = RegistrySnapshot(endpoints=tuple(endpoints), resources=resources)
    agents = [AgentView(agent_id=f"agent-{i:05d}", capabilities=frozenset(rng.sample(["python", "gpu", "rust"], 2)),
                        ollama_host=f"10.0.{i // 250}.{i % 250}", last_assigned_at=rng.randint(0, now))
              for i in range(args.agents)]
    descriptions = [" ".join(rng.choices(WORDS, k=rng.randint(3, 80))) for _ in range(args.tasks)]
    tasks = [TaskView(classify(d, file_hints=[{}] * rng.randint(0, 5))) for d in descriptions]
    policy = RoutingPolicy(budget_daily_usd=10.0)
    price = lambda model, tokens_in, tokens_out: tokens_in * 3e-6 + tokens_out * 15e-6  # noqa: E731

    print(f"{args.endpoints} endpoints ({sum(e.healthy for e in endpoints)} healthy), {args.agents} agents, "
          f"{args.tasks} tasks")
    timed("classify", args.tasks, lambda i: classify(descriptions[i], file_hints=[{}] * (i % 5)))
    timed("route", args.tasks, lambda i: route(tasks[i], snapshot, policy, now=now, waiting_since=now - 10_000,
                                               spend=Spend(today_usd=1.0), estimate_usd=price))
    timed("choose_agent", args.tasks, lambda i: choose_agent(agents, needed_capabilities=["python"],
                                                             near_host=f"10.0.0.{i % 50}"))


if __name__ == "__main__":
    main()
