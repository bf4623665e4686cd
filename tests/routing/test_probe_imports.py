"""A failed Ollama probe is described without importing the openai client on the hub's loop."""

from __future__ import annotations

import subprocess
import sys

PROBE = """
import asyncio, socket, sys
from agentcom.routing.probes import ProbeFailed, probe_ollama
with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]  # closed once the block ends: nothing listens there
try:
    asyncio.run(probe_ollama(f"http://127.0.0.1:{port}", 5.0))
except ProbeFailed as exc:
    print("failed:", exc)
print("openai imported:", "openai" in sys.modules)
"""


def test_a_refused_ollama_probe_says_cannot_connect_and_imports_no_openai_client() -> None:
    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=120,
                         check=True).stdout.splitlines()
    assert out == ["failed: cannot connect", "openai imported: False"]
