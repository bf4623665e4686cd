"""Executor for any OpenAI-compatible chat server (llama.cpp, vLLM, LM Studio, Ollama's ``/v1``).

It speaks through the official ``openai`` client and streams: every content delta becomes
a ``token`` Output, and ``stream_options={"include_usage": True}`` asks for a final usage
chunk that gives ``tokens_in``/``tokens_out``. Some servers (llama-cpp-python's own) ignore
that option; then ``tokens_out`` is the number of content deltas (such servers send one per
token) and ``tokens_in`` is asked of the server itself: one non-streamed, one-token
completion of the same messages, whose ``usage.prompt_tokens`` counts the prompt as the
server templated it (the chat template adds tens of tokens a character count cannot see;
the server has the prompt cached by then, so the question costs one token).
``Outcome.extra["usage"]`` says ``"reported"``, ``"counted"`` (that question answered) or
``"estimated"`` (it failed too: four characters per prompt token).

Errors are translated here, at the boundary, as httpx translates httpcore's: connection
failures, timeouts, 429 and 5xx are retried with exponential backoff *before* any token
has been streamed (never after: that would repeat output); other 4xx fail at once and are
not retryable. Whatever still fails ends the run with ``Outcome(error=..., retryable=...)``.
A stream that ends without a ``finish_reason`` was cut short (llama-cpp-python's server
does that to a stream when another request arrives, unless started with
``--interrupt_requests False``): a retryable failure, never a success with half an answer.

The chat messages built from a task (``task_messages``) and the per-task generation
options (``task_options``) live here too: llama-cpp-python's embedded executor sends the
very same OpenAI-format request.
"""

from __future__ import annotations

import asyncio
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, AsyncIterator, cast
from urllib.parse import urlsplit, urlunsplit

import openai

from agentcom.errors import ConfigError
from agentcom.executors.base import Outcome, Output, Step
from agentcom.executors._prompt import system_prompt, task_prompt
from agentcom.protocol.messages import TaskAssign

if TYPE_CHECKING:
    from openai.types.chat import ChatCompletionMessageParam

__all__ = ["GenerationOptions", "OpenAICompatExecutor", "resolve_base_url", "task_messages", "task_options"]

_DUMMY_API_KEY = "sk-no-key-required"
_MAX_ERROR_CHARS = 1_000


# --------------------------------------------------------------------------- the request of a task


def task_messages(task: TaskAssign) -> list[dict[str, str]]:
    """The chat messages for a task: a system prompt only when the task sets one, then the work.

    Small local models answer better without the long default system prompt, so only
    ``metadata["system"]`` becomes a system message; the user message is ``task_prompt``.
    """
    messages = []
    system = task.metadata.get("system")
    if isinstance(system, str) and system.strip():
        messages.append({"role": "system", "content": system_prompt(task)})
    messages.append({"role": "user", "content": task_prompt(task)})
    return messages


@dataclass(frozen=True, slots=True)
class GenerationOptions:
    """How much to generate and how randomly; ``temperature`` 0 means greedy (deterministic)."""

    max_tokens: int
    temperature: float


def task_options(task: TaskAssign, *, max_tokens: int, temperature: float) -> GenerationOptions:
    """The executor defaults, overridden by ``metadata["max_tokens"]`` / ``metadata["temperature"]``.

    Raises ConfigError naming the field and the bad value.
    """
    meta = task.metadata
    tokens = meta.get("max_tokens", max_tokens)
    if isinstance(tokens, bool) or not isinstance(tokens, int) or tokens < 1:
        raise ConfigError(f"metadata.max_tokens must be a positive integer, got {tokens!r}")
    temp = meta.get("temperature", temperature)
    if isinstance(temp, bool) or not isinstance(temp, (int, float)) or not 0 <= temp <= 2:
        raise ConfigError(f"metadata.temperature must be a number from 0 to 2, got {temp!r}")
    return GenerationOptions(max_tokens=tokens, temperature=float(temp))


def resolve_base_url(endpoint: str | None, default: str | None = None) -> str:
    """The client ``base_url`` for ``"host:port"`` or a URL; a bare host gets ``/v1``.

    ``"127.0.0.1:8080"`` -> ``"http://127.0.0.1:8080/v1"``; ``"http://h:11434/"`` ->
    ``"http://h:11434/v1"``; a URL with a path is kept as given.
    """
    value = (endpoint or default or "").strip()
    if not value:
        raise ConfigError("no OpenAI-compatible endpoint: routing_decision.selected_endpoint is empty "
                          "and the executor has no base_url")
    if "://" not in value:
        value = "http://" + value
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"endpoint must be 'host:port' or an http(s) URL, got {(endpoint or default)!r}")
    path = parts.path.rstrip("/") or "/v1"
    return urlunsplit((parts.scheme, parts.netloc, path, "", ""))


# --------------------------------------------------------------------------- errors at the boundary


@dataclass(frozen=True, slots=True)
class _Failure:
    message: str
    retryable: bool
    retry_after_s: float | None = None


def _translate(exc: openai.OpenAIError, base_url: str) -> _Failure:
    """An openai exception as a message and whether trying again can help."""
    if isinstance(exc, openai.APITimeoutError):
        return _Failure(f"timed out talking to {base_url}", retryable=True)
    if isinstance(exc, openai.APIConnectionError):
        cause = exc.__cause__ or exc
        return _Failure(f"cannot connect to {base_url}: {cause}", retryable=True)
    if isinstance(exc, openai.APIStatusError):
        status = exc.status_code
        detail = _error_detail(exc)
        message = f"{base_url} answered HTTP {status}: {detail}"
        return _Failure(message, retryable=status == 429 or status >= 500, retry_after_s=_retry_after(exc))
    if isinstance(exc, openai.APIError):  # an error event inside the stream
        return _Failure(f"{base_url} reported an error mid-stream: {exc.message}", retryable=True)
    return _Failure(f"OpenAI client error with {base_url}: {exc}", retryable=False)


def _error_detail(exc: openai.APIStatusError) -> str:
    body = exc.body
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict) and isinstance(inner.get("message"), str):
            return str(inner["message"])[:_MAX_ERROR_CHARS]
        if isinstance(inner, str):
            return inner[:_MAX_ERROR_CHARS]
    return (exc.message or exc.response.reason_phrase)[:_MAX_ERROR_CHARS]


def _retry_after(exc: openai.APIStatusError) -> float | None:
    try:
        value = float(exc.response.headers.get("retry-after", ""))
    except ValueError:
        return None
    return value if value >= 0 else None


# --------------------------------------------------------------------------- the executor


class OpenAICompatExecutor:
    """Runs a task as one streamed chat completion on an OpenAI-compatible server.

    The endpoint comes from ``routing_decision.selected_endpoint`` (``"host:port"`` or a
    URL), else ``base_url``; the model from ``routing_decision.selected_model``, else
    ``model``, else the first model the server lists. ``max_retries`` counts retries after
    the first attempt; the wait doubles from ``backoff_s`` up to ``max_backoff_s`` (a
    server's ``Retry-After`` wins, within that cap). ``timeout_s`` bounds each HTTP read.
    """

    target_type = "openai"

    def __init__(
        self,
        base_url: str | None = None,
        *,
        api_key: str | None = None,
        model: str | None = None,
        max_tokens: int = 512,
        temperature: float = 0.0,
        max_retries: int = 3,
        backoff_s: float = 0.5,
        max_backoff_s: float = 8.0,
        timeout_s: float = 120.0,
    ) -> None:
        if max_tokens < 1:
            raise ConfigError(f"max_tokens must be a positive integer, got {max_tokens!r}")
        if max_retries < 0 or backoff_s < 0 or max_backoff_s < 0 or timeout_s <= 0:
            raise ConfigError("max_retries, backoff_s and max_backoff_s must be >= 0 and timeout_s > 0, got "
                              f"{max_retries!r}, {backoff_s!r}, {max_backoff_s!r}, {timeout_s!r}")
        if base_url is not None:
            resolve_base_url(base_url)  # fail at start, not on the first task
        self.base_url = base_url
        self.model = model
        self.max_tokens = max_tokens
        self.temperature = temperature
        self.max_retries = max_retries
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self.timeout_s = timeout_s
        self._api_key = api_key or _DUMMY_API_KEY  # local servers want *a* key, not a real one

    async def run(self, task: TaskAssign) -> AsyncIterator[Step]:
        routing = task.routing_decision
        try:
            base_url = resolve_base_url(routing.selected_endpoint, self.base_url)
            options = task_options(task, max_tokens=self.max_tokens, temperature=self.temperature)
        except ConfigError as exc:
            yield Outcome(output="", model_used=routing.selected_model or self.model, error=str(exc))
            return
        client = openai.AsyncOpenAI(base_url=base_url, api_key=self._api_key, max_retries=0, timeout=self.timeout_s)
        try:
            async for step in self._stream(client, base_url, task, options):
                yield step
        finally:
            await client.close()

    async def _stream(
        self, client: openai.AsyncOpenAI, base_url: str, task: TaskAssign, options: GenerationOptions
    ) -> AsyncIterator[Step]:
        model = task.routing_decision.selected_model or self.model
        messages = task_messages(task)
        attempt = 0
        while True:
            try:
                if model is None:
                    model = await self._first_model(client, base_url)
                stream = await client.chat.completions.create(
                    model=model,
                    messages=cast("list[ChatCompletionMessageParam]", messages),
                    max_tokens=options.max_tokens,
                    temperature=options.temperature,
                    stream=True,
                    stream_options={"include_usage": True},
                )
                break
            except ConfigError as exc:
                yield Outcome(output="", model_used=None, error=str(exc))
                return
            except openai.OpenAIError as exc:
                failure = _translate(exc, base_url)
                if not failure.retryable or attempt >= self.max_retries:
                    tries = f" (after {attempt + 1} attempts)" if attempt else ""
                    yield Outcome(output="", model_used=model, error=failure.message + tries, retryable=failure.retryable)
                    return
                delay = self._delay(attempt, failure.retry_after_s)
                attempt += 1
                yield Output("status", f"{failure.message}; retry {attempt}/{self.max_retries} in {delay:.2f}s",
                             model=model)
                await asyncio.sleep(delay)

        pieces: list[str] = []
        usage: Any = None
        finish_reason: str | None = None
        model_used = model
        try:
            async for chunk in stream:
                model_used = chunk.model or model_used
                if chunk.usage is not None:
                    usage = chunk.usage
                for choice in chunk.choices:
                    finish_reason = choice.finish_reason or finish_reason
                    text = choice.delta.content if choice.delta else None
                    if text:
                        pieces.append(text)
                        yield Output("token", text, tokens_so_far=len(pieces), model=model_used)
        except openai.OpenAIError as exc:
            failure = _translate(exc, base_url)
            yield Outcome(output="".join(pieces), model_used=model_used, tokens_out=len(pieces),
                          error=f"{failure.message} after {len(pieces)} tokens", retryable=failure.retryable)
            return
        finally:
            await stream.close()

        output = "".join(pieces)
        if finish_reason is None:
            # Every OpenAI-style stream ends with a finish_reason; llama-cpp-python's server ends
            # one without it when a newer request interrupts it: the output is cut, not done.
            yield Outcome(output=output, model_used=model_used, tokens_out=len(pieces), retryable=True,
                          error=f"{base_url} ended the stream without a finish_reason after {len(pieces)} tokens "
                                "(cut short, e.g. by another request to the same llama.cpp server)")
            return
        extra = {"finish_reason": finish_reason, "endpoint": base_url}
        if usage is not None:
            tokens_in, tokens_out = int(usage.prompt_tokens or 0), int(usage.completion_tokens or 0)
            extra["usage"] = "reported"
        else:
            tokens_out = len(pieces)
            counted = await self._count_prompt(client, model, messages)
            if counted is not None:
                tokens_in, extra["usage"] = counted, "counted"
            else:
                prompt_chars = sum(len(m["content"]) for m in messages)
                tokens_in, extra["usage"] = math.ceil(prompt_chars / 4), "estimated"
        yield Outcome(output=output, model_used=model_used, tokens_in=tokens_in, tokens_out=tokens_out, extra=extra)

    async def _count_prompt(self, client: openai.AsyncOpenAI, model: str | None,
                            messages: list[dict[str, str]]) -> int | None:
        """The server's own ``prompt_tokens`` for ``messages`` (None if it will not say).

        Why: a stream without usage leaves only the raw text, which misses the chat template.
        """
        if model is None:
            return None
        try:
            answer = await client.chat.completions.create(
                model=model, messages=cast("list[ChatCompletionMessageParam]", messages), max_tokens=1,
                temperature=0, stream=False)
        except openai.OpenAIError:
            return None
        prompt_tokens = answer.usage.prompt_tokens if answer.usage is not None else None
        return prompt_tokens if isinstance(prompt_tokens, int) and prompt_tokens > 0 else None

    async def _first_model(self, client: openai.AsyncOpenAI, base_url: str) -> str:
        """The server's first listed model, for a task routed without one."""
        page = await client.models.list()
        for entry in page.data:
            return entry.id
        raise ConfigError(f"no model given and {base_url}/models lists none")

    def _delay(self, attempt: int, retry_after_s: float | None) -> float:
        if retry_after_s is not None:
            return min(retry_after_s, self.max_backoff_s)
        return min(self.backoff_s * 2.0**attempt, self.max_backoff_s)
