"""Health probes: ask an endpoint which models it has, through the official clients.

This is the boundary where ``ollama``, ``openai``, ``httpx`` and ``pydantic`` errors are
translated into one ``ProbeFailed`` with a short text: a refused connection, an HTTP
error status, a body that is not the expected JSON. Timeouts are enforced by the
caller (``asyncio.wait_for``) as well as by the clients, so a server that trickles
bytes cannot hold a check open.

- Ollama: ``GET /api/tags`` decides health and lists models; ``GET /api/ps`` adds the
  models loaded in memory. An Ollama too old for ``/api/ps`` (404) is still healthy,
  with no loaded models known.
- OpenAI-compatible: ``GET /v1/models``. No loaded-model notion. The client gets an
  explicit placeholder key: a user's ``OPENAI_API_KEY`` is never sent to a registered host.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from typing import Any, Awaitable, Callable, Iterable

import httpx

# The ``ollama`` and ``openai`` clients are imported by the probe that uses them, not here: they
# take about 1.5 s to import, which every hub start (and the Jupyter server's) paid for nothing
# when no endpoint of that kind is registered.

__all__ = ["PROBES", "Probe", "ProbeFailed", "ProbeResult", "probe_ollama", "probe_openai"]

_PLACEHOLDER_KEY = "agentcom-no-key"


@dataclass(frozen=True)
class ProbeResult:
    models: tuple[str, ...]
    loaded_models: tuple[str, ...] = ()


class ProbeFailed(Exception):
    """The endpoint did not answer as a healthy server of its kind would."""


Probe = Callable[[str, float], Awaitable[ProbeResult]]

# What a misbehaving server can make the clients raise: transport and status errors,
# bodies that are not JSON (ValueError) or not the expected shape (TypeError, pydantic's
# ValidationError is a ValueError, AttributeError from the openai client on non-objects).
_BAD_ANSWER = (httpx.HTTPError, ConnectionError, OSError, ValueError, TypeError, AttributeError, KeyError)


def _describe(exc: BaseException) -> str:
    # Only a client already imported can have raised ``exc``: never import one here (on the hub's loop).
    ollama, openai = sys.modules.get("ollama"), sys.modules.get("openai")
    if ollama is not None and isinstance(exc, ollama.ResponseError):
        return f"HTTP {exc.status_code}: {str(exc.error)[:200]}"
    if openai is not None and isinstance(exc, openai.APIStatusError):
        return f"HTTP {exc.status_code}: {exc.message[:200]}"
    timeouts = (httpx.TimeoutException, *((openai.APITimeoutError,) if openai is not None else ()))
    refused = (ConnectionError, httpx.ConnectError, *((openai.APIConnectionError,) if openai is not None else ()))
    if isinstance(exc, refused) and not isinstance(exc, timeouts):
        return "cannot connect"
    if isinstance(exc, timeouts):
        return "timed out"
    if isinstance(exc, (json.JSONDecodeError, TypeError, AttributeError)) or type(exc).__name__ == "ValidationError":
        return f"unexpected response body ({type(exc).__name__})"
    text = str(exc).strip() or type(exc).__name__
    return text[:300]


def _names(items: Iterable[Any], attr: str) -> tuple[str, ...]:
    names = []
    for item in items:
        value = getattr(item, attr, None)
        if not isinstance(value, str) or not value:
            raise ProbeFailed(f"unexpected response body (model without a string {attr!r})")
        names.append(value)
    return tuple(names)


async def probe_ollama(base_url: str, timeout_s: float) -> ProbeResult:
    """``/api/tags`` then ``/api/ps`` on an Ollama server."""
    import ollama

    async with ollama.AsyncClient(host=base_url, timeout=timeout_s) as client:
        try:
            tags = await client.list()
            models = _names(tags.models, "model")
        except (ollama.ResponseError, *_BAD_ANSWER) as exc:
            raise ProbeFailed(_describe(exc)) from None
        try:
            loaded = _names((await client.ps()).models, "model")
        except ollama.ResponseError as exc:
            if exc.status_code != 404:
                raise ProbeFailed(f"/api/ps: {_describe(exc)}") from None
            loaded = ()
        except _BAD_ANSWER as exc:
            raise ProbeFailed(f"/api/ps: {_describe(exc)}") from None
    return ProbeResult(models=models, loaded_models=loaded)


async def probe_openai(base_url: str, timeout_s: float, api_key: str | None = None) -> ProbeResult:
    """``/v1/models`` on an OpenAI-compatible server (llama.cpp, vLLM, LM Studio...)."""
    import openai

    client = openai.AsyncOpenAI(base_url=f"{base_url}/v1", api_key=api_key or _PLACEHOLDER_KEY,
                                timeout=timeout_s, max_retries=0)
    try:
        page = await client.models.list()
        data = getattr(page, "data", None)
        if not isinstance(data, list):
            raise ProbeFailed("unexpected response body (no model list)")
        return ProbeResult(models=_names(data, "id"))
    except (openai.OpenAIError, *_BAD_ANSWER) as exc:
        raise ProbeFailed(_describe(exc)) from None
    finally:
        await client.close()


PROBES: dict[str, Probe] = {"ollama": probe_ollama, "openai": probe_openai}
