"""Shared fixtures.

pytest-jupyter's hook runs every coroutine test on its own loop (``jp_asyncio_loop``), so
servers a test talks to are started on that loop from *sync* fixtures; async fixtures would
run on another loop and never answer. Async tests use ``@pytest.mark.anyio`` with the
``anyio_backend`` fixture (never pytest-asyncio: it breaks pytest-jupyter).
"""

from __future__ import annotations

import asyncio
from typing import Iterator

import pytest

from agentcom.standin import AnthropicStandin, OllamaStandin

pytest_plugins = ["pytest_jupyter.jupyter_server"]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def ollama_standin(jp_asyncio_loop: asyncio.AbstractEventLoop) -> Iterator[OllamaStandin]:
    """A stand-in Ollama server (real NDJSON wire format) on the test's loop."""
    standin = jp_asyncio_loop.run_until_complete(OllamaStandin().start())
    yield standin
    jp_asyncio_loop.run_until_complete(standin.stop())


@pytest.fixture
def anthropic_standin(jp_asyncio_loop: asyncio.AbstractEventLoop) -> Iterator[AnthropicStandin]:
    """A stand-in Anthropic Messages API (real SSE events) on the test's loop."""
    standin = jp_asyncio_loop.run_until_complete(AnthropicStandin().start())
    yield standin
    jp_asyncio_loop.run_until_complete(standin.stop())
