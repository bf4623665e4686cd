"""OpenAICompatExecutor against llama.cpp's real server and a scripted one that fails on cue."""

from __future__ import annotations

import asyncio
import uuid
from typing import Callable

import msgspec
import openai
import pytest

from agentcom.errors import ConfigError
from agentcom.executors.base import Outcome, Output
from agentcom.executors.openai_compat import (
    GenerationOptions,
    OpenAICompatExecutor,
    resolve_base_url,
    task_messages,
    task_options,
)
from agentcom.protocol.messages import FileHint, TaskAssign

from .conftest import LlamaServer, ScriptedServer, free_port

# Naming the fixture keeps anyio's plugin from also parametrizing every test with "trio".
pytestmark = pytest.mark.usefixtures("anyio_backend")

MakeTask = Callable[..., TaskAssign]
LONG_PROMPT = "Count from 1 to 1000, one number per line."  # greedy SmolLM2 counts on for hundreds of tokens


def fast_retries(**kwargs: object) -> OpenAICompatExecutor:
    return OpenAICompatExecutor(backoff_s=0.01, max_backoff_s=0.05, timeout_s=30, **kwargs)  # type: ignore[arg-type]


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


async def collect(executor: OpenAICompatExecutor, task: TaskAssign) -> tuple[list[Output], Outcome]:
    outputs: list[Output] = []
    outcomes: list[Outcome] = []
    async for step in executor.run(task):
        (outputs if isinstance(step, Output) else outcomes).append(step)  # type: ignore[arg-type]
    assert len(outcomes) == 1, "a run ends with exactly one Outcome"
    return outputs, outcomes[0]


# --------------------------------------------------------------------------- the request


def test_messages_carry_the_task_criteria_and_files(task_factory: MakeTask) -> None:
    task = task_factory("Fix the parser.", system="Be terse.")
    task = msgspec.structs.replace(task, success_criteria=["tests pass"],
                                   file_hints=[FileHint(path="parser.py", reason="the bug"), FileHint(path="t.py")])
    assert task_messages(task) == [
        {"role": "system", "content": "Be terse."},
        {"role": "user", "content": "Fix the parser.\n\nRelevant files:\n- parser.py (the bug)\n- t.py\n\n"
                                    "Success criteria:\n- tests pass"},
    ]
    assert task_messages(task_factory("Plain.")) == [{"role": "user", "content": "Plain."}]


def test_metadata_overrides_the_generation_defaults(task_factory: MakeTask) -> None:
    assert task_options(task_factory(), max_tokens=64, temperature=0) == GenerationOptions(64, 0.0)
    assert task_options(task_factory(max_tokens=8, temperature=0.7), max_tokens=64, temperature=0) == \
        GenerationOptions(8, 0.7)


@pytest.mark.parametrize(("field", "value"), [("max_tokens", "16"), ("max_tokens", -1), ("max_tokens", True),
                                              ("temperature", "hot"), ("temperature", 3)])
def test_bad_generation_options_name_the_field(task_factory: MakeTask, field: str, value: object) -> None:
    with pytest.raises(ConfigError, match=f"metadata.{field} must be .*, got {value!r}"):
        task_options(task_factory(**{field: value}), max_tokens=64, temperature=0)


# --------------------------------------------------------------------------- endpoints


@pytest.mark.parametrize(("endpoint", "base_url"), [
    ("127.0.0.1:8080", "http://127.0.0.1:8080/v1"),
    ("localhost:11434", "http://localhost:11434/v1"),
    ("http://gpu-box:8000/", "http://gpu-box:8000/v1"),
    ("https://llm.example.com/openai/v1/", "https://llm.example.com/openai/v1"),
])
def test_endpoints_become_base_urls(endpoint: str, base_url: str) -> None:
    assert resolve_base_url(endpoint) == base_url


def test_the_routed_endpoint_wins_over_the_configured_one() -> None:
    assert resolve_base_url("10.0.0.2:9000", "10.0.0.1:8000") == "http://10.0.0.2:9000/v1"
    assert resolve_base_url(None, "10.0.0.1:8000") == "http://10.0.0.1:8000/v1"


@pytest.mark.parametrize("bad", ["ftp://host:21", "http://", ""])
def test_unusable_endpoints_are_config_errors(bad: str) -> None:
    with pytest.raises(ConfigError):
        resolve_base_url(bad)


# --------------------------------------------------------------------------- llama.cpp's server


@pytest.mark.anyio
async def test_streams_smollm2_from_llama_cpp_server(llama_server: LlamaServer, task_factory: MakeTask) -> None:
    task = task_factory("Write a haiku about unit tests.", target_type="openai", endpoint=llama_server.endpoint,
                        model="smollm2", max_tokens=16)
    outputs, outcome = await collect(fast_retries(), task)

    assert outcome.ok, outcome.error
    assert outcome.model_used == "smollm2"
    assert len(outputs) > 3 and all(o.kind == "token" for o in outputs)
    assert "".join(o.text for o in outputs) == outcome.output and outcome.output.strip()
    assert outcome.extra["finish_reason"] == "length"

    async with openai.AsyncOpenAI(base_url=f"http://{llama_server.endpoint}/v1", api_key="x") as client:
        reference = await client.chat.completions.create(
            model="smollm2", messages=task_messages(task), max_tokens=16, temperature=0)  # type: ignore[arg-type]
    assert outcome.output == reference.choices[0].message.content
    assert reference.usage is not None
    # llama-cpp-python's server sends no usage in streams: one delta per token, and the
    # prompt (with the chat template around it) counted by the server on request.
    assert outcome.extra["usage"] == "counted"
    assert (outcome.tokens_in, outcome.tokens_out) == (reference.usage.prompt_tokens, reference.usage.completion_tokens)
    assert outcome.tokens_in > len(task.description) / 4 + 10, "the template's tokens are counted too"


@pytest.mark.anyio
async def test_without_a_model_the_servers_first_model_is_used(llama_server: LlamaServer,
                                                               task_factory: MakeTask) -> None:
    task = task_factory("Say hi.", target_type="openai", max_tokens=4)
    _, outcome = await collect(fast_retries(base_url=llama_server.endpoint), task)
    assert outcome.ok, outcome.error
    assert (outcome.model_used or "").endswith(".gguf")


# --------------------------------------------------------------------------- usage, retries, errors


@pytest.mark.anyio
async def test_usage_comes_from_the_final_usage_chunk(scripted_server: ScriptedServer, task_factory: MakeTask) -> None:
    task = task_factory(target_type="openai", endpoint=scripted_server.endpoint, model=unique("ok"))
    outputs, outcome = await collect(fast_retries(), task)
    assert [o.text for o in outputs] == ["Hello", " world"]
    assert [o.tokens_so_far for o in outputs] == [1, 2]
    assert outcome.output == "Hello world"
    assert (outcome.tokens_in, outcome.tokens_out) == (11, 2)
    assert outcome.extra["usage"] == "reported" and outcome.extra["finish_reason"] == "stop"


@pytest.mark.anyio
async def test_a_stream_without_usage_asks_the_server_to_count_the_prompt(scripted_server: ScriptedServer,
                                                                          task_factory: MakeTask) -> None:
    model = unique("nousage")
    task = task_factory(target_type="openai", endpoint=scripted_server.endpoint, model=model)
    outputs, outcome = await collect(fast_retries(), task)
    assert outcome.ok and outcome.output == "Hello world"
    assert (outcome.tokens_in, outcome.tokens_out) == (23, 2)
    assert outcome.extra["usage"] == "counted"
    assert scripted_server.requests[model] == 2, "the stream, then one non-streamed count"


@pytest.mark.anyio
async def test_when_the_server_will_not_count_the_prompt_it_is_estimated(scripted_server: ScriptedServer,
                                                                         task_factory: MakeTask) -> None:
    model = unique("mute")
    task = task_factory("x" * 40, target_type="openai", endpoint=scripted_server.endpoint, model=model)
    _, outcome = await collect(fast_retries(), task)
    assert outcome.ok and outcome.output == "Hello world"
    assert (outcome.tokens_in, outcome.tokens_out) == (10, 2)  # 40 characters / 4
    assert outcome.extra["usage"] == "estimated"
    assert scripted_server.requests[model] == 2, "a refused count is not retried"


@pytest.mark.anyio
async def test_a_500_is_retried_until_the_server_recovers(scripted_server: ScriptedServer, task_factory: MakeTask) -> None:
    model = unique("flaky")
    outputs, outcome = await collect(fast_retries(), task_factory(target_type="openai",
                                                                  endpoint=scripted_server.endpoint, model=model))
    assert outcome.ok and outcome.output == "Hello world"
    assert scripted_server.requests[model] == 3
    statuses = [o.text for o in outputs if o.kind == "status"]
    assert len(statuses) == 2 and "HTTP 500: internal failure" in statuses[0] and "retry 1/3" in statuses[0]


@pytest.mark.anyio
async def test_a_429_is_retried(scripted_server: ScriptedServer, task_factory: MakeTask) -> None:
    model = unique("busy")
    _, outcome = await collect(fast_retries(), task_factory(target_type="openai",
                                                            endpoint=scripted_server.endpoint, model=model))
    assert outcome.ok
    assert scripted_server.requests[model] == 2


@pytest.mark.anyio
async def test_a_server_that_stays_down_fails_retryably(scripted_server: ScriptedServer, task_factory: MakeTask) -> None:
    model = unique("down")
    _, outcome = await collect(fast_retries(max_retries=2),
                               task_factory(target_type="openai", endpoint=scripted_server.endpoint, model=model))
    assert not outcome.ok and outcome.retryable
    assert "HTTP 503: overloaded" in (outcome.error or "") and "after 3 attempts" in (outcome.error or "")
    assert scripted_server.requests[model] == 3


@pytest.mark.anyio
async def test_a_400_is_not_retried(scripted_server: ScriptedServer, task_factory: MakeTask) -> None:
    model = unique("bad")
    outputs, outcome = await collect(fast_retries(), task_factory(target_type="openai",
                                                                  endpoint=scripted_server.endpoint, model=model))
    assert outputs == []
    assert not outcome.ok and not outcome.retryable
    assert outcome.error == f"http://{scripted_server.endpoint}/v1 answered HTTP 400: max_tokens is too large"
    assert scripted_server.requests[model] == 1


@pytest.mark.anyio
async def test_an_error_mid_stream_keeps_the_partial_output(scripted_server: ScriptedServer,
                                                            task_factory: MakeTask) -> None:
    model = unique("broken")
    outputs, outcome = await collect(fast_retries(), task_factory(target_type="openai",
                                                                  endpoint=scripted_server.endpoint, model=model))
    assert [o.text for o in outputs] == ["Hello"]
    assert not outcome.ok and outcome.retryable and outcome.output == "Hello"
    assert "model crashed" in (outcome.error or "")
    assert scripted_server.requests[model] == 1, "never retried once tokens were streamed"


@pytest.mark.anyio
async def test_a_stream_cut_without_a_finish_reason_fails_retryably(scripted_server: ScriptedServer,
                                                                    task_factory: MakeTask) -> None:
    model = unique("cut")
    outputs, outcome = await collect(fast_retries(), task_factory(target_type="openai",
                                                                  endpoint=scripted_server.endpoint, model=model))
    assert [o.text for o in outputs] == ["Hello"]
    assert not outcome.ok and outcome.retryable and outcome.output == "Hello"
    assert "without a finish_reason after 1 tokens" in (outcome.error or "")
    assert scripted_server.requests[model] == 1


@pytest.mark.anyio
async def test_a_stream_llama_cpp_server_interrupts_is_not_a_success(llama_server: LlamaServer,
                                                                     task_factory: MakeTask) -> None:
    """llama_cpp.server (interrupt_requests on by default) ends a stream when another request comes."""
    task = task_factory(LONG_PROMPT, target_type="openai", endpoint=llama_server.endpoint, model="smollm2",
                        max_tokens=1500)
    outputs: list[Output] = []
    outcomes: list[Outcome] = []
    three = asyncio.Event()

    async def consume() -> None:
        async for step in fast_retries().run(task):
            if isinstance(step, Output):
                outputs.append(step)
                if len(outputs) == 3:
                    three.set()
            else:
                outcomes.append(step)

    consumer = asyncio.create_task(consume())
    await three.wait()
    async with openai.AsyncOpenAI(base_url=f"http://{llama_server.endpoint}/v1", api_key="x") as client:
        await client.chat.completions.create(model="smollm2", messages=[{"role": "user", "content": "Hi."}],
                                             max_tokens=2, temperature=0)
    await consumer
    [outcome] = outcomes
    assert not outcome.ok and outcome.retryable, outcome
    assert "without a finish_reason" in (outcome.error or "")
    assert 3 <= len(outputs) < 1500


@pytest.mark.anyio
async def test_connection_refused_is_retried_then_fails_retryably(task_factory: MakeTask) -> None:
    endpoint = f"127.0.0.1:{free_port()}"  # nothing listens there any more
    outputs, outcome = await collect(fast_retries(max_retries=2),
                                     task_factory(target_type="openai", endpoint=endpoint, model="m"))
    assert not outcome.ok and outcome.retryable
    assert (outcome.error or "").startswith(f"cannot connect to http://{endpoint}/v1")
    assert len([o for o in outputs if o.kind == "status"]) == 2


@pytest.mark.anyio
async def test_no_endpoint_at_all_is_a_clear_error(task_factory: MakeTask) -> None:
    _, outcome = await collect(fast_retries(), task_factory(target_type="openai", model="m"))
    assert not outcome.ok and not outcome.retryable
    assert "no OpenAI-compatible endpoint" in (outcome.error or "")


@pytest.mark.anyio
async def test_cancelling_hangs_up_the_stream(scripted_server: ScriptedServer, task_factory: MakeTask) -> None:
    model = unique("endless")
    task = task_factory(target_type="openai", endpoint=scripted_server.endpoint, model=model)
    tokens = 0
    three = asyncio.Event()

    async def consume() -> None:
        nonlocal tokens
        async for step in fast_retries().run(task):
            tokens += isinstance(step, Output)
            if tokens == 3:
                three.set()

    consumer = asyncio.create_task(consume())
    await three.wait()
    consumer.cancel()
    with pytest.raises(asyncio.CancelledError):
        await consumer
    for _ in range(1_500):  # the server notices on its next write; be patient on a busy machine
        if model in scripted_server.hung_up:
            break
        await asyncio.sleep(0.02)
    assert model in scripted_server.hung_up
