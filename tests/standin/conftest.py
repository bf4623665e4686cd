"""Stand-in servers started on pytest-jupyter's loop (the one coroutine tests run on)."""

from __future__ import annotations

import asyncio
from typing import Iterator

import pytest

from agentcom.standin import AnthropicStandin, OllamaStandin


@pytest.fixture
def ollama_standin(jp_asyncio_loop: asyncio.AbstractEventLoop) -> Iterator[OllamaStandin]:
    standin = jp_asyncio_loop.run_until_complete(OllamaStandin().start())
    yield standin
    jp_asyncio_loop.run_until_complete(standin.stop())


@pytest.fixture
def anthropic_standin(jp_asyncio_loop: asyncio.AbstractEventLoop) -> Iterator[AnthropicStandin]:
    standin = jp_asyncio_loop.run_until_complete(AnthropicStandin().start())
    yield standin
    jp_asyncio_loop.run_until_complete(standin.stop())
