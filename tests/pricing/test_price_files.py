"""User price files: our format merged over the shipped one, LiteLLM's JSON, bad files."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pytest

from agentcom.errors import PricingError
from agentcom.pricing import SHIPPED_TABLE, PriceTable

LITELLM_SAMPLE = {
    "sample_spec": {"max_tokens": "LEGACY parameter", "input_cost_per_token": 0.0, "output_cost_per_token": 0.0},
    "claude-sonnet-4-5-20250929": {
        "max_tokens": 64000, "input_cost_per_token": 3e-06, "output_cost_per_token": 1.5e-05,
        "cache_creation_input_token_cost": 3.75e-06, "cache_read_input_token_cost": 3e-07,
        "litellm_provider": "anthropic", "mode": "chat",
    },
    "gpt-4o": {"input_cost_per_token": 2.5e-06, "output_cost_per_token": 1e-05,
               "cache_read_input_token_cost": 1.25e-06, "litellm_provider": "openai", "mode": "chat"},
    "dall-e-3": {"output_cost_per_image": 0.04, "litellm_provider": "openai", "mode": "image_generation"},
    "text-embedding-3-small": {"input_cost_per_token": 2e-08, "output_cost_per_token": None},
}


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_shipped_table_file_is_in_the_package() -> None:
    assert SHIPPED_TABLE.name == "prices.toml" and SHIPPED_TABLE.is_file()


def test_own_toml_override_merges_over_shipped(tmp_path: Path) -> None:
    path = write(tmp_path, "mine.toml", """
version = "team-2026-12"
[models."claude-sonnet-4-5"]
input = 2.5
output = "12"
[models."acme-coder"]
input = "1"
output = "2"
cache_read = "0.1"
aliases = ["acme-coder-v2"]
[local]
patterns = ["mybox/*"]
""")
    table = PriceTable.load(path)
    assert table.version == "agentcom-2026-11+team-2026-12"
    assert table.price("claude-sonnet-4-5", 1000, 500) == Decimal("0.0085")
    assert table.price("claude-opus-4-5", 1000, 500) == Decimal("0.0175")  # untouched
    assert table.price("acme-coder-v2", 1_000_000, 0, cache_write=1_000_000, cache_read=1_000_000) == Decimal("2.1")
    assert table.is_local("mybox/thing") and table.is_local("ollama/x")
    assert PriceTable.load().price("claude-sonnet-4-5", 1000, 500) == Decimal("0.0105")  # shipped unchanged


def test_own_json_format(tmp_path: Path) -> None:
    path = write(tmp_path, "mine.json", json.dumps(
        {"version": "j1", "models": {"acme": {"input": 0.5, "output": "1.5"}}}))
    assert PriceTable.load(path).price("ACME", 2_000_000, 0) == Decimal("1.0")


def test_litellm_file(tmp_path: Path) -> None:
    path = write(tmp_path, "model_prices_and_context_window.json", json.dumps(LITELLM_SAMPLE))
    table = PriceTable.load(path)
    assert table.version.startswith("agentcom-2026-11+litellm-")
    assert table.price("claude-sonnet-4-5-20250929", 1000, 500) == Decimal("0.0105")
    assert table.price("claude-sonnet-4-5-20250929", 0, 0, cache_write=1_000_000) == Decimal("3.75")
    assert table.price("gpt-4o", 1_000_000, 1_000_000, cache_read=1_000_000) == Decimal("13.75")
    assert table.price("gpt-4o", 1000, 0, cache_write=1000) == Decimal("0.005")  # cache write defaults to input
    assert table.lookup("dall-e-3") is None
    assert table.lookup("text-embedding-3-small") is None


def test_litellm_version_follows_content(tmp_path: Path) -> None:
    a = PriceTable.load(write(tmp_path, "a.json", json.dumps(LITELLM_SAMPLE)))
    changed = dict(LITELLM_SAMPLE, **{"gpt-4o": {"input_cost_per_token": 1e-06, "output_cost_per_token": 1e-06}})
    b = PriceTable.load(write(tmp_path, "b.json", json.dumps(changed)))
    assert a.version != b.version


@pytest.mark.parametrize(("name", "text", "message"), [
    ("p.toml", 'version = "v"\n[models."m"]\ninput = "abc"\noutput = "1"\n', r"models\.'m'\.input: expected a number"),
    ("p.toml", 'version = "v"\n[models."m"]\ninput = "-1"\noutput = "1"\n', r"models\.'m'\.input: expected a non-negative"),
    ("p.toml", 'version = "v"\n[models."m"]\ninput = "1"\n', r"models\.'m': missing `output`"),
    ("p.toml", 'version = "v"\n[models."m"]\ninput = "1"\noutput = "1"\nouptut = "2"\n', r"unknown field\(s\) \['ouptut'\]"),
    ("p.toml", '[models."m"]\ninput = "1"\noutput = "1"\n', r"`version` must be a non-empty string"),
    ("p.toml", 'version = "v"\nunit = "per_token"\n', r"`unit` must be 'per_million_tokens'"),
    ("p.toml", 'version = \n', r"not valid TOML"),
    ("p.json", '{"version": "v", "models": {"m": {"input": true, "output": 1}}}', r"models\.'m'\.input: expected a number"),
    ("p.json", '[1, 2]', r"expected a table/object at the top level"),
    ("p.json", '{"gpt-x": {"input_cost_per_token": "cheap", "output_cost_per_token": 1e-06}}',
     r"entry 'gpt-x'\.input_cost_per_token: expected a number"),
    ("p.json", '{"foo": {"bar": 1}}', r"neither an AgentCom price table .* nor a LiteLLM price file"),
])
def test_bad_files_name_file_and_entry(tmp_path: Path, name: str, text: str, message: str) -> None:
    path = write(tmp_path, name, text)
    with pytest.raises(PricingError, match=message) as info:
        PriceTable.load(path)
    assert str(path) in str(info.value)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(PricingError, match="cannot read price table"):
        PriceTable.load(tmp_path / "nope.toml")
