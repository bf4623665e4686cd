"""Claude executor (target ``claude``), through the official ``anthropic`` client.

The model is the routing decision's ``selected_model``; the API key comes from the
constructor or ``ANTHROPIC_API_KEY`` (read at run time); ``base_url`` may point at a
proxy or at ``agentcom.standin.AnthropicStandin``. Text deltas are streamed as token
Outputs (``tokens_so_far`` is an estimate, about four characters a token; the final
usage is exact and includes cache reads and writes). The SDK's own retries are off:
retries happen here, announced as status Outputs, and ``anthropic`` exceptions are
translated into ``BackendError`` at this boundary.

``metadata``: ``max_tokens`` (default 4096), ``system`` (system prompt),
``cache_prompt`` (true: mark the system prompt and the task text for prompt caching).
"""

from __future__ import annotations

import math
import os
from contextlib import aclosing
from typing import TYPE_CHECKING, Any, AsyncGenerator

import httpx

from agentcom.executors._preload import preload
from agentcom.executors._prompt import system_prompt, task_prompt
from agentcom.executors._retry import BackendError, RetryPolicy, with_retries
from agentcom.executors.base import Outcome, Output, Step
from agentcom.protocol.messages import TaskAssign

if TYPE_CHECKING:  # the SDK itself is imported at the first run: 2.5 s that a sidecar without Claude work never pays
    import anthropic

__all__ = ["ClaudeExecutor", "RETRYABLE_ERROR_TYPES"]

_NO_KEY = "no Anthropic API key: set ANTHROPIC_API_KEY or configure the sidecar's key"
RETRYABLE_ERROR_TYPES = frozenset({"overloaded_error", "api_error", "rate_limit_error", "timeout_error"})
DEFAULT_MAX_TOKENS = 4096


def _transport_errors() -> tuple[type[Exception], ...]:
    """Transport errors a stream can raise past the SDK (it wraps only the request itself)."""
    classes: list[type[Exception]] = [httpx.TransportError]
    try:  # newer anthropic releases ship on httpx2
        import httpx2
    except ImportError:
        pass
    else:
        classes.append(httpx2.TransportError)
    return tuple(classes)


_TRANSPORT_ERRORS = _transport_errors()


def _error_type(body: object) -> str | None:
    if isinstance(body, dict):
        error = body.get("error")
        kind = error.get("type") if isinstance(error, dict) else None
        if isinstance(kind, str):
            return kind
    return None


def _error_message(body: object, fallback: str) -> str:
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        message = body["error"].get("message")
        if isinstance(message, str):
            return message
    return fallback


def _retry_after(exc: anthropic.APIStatusError) -> float | None:
    value = exc.response.headers.get("retry-after")
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def translate(exc: anthropic.AnthropicError, partial: str = "") -> BackendError:
    """An ``anthropic`` exception as a BackendError; retryable for 408/429/5xx/529,
    connection failures and in-stream overload/API errors, not for other 4xx."""
    import anthropic

    if isinstance(exc, anthropic.APIStatusError):
        status, kind = exc.status_code, _error_type(exc.body)
        message = _error_message(exc.body, str(exc))
        in_stream = status < 400  # an `error` event inside a 200 stream
        retryable = (kind in RETRYABLE_ERROR_TYPES or status in (408, 429) or status >= 500) if not in_stream \
            else kind in RETRYABLE_ERROR_TYPES
        where = f"{kind or 'error'} during the stream" if in_stream else f"{status} {kind or 'error'}"
        return BackendError(f"Anthropic API {where}: {message}", retryable=retryable, status=status,
                            retry_after=_retry_after(exc) if not in_stream else None, partial_output=partial)
    if isinstance(exc, anthropic.APITimeoutError):
        return BackendError("Anthropic API request timed out", retryable=True, partial_output=partial)
    if isinstance(exc, anthropic.APIConnectionError):
        cause = exc.__cause__
        detail = f": {type(cause).__name__}" if cause is not None else ""
        return BackendError(f"cannot reach the Anthropic API{detail}", retryable=True, partial_output=partial)
    return BackendError(f"Anthropic client error: {type(exc).__name__}: {exc}", retryable=False,
                        partial_output=partial)


class ClaudeExecutor:
    """Runs tasks on Claude. ``timeout_s`` is the SDK's request timeout."""

    target_type = "claude"

    def __init__(self, *, api_key: str | None = None, base_url: str | None = None,
                 retry: RetryPolicy | None = None, timeout_s: float = 600.0,
                 default_model: str | None = None) -> None:
        self.api_key = api_key
        self.base_url = base_url
        if base_url or self._key():  # set up for Claude: have the SDK ready
            preload("anthropic")
        self.retry = retry or RetryPolicy()
        self.timeout_s = timeout_s
        self.default_model = default_model

    def _key(self) -> str | None:
        return self.api_key or os.environ.get("ANTHROPIC_API_KEY")

    def refusal(self, task: TaskAssign) -> str | None:
        """Why this sidecar cannot run ``task`` (it has no API key), or None. A sidecar set-up problem:
        another sidecar, with a key, can run the task."""
        return None if self._key() else _NO_KEY

    async def run(self, task: TaskAssign) -> AsyncGenerator[Step, None]:
        model = task.routing_decision.selected_model or self.default_model
        key = self._key()
        if not model:  # the routing's omission, the same on every sidecar
            yield Outcome(output="", model_used=None, retryable=False,
                          error="no Claude model: the routing decision has no selected_model")
            return
        if not key:  # this sidecar's set-up (see refusal): retryable, another sidecar has a key
            yield Outcome(output="", model_used=model, retryable=True, error=_NO_KEY)
            return
        request = self._request(task, model)
        async with aclosing(with_retries(lambda: self._attempt(key, request), self.retry,
                                         label=f"claude {model}", model=model)) as steps:
            async for step in steps:
                yield step

    def _request(self, task: TaskAssign, model: str) -> dict[str, Any]:
        meta = task.metadata
        max_tokens = meta.get("max_tokens")
        if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1:
            max_tokens = DEFAULT_MAX_TOKENS
        system: dict[str, Any] = {"type": "text", "text": system_prompt(task)}
        user: dict[str, Any] = {"type": "text", "text": task_prompt(task)}
        if meta.get("cache_prompt") is True:
            system["cache_control"] = {"type": "ephemeral"}
            user["cache_control"] = {"type": "ephemeral"}
        return {"model": model, "max_tokens": max_tokens, "system": [system],
                "messages": [{"role": "user", "content": [user]}]}

    async def _attempt(self, key: str, request: dict[str, Any]) -> AsyncGenerator[Step, None]:
        import anthropic

        model = request["model"]
        client = anthropic.AsyncAnthropic(api_key=key, base_url=self.base_url, max_retries=0, timeout=self.timeout_s)
        parts: list[str] = []
        chars = 0
        try:
            async with client.messages.stream(**request) as stream:
                started = False
                async for event in stream:
                    started = started or event.type == "message_start"
                    if event.type == "content_block_delta" and event.delta.type == "text_delta":
                        text = event.delta.text
                        if text:
                            parts.append(text)
                            chars += len(text)
                            yield Output(kind="token", text=text, tokens_so_far=math.ceil(chars / 4), model=model)
                if not started:
                    raise BackendError("the Anthropic API stream ended before message_start", retryable=True)
                message = await stream.get_final_message()
        except anthropic.AnthropicError as exc:
            raise translate(exc, "".join(parts)) from None
        except _TRANSPORT_ERRORS as exc:
            raise BackendError(f"connection to the Anthropic API broke: {type(exc).__name__}: {exc}",
                               retryable=True, partial_output="".join(parts)) from None
        finally:
            await client.close()
        if message.stop_reason is None:
            raise BackendError("the Anthropic API stream ended before message_stop", retryable=True,
                               partial_output="".join(parts))
        usage = message.usage
        text = "".join(b.text for b in message.content if b.type == "text")
        yield Outcome(
            output=text, model_used=message.model or model,
            tokens_in=usage.input_tokens or 0, tokens_out=usage.output_tokens or 0,
            cache_read_tokens=usage.cache_read_input_tokens or 0,
            cache_write_tokens=usage.cache_creation_input_tokens or 0,
            extra={"stop_reason": message.stop_reason} if message.stop_reason else {},
        )
