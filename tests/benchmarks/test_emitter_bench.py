"""benchmarks/emitter.py at a tiny scale, as a subprocess: it runs, and prints its three figures
with every line and token accounted for (the rates themselves are not asserted)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

EMITTER = Path(__file__).resolve().parents[2] / "benchmarks" / "emitter.py"
RATE = r"[\d,]+(?:\.\d+)?"


def test_the_emitter_benchmark_prints_its_figures() -> None:
    done = subprocess.run([sys.executable, str(EMITTER), "--events", "300", "--tokens", "400", "--lines", "250"],
                          capture_output=True, text=True, timeout=180)
    out = done.stdout
    assert done.returncode == 0, out + done.stderr
    assert re.search(r"^emitter benchmark \(python [\d.]+, batch window 100 ms, \d+ cores, load average [\d. ]+\)$",
                     out, re.MULTILINE), out
    assert re.search(rf"stdout lines \(in-process sidecar\): 300/300 reached the hub in [\d.]+s = {RATE} lines/s, "
                     rf"in \d+ EVENTs \({RATE} frames/s\); last seq \d+; rate_limited answers: \d+", out), out
    assert re.search(rf"tokens \(in-process sidecar\): 400/400 tokens reached the hub in [\d.]+s = {RATE} tokens/s, "
                     rf"sent as \d+ frames", out), out
    assert re.search(rf"stdout lines \(sidecar process, shell executor\): 250/250 lines in \d+ EVENTs, [\d.]+s from "
                     rf"submit to completion = {RATE} lines/s", out), out
    assert "load average after:" in out
