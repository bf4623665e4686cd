"""benchmarks/panel.py at a tiny scale, in a real kernel and in-process: it runs and prints its figures.

No figure is judged here (timings depend on the machine); what is checked is that each
measurement ran where it says, and that in the kernel the view updates really went out as
widget messages, which is what the kernel mode exists to include.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "panel.py"
SMALL = ["--events", "3000", "--tasks", "3", "--naive", "20", "--memory-tasks", "10", "--seed", "1"]


def test_tiny_run_in_a_kernel_and_in_process_prints_every_figure() -> None:
    done = subprocess.run([sys.executable, str(BENCH), "--where", "both", *SMALL], capture_output=True, text=True,
                          timeout=240)
    assert done.returncode == 0, done.stdout + done.stderr
    kernel, process = done.stdout.split("== in this process", 1)
    assert "== in a kernel" in kernel and re.search(r"in an ipykernel [\d.]+ \(pid \d+\), on its loop", kernel), kernel
    for part in (kernel, process):
        assert re.search(r"ingest 3,000 events from JSON text: [\d.]+ s \([\d,]+ events/s; [\d.]+ s CPU\), "
                         r"[1-9]\d* HTML updates", part), part
        assert re.search(r"one full render of the panel \(all tasks view\): [\d.]+ ms", part), part
        if sys.platform == "linux":
            assert re.search(r"resident memory: [\d,]+ MiB before \(inputs included\), [\d,]+ MiB after", part), part
        assert re.search(r"memory, 3 tasks: peak [\d.]+ MiB while ingesting 3,000; held [\d.]+ MiB after 3,000 "
                         r"and [\d.]+ MiB after 6,000", part), part
        assert re.search(r"memory, 10 tasks: peak", part), part
        assert re.search(r"Output\.append_stdout per event: 20 events took [\d.]+ s", part), part
        assert re.search(r"peak RSS of the process that ran this \(before the Output contrast\): [\d,]+ MiB", part), part
    # the kernel's view updates were widget messages the script received on iopub
    sent = re.search(r"widget messages received from the kernel in all: ([\d,]+), [\d.]+ MiB", kernel)
    assert sent and int(sent.group(1).replace(",", "")) > 0, kernel
    assert re.search(r"\(the kernel sent [1-9][\d,]* widget messages, [\d.]+ MiB, for this step\)", kernel), kernel
    assert "widget messages" not in process
