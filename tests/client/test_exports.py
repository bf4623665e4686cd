"""The notebook-facing names: sorted, complete ``__all__`` and lazy imports (no ipywidgets for the client)."""

from __future__ import annotations

import subprocess
import sys

import agentcom
import agentcom.client
import agentcom.widgets


def test_public_names_are_sorted_and_importable() -> None:
    for module in (agentcom.client, agentcom.widgets):
        assert list(module.__all__) == sorted(module.__all__), module.__name__
        for name in module.__all__:
            assert getattr(module, name) is not None, name
    assert agentcom.connect is agentcom.client.connect and agentcom.HubClient is agentcom.client.HubClient
    assert {"HubClient", "connect"} <= set(agentcom.__all__)


def test_the_client_does_not_import_ipywidgets() -> None:
    code = "import sys, agentcom; agentcom.connect; import agentcom.client; print('ipywidgets' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
