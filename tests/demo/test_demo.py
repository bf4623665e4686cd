"""``agentcom demo`` as a user runs it: real processes, exit 0, a cost summary."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def test_the_demo_runs_a_mixed_workload_and_prints_a_cost_summary(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("ANTHROPIC_API_KEY", "OLLAMA_HOST")}
    env["OLLAMA_HOST"] = "127.0.0.1:9"  # nothing listens there: the Ollama stand-in is used if needed
    proc = subprocess.run([sys.executable, "-m", "agentcom", "demo", "--sidecars", "2", "--tasks", "6"],
                          env=env, cwd=tmp_path, capture_output=True, text=True, timeout=240)
    out = proc.stdout
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    assert "/agentcom/?token=" in out
    assert "6/6 done" in out
    assert "tasks: 6 completed" in out
    summary = out[out.index("Cost summary"):]
    assert "total" in summary and "shell" in summary
    assert "simulated-claude-sonnet-4-5 (simulated)" in summary  # no API key: the stand-in, and it says so
    assert "simulated:" in summary
    total = next(line for line in summary.splitlines() if line.strip().startswith("total"))
    assert total.split()[1] == "6"
