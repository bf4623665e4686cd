"""The Ollama stand-in speaks Ollama's wire format: raw NDJSON checks and the official client."""

from __future__ import annotations

import asyncio
import json
from contextlib import asynccontextmanager
from typing import Any, AsyncIterator

import httpx
import ollama
import pytest

from agentcom.standin import OllamaStandin, count_tokens, reply_for

pytestmark = [pytest.mark.anyio, pytest.mark.usefixtures("anyio_backend")]  # one backend (see tests/executors/conftest.py)

CHAT = {"model": "simulated-llama3.2", "messages": [{"role": "user", "content": "Fix the typo in README.md"}]}


async def post_lines(standin: OllamaStandin, path: str, body: dict[str, Any]) -> tuple[httpx.Response, list[dict[str, Any]]]:
    async with httpx.AsyncClient(base_url=standin.url) as client:
        response = await client.post(path, json=body)
    return response, [json.loads(line) for line in response.text.splitlines() if line]


async def test_chat_streams_ndjson_like_ollama(ollama_standin: OllamaStandin) -> None:
    response, chunks = await post_lines(ollama_standin, "/api/chat", CHAT)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/x-ndjson"
    *pieces, final = chunks
    assert all(c["done"] is False and c["message"]["role"] == "assistant" for c in pieces)
    assert "".join(c["message"]["content"] for c in pieces) == reply_for("Fix the typo in README.md")
    assert final["done"] is True and final["done_reason"] == "stop" and final["message"]["content"] == ""
    assert final["eval_count"] == len(pieces)
    assert final["prompt_eval_count"] == count_tokens("Fix the typo in README.md") + 4
    for key in ("total_duration", "load_duration", "prompt_eval_duration", "eval_duration"):
        assert isinstance(final[key], int) and final[key] > 0
    assert final["model"] == "simulated-llama3.2" and final["created_at"].endswith("Z")


async def test_chat_without_stream(ollama_standin: OllamaStandin) -> None:
    response, (whole,) = await post_lines(ollama_standin, "/api/chat", {**CHAT, "stream": False})
    assert whole["done"] is True
    assert whole["message"]["content"] == reply_for("Fix the typo in README.md")


async def test_answers_are_deterministic(ollama_standin: OllamaStandin) -> None:
    _, first = await post_lines(ollama_standin, "/api/chat", CHAT)
    _, second = await post_lines(ollama_standin, "/api/chat", CHAT)
    strip = [{k: v for k, v in c.items() if k != "created_at"} for c in first]
    assert strip == [{k: v for k, v in c.items() if k != "created_at"} for c in second]


async def test_num_predict_truncates_with_length(ollama_standin: OllamaStandin) -> None:
    _, chunks = await post_lines(ollama_standin, "/api/chat", {**CHAT, "options": {"num_predict": 3}})
    assert chunks[-1]["eval_count"] == 3 and chunks[-1]["done_reason"] == "length"


async def test_generate_endpoint(ollama_standin: OllamaStandin) -> None:
    _, chunks = await post_lines(ollama_standin, "/api/generate", {"model": "simulated-llama3.2", "prompt": "Say hi"})
    assert "".join(c["response"] for c in chunks) == reply_for("Say hi") and chunks[-1]["done"]


async def test_official_client_lists_models_and_loaded_ones(ollama_standin: OllamaStandin) -> None:
    async with ollama_client(ollama_standin) as client:
        names = [m.model for m in (await client.list()).models]
        assert names == ["simulated-llama3.2:latest", "simulated-qwen2.5-coder:latest"]
        assert (await client.ps()).models == []
        await client.chat(model="simulated-llama3.2:latest", messages=CHAT["messages"])
        assert [m.model for m in (await client.ps()).models] == ["simulated-llama3.2:latest"]
    async with httpx.AsyncClient(base_url=ollama_standin.url) as raw:
        assert (await raw.get("/")).text == "Ollama is running"
        assert (await raw.get("/api/version")).json()["version"].endswith("-simulated")


@asynccontextmanager
async def ollama_client(standin: OllamaStandin) -> AsyncIterator[ollama.AsyncClient]:
    client = ollama.AsyncClient(host=standin.endpoint)
    try:
        yield client
    finally:
        await client.close()


async def test_official_client_streams(ollama_standin: OllamaStandin) -> None:
    async with ollama_client(ollama_standin) as client:
        chunks = [c async for c in await client.chat(stream=True, **CHAT)]
    assert chunks[-1].done and chunks[-1].eval_count == len(chunks) - 1


async def test_unknown_model_is_404_like_ollama(ollama_standin: OllamaStandin) -> None:
    async with ollama_client(ollama_standin) as client:
        with pytest.raises(ollama.ResponseError) as info:
            await client.chat(model="llama3.2", messages=CHAT["messages"])
    assert info.value.status_code == 404
    assert info.value.error == 'model "llama3.2" not found, try pulling it first'


@pytest.mark.parametrize(("body", "error"), [
    ({"messages": CHAT["messages"]}, "model is required"),
    ({"model": "simulated-llama3.2"}, "messages are required"),
    ({"model": "simulated-llama3.2", "messages": [{"role": "user", "content": 5}]}, "invalid message at index 0"),
])
async def test_bad_requests(ollama_standin: OllamaStandin, body: dict[str, Any], error: str) -> None:
    response, _ = await post_lines(ollama_standin, "/api/chat", {**body, "stream": False})
    assert response.status_code == 400 and error in response.json()["error"]


async def test_fail_next_then_recover(ollama_standin: OllamaStandin) -> None:
    ollama_standin.fail_next(2, 503)
    for _ in range(2):
        response, _ = await post_lines(ollama_standin, "/api/chat", CHAT)
        assert response.status_code == 503 and "error" in response.json()
    response, chunks = await post_lines(ollama_standin, "/api/chat", CHAT)
    assert response.status_code == 200 and chunks[-1]["done"]
    assert [r.path for r in ollama_standin.requests] == ["/api/chat"] * 3


async def test_midstream_failure_is_an_error_line(ollama_standin: OllamaStandin) -> None:
    ollama_standin.fail_next(1, 500, midstream=True, after_chunks=2)
    response, chunks = await post_lines(ollama_standin, "/api/chat", CHAT)
    assert response.status_code == 200
    assert [("error" in c) for c in chunks] == [False, False, True]


async def test_stop_releases_a_hanging_request() -> None:
    standin = await OllamaStandin().start()
    standin.hang_next(1)
    async with httpx.AsyncClient(base_url=standin.url) as client:
        pending = asyncio.ensure_future(client.post("/api/chat", json=CHAT))
        while not standin.requests:
            await asyncio.sleep(0.01)
        assert not pending.done()
        await standin.stop()
        with pytest.raises(httpx.HTTPError):
            await asyncio.wait_for(pending, 10)


async def test_url_before_start_is_an_error() -> None:
    with pytest.raises(RuntimeError, match="not started"):
        OllamaStandin().url
