"""Hub settings that sidecars follow: ``batch_interval_ms`` and ``reference_model`` travel in ``identified``,
and a sidecar pricing with another table than the hub's ``price_table`` says so in its log.

A real hub (``agentcom.Hub`` over loopback), real ``agentcom sidecar`` subprocesses and the Ollama
stand-in; what a sidecar did is read from what the hub recorded (executions, published events).
"""

from __future__ import annotations

import asyncio
import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from tornado.websocket import websocket_connect

from agentcom import cli
from agentcom.hub import Hub
from agentcom.pricing import PriceTable
from agentcom.protocol import codec
from agentcom.protocol import messages as m
from agentcom.standin import OllamaStandin

from .harness import Env, SidecarProcess, e2e, eventually

pytestmark = pytest.mark.usefixtures("anyio_backend")

LOCAL_MODEL = "simulated-llama3.2"
STANDARD_TO_OLLAMA = {"standard": f"ollama:{LOCAL_MODEL}", "unknown": f"ollama:{LOCAL_MODEL}"}
SAFETY_S = 120.0  # a sidecar process starting on a busy machine: a safety net, never a measurement
PRICES = 'version = "team-prices-7"\n[models."acme-coder"]\ninput = "1"\noutput = "2"\n'


async def identified(hub: Hub, agent_id: str = "probe") -> dict[str, Any]:
    """The ``identified`` frame the hub answers a sidecar's ``identify`` with, as it is on the wire."""
    ws = await websocket_connect(hub.ws_url)
    try:
        await ws.write_message(codec.encode(m.Identify(agent_id=agent_id, token=hub.create_agent_token(agent_id),
                                                       protocol_version=1)))
        raw = await asyncio.wait_for(ws.read_message(), 10)
        assert isinstance(raw, str), raw
        codec.sidecar_outbound_decoder.decode(raw)  # a valid frame for every sidecar
        frame: dict[str, Any] = json.loads(raw)
        return frame
    finally:
        ws.close()


async def run_standard_tasks(env: Env, *sidecars: SidecarProcess) -> list[tuple[dict[str, Any], list[dict[str, Any]]]]:
    """One standard task on the Ollama stand-in per sidecar (pinned to it, run at once): each one's
    executions row and the token events published for it."""
    events = env.record_events()
    for sidecar in sidecars:
        await eventually(lambda: "identified as" in sidecar.output(), f"{sidecar.agent_id} to identify", SAFETY_S)
    task_ids = [await env.api.submit("Explain what a binary search does", complexity_tier="standard",
                                     assign_to=sidecar.agent_id) for sidecar in sidecars]
    runs = []
    for task_id, sidecar in zip(task_ids, sidecars):
        async def finished() -> dict[str, Any] | None:
            return await env.api.status_is(task_id, "completed", "failed", "dead_letter")

        task: dict[str, Any] = await eventually(finished, f"{task_id} to finish", SAFETY_S)
        assert task["status"] == "completed", task
        [row] = await env.api.executions(task_id)
        assert row["agent_id"] == sidecar.agent_id
        assert row["model_used"].startswith(LOCAL_MODEL) and row["estimated_cost_usd"] == 0
        tokens = [e for e in events if e["task_id"] == task_id and e["event_type"] == "token"]
        assert "".join(e["text"] for e in tokens) == task["result"]["output"]
        runs.append((row, tokens))
    return runs


def reference_cost(model: str, row: dict[str, Any]) -> float:
    price = PriceTable.load().price(model, row["tokens_in"], row["tokens_out"])
    assert price is not None and price > 0
    return float(price)


# --------------------------------------------------------------------------- the identified frame


@pytest.mark.anyio
async def test_a_hub_with_default_settings_sends_the_specs_identified_frame(tmp_path: Path) -> None:
    async with e2e(tmp_path, batch_interval_ms=100) as env:
        frame = await identified(env.hub)
    assert set(frame) == {"type", "agent_id", "protocol_version", "heartbeat_ms", "lease_ms"}


@pytest.mark.anyio
async def test_identified_carries_the_hubs_sidecar_settings_and_price_table_version(tmp_path: Path) -> None:
    prices = tmp_path / "prices.toml"
    prices.write_text(PRICES)
    async with e2e(tmp_path, batch_interval_ms=250, reference_model="claude-opus-4-5", price_table=str(prices)) as env:
        frame = await identified(env.hub)
        assert (frame["batch_interval_ms"], frame["reference_model"]) == (250, "claude-opus-4-5")
        assert frame["price_table"] == PriceTable.load(prices).version == "agentcom-2026-11+team-prices-7"
        env.hub.settings.batch_interval_ms = 40  # a change applies to the next sidecar that connects
        assert (await identified(env.hub, "probe-2"))["batch_interval_ms"] == 40


@pytest.mark.anyio
async def test_an_unreadable_hub_price_table_leaves_the_version_out_but_identifies(tmp_path: Path) -> None:
    # explicit routing: the hub itself never prices, so it starts with a file it cannot read
    async with e2e(tmp_path, routing="explicit", price_table=str(tmp_path / "missing.toml")) as env:
        frame = await identified(env.hub)
    assert frame["type"] == "identified" and "price_table" not in frame


# --------------------------------------------------------------------------- reference_model


@pytest.mark.anyio
async def test_the_equivalent_claude_cost_of_a_local_run_uses_the_hubs_reference_model_unless_the_flag_says(
        tmp_path: Path) -> None:
    async with e2e(tmp_path, reference_model="claude-opus-4-5", tier_targets=STANDARD_TO_OLLAMA) as env:
        ollama = await env.ollama()
        follows = await env.sidecar("agent-1", "--ollama-url", ollama.url)
        flagged = await env.sidecar("agent-2", "--ollama-url", ollama.url, "--reference-model", "claude-haiku-4-5")
        (opus_row, _), (haiku_row, _) = await run_standard_tasks(env, follows, flagged)
    assert opus_row["equivalent_claude_cost_usd"] == reference_cost("claude-opus-4-5", opus_row)
    assert haiku_row["equivalent_claude_cost_usd"] == reference_cost("claude-haiku-4-5", haiku_row)


def test_a_reference_model_flag_without_a_cloud_price_is_a_usage_error(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    assert cli.main(["sidecar", "--hub", "http://127.0.0.1:1", "--agent-id", "a", "--token", "t",
                     "--reference-model", "llama3"]) == 2
    assert "reference model 'llama3' has no cloud price" in capsys.readouterr().err


# --------------------------------------------------------------------------- batch_interval_ms


@pytest.mark.anyio
async def test_the_hubs_batch_interval_sets_how_a_sidecar_batches_tokens_unless_the_flag_says(tmp_path: Path) -> None:
    async with e2e(tmp_path, batch_interval_ms=600_000, tier_targets=STANDARD_TO_OLLAMA) as env, \
            OllamaStandin(chunk_delay=0.02) as ollama:  # ~1 s of tokens: many windows of the default 100 ms
        follows = await env.sidecar("agent-1", "--ollama-url", ollama.url)
        flagged = await env.sidecar("agent-2", "--ollama-url", ollama.url, "--batch-interval-ms", "1")
        (row, one_window), (flagged_row, many_windows) = await run_standard_tasks(env, follows, flagged)
    assert row["tokens_out"] > 10 and flagged_row["tokens_out"] > 10
    assert len(one_window) == 1  # the hub's ten-minute window: the whole answer is one token event
    assert len(many_windows) > 1  # the flag wins: tokens 20 ms apart go out in many events


# --------------------------------------------------------------------------- what a sidecar cannot follow


@pytest.mark.anyio
async def test_a_sidecar_says_what_of_the_hubs_settings_it_cannot_follow(tmp_path: Path) -> None:
    """An unusable hub reference model is ignored (the default stays); another price table than the hub's
    is named in the log, and a sidecar given the hub's file is quiet about it."""
    prices = tmp_path / "prices.toml"
    prices.write_text(PRICES)
    async with e2e(tmp_path, reference_model="acme-unpriced-9", price_table=str(prices),
                   tier_targets=STANDARD_TO_OLLAMA) as env:
        ollama = await env.ollama()
        own_table = await env.sidecar("agent-1", "--ollama-url", ollama.url)
        hubs_table = await env.sidecar("agent-2", "--ollama-url", ollama.url, "--price-table", str(prices))
        (row, _), _ = await run_standard_tasks(env, own_table, hubs_table)
    assert row["equivalent_claude_cost_usd"] == reference_cost("claude-sonnet-4-5", row)
    assert row["price_table"] == "agentcom-2026-11"  # priced on the sidecar, with its own table
    for sidecar in (own_table, hubs_table):
        assert "keeping reference model claude-sonnet-4-5" in sidecar.output()
    mismatch = "the hub's price_table setting is agentcom-2026-11+team-prices-7"
    assert mismatch in own_table.output() and "prices its runs with price table agentcom-2026-11," in own_table.output()
    assert mismatch not in hubs_table.output()  # logged before "identified as": its log is complete
