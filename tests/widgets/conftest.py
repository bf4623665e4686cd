"""Widget tests run against a real hub too; the fixtures are the client tests' (see tests/client/conftest.py)."""

from __future__ import annotations

from client.conftest import client, hub  # noqa: F401 - re-exported fixtures
