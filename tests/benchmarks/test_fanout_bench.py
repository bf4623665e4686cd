"""benchmarks/fanout.py end to end at a tiny scale: it runs, delivers everything, and prints its figures.

Real processes (the hub, the sidecars, the dashboards of the script itself). ``--no-target``
makes the exit status judge delivery alone, so nothing here depends on how fast this
machine is: the figures are checked for being there and adding up, never for their speed.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

FANOUT = Path(__file__).resolve().parents[2] / "benchmarks" / "fanout.py"
TINY = ["--sidecars", "2", "--dashboards", "2", "--rate", "500", "--seconds", "1", "--no-target"]


def test_tiny_run_delivers_every_event_and_prints_its_figures() -> None:
    done = subprocess.run([sys.executable, str(FANOUT), *TINY], capture_output=True, text=True, timeout=180)
    out = done.stdout
    assert done.returncode == 0, out + done.stderr
    assert re.search(r"sidecars 2, dashboards 2, target 500 events/s for 1 s, batch 100 ms, dashboard buffer 10,000",
                     out), out
    sent = re.search(r"sent\s+([\d,]+) events in\s+[\d.]+ s =\s+[\d,]+ events/s into the hub", out)
    assert sent, out
    count = int(sent.group(1).replace(",", ""))
    assert count > 0
    delivered = re.search(r"delivered\s+([\d,]+) events in\s+[\d.]+ s =\s+[\d,]+ events/s out \(100\.0% of ([\d,]+)\)",
                          out)
    assert delivered, out
    assert int(delivered.group(1).replace(",", "")) == int(delivered.group(2).replace(",", "")) == 2 * count
    assert re.search(r"latency\s+p50\s+[\d.]+ ms\s+p99\s+[\d.]+ ms\s+max\s+[\d.]+ ms", out), out
    assert re.search(r"dropped\s+0 \(hub counted 0\), out of order 0", out), out
    assert re.search(r"cpu\s+hub [\d.]+ s, sidecars [\d.]+ s, dashboards [\d.]+ s", out), out
    assert re.search(r"load\s+1-min load average [\d.]+ before, [\d.]+ after", out), out
    assert "delivery   complete" in out
    assert re.search(r"target\s+(met|NOT met) \(500 events/s in, p99 under 250 ms\)", out), out
