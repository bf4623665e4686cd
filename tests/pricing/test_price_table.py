"""The shipped table: worked examples, name normalisation, targets."""

from __future__ import annotations

from decimal import Decimal

import pytest

from agentcom.errors import PricingError
from agentcom.pricing import PriceTable


@pytest.fixture(scope="module")
def table() -> PriceTable:
    return PriceTable.load()


def test_shipped_version(table: PriceTable) -> None:
    assert table.version == "agentcom-2026-11"


def test_sonnet_worked_example(table: PriceTable) -> None:
    assert table.price("claude-sonnet-4-5", 1000, 500) == Decimal("0.0105")


def test_opus_worked_example(table: PriceTable) -> None:
    assert table.price("claude-opus-4-5", 1000, 500) == Decimal("0.0175")


def test_haiku_worked_example(table: PriceTable) -> None:
    assert table.price("claude-haiku-4-5", 1000, 500) == Decimal("0.0035")


def test_cache_tokens_priced_at_their_own_rates(table: PriceTable) -> None:
    assert table.price("claude-sonnet-4-5", 0, 0, cache_read=1_000_000) == Decimal("0.30")
    assert table.price("claude-sonnet-4-5", 0, 0, cache_write=1_000_000) == Decimal("3.75")
    assert table.price("claude-opus-4-5", 1000, 500, cache_read=2000, cache_write=4000) == Decimal("0.0435")


def test_local_model_is_free_with_claude_equivalent(table: PriceTable) -> None:
    run = table.cost_of_run("ollama", "llama3.2", 1000, 500)
    assert run.cost_usd == 0
    assert run.equivalent_claude_cost_usd == Decimal("0.0105")
    assert run.warning is None


def test_zero_tokens_cost_zero_with_null_equivalent(table: PriceTable) -> None:
    run = table.cost_of_run("ollama", "llama3.2", 0, 0)
    assert run.cost_usd == 0
    assert run.equivalent_claude_cost_usd is None
    assert table.equivalent(0, 0) is None


def test_shell_runs_are_free_without_equivalent(table: PriceTable) -> None:
    run = table.cost_of_run("sidecar", "shell", 0, 0)
    assert (run.cost_usd, run.equivalent_claude_cost_usd) == (Decimal(0), None)


def test_equivalent_uses_reference_model(table: PriceTable) -> None:
    assert table.equivalent(1000, 500) == Decimal("0.0105")
    assert table.equivalent(1000, 500, reference_model="claude-opus-4-5") == Decimal("0.0175")


def test_reference_model_must_be_a_priced_cloud_model(table: PriceTable) -> None:
    with pytest.raises(PricingError, match="reference model 'llama3'"):
        table.equivalent(10, 10, reference_model="llama3")
    with pytest.raises(PricingError, match="no-such-model"):
        table.equivalent(10, 10, reference_model="no-such-model")


@pytest.mark.parametrize("name", [
    "claude-sonnet-4-5",
    "Claude-Sonnet-4-5",
    "  claude-sonnet-4-5 ",
    "anthropic/claude-sonnet-4-5",
    "claude-sonnet-4-5-20250929",
    "anthropic/claude-sonnet-4-5-20250929",
    "claude-sonnet-4-5@20250929",
    "anthropic.claude-sonnet-4-5-20250929-v1:0",
    "us.anthropic.claude-sonnet-4-5-20250929-v1:0",
    "openrouter/anthropic/claude-sonnet-4-5",
    "claude-sonnet-4-5-latest",
])
def test_model_id_normalisation(table: PriceTable, name: str) -> None:
    assert table.price(name, 1000, 500) == Decimal("0.0105")


def test_older_claude_ids(table: PriceTable) -> None:
    assert table.price("claude-3-5-haiku-20241022", 1_000_000, 0) == Decimal("0.80")
    assert table.price("claude-3-7-sonnet-latest", 1000, 500) == Decimal("0.0105")
    assert table.price("claude-opus-4-0", 1000, 0) == Decimal("0.015")
    assert table.price("claude-3-opus-20240229", 0, 1000) == Decimal("0.075")


@pytest.mark.parametrize("name", [
    "ollama/anything", "local/my-model", "simulated-llama3.2", "SmolLM2-135M-Instruct",
    "llama3.2:latest", "qwen2.5-coder:7b", "/models/SmolLM2-135M-Instruct.Q4_1.gguf",
])
def test_local_names_are_free(table: PriceTable, name: str) -> None:
    assert table.is_local(name)
    assert table.price(name, 1000, 500) == 0


def test_unknown_model_has_no_price(table: PriceTable) -> None:
    assert table.price("gpt-9-turbo", 1000, 500) is None
    assert table.lookup("gpt-9-turbo") is None


def test_unknown_cloud_model_is_never_silently_free(table: PriceTable) -> None:
    run = table.cost_of_run("claude", "claude-sonnet-9", 1000, 500)
    assert run.cost_usd is None
    assert run.equivalent_claude_cost_usd is None
    assert run.warning is not None and "claude-sonnet-9" in run.warning and table.version in run.warning


def test_unknown_model_on_openai_target_is_unpriced_but_compared(table: PriceTable) -> None:
    run = table.cost_of_run("openai", "gpt-9-turbo", 1000, 500)
    assert run.cost_usd is None
    assert run.equivalent_claude_cost_usd == Decimal("0.0105")


def test_local_model_on_openai_target_is_free(table: PriceTable) -> None:
    run = table.cost_of_run("openai", "SmolLM2-135M-Instruct.Q4_1.gguf", 1000, 500)
    assert (run.cost_usd, run.equivalent_claude_cost_usd) == (Decimal(0), Decimal("0.0105"))


def test_claude_run_is_its_own_equivalent(table: PriceTable) -> None:
    run = table.cost_of_run("claude", "claude-opus-4-5-20251101", 1000, 500)
    assert run.cost_usd == run.equivalent_claude_cost_usd == Decimal("0.0175")


def test_simulated_claude_costs_nothing_but_compares_with_what_it_simulates(table: PriceTable) -> None:
    run = table.cost_of_run("claude", "simulated-claude-opus-4-5", 1000, 500)
    assert run.cost_usd == 0
    assert run.equivalent_claude_cost_usd == Decimal("0.0175")


def test_unpriced_model_without_tokens_costs_zero(table: PriceTable) -> None:
    run = table.cost_of_run("claude", "claude-sonnet-9", 0, 0)
    assert run.cost_usd == 0 and run.warning is None


def test_negative_tokens_rejected(table: PriceTable) -> None:
    with pytest.raises(ValueError, match="tokens_in"):
        table.price("claude-sonnet-4-5", -1, 0)


def test_load_is_cached_and_immutable(table: PriceTable) -> None:
    assert PriceTable.load() is table
    assert PriceTable.load("") is table
