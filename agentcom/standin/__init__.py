"""In-process stand-ins for Ollama and the Anthropic Messages API.

They speak the real wire formats over real loopback HTTP, so the official ``ollama``
and ``anthropic`` clients talk to them unchanged. Tests use them; ``agentcom demo``
uses them when no real Ollama or Anthropic API is reachable. Every model they serve
is named ``simulated-...`` so no stand-in run can pass for a real model's.
"""

from agentcom.standin._server import Fault, RecordedRequest, Standin
from agentcom.standin._text import count_tokens, reply_for
from agentcom.standin.anthropic import AnthropicStandin
from agentcom.standin.ollama import DEFAULT_OLLAMA_MODELS, OllamaStandin

__all__ = [
    "AnthropicStandin",
    "DEFAULT_OLLAMA_MODELS",
    "Fault",
    "OllamaStandin",
    "RecordedRequest",
    "Standin",
    "count_tokens",
    "reply_for",
]
