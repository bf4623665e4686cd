"""Model-id normalisation: many spellings of one model must find one price.

Providers and tools spell the same model differently: ``Claude-Sonnet-4-5``,
``anthropic/claude-sonnet-4-5``, ``claude-sonnet-4-5-20250929``,
``anthropic.claude-sonnet-4-5-20250929-v1:0`` (Bedrock), ``claude-sonnet-4-5@20250929``
(Vertex), ``claude-3-7-sonnet-latest``. ``candidates`` lists the keys to try, most
specific first, so an explicit entry for a dated id still wins over its family.
"""

from __future__ import annotations

import re
from fnmatch import fnmatchcase

__all__ = ["candidates", "clean", "matches_any", "real_model", "SIMULATED_PREFIX"]

SIMULATED_PREFIX = "simulated-"

_PROVIDER_PREFIXES = ("anthropic.", "us.anthropic.", "eu.anthropic.", "apac.anthropic.", "global.anthropic.")
_SUFFIXES = (
    re.compile(r"-v\d+(:\d+)?$"),  # Bedrock revision: -v1:0
    re.compile(r"[@-]\d{8}$"),  # snapshot date: -20250929, @20250929
    re.compile(r"-latest$"),
    re.compile(r":latest$"),  # Ollama's default tag
)


def clean(model: str) -> str:
    """Case- and whitespace-insensitive form of a model id."""
    return model.strip().lower()


def real_model(model: str) -> str:
    """The model a run is compared as: a stand-in's ``simulated-<id>`` stands for ``<id>``
    (cleaned); any other id is itself, cleaned. The hub prices a simulated Claude run's
    equivalent cost with this, and analysis must map the same way."""
    name = clean(model)
    return name[len(SIMULATED_PREFIX):] if name.startswith(SIMULATED_PREFIX) else name


def _strip_suffixes(name: str) -> str:
    changed = True
    while changed:
        changed = False
        for pattern in _SUFFIXES:
            stripped = pattern.sub("", name)
            if stripped != name and stripped:
                name, changed = stripped, True
    return name


def candidates(model: str) -> list[str]:
    """Keys to look ``model`` up under, most specific first, without duplicates."""
    name = clean(model)
    out: list[str] = []

    def add(key: str) -> None:
        if key and key not in out:
            out.append(key)

    add(name)
    bare = name.rsplit("/", 1)[-1]  # "anthropic/claude-x", "openrouter/anthropic/claude-x"
    for prefix in _PROVIDER_PREFIXES:
        if bare.startswith(prefix):
            bare = bare[len(prefix):]
            break
    add(bare)
    add(_strip_suffixes(bare))
    return out


def matches_any(model: str, patterns: tuple[str, ...]) -> bool:
    """Whether a model id (whole, or its part after the last ``/``) matches a pattern."""
    name = clean(model)
    bare = name.rsplit("/", 1)[-1]
    return any(fnmatchcase(name, p) or fnmatchcase(bare, p) for p in patterns)
