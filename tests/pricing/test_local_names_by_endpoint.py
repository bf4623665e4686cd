"""Local name patterns (``llama*``, ``qwen*``, ``mistral*``...) are free only on our own hardware.

A cloud OpenAI-compatible provider serving ``mistral-large`` must not be recorded as free:
an unknown model on a non-local target is null with a warning, as for unknown cloud models.
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from agentcom.pricing import PriceTable

SONNET_1000_500 = Decimal("0.0105")  # the reference model's price of 1000 in / 500 out


@pytest.fixture(scope="module")
def table() -> PriceTable:
    return PriceTable.load()


@pytest.mark.parametrize("endpoint", [
    "127.0.0.1:8080", "http://localhost:8000/v1", "[::1]:8080", "192.168.1.20:8000", "http://10.0.0.7:8000",
    "100.101.102.103:8000", "gpu-box:8000", "https://llm.lan/v1", "box.internal:8000",
])
@pytest.mark.parametrize("model", ["qwen2.5-coder:7b", "mistral-7b-instruct", "SmolLM2-135M-Instruct.Q4_1.gguf"])
def test_a_local_name_on_a_local_openai_endpoint_is_free(table: PriceTable, endpoint: str, model: str) -> None:
    run = table.cost_of_run("openai", model, 1000, 500, endpoint=endpoint)
    assert (run.cost_usd, run.equivalent_claude_cost_usd, run.warning) == (Decimal(0), SONNET_1000_500, None)


@pytest.mark.parametrize(("endpoint", "model"), [
    ("https://api.mistral.ai/v1", "mistral-large-latest"),
    ("api.together.xyz", "qwen2.5-72b-instruct"),
    ("https://api.groq.com/openai/v1", "llama-3.3-70b-versatile"),
    ("8.8.8.8:8000", "gemma-2-9b-it"),
])
def test_a_local_name_on_a_cloud_openai_endpoint_is_unpriced_with_a_warning(
        table: PriceTable, endpoint: str, model: str) -> None:
    run = table.cost_of_run("openai", model, 1000, 500, endpoint=endpoint)
    assert run.cost_usd is None
    assert run.warning is not None and model in run.warning and endpoint in run.warning
    assert table.version in run.warning
    assert run.equivalent_claude_cost_usd == SONNET_1000_500  # still compared with the reference model


def test_a_cloud_endpoint_prices_a_local_looking_name_by_an_explicit_entry(tmp_path: Path) -> None:
    prices = tmp_path / "prices.toml"
    prices.write_text('version = "team-1"\n[models."mistral-large-latest"]\ninput = "2"\noutput = "6"\n')
    table = PriceTable.load(prices)
    run = table.cost_of_run("openai", "mistral-large-latest", 1000, 500, endpoint="https://api.mistral.ai/v1")
    assert (run.cost_usd, run.warning) == (Decimal("0.005"), None)


def test_an_unknown_model_on_a_cloud_endpoint_without_tokens_costs_zero(table: PriceTable) -> None:
    run = table.cost_of_run("openai", "mistral-large-latest", 0, 0, endpoint="https://api.mistral.ai/v1")
    assert (run.cost_usd, run.warning) == (Decimal(0), None)


@pytest.mark.parametrize("target", ["claude", "some-cloud-executor"])
def test_local_names_do_not_make_other_non_local_targets_free(table: PriceTable, target: str) -> None:
    run = table.cost_of_run(target, "llama-3.3-70b", 1000, 500)
    assert run.cost_usd is None and run.warning is not None and "llama-3.3-70b" in run.warning


@pytest.mark.parametrize("target", ["ollama", "local"])
def test_local_targets_stay_free_whatever_the_name(table: PriceTable, target: str) -> None:
    run = table.cost_of_run(target, "mistral-large-latest", 1000, 500, endpoint="https://api.mistral.ai")
    assert (run.cost_usd, run.equivalent_claude_cost_usd) == (Decimal(0), SONNET_1000_500)


def test_stand_in_models_are_free_on_a_cloud_endpoint_too(table: PriceTable) -> None:
    run = table.cost_of_run("openai", "simulated-llama3.2", 1000, 500, endpoint="https://api.example.com")
    assert (run.cost_usd, run.warning) == (Decimal(0), None)


def test_the_name_alone_still_prices_a_standalone_lookup(table: PriceTable) -> None:
    """``price``/``is_local`` answer by name (what-if analysis, routing estimates); only runs know the endpoint."""
    assert table.price("mistral-large-latest", 1000, 500) == 0
    assert table.price("mistral-large-latest", 1000, 500, local_names=False) is None
