"""A real hub on loopback with a real SQLite file per test, sidecars over real WebSockets.

Async tests are marked ``anyio``, but with ``pytest_jupyter`` loaded (tests/conftest.py) it is
pytest-jupyter's ``pytest_pyfunc_call`` that runs every coroutine test, on its
``jp_asyncio_loop``. Async fixtures would run on anyio's loop instead and serve nothing
while the test runs; so these fixtures are synchronous and start and stop everything on
``jp_asyncio_loop``, the loop the test itself runs on.

They also request ``anyio_backend``: an anyio test that does not has its parametrization
dropped by anyio's collection hook when pytest-jupyter collected it first.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any, Callable, Coroutine, Iterator

import pytest

from agentcom import Hub

from .wire import Api, Sidecar, identify, open_socket

MakeHub = Callable[..., Hub]

# These tests are about the queue, sessions and the wire, not about where work runs: routing by the
# explicit tier map assigns at once, where the default model routing would hold every standard task
# fallback_wait_ms for an endpoint no test here registers. Model routing has test_model_routing_wiring.py
# and tests/routing; a test that wants it passes ``routing="model"``.
QUEUE_ROUTING = "explicit"


@pytest.fixture
def make_hub(tmp_path: Path, jp_asyncio_loop: asyncio.AbstractEventLoop, anyio_backend: str) -> Iterator[Callable[..., Coroutine[Any, Any, Hub]]]:
    """``await make_hub(lease_ms=300, ...)``: a started hub; each gets its own DB unless given ``db_path``."""
    started: list[Hub] = []

    async def make(**overrides: Any) -> Hub:
        overrides.setdefault("db_path", str(tmp_path / f"hub{len(started)}.db"))
        overrides.setdefault("port", 0)
        overrides.setdefault("host", "127.0.0.1")
        overrides.setdefault("routing", QUEUE_ROUTING)
        hub = Hub(**overrides)
        await hub.start()
        started.append(hub)
        return hub

    yield make
    for hub in started:
        if hub._server is not None:
            jp_asyncio_loop.run_until_complete(hub.stop())


@pytest.fixture
def hub(tmp_path: Path, jp_asyncio_loop: asyncio.AbstractEventLoop, anyio_backend: str) -> Iterator[Hub]:
    """A started hub with default settings and its own DB file."""
    hub = Hub(db_path=str(tmp_path / "hub.db"), port=0, host="127.0.0.1", routing=QUEUE_ROUTING)
    jp_asyncio_loop.run_until_complete(hub.start())
    yield hub
    if hub._server is not None:
        jp_asyncio_loop.run_until_complete(hub.stop())


@pytest.fixture
def sidecar_ws(anyio_backend: str) -> Iterator[Callable[..., Coroutine[Any, Any, Sidecar]]]:
    """``await sidecar_ws(hub, "agent-1", capabilities=[...])``: an identified sidecar (token minted for it)."""
    opened: list[Sidecar] = []

    async def connect(hub: Hub, agent_id: str = "agent-1", token: str | None = None, **fields: Any) -> Sidecar:
        sidecar = await identify(hub, agent_id, token, **fields)
        opened.append(sidecar)
        return sidecar

    yield connect
    for sidecar in opened:
        sidecar.close()


@pytest.fixture
def raw_ws(anyio_backend: str) -> Iterator[Callable[..., Coroutine[Any, Any, Sidecar]]]:
    """An unidentified socket to the sidecar endpoint."""
    opened: list[Sidecar] = []

    async def connect(hub: Hub, **kwargs: Any) -> Sidecar:
        sidecar = await open_socket(hub, **kwargs)
        opened.append(sidecar)
        return sidecar

    yield connect
    for sidecar in opened:
        sidecar.close()


@pytest.fixture
def api(hub: Hub) -> Iterator[Api]:
    """The admin HTTP client of ``hub``."""
    client = Api(hub)
    yield client
    client.close()
