"""The Anthropic stand-in speaks the Messages API: raw SSE checks and the official client."""

from __future__ import annotations

import json
from typing import Any

import anthropic
import httpx
import pytest

from agentcom.standin import AnthropicStandin, reply_for

pytestmark = [pytest.mark.anyio, pytest.mark.usefixtures("anyio_backend")]  # one backend (see tests/executors/conftest.py)

HEADERS = {"x-api-key": "test-key", "anthropic-version": "2023-06-01"}
BODY = {"model": "claude-sonnet-4-5", "max_tokens": 256,
        "messages": [{"role": "user", "content": "Fix the typo in README.md"}]}
LONG_SYSTEM = "You are a careful coding agent. " * 40


async def post(standin: AnthropicStandin, body: dict[str, Any], headers: dict[str, str] = HEADERS) -> httpx.Response:
    async with httpx.AsyncClient(base_url=standin.url) as client:
        return await client.post("/v1/messages", json=body, headers=headers)


def sse(text: str) -> list[tuple[str, dict[str, Any]]]:
    events = []
    for block in text.strip().split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines())
        events.append((fields["event"], json.loads(fields["data"])))
    return events


def client_for(standin: AnthropicStandin) -> anthropic.AsyncAnthropic:
    return anthropic.AsyncAnthropic(api_key="test-key", base_url=standin.url, max_retries=0)


async def test_stream_event_sequence(anthropic_standin: AnthropicStandin) -> None:
    response = await post(anthropic_standin, {**BODY, "stream": True})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    events = sse(response.text)
    names = [name for name, _ in events]
    assert names[:3] == ["message_start", "content_block_start", "ping"]
    assert names[-3:] == ["content_block_stop", "message_delta", "message_stop"]
    assert set(names[3:-3]) == {"content_block_delta"}
    assert all(data["type"] == name for name, data in events)
    start = events[0][1]["message"]
    assert start["model"] == "simulated-claude-sonnet-4-5" and start["role"] == "assistant"
    assert start["usage"]["input_tokens"] > 0
    text = "".join(d["delta"]["text"] for n, d in events if n == "content_block_delta")
    assert text == reply_for("Fix the typo in README.md")
    delta = events[-2][1]
    assert delta["delta"]["stop_reason"] == "end_turn" and delta["usage"]["output_tokens"] > 1


async def test_non_stream_message(anthropic_standin: AnthropicStandin) -> None:
    message = (await post(anthropic_standin, BODY)).json()
    assert message["type"] == "message" and message["id"].startswith("msg_")
    assert message["content"] == [{"type": "text", "text": reply_for("Fix the typo in README.md")}]
    assert message["stop_reason"] == "end_turn"
    assert set(message["usage"]) >= {"input_tokens", "output_tokens", "cache_creation_input_tokens",
                                     "cache_read_input_tokens"}


async def test_official_client_streams_and_reports_usage(anthropic_standin: AnthropicStandin) -> None:
    client = client_for(anthropic_standin)
    async with client.messages.stream(**BODY) as stream:
        texts = [t async for t in stream.text_stream]
        message = await stream.get_final_message()
    await client.close()
    assert "".join(texts) == message.content[0].text == reply_for("Fix the typo in README.md")
    assert message.model == "simulated-claude-sonnet-4-5"
    assert message.usage.output_tokens > 1 and message.usage.input_tokens > 0


async def test_prompt_caching_writes_then_reads(anthropic_standin: AnthropicStandin) -> None:
    body = {**BODY, "system": [{"type": "text", "text": LONG_SYSTEM, "cache_control": {"type": "ephemeral"}}]}
    first = (await post(anthropic_standin, body)).json()["usage"]
    second = (await post(anthropic_standin, body)).json()["usage"]
    assert first["cache_creation_input_tokens"] > 0 and first["cache_read_input_tokens"] == 0
    assert second["cache_read_input_tokens"] == first["cache_creation_input_tokens"]
    assert second["cache_creation_input_tokens"] == 0
    assert first["input_tokens"] == second["input_tokens"]
    plain = (await post(anthropic_standin, {**BODY, "system": LONG_SYSTEM})).json()["usage"]
    assert plain["cache_read_input_tokens"] == plain["cache_creation_input_tokens"] == 0
    assert plain["input_tokens"] == first["input_tokens"] + first["cache_creation_input_tokens"]


async def test_max_tokens_stops_the_answer(anthropic_standin: AnthropicStandin) -> None:
    message = (await post(anthropic_standin, {**BODY, "max_tokens": 4})).json()
    assert message["stop_reason"] == "max_tokens" and message["usage"]["output_tokens"] == 4


async def test_missing_api_key_is_401(anthropic_standin: AnthropicStandin) -> None:
    response = await post(anthropic_standin, BODY, headers={"anthropic-version": "2023-06-01"})
    assert response.status_code == 401
    assert response.json()["error"]["type"] == "authentication_error"


@pytest.mark.parametrize(("body", "message"), [
    ({**BODY, "max_tokens": 0}, "max_tokens"),
    ({**BODY, "messages": []}, "messages"),
    ({"max_tokens": 5, "messages": BODY["messages"]}, "model"),
    ({**BODY, "messages": [{"role": "robot", "content": "x"}]}, "messages.0"),
])
async def test_invalid_requests_are_400(anthropic_standin: AnthropicStandin, body: dict[str, Any], message: str) -> None:
    response = await post(anthropic_standin, body)
    assert response.status_code == 400
    assert response.json()["type"] == "error"
    assert response.json()["error"]["type"] == "invalid_request_error" and message in response.json()["error"]["message"]


async def test_unknown_model_is_404(anthropic_standin: AnthropicStandin) -> None:
    response = await post(anthropic_standin, {**BODY, "model": "gpt-4o"})
    assert response.status_code == 404 and response.json()["error"]["type"] == "not_found_error"


@pytest.mark.parametrize(("status", "error_class", "error_type"), [
    (429, anthropic.RateLimitError, "rate_limit_error"),
    (500, anthropic.InternalServerError, "api_error"),
    (529, anthropic.OverloadedError, "overloaded_error"),
    (400, anthropic.BadRequestError, "invalid_request_error"),
])
async def test_planned_failures_map_to_sdk_errors(anthropic_standin: AnthropicStandin, status: int,
                                                  error_class: type[Exception], error_type: str) -> None:
    anthropic_standin.fail_next(1, status)
    client = client_for(anthropic_standin)
    with pytest.raises(error_class) as info:
        await client.messages.create(**BODY)
    assert info.value.body["error"]["type"] == error_type  # type: ignore[attr-defined]
    assert (await client.messages.create(**BODY)).stop_reason == "end_turn"  # one failure only
    await client.close()


async def test_midstream_error_event(anthropic_standin: AnthropicStandin) -> None:
    anthropic_standin.fail_next(1, 529, midstream=True, after_chunks=1)
    events = sse((await post(anthropic_standin, {**BODY, "stream": True})).text)
    names = [name for name, _ in events]
    assert names == ["message_start", "content_block_start", "ping", "content_block_delta", "error"]
    assert events[-1][1]["error"]["type"] == "overloaded_error"
