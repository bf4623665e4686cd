"""Routing targets: what a ``tier_targets`` value such as ``ollama:qwen2.5-coder`` means.

============  ==================================  ===============  ==============
type          runs on                             needs endpoint   cost tier
============  ==================================  ===============  ==============
sidecar       the sidecar's shell (shell_command)  no              ``free``
ollama        a registered Ollama endpoint         yes (healthy)    ``local``
openai        a registered OpenAI-compatible one   yes (healthy)    ``local``
local         an in-process model on the sidecar   no               ``local``
claude        Anthropic's API (model id required)  no               ``api``
============  ==================================  ===============  ==============

OpenAI-compatible endpoints are the ones users register (llama.cpp, vLLM, LM Studio),
hence ``local``; only ``claude`` spends cloud money and is subject to the budget guard.
"""

from __future__ import annotations

from dataclasses import dataclass

from agentcom.errors import ConfigError

__all__ = ["SERVES", "TARGET_TYPES", "Target", "parse_target", "serves"]

TARGET_TYPES = ("sidecar", "ollama", "openai", "claude", "local")
ENDPOINT_TARGETS = ("ollama", "openai")
SERVES = ("local", "openai")  # target types a sidecar can serve by itself, with no registered endpoint


def serves(target_type: str) -> str:
    """The capability a sidecar announces when it serves ``target_type`` itself: ``serves:local`` with an
    embedded model (``--local-model``), ``serves:openai`` with its own ``--openai-url``."""
    return f"serves:{target_type}"


@dataclass(frozen=True)
class Target:
    type: str
    model: str | None = None

    @property
    def needs_endpoint(self) -> bool:
        return self.type in ENDPOINT_TARGETS

    @property
    def is_cloud(self) -> bool:
        return self.type == "claude"

    @property
    def cost_tier(self) -> str:
        if self.type == "sidecar":
            return "free"
        return "api" if self.is_cloud else "local"

    def __str__(self) -> str:
        return f"{self.type}:{self.model}" if self.model else self.type


def parse_target(spec: str) -> Target:
    """``"ollama"``, ``"ollama:llama3.2:3b"`` (the model keeps its own colons), ``"claude:claude-sonnet-4-5"``."""
    if not isinstance(spec, str) or not spec.strip():
        raise ConfigError(f"a routing target must be one of {', '.join(TARGET_TYPES)} (optionally ':MODEL'), got {spec!r}")
    kind, _, model = spec.strip().partition(":")
    if kind not in TARGET_TYPES:
        raise ConfigError(f"unknown routing target {spec!r}; expected one of {', '.join(TARGET_TYPES)} (optionally ':MODEL')")
    if kind == "sidecar" and model:
        raise ConfigError(f"routing target {spec!r}: the sidecar target takes no model")
    if kind == "claude" and not model:
        raise ConfigError(f"routing target {spec!r}: claude needs a concrete model id, e.g. 'claude:claude-sonnet-4-5'")
    return Target(kind, model or None)
