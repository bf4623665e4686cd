"""Fixtures: a real hub on loopback for each test, and its admin client.

With pytest-jupyter loaded (tests/conftest.py) coroutine tests run on ``jp_asyncio_loop``,
so these fixtures are synchronous and start and stop things on that loop; async fixtures
would run on another loop and serve nothing during the test. They request
``anyio_backend`` so anyio keeps its asyncio-only parametrization.
"""

from __future__ import annotations

import asyncio
from typing import Any, Iterator

import pytest

from agentcom.client import HubClient
from agentcom.hub import Hub

from .support import start_hub


@pytest.fixture
def hub(tmp_path: Any, jp_asyncio_loop: asyncio.AbstractEventLoop, anyio_backend: str) -> Iterator[Hub]:
    hub = jp_asyncio_loop.run_until_complete(start_hub(tmp_path))
    yield hub
    if hub._server is not None:
        jp_asyncio_loop.run_until_complete(hub.stop())


@pytest.fixture
def client(hub: Hub, jp_asyncio_loop: asyncio.AbstractEventLoop) -> Iterator[HubClient]:
    client = HubClient(hub.url, hub.admin_token)
    yield client
    jp_asyncio_loop.run_until_complete(client.aclose())
