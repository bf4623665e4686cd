"""Ollama executor (target ``ollama``), through the official ``ollama`` client.

Endpoint: the routing decision's ``selected_endpoint`` ("host:port" or a URL), else the
sidecar's ``ollama_url``. Model: ``selected_model``, else the configured default.
Tokens are streamed as they arrive; the counts come from the final chunk
(``prompt_eval_count``, ``eval_count``). ``ollama``'s and ``httpx``'s exceptions are
translated here into ``BackendError`` with an honest ``retryable``.
"""

from __future__ import annotations

from contextlib import aclosing
from typing import TYPE_CHECKING, Any, AsyncGenerator

import httpx

from agentcom.executors._preload import preload
from agentcom.executors._prompt import system_prompt, task_prompt
from agentcom.executors._retry import BackendError, RetryPolicy, with_retries
from agentcom.executors.base import Outcome, Output, Step
from agentcom.protocol.messages import TaskAssign

if TYPE_CHECKING:  # the client is imported at the first run: a sidecar without Ollama work never pays for it
    import ollama

__all__ = ["OllamaExecutor", "endpoint_url"]


def endpoint_url(endpoint: str) -> str:
    """``host:port`` -> ``http://host:port``; URLs are kept."""
    endpoint = endpoint.strip().rstrip("/")
    return endpoint if "://" in endpoint else f"http://{endpoint}"


def _is_retryable_status(status: int) -> bool:
    return status in (408, 429) or status >= 500


class OllamaExecutor:
    """Runs tasks on an Ollama server. ``read_timeout_s`` bounds the silence between chunks."""

    target_type = "ollama"

    def __init__(self, *, default_url: str | None = None, default_model: str | None = None,
                 retry: RetryPolicy | None = None, connect_timeout_s: float = 10.0,
                 read_timeout_s: float = 300.0) -> None:
        self.default_url = default_url
        self.default_model = default_model
        preload("ollama")  # routing may send Ollama work to any sidecar: have the client ready
        self.retry = retry or RetryPolicy()
        self.timeout = httpx.Timeout(read_timeout_s, connect=connect_timeout_s)

    def refusal(self, task: TaskAssign) -> str | None:
        """Why this sidecar cannot run ``task``, or None: the routing names no endpoint (or no model) and
        this sidecar has no ``ollama_url`` (or default model). A sidecar set-up problem: another
        sidecar, configured with one, can run the task."""
        decision = task.routing_decision
        if not (decision.selected_endpoint or self.default_url):
            return "no Ollama endpoint: the routing decision has none and no ollama_url is configured"
        if not (decision.selected_model or self.default_model):
            return "no Ollama model: the routing decision has none and no default model is configured"
        return None

    async def run(self, task: TaskAssign) -> AsyncGenerator[Step, None]:
        decision = task.routing_decision
        endpoint = decision.selected_endpoint or self.default_url
        model = decision.selected_model or self.default_model
        refusal = self.refusal(task)
        if refusal is not None or not endpoint or not model:
            yield Outcome(output="", model_used=model, retryable=True, error=refusal or "no Ollama endpoint or model")
            return
        host = endpoint_url(endpoint)
        messages = [{"role": "system", "content": system_prompt(task)}, {"role": "user", "content": task_prompt(task)}]
        options: dict[str, Any] = {}
        if isinstance(task.metadata.get("max_tokens"), int):
            options["num_predict"] = task.metadata["max_tokens"]
        async with aclosing(with_retries(lambda: self._attempt(host, model, messages, options), self.retry,
                                         label=f"ollama {model} at {host}", model=model)) as steps:
            async for step in steps:
                yield step

    async def _attempt(self, host: str, model: str, messages: list[dict[str, str]],
                       options: dict[str, Any]) -> AsyncGenerator[Step, None]:
        import ollama

        client = ollama.AsyncClient(host=host, timeout=self.timeout)
        parts: list[str] = []
        final: ollama.ChatResponse | None = None
        try:
            stream = await client.chat(model=model, messages=messages, stream=True, options=options or None)
            async with aclosing(stream):  # type: ignore[type-var]
                async for chunk in stream:
                    text = chunk.message.content or ""
                    if text:
                        parts.append(text)
                        yield Output(kind="token", text=text, tokens_so_far=len(parts), model=model)
                    if chunk.done:
                        final = chunk
        except ollama.ResponseError as exc:
            status = exc.status_code
            if status == -1:  # an {"error": ...} line inside the stream: the server failed mid-answer
                raise BackendError(f"Ollama failed during generation: {exc.error}", retryable=True,
                                   partial_output="".join(parts)) from None
            raise BackendError(f"Ollama answered {status}: {exc.error}", retryable=_is_retryable_status(status),
                               status=status, partial_output="".join(parts)) from None
        except (ConnectionError, httpx.ConnectError):  # the client translates only non-streamed calls
            raise BackendError(f"cannot connect to Ollama at {host}", retryable=True) from None
        except httpx.TimeoutException as exc:
            raise BackendError(f"Ollama at {host} timed out ({type(exc).__name__})", retryable=True,
                               partial_output="".join(parts)) from None
        except httpx.TransportError as exc:
            raise BackendError(f"connection to Ollama at {host} failed: {type(exc).__name__}: {exc}",
                               retryable=True, partial_output="".join(parts)) from None
        except ValueError as exc:  # JSON or schema errors: not an Ollama server, or a broken one
            raise BackendError(f"malformed answer from Ollama at {host}: {exc}", retryable=False) from None
        finally:
            await client.close()  # type: ignore[no-untyped-call]
        if final is None:
            raise BackendError(f"Ollama at {host} ended the stream without a final chunk", retryable=True,
                               partial_output="".join(parts))
        tokens_out = final.eval_count if final.eval_count is not None else len(parts)
        extra = {"done_reason": final.done_reason} if final.done_reason else {}
        yield Outcome(output="".join(parts), model_used=final.model or model,
                      tokens_in=final.prompt_eval_count or 0, tokens_out=tokens_out, extra=extra)
