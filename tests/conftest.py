"""Shared fixtures. Async tests use ``@pytest.mark.anyio`` (never pytest-asyncio: it breaks pytest-jupyter)."""

from __future__ import annotations

import pytest


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"
