"""Shared fixtures. Async tests use ``@pytest.mark.anyio`` (never pytest-asyncio: it breaks pytest-jupyter)."""

from __future__ import annotations

import pytest

pytest_plugins = ["pytest_jupyter.jupyter_server"]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"
