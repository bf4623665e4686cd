"""``agentcom demo``: the stand-in run as a user starts it (real processes, exit 0, a line per task,
a cost summary that matches the database), and the order in which backends are chosen, against a
real Ollama stand-in server reached through ``OLLAMA_HOST``."""

from __future__ import annotations

import os
import re
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any, Iterator

import ollama
import pytest

from agentcom.demo import _chat_model, choose_backends
from agentcom.executors.local_model import find_local_model, llama_available
from agentcom.standin import OllamaStandin

pytestmark = pytest.mark.usefixtures("anyio_backend")

# "  [    ok] task-a4f80999  trivial  demo-2   shell     $0.000000  Report the Python version and machine"
OK_LINE = re.compile(r"^  \[ +ok\] (?P<id>task-[0-9a-f]{8})  (?P<tier>\w+) +(?P<agent>[\w-]+) +(?P<model>\S+) +"
                     r"(?P<cost>\$\d+\.\d{6}|unpriced)  (?P<description>.+)$", re.MULTILINE)
NOWHERE = "127.0.0.1:9"  # nothing listens there


def demo_env() -> dict[str, str]:
    """This environment without an API key, and an OLLAMA_HOST nothing answers on."""
    env = {k: v for k, v in os.environ.items() if k != "ANTHROPIC_API_KEY"}
    env["OLLAMA_HOST"] = NOWHERE
    return env


def test_the_stand_in_demo_shows_every_task_and_a_cost_summary_matching_the_database(tmp_path: Path) -> None:
    db = tmp_path / "demo.db"
    proc = subprocess.run([sys.executable, "-m", "agentcom", "demo", "--no-local", "--sidecars", "2", "--tasks", "4",
                           "--db", str(db)], env=demo_env(), cwd=tmp_path, capture_output=True, text=True, timeout=240)
    out = proc.stdout
    assert proc.returncode == 0, out + proc.stderr
    assert "Traceback" not in proc.stderr
    assert "/agentcom/?token=" in out
    assert "standard tier: Ollama stand-in, model simulated-llama3.2 (simulated)" in out
    assert "complex tier: Anthropic stand-in, model simulated-claude-sonnet-4-5 (simulated)" in out

    with sqlite3.connect(db) as conn:
        tasks = dict(conn.execute("SELECT task_id, status FROM tasks").fetchall())
        runs = conn.execute("SELECT task_id, model_used, tokens_in, tokens_out, equivalent_claude_cost_nusd "
                            "FROM executions").fetchall()
    assert len(tasks) == 4 and set(tasks.values()) == {"completed"}
    assert sorted(r[0] for r in runs) == sorted(tasks)  # one execution each

    done = {m["id"]: m for m in OK_LINE.finditer(out)}
    assert set(done) == {f"task-{task_id[-8:]}" for task_id in tasks}  # a final line for every task
    for task_id, model, *_ in runs:
        line = done[f"task-{task_id[-8:]}"]
        assert line["model"] == model[:34] and line["cost"] == "$0.000000"
    assert {m["tier"] for m in done.values()} == {"trivial", "standard", "complex"}
    assert "4/4 done" in out and "tasks: 4 completed" in out

    summary = out[out.index("Cost summary (partly simulated)"):]
    assert "simulated-claude-sonnet-4-5 (simulated)" in summary
    assert "simulated-llama3.2:latest (simulated)" in summary
    assert "simulated: Ollama (no server reachable), Anthropic API (no ANTHROPIC_API_KEY)" in summary
    total = next(line for line in summary.splitlines() if line.strip().startswith("total")).split()
    tokens_in, tokens_out = sum(r[2] for r in runs), sum(r[3] for r in runs)
    equivalent = sum(r[4] or 0 for r in runs) / 1e9
    assert total[1:5] == ["4", str(tokens_in), str(tokens_out), "$0.000000"]
    assert tokens_out > 0 and total[5] == f"${equivalent:.6f}"


@pytest.fixture
def no_api_key(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    yield


@pytest.mark.anyio
@pytest.mark.usefixtures("no_api_key")
async def test_a_reachable_ollama_is_preferred_and_its_chat_model_chosen(monkeypatch: pytest.MonkeyPatch) -> None:
    # the embedding model has the shorter name: picking by name length alone would take it
    async with OllamaStandin(models=("nomic-embed-text", "simulated-llama3.2")) as server:
        monkeypatch.setenv("OLLAMA_HOST", server.endpoint)
        backends = await choose_backends(simulate=False, use_local=True)  # the embedded model comes second
        try:
            assert (backends.standard_target, backends.ollama_url) == ("ollama:simulated-llama3.2:latest", server.url)
            assert not backends.local_model
            assert f"standard tier: Ollama at {server.url}, model simulated-llama3.2:latest" in backends.notes
            assert backends.simulated == ["Anthropic API (no ANTHROPIC_API_KEY)"]
        finally:
            await backends.close()


def embedded_model_installed() -> bool:
    if not llama_available():
        return False
    try:
        find_local_model("auto")
    except Exception:  # noqa: BLE001
        return False
    return True


@pytest.mark.anyio
@pytest.mark.usefixtures("no_api_key")
@pytest.mark.parametrize("use_local", [True, False], ids=["embedded", "no-local"])
async def test_without_an_ollama_chat_model_the_embedded_model_then_the_stand_in_serve(
        monkeypatch: pytest.MonkeyPatch, use_local: bool) -> None:
    if use_local and not embedded_model_installed():
        pytest.skip("the embedded model needs the 'local' extra")
    async with OllamaStandin(models=("nomic-embed-text",)) as server:  # reachable, but nothing to chat with
        monkeypatch.setenv("OLLAMA_HOST", server.endpoint)
        backends = await choose_backends(simulate=False, use_local=use_local)
        try:
            assert any("has no chat model" in note for note in backends.notes)
            if use_local:
                assert (backends.standard_target, backends.local_model, backends.ollama_url) == ("local", True, None)
            else:
                assert backends.standard_target == "ollama:simulated-llama3.2"
                assert backends.ollama_url is not None and backends.ollama_url != server.url  # the demo's stand-in
                assert "Ollama (no chat model on the server)" in backends.simulated
        finally:
            await backends.close()


@pytest.mark.anyio
@pytest.mark.usefixtures("no_api_key")
async def test_simulate_uses_the_stand_ins_even_with_a_reachable_ollama(monkeypatch: pytest.MonkeyPatch) -> None:
    async with OllamaStandin(models=("simulated-llama3.2",)) as server:
        monkeypatch.setenv("OLLAMA_HOST", server.endpoint)
        backends = await choose_backends(simulate=True, use_local=False)
        try:
            assert backends.standard_target == "ollama:simulated-llama3.2"
            assert backends.ollama_url != server.url and server.requests == []  # not even asked
            assert "Ollama (--simulate)" in backends.simulated
        finally:
            await backends.close()


def listing(*models: dict[str, Any]) -> list[Any]:
    """Models as the official client parses an ``/api/tags`` answer."""
    return list(ollama.ListResponse.model_validate({"models": list(models)}).models)


def test_the_chat_model_skips_embedding_models_and_prefers_the_smallest() -> None:
    bert = {"family": "bert", "families": ["bert"]}
    models = listing({"model": "mxbai-large:latest", "size": 100, "details": bert},  # an embedding model by family
                     {"model": "nomic-embed-text:latest", "size": 200},  # ... by name
                     {"model": "qwen2.5-coder:7b", "size": 4_700_000_000, "details": {"family": "qwen2"}},
                     {"model": "llama3.2:3b", "size": 2_000_000_000, "details": {"family": "llama"}})
    assert _chat_model(models) == "llama3.2:3b"
    assert _chat_model(models[:2]) is None
    assert _chat_model([]) is None
