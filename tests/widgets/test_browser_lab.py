"""The Monitor in a real JupyterLab, in a real (headless) Chromium.

JupyterLab runs as a subprocess with the agentcom server extension (its hub on a temporary
SQLite file). A generated notebook connects with ``agentcom.connect()`` (no arguments: the
kernel finds its own server), displays ``client.monitor()``, starts a sidecar inside the kernel
(a raw WebSocket speaking the sidecar protocol, with a token minted before the server started)
and submits a batch. The browser runs all cells; the page must then show streamed lines in the
execution panel and one row per finished task in the cost table. A screenshot is kept next to
the test's temporary files (``AGENTCOM_SCREENSHOT`` names a copy to keep elsewhere).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Iterator

import nbformat
import pytest

from agentcom.store import tokens
from agentcom.store.db import open_db

CHROMIUM = "/usr/bin/chromium"
TOKEN = "lab-test-token-5f1e"
TASKS = 3

pytestmark = pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="needs Debian's chromium at /usr/bin/chromium")


SETUP = """\
import agentcom
client = agentcom.connect()
monitor = client.monitor()
monitor"""

SIDECAR = """\
import asyncio, json, time
from tornado.websocket import websocket_connect

async def sidecar(token):
    ws = await websocket_connect(client.url.replace("http", "ws", 1) + "/agentcom/ws/sidecar")
    send = lambda frame: ws.write_message(json.dumps(frame))
    await send({"type": "identify", "agent_id": "nb-agent", "token": token, "protocol_version": 1,
                "name": "notebook sidecar"})
    while True:
        frame = json.loads(await ws.read_message())
        if frame["type"] != "task_assign":
            continue
        task_id, gen = frame["task_id"], frame["generation"]
        await send({"type": "task_accepted", "task_id": task_id, "generation": gen})
        events = [("status", "starting " + task_id)] + [("stdout", f"streamed line {k} of {task_id}\\n")
                                                         for k in range(1, 4)]
        events += [("stderr", "warning: <careful>\\n"), ("token", "tokens flowing ")]
        for seq, (kind, text) in enumerate(events, 1):
            await send({"type": "task_progress", "task_id": task_id, "generation": gen, "execution_event": {
                "event_type": kind, "text": text, "tokens_so_far": seq * 10, "model": "qwen2.5-coder:7b",
                "timestamp": int(time.time() * 1000), "seq": seq}})
            await asyncio.sleep(0.05)
        await send({"type": "task_complete", "task_id": task_id, "generation": gen, "result": {
            "status": "success", "output": "ok", "model_used": "qwen2.5-coder:7b", "tokens_in": 1200,
            "tokens_out": 340, "estimated_cost_usd": 0.0, "equivalent_claude_cost_usd": 0.0087,
            "execution_ms": 300, "price_table": "test"}})

runner = asyncio.ensure_future(sidecar(%(token)r))
batch = client.submit_many([{"description": f"browser job {i}", "tier": "trivial"} for i in range(%(tasks)d)])
[answer["status"] for answer in batch]"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def write_notebook(path: Path, agent_token: str) -> None:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [nbformat.v4.new_code_cell(SETUP),
                nbformat.v4.new_code_cell(SIDECAR % {"token": agent_token, "tasks": TASKS})]
    nbformat.write(nb, path)


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[str]:
    root, runtime, config = tmp_path / "root", tmp_path / "runtime", tmp_path / "config"
    for d in (root, runtime, config / "labconfig"):
        d.mkdir(parents=True)
    (config / "labconfig" / "page_config.json").write_text(
        json.dumps({"disabledExtensions": {"@jupyterlab/apputils-extension:announcements": True}}))
    db = tmp_path / "hub.db"
    conn = open_db(str(db))
    agent_token = tokens.create_token(conn, "nb-agent")
    conn.close()
    write_notebook(root / "monitor.ipynb", agent_token)
    port = free_port()
    env = {**os.environ, "JUPYTER_RUNTIME_DIR": str(runtime), "JUPYTER_CONFIG_PATH": str(config),
           "AGENTCOM_ADMIN_TOKEN": "", "AGENTCOM_HUB": ""}
    env.pop("AGENTCOM_HUB")
    env.pop("AGENTCOM_ADMIN_TOKEN")
    log = (tmp_path / "lab.log").open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "jupyterlab", "--allow-root", "--no-browser", f"--port={port}", "--ip=127.0.0.1",
         f"--ServerApp.token={TOKEN}", f"--ServerApp.root_dir={root}", f"--AgentCom.db_path={db}",
         "--ServerApp.port_retries=0", f"--LabApp.workspaces_dir={tmp_path / 'workspaces'}"],
        cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"{base}/agentcom/health", timeout=2) as answer:
                    if answer.status == 200:
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError("JupyterLab did not start:\n" + (tmp_path / "lab.log").read_text())
            time.sleep(0.2)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def kernel_ready(lab: str) -> bool:
    """The notebook's kernel is up, idle, and the page's WebSocket is connected to it (server's view)."""
    try:
        with urllib.request.urlopen(f"{lab}/api/kernels?token={TOKEN}", timeout=5) as answer:
            kernels = json.load(answer)
    except urllib.error.HTTPError as error:
        # Jupyter Server answers 500 when the listing lands while a kernel is still starting
        # (its last_activity is not set yet): not ready, ask again.
        if error.code == 500:
            return False
        raise
    return any(k.get("execution_state") == "idle" and k.get("connections", 0) >= 1 for k in kernels)


def run_all_cells(page: Any, lab: str) -> None:
    """Menu Run > Run All Cells once the kernel is connected; repeated until the first cell has run.

    A click made before the page's kernel connection is up either gets lost or opens JupyterLab's
    "Select Kernel" dialog (accepting it would start a second kernel): such a dialog is cancelled
    and the click repeated."""
    first_prompt = page.locator(".jp-Cell .jp-InputPrompt").first
    deadline = time.monotonic() + 120
    while not kernel_ready(lab):
        if time.monotonic() > deadline:
            raise AssertionError("the notebook's kernel never became ready")
        page.wait_for_timeout(200)
    while time.monotonic() < deadline:
        dialog = page.locator(".jp-Dialog")
        if dialog.count():
            page.keyboard.press("Escape")
            page.wait_for_timeout(500)
            continue
        try:
            page.locator(".lm-MenuBar-itemLabel", has_text="Run").first.click(timeout=5_000)
            page.locator(".lm-Menu-itemLabel").filter(has_text=re.compile(r"^Run All Cells$")).click(timeout=5_000)
        except Exception:  # noqa: BLE001 - a dialog got in the way: close it and retry
            page.keyboard.press("Escape")
            continue
        waited = 0
        while waited < 60_000:
            prompt = first_prompt.inner_text().strip()
            if re.fullmatch(r"\[\d+\]:", prompt):
                return                     # the first cell ran; the second is queued behind it
            if page.locator(".jp-Dialog").count() or (prompt in ("[ ]:", "") and waited >= 10_000):
                break                      # never taken: try again
            page.wait_for_timeout(200)
            waited += 200
    raise AssertionError("the notebook's cells never started running")


def test_monitor_streams_lines_and_fills_the_cost_table_in_jupyterlab(lab: str, tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    shot = tmp_path / "monitor.png"
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=[
            "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--no-first-run"])
        page = browser.new_page(viewport={"width": 1400, "height": 1300})
        try:
            page.goto(f"{lab}/lab/tree/monitor.ipynb?token={TOKEN}")
            page.wait_for_selector(".jp-NotebookPanel .jp-Cell .jp-InputArea-editor", timeout=60_000)
            run_all_cells(page, lab)

            panel = page.locator(".agentcom-execution-panel")
            panel.locator("text=streamed line 3 of").first.wait_for(timeout=60_000)
            rows = page.locator(".agentcom-cost-table tbody tr", has_text="browser job")
            deadline = time.monotonic() + 60
            while rows.count() < TASKS and time.monotonic() < deadline:
                page.wait_for_timeout(200)
            page.wait_for_timeout(500)          # let the last throttled render land before the picture
            page.screenshot(path=str(shot), full_page=True)

            text = panel.first.inner_text()
            assert "streamed line 1 of task-" in text and "warning: <careful>" in text
            assert page.locator(".agentcom-execution-panel .ac-stderr").first.evaluate(
                "e => getComputedStyle(e).color") == "rgb(251, 191, 36)"
            assert page.locator(".agentcom-execution-panel .ac-error").count() == 0
            assert rows.count() == TASKS, page.locator(".agentcom-cost-table").first.inner_text()
            assert "qwen2.5-coder:7b" in rows.first.inner_text() and "$0.00 (local)" in rows.first.inner_text()
            monitor_text = page.locator(".agentcom-monitor").first.inner_text()
            assert "nb-agent" in monitor_text and "completed 3" in monitor_text
            progress = page.locator(".jp-Cell").nth(1).locator(".jupyter-widgets", has_text="3/3 done")
            assert progress.count() >= 1, page.locator(".jp-Cell").nth(1).inner_text()   # submit_many's bar
            progress.first.scroll_into_view_if_needed()
            page.locator(".jp-Cell").nth(1).locator(".jp-OutputArea").screenshot(path=str(tmp_path / "progress.png"))
            prompts = [page.locator(".jp-Cell .jp-InputPrompt").nth(i).inner_text() for i in range(2)]
            assert prompts == ["[1]:", "[2]:"], prompts                  # each cell ran exactly once
        except Exception:
            page.screenshot(path=str(shot), full_page=True)
            print("page text at failure:\n", page.locator("body").inner_text()[:4000])
            print("JupyterLab log:\n", (tmp_path / "lab.log").read_text()[-6000:])
            raise
        finally:
            browser.close()
            keep = os.environ.get("AGENTCOM_SCREENSHOT")
            if keep:
                shutil.copy(shot, keep)
                if (tmp_path / "progress.png").exists():
                    shutil.copy(tmp_path / "progress.png", str(Path(keep).with_suffix("")) + "-progress.png")
