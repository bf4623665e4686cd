"""Installing the package enables the extension; its settings are documented by --help-all."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import agentcom

ROOT = Path(__file__).resolve().parents[2]


def test_shipped_config_enables_the_extension() -> None:
    shipped = json.loads((ROOT / "jupyter-config" / "jupyter_server_config.d" / "agentcom.json").read_text())
    assert shipped == {"ServerApp": {"jpserver_extensions": {"agentcom": True}}}
    points = agentcom._jupyter_server_extension_points()
    assert points[0]["module"] == "agentcom.jupyter.app" and points[0]["app"].name == "agentcom"


def test_extension_list_shows_it_enabled_and_ok() -> None:
    listed = subprocess.run([sys.executable, "-m", "jupyter", "server", "extension", "list"],
                            capture_output=True, text=True, timeout=60)
    text = re.sub(r"\x1b\[[0-9;]*m", "", listed.stdout + listed.stderr)
    assert re.search(r"agentcom\s+enabled", text), text
    assert re.search(r"agentcom \S+ OK", text), text


def test_help_all_documents_the_settings() -> None:
    helped = subprocess.run([sys.executable, "-m", "agentcom.jupyter", "--help-all"],
                            capture_output=True, text=True, timeout=60)
    assert helped.returncode == 0, helped.stderr
    for name in ("db_path", "batch_interval_ms", "tier_targets", "price_table", "budget_daily_usd", "dashboard_buffer"):
        assert f"--AgentCom.{name}=" in helped.stdout
