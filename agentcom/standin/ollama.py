"""A stand-in Ollama server speaking Ollama's real HTTP API, for tests and the demo.

Serves ``GET /`` ("Ollama is running"), ``GET /api/version``, ``GET /api/tags``,
``GET /api/ps``, and ``POST /api/chat`` / ``POST /api/generate``, streamed as NDJSON
(one JSON object per line, the default, as Ollama does) or as one JSON object with
``"stream": false``. The final chunk carries ``done: true``, ``done_reason``,
``prompt_eval_count``, ``eval_count`` and the durations in nanoseconds.

Its models are named ``simulated-*`` (default ``simulated-llama3.2`` and
``simulated-qwen2.5-coder``) so that nothing downstream mistakes a stand-in answer
for a real model's: any other model name gets Ollama's 404 "model not found".
Answers are deterministic (``agentcom.standin._text``).
"""

from __future__ import annotations

import hashlib
import json
import time
from datetime import datetime, timezone
from typing import Any, Iterable

from tornado.web import RequestHandler

from agentcom.standin._server import Fault, Standin, StandinHandler
from agentcom.standin._text import count_tokens, reply_for, split_tokens

__all__ = ["OllamaStandin", "DEFAULT_OLLAMA_MODELS"]

DEFAULT_OLLAMA_MODELS = ("simulated-llama3.2", "simulated-qwen2.5-coder")
_VERSION = "0.12.0-simulated"
_NS_PER_TOKEN = 20_000_000  # pretend 50 tokens/s, so durations look plausible


def _full_name(model: str) -> str:
    return model if ":" in model else f"{model}:latest"


def _now() -> str:
    return datetime.now(timezone.utc).isoformat().replace("+00:00", "Z")


class OllamaStandin(Standin):
    """``async with OllamaStandin() as s:`` then point an Ollama client at ``s.url``."""

    def __init__(self, models: Iterable[str] = DEFAULT_OLLAMA_MODELS, *, chunk_delay: float = 0.0) -> None:
        super().__init__(chunk_delay=chunk_delay)
        self.models = tuple(_full_name(m) for m in models)
        self.loaded: dict[str, float] = {}
        """Models that answered a request, with when (like Ollama's loaded models)."""

    def routes(self) -> list[tuple[str, type[RequestHandler]]]:
        return [
            (r"/", _RootHandler),
            (r"/api/version", _VersionHandler),
            (r"/api/tags", _TagsHandler),
            (r"/api/ps", _PsHandler),
            (r"/api/chat", _ChatHandler),
            (r"/api/generate", _GenerateHandler),
        ]

    def resolve(self, model: str) -> str | None:
        full = _full_name(model)
        return full if full in self.models else None

    def describe(self, name: str) -> dict[str, Any]:
        digest = hashlib.sha256(name.encode()).hexdigest()
        family = name.removeprefix("simulated-").split(":")[0].rstrip("0123456789.") or "llama"
        return {
            "name": name, "model": name, "modified_at": "2026-11-01T00:00:00Z",
            "size": 2_019_393_189, "digest": digest,
            "details": {"parent_model": "", "format": "gguf", "family": family, "families": [family],
                        "parameter_size": "3.2B", "quantization_level": "Q4_K_M"},
        }


class _Base(StandinHandler):
    standin: OllamaStandin

    def error(self, status: int, message: str) -> None:
        self.send_json(status, {"error": message})


class _RootHandler(_Base):
    def get(self) -> None:
        self.set_header("Content-Type", "text/plain; charset=utf-8")
        self.finish("Ollama is running")


class _VersionHandler(_Base):
    def get(self) -> None:
        self.send_json(200, {"version": _VERSION})


class _TagsHandler(_Base):
    def get(self) -> None:
        self.send_json(200, {"models": [self.standin.describe(m) for m in self.standin.models]})


class _PsHandler(_Base):
    def get(self) -> None:
        models = []
        for name, at in self.standin.loaded.items():
            entry = self.standin.describe(name)
            expires = datetime.fromtimestamp(at + 300, timezone.utc).isoformat().replace("+00:00", "Z")
            entry.update(expires_at=expires, size_vram=entry["size"], context_length=4096)
            models.append(entry)
        self.send_json(200, {"models": models})


class _GenerationHandler(_Base):
    """Shared by /api/chat and /api/generate; they differ in prompt and answer shape."""

    def prompt_of(self, body: dict[str, Any]) -> tuple[str, int] | str:
        """(prompt text, prompt token count), or an error message."""
        raise NotImplementedError

    def piece(self, text: str) -> dict[str, Any]:
        raise NotImplementedError

    async def post(self) -> None:
        body = self.json_body
        if not isinstance(body, dict):
            return self.error(400, "invalid request body: expected a JSON object")
        model = body.get("model")
        if not isinstance(model, str) or not model:
            return self.error(400, "model is required")
        prompt = self.prompt_of(body)
        if isinstance(prompt, str):
            return self.error(400, prompt)
        fault = self.standin.take_fault()
        if fault is not None and fault.status is not None and not fault.midstream:
            return self.error(fault.status, fault.message or f"simulated failure (status {fault.status})")
        if fault is not None and fault.hang and fault.after_chunks == 0:
            await self.stall()
            return None
        if self.standin.resolve(model) is None:
            return self.error(404, f'model "{model}" not found, try pulling it first')
        self.standin.loaded[self.standin.resolve(model) or model] = time.time()
        text, prompt_tokens = prompt
        options = body.get("options")
        limit = options.get("num_predict") if isinstance(options, dict) else None
        tokens = split_tokens(reply_for(text))
        done_reason = "stop"
        if isinstance(limit, int) and 0 <= limit < len(tokens):
            tokens, done_reason = tokens[:limit], "length"
        final = {
            "model": model, "created_at": _now(), "done": True, "done_reason": done_reason,
            "total_duration": (prompt_tokens + len(tokens)) * _NS_PER_TOKEN + 5_000_000,
            "load_duration": 5_000_000, "prompt_eval_count": prompt_tokens,
            "prompt_eval_duration": prompt_tokens * _NS_PER_TOKEN // 10,
            "eval_count": len(tokens), "eval_duration": len(tokens) * _NS_PER_TOKEN,
        }
        if body.get("stream", True) is False:
            return self.send_json(200, {**final, **self.piece("".join(tokens))})
        await self.stream(model, tokens, final, fault)
        return None

    async def stream(self, model: str, tokens: list[str], final: dict[str, Any], fault: Fault | None) -> None:
        self.set_header("Content-Type", "application/x-ndjson")
        self.standin.active_streams += 1
        try:
            for i, token in enumerate(tokens):
                if fault is not None and i == fault.after_chunks:
                    if fault.hang:
                        await self.stall()
                        return
                    line = {"error": fault.message or f"simulated failure during generation (status {fault.status})"}
                    await self.send_chunk(json.dumps(line) + "\n")
                    return
                chunk = {"model": model, "created_at": _now(), **self.piece(token), "done": False}
                if not await self.send_chunk(json.dumps(chunk) + "\n"):
                    return
            await self.send_chunk(json.dumps({**final, **self.piece("")}) + "\n")
        finally:
            self.standin.active_streams -= 1
            if not self.client_gone:
                self.finish()


class _ChatHandler(_GenerationHandler):
    def prompt_of(self, body: dict[str, Any]) -> tuple[str, int] | str:
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            return "messages are required"
        texts = []
        for i, message in enumerate(messages):
            if not isinstance(message, dict) or not isinstance(message.get("content", ""), str):
                return f"invalid message at index {i}: expected {{role, content}}"
            texts.append(message.get("content", ""))
        last_user = next((m.get("content", "") for m in reversed(messages) if m.get("role") == "user"), texts[-1])
        return last_user, sum(count_tokens(t) for t in texts) + 4 * len(texts)

    def piece(self, text: str) -> dict[str, Any]:
        return {"message": {"role": "assistant", "content": text}}


class _GenerateHandler(_GenerationHandler):
    def prompt_of(self, body: dict[str, Any]) -> tuple[str, int] | str:
        prompt = body.get("prompt", "")
        system = body.get("system", "")
        if not isinstance(prompt, str) or not isinstance(system, str):
            return "prompt and system must be strings"
        return prompt, count_tokens(system) + count_tokens(prompt) + 4

    def piece(self, text: str) -> dict[str, Any]:
        return {"response": text}
