"""A stand-in for Anthropic's Messages API (``POST /v1/messages``), for tests and the demo.

Speaks the real wire format: with ``"stream": true`` a server-sent-event stream
(``message_start`` with usage, ``content_block_start``, ``ping``, ``content_block_delta``
``text_delta`` pieces, ``content_block_stop``, ``message_delta`` with usage,
``message_stop``; an ``error`` event for a mid-stream failure), otherwise one JSON
message. Errors use the API's body ``{"type": "error", "error": {"type", "message"}}``
and status codes (400, 401, 404, 429, 500, 529 ``overloaded_error``).

Honesty: it accepts any ``claude-*`` model id, but the ``model`` it answers with is
``simulated-<requested id>``, so every run it serves is recorded under a simulated
model name (priced at 0, with the requested model's price as the Claude equivalent).
Only a test may drop the prefix (``model_prefix = ""``), to see how an unpriced id is handled.
A request without an ``x-api-key`` (or bearer) header gets 401, as the real API does;
the key's value is not checked.

Prompt caching is modelled: the prompt prefix up to the last block carrying
``cache_control`` is "written" the first time it is seen and "read" afterwards,
reported as ``cache_creation_input_tokens`` / ``cache_read_input_tokens``
(``input_tokens`` excludes them, as in the real API). The real API's minimum
cacheable length is not modelled.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from tornado.web import RequestHandler

from agentcom.standin._server import Fault, Standin, StandinHandler
from agentcom.standin._text import count_tokens, reply_for, split_tokens

__all__ = ["AnthropicStandin", "SIMULATED_PREFIX"]

SIMULATED_PREFIX = "simulated-"
_ERROR_TYPES = {
    400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
    404: "not_found_error", 413: "request_too_large", 429: "rate_limit_error",
    500: "api_error", 503: "api_error", 529: "overloaded_error",
}
_TOKENS_PER_DELTA = 3
_MESSAGE_OVERHEAD = 3


class AnthropicStandin(Standin):
    """``async with AnthropicStandin() as s:`` then ``AsyncAnthropic(base_url=s.url, api_key="any")``."""

    def __init__(self, *, chunk_delay: float = 0.0) -> None:
        super().__init__(chunk_delay=chunk_delay)
        self.model_prefix = SIMULATED_PREFIX
        """Put before the requested id in the answered ``model``. Tests of unpriced-model handling
        set it to "" (the id comes back bare, as the real API does); anything a user sees keeps it."""
        self._cached_prefixes: set[str] = set()
        self._counter = 0

    def routes(self) -> list[tuple[str, type[RequestHandler]]]:
        return [(r"/v1/messages", _MessagesHandler)]

    def next_id(self, seed: str) -> str:
        self._counter += 1
        return "msg_sim_" + hashlib.sha256(f"{seed}:{self._counter}".encode()).hexdigest()[:24]

    def cache_usage(self, prefix_key: str | None, prefix_tokens: int) -> tuple[int, int]:
        """(cache_creation, cache_read) tokens for a prompt whose cached prefix is ``prefix_key``."""
        if prefix_key is None or prefix_tokens == 0:
            return 0, 0
        if prefix_key in self._cached_prefixes:
            return 0, prefix_tokens
        self._cached_prefixes.add(prefix_key)
        return prefix_tokens, 0


def _blocks(content: Any, where: str) -> list[dict[str, Any]]:
    """Content as a list of blocks; a plain string is one text block."""
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    if isinstance(content, list) and all(isinstance(b, dict) for b in content):
        for i, block in enumerate(content):
            if block.get("type") == "text" and not isinstance(block.get("text"), str):
                raise ValueError(f"{where}.{i}.text: expected a string")
        return content
    raise ValueError(f"{where}: expected a string or a list of content blocks")


class _MessagesHandler(StandinHandler):
    standin: AnthropicStandin

    def error(self, status: int, message: str, error_type: str | None = None) -> None:
        self.set_header("request-id", "req_sim_error")
        self.send_json(status, {"type": "error", "error": {
            "type": error_type or _ERROR_TYPES.get(status, "api_error"), "message": message}})

    async def post(self) -> None:
        headers = self.request.headers
        if not headers.get("x-api-key") and not headers.get("authorization", "").startswith("Bearer "):
            return self.error(401, "x-api-key header is required")
        if not headers.get("anthropic-version"):
            return self.error(400, "anthropic-version header is required")
        body = self.json_body
        if not isinstance(body, dict):
            return self.error(400, "request body must be a JSON object")
        model, max_tokens, messages = body.get("model"), body.get("max_tokens"), body.get("messages")
        if not isinstance(model, str) or not model:
            return self.error(400, "model: Field required")
        if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1:
            return self.error(400, "max_tokens: Input should be a positive integer")
        if not isinstance(messages, list) or not messages:
            return self.error(400, "messages: at least one message is required")
        try:
            prompt = _Prompt.parse(body)
        except ValueError as exc:
            return self.error(400, str(exc))
        fault = self.standin.take_fault()
        if fault is not None and fault.status is not None and not fault.midstream:
            return self.error(fault.status, fault.message or _default_message(fault.status))
        if fault is not None and fault.hang and fault.after_chunks == 0:
            await self.stall()
            return None
        if not model.startswith("claude-"):
            return self.error(404, f"model: {model}")

        tokens = split_tokens(reply_for(prompt.last_user))
        stop_reason = "end_turn"
        if len(tokens) > max_tokens:
            tokens, stop_reason = tokens[:max_tokens], "max_tokens"
        cache_write, cache_read = self.standin.cache_usage(prompt.prefix_key, prompt.prefix_tokens)
        usage = {
            "input_tokens": prompt.total_tokens - cache_write - cache_read,
            "cache_creation_input_tokens": cache_write, "cache_read_input_tokens": cache_read,
            "output_tokens": len(tokens),
        }
        message: dict[str, Any] = {
            "id": self.standin.next_id(prompt.last_user), "type": "message", "role": "assistant",
            "model": self.standin.model_prefix + model, "content": [], "stop_reason": None, "stop_sequence": None,
            "usage": usage,
        }
        self.set_header("request-id", "req_sim_" + message["id"][8:])
        if body.get("stream") is not True:
            text = "".join(tokens)
            message.update(content=[{"type": "text", "text": text}], stop_reason=stop_reason)
            return self.send_json(200, message)
        await self.stream(message, tokens, stop_reason, fault)
        return None

    async def stream(self, message: dict[str, Any], tokens: list[str], stop_reason: str, fault: Fault | None) -> None:
        self.set_header("Content-Type", "text/event-stream; charset=utf-8")
        self.set_header("Cache-Control", "no-cache")
        usage = message["usage"]
        start = dict(message, usage=dict(usage, output_tokens=min(1, len(tokens))))
        self.standin.active_streams += 1
        try:
            ok = (await self.event("message_start", {"type": "message_start", "message": start})
                  and await self.event("content_block_start", {
                      "type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}})
                  and await self.event("ping", {"type": "ping"}))
            pieces = ["".join(tokens[i:i + _TOKENS_PER_DELTA]) for i in range(0, len(tokens), _TOKENS_PER_DELTA)]
            for i, piece in enumerate(pieces):
                if not ok:
                    return
                if fault is not None and i == fault.after_chunks:
                    if fault.hang:
                        await self.stall()
                        return
                    status = fault.status or 529
                    await self.event("error", {"type": "error", "error": {
                        "type": _ERROR_TYPES.get(status, "api_error"),
                        "message": fault.message or _default_message(status)}})
                    return
                ok = await self.event("content_block_delta", {
                    "type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": piece}})
            ok = ok and await self.event("content_block_stop", {"type": "content_block_stop", "index": 0})
            ok = ok and await self.event("message_delta", {
                "type": "message_delta", "delta": {"stop_reason": stop_reason, "stop_sequence": None},
                "usage": usage})
            if ok:
                await self.event("message_stop", {"type": "message_stop"})
        finally:
            self.standin.active_streams -= 1

    async def event(self, name: str, data: dict[str, Any]) -> bool:
        return await self.send_chunk(f"event: {name}\ndata: {json.dumps(data)}\n\n")


def _default_message(status: int) -> str:
    return {429: "Number of requests has exceeded your rate limit (simulated)",
            529: "Overloaded", 500: "Internal server error (simulated)"}.get(status, f"simulated error {status}")


class _Prompt:
    """Token accounting of a Messages request: totals, the last user text, the cached prefix."""

    def __init__(self) -> None:
        self.total_tokens = 0
        self.prefix_tokens = 0
        self.prefix_key: str | None = None
        self.last_user = ""

    @classmethod
    def parse(cls, body: dict[str, Any]) -> _Prompt:
        prompt = cls()
        blocks: list[tuple[str, dict[str, Any]]] = []
        system = body.get("system")
        if system is not None:
            blocks += [("system", b) for b in _blocks(system, "system")]
        for i, message in enumerate(body["messages"]):
            if not isinstance(message, dict) or message.get("role") not in ("user", "assistant"):
                raise ValueError(f"messages.{i}: expected {{role: user|assistant, content}}")
            content = _blocks(message.get("content"), f"messages.{i}.content")
            blocks += [(message["role"], b) for b in content]
            prompt.total_tokens += _MESSAGE_OVERHEAD
            if message["role"] == "user":
                prompt.last_user = "\n".join(b.get("text", "") for b in content if b.get("type") == "text")
        hasher = hashlib.sha256()
        running = 0
        cache_all = isinstance(body.get("cache_control"), dict)
        for index, (role, block) in enumerate(blocks):
            text = block.get("text", "") if block.get("type") == "text" else json.dumps(block, sort_keys=True)
            running += count_tokens(text)
            hasher.update(f"{role}\0{text}\0".encode())
            if isinstance(block.get("cache_control"), dict) or (cache_all and index == len(blocks) - 1):
                prompt.prefix_tokens, prompt.prefix_key = running, hasher.hexdigest()
        prompt.total_tokens += running
        return prompt
