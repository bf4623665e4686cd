"""Backend clients are imported in the background by a sidecar set up for them, never at import time."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

PROBE = """
import sys, threading
from agentcom.executors import ClaudeExecutor, Dispatcher  # noqa: F401
print("at import:", sorted(m for m in ("anthropic", "ollama") if m in sys.modules))
ClaudeExecutor(**{kwargs})
for thread in threading.enumerate():
    if thread.name.startswith("preload-"):
        thread.join(60)
print("after set-up:", sorted(m for m in ("anthropic", "ollama") if m in sys.modules))
"""


@pytest.mark.parametrize(("kwargs", "env_key", "loaded"), [
    ("{'api_key': 'sk-test'}", None, "['anthropic']"),
    ("{'base_url': 'http://127.0.0.1:9'}", None, "['anthropic']"),
    ("{}", "sk-from-env", "['anthropic']"),
    ("{}", None, "[]"),
])
def test_the_claude_client_is_preloaded_only_for_a_sidecar_set_up_for_claude(kwargs: str, env_key: str | None,
                                                                              loaded: str) -> None:
    env = {k: v for k, v in os.environ.items() if k != "ANTHROPIC_API_KEY"}
    if env_key:
        env["ANTHROPIC_API_KEY"] = env_key
    out = subprocess.run([sys.executable, "-c", PROBE.replace("{kwargs}", kwargs)], env=env, capture_output=True,
                         text=True, timeout=120, check=True).stdout.splitlines()
    assert out == ["at import: []", f"after set-up: {loaded}"]


EXIT_DURING_IMPORT = """
import atexit, sys, threading, time
from agentcom.executors._preload import preload
atexit.register(lambda: print("importing at exit:", [t.name for t in threading.enumerate() if t.name.startswith("preload-")]))
preload("anthropic")
preload("ollama")
time.sleep({delay})
sys.exit(3)
"""


@pytest.mark.parametrize("delay", [0.0, 0.2])
def test_a_process_exiting_while_a_client_is_still_importing_waits_for_the_import(delay: float) -> None:
    # A sidecar refused at identify exits within a fraction of a second, while the clients are still
    # loading. An import thread still running when the interpreter finalises can abort the process
    # inside a compiled extension (exit -6 instead of the sidecar's own status), so the exit waits.
    done = subprocess.run([sys.executable, "-c", EXIT_DURING_IMPORT.format(delay=delay)], capture_output=True,
                          text=True, timeout=120)
    assert (done.returncode, done.stdout, done.stderr) == (3, "importing at exit: []\n", "")
