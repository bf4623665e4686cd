"""The Monitor in a real JupyterLab (and Notebook 7), in a real (headless) Chromium.

JupyterLab runs as a subprocess under the non-root base URL ``/x/`` with the agentcom server
extension (its hub on a temporary SQLite file named by ``AGENTCOM_DB``, which the server's kernels
inherit). It serves a copy of the shipped example ``notebooks/00_quick_start.ipynb`` with its
stored outputs cleared. The browser runs all its cells: ``agentcom.connect()`` with no arguments
must find the server's hub under ``/x/``, the notebook mints sidecar tokens in the server's store,
starts two sidecar processes and stand-in models, displays ``client.monitor()`` and submits a
workload whose first task prints sixty lines. The page must then have shown those lines arriving
one render after another in the execution panel, its scroll box following the newest line, and
one row per finished task in the cost table. A screenshot is kept next to the test's temporary
files (``AGENTCOM_SCREENSHOT`` names a copy to keep elsewhere).

When Notebook 7 is installed (the ``test`` extra installs it), the same notebook opened in its
page, ``/x/notebooks/...``, must render the Monitor connected to the server's hub; only the
notebook's connect and Monitor cells run there (the JupyterLab test runs the workload).
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
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import nbformat
import pytest

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
TOKEN = "lab-test-token-5f1e"
BASE_URL = "/x/"
NOTEBOOK = Path(__file__).resolve().parents[2] / "notebooks" / "00_quick_start.ipynb"
DESCRIPTIONS = ("Count to 60, a line at a time", "List files, with a warning", "Explain a binary search",
                "Refactor the billing module")    # the workload of the notebook, in submission order

pytestmark = pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="needs Debian's chromium at /usr/bin/chromium")

# Installed before any page script: after every DOM change that touches the execution panel's text,
# note the highest "line N of 60" it shows and where its scroll box stands (the box is the panel's
# element that scrolls; its first child holds the lines, newest at the bottom); and whether the
# Monitor's header ever listed both sidecars (they leave again when the notebook stops them).
RECORD_PANEL = """
window.__panelRenders = [];
window.__sawAgents = false;
let lastText = null;
new MutationObserver(() => {
  const monitor = document.querySelector('.agentcom-monitor');
  if (monitor && /demo-1/.test(monitor.textContent) && /demo-2/.test(monitor.textContent)) window.__sawAgents = true;
  const panel = document.querySelector('.agentcom-execution-panel');
  if (!panel || panel.textContent === lastText) return;
  lastText = panel.textContent;
  const counts = [...lastText.matchAll(/line (\\d+) of 60/g)].map(m => Number(m[1]));
  const box = [...panel.querySelectorAll('*')].find(
    e => ['auto', 'scroll'].includes(getComputedStyle(e).overflowY));
  const render = {highest: counts.length ? Math.max(...counts) : 0, overflowing: false, atNewest: null};
  if (box && box.firstElementChild && box.clientHeight > 0) {
    const outer = box.getBoundingClientRect(), lines = box.firstElementChild.getBoundingClientRect();
    render.overflowing = box.scrollHeight > box.clientHeight;
    render.atNewest = lines.bottom <= outer.bottom + 1 && lines.bottom >= outer.bottom - 16;
  }
  window.__panelRenders.push(render);
}).observe(document, {subtree: true, childList: true, characterData: true});
"""

# The scroll box of the execution panel now: its sizes, and where its lines stand in it.
SCROLL_STATE = """
panel => {
  const box = [...panel.querySelectorAll('*')].find(
    e => ['auto', 'scroll'].includes(getComputedStyle(e).overflowY));
  const outer = box.getBoundingClientRect(), lines = box.firstElementChild.getBoundingClientRect();
  return {scrollHeight: box.scrollHeight, clientHeight: box.clientHeight, scrollTop: box.scrollTop,
          boxTop: outer.top, boxBottom: outer.bottom, linesTop: lines.top, linesBottom: lines.bottom};
}
"""


@dataclass(frozen=True)
class Lab:
    url: str            # http://127.0.0.1:PORT/x
    port: int
    log: Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def copy_notebook(target: Path) -> None:
    """The shipped notebook with its stored outputs and prompts cleared: the page shows only this run's."""
    nb = nbformat.read(NOTEBOOK, as_version=4)  # type: ignore[no-untyped-call]
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    target.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, target)  # type: ignore[no-untyped-call]


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    tmp = tmp_path_factory.mktemp("lab")
    root, runtime, config = tmp / "root", tmp / "runtime", tmp / "config"
    for d in (root, runtime, config / "labconfig"):
        d.mkdir(parents=True)
    (config / "labconfig" / "page_config.json").write_text(
        json.dumps({"disabledExtensions": {"@jupyterlab/apputils-extension:announcements": True}}))
    copy_notebook(root / "lab" / NOTEBOOK.name)
    copy_notebook(root / "nb7" / NOTEBOOK.name)
    port = free_port()
    # AGENTCOM_DB names the server hub's store; the kernels inherit it, so the notebook's
    # `agentcom token create` mints sidecar tokens in that store
    env = {**os.environ, "JUPYTER_RUNTIME_DIR": str(runtime), "JUPYTER_CONFIG_PATH": str(config),
           "AGENTCOM_DB": str(tmp / "hub.db")}
    for name in ("AGENTCOM_HUB", "AGENTCOM_ADMIN_TOKEN", "JPY_PARENT_PID"):
        env.pop(name, None)
    log_path = tmp / "lab.log"
    log = log_path.open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "jupyterlab", "--allow-root", "--no-browser", f"--port={port}", "--ip=127.0.0.1",
         f"--ServerApp.token={TOKEN}", f"--ServerApp.root_dir={root}", f"--ServerApp.base_url={BASE_URL}",
         "--ServerApp.port_retries=0", f"--LabApp.workspaces_dir={tmp / 'workspaces'}"],
        cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}{BASE_URL.rstrip('/')}"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                with urllib.request.urlopen(f"{url}/agentcom/health", timeout=2) as answer:
                    if answer.status == 200:
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError("JupyterLab did not start:\n" + log_path.read_text())
            time.sleep(0.2)
        yield Lab(url, port, log_path)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def api(lab: Lab, path: str, method: str = "GET") -> Any:
    request = urllib.request.Request(f"{lab.url}/api/{path}?token={TOKEN}", method=method)
    with urllib.request.urlopen(request, timeout=10) as answer:
        body = answer.read()
    return json.loads(body) if body else None


def session_kernel(lab: Lab, path: str) -> dict[str, Any] | None:
    """The kernel of the notebook at ``path`` (server's view), or None while it has none."""
    try:
        sessions = api(lab, "sessions")
    except urllib.error.HTTPError as error:
        # Jupyter Server answers 500 when the listing lands while a kernel is still starting
        # (its last_activity is not set yet): no kernel yet, ask again.
        if error.code == 500:
            return None
        raise
    for session in sessions:
        if session.get("path") == path and session.get("kernel"):
            return dict(session["kernel"])
    return None


def kernel_ready(lab: Lab, path: str) -> bool:
    """The notebook's kernel is up, idle, and the page's WebSocket is connected to it."""
    kernel = session_kernel(lab, path)
    return kernel is not None and kernel.get("execution_state") == "idle" and kernel.get("connections", 0) >= 1


def shut_down_sessions(lab: Lab) -> None:
    """End every session of the server, with its kernel (the next test starts from none).
    Clean-up only: a server that no longer answers leaves the test's own failure to be seen."""
    try:
        for session in api(lab, "sessions"):
            api(lab, f"sessions/{session['id']}", method="DELETE")
    except OSError as error:
        print("could not end the server's sessions:", error)


def run_all_cells(page: Any, lab: Lab, path: str) -> None:
    """Menu Run > Run All Cells once the kernel is connected; repeated until the first cell has run.

    A click made before the page's kernel connection is up either gets lost or opens the
    "Select Kernel" dialog (accepting it would start a second kernel): such a dialog is cancelled
    and the click repeated."""
    first_prompt = page.locator(".jp-Cell.jp-CodeCell .jp-InputPrompt").first
    deadline = time.monotonic() + 120
    while not kernel_ready(lab, path):
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
            if re.fullmatch(r"\[(\d+|\*)\]:", prompt):
                return                     # the first cell runs; the others are queued behind it
            if page.locator(".jp-Dialog").count() or (prompt in ("[ ]:", "") and waited >= 10_000):
                break                      # never taken: try again
            page.wait_for_timeout(200)
            waited += 200
    raise AssertionError("the notebook's cells never started running")


def wait_for_last_cell(page: Any) -> None:
    """Until the notebook's last cell printed "stopped" (every cell before it ran without error)."""
    page.locator(".jp-Cell.jp-CodeCell").last.locator(".jp-OutputArea-output", has_text="stopped").wait_for(
        timeout=120_000)


def is_amber(css_colour: str) -> bool:
    """A CSS ``rgb(...)`` colour in the amber/orange range (the panel's stderr colour)."""
    match = re.fullmatch(r"rgba?\((\d+), (\d+), (\d+)(, [\d.]+)?\)", css_colour)
    assert match, css_colour
    red, green, blue = (int(match.group(i)) for i in (1, 2, 3))
    return red >= 200 and 120 <= green <= 210 and blue <= 80


def launch(p: Any) -> Any:
    return p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)


def report_failure(page: Any, lab: Lab, shot: Path) -> None:
    page.screenshot(path=str(shot), full_page=True)
    print("page text at failure:\n", page.locator("body").inner_text()[:6000])
    print("JupyterLab log:\n", lab.log.read_text()[-6000:])


def test_quick_start_notebook_streams_lines_and_fills_the_cost_table_in_jupyterlab(lab: Lab, tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    path = f"lab/{NOTEBOOK.name}"
    shot = tmp_path / "monitor.png"
    with sync_playwright() as p:
        browser = launch(p)
        page = browser.new_page(viewport={"width": 1400, "height": 1300})
        page.add_init_script(RECORD_PANEL)
        try:
            page.goto(f"{lab.url}/lab/tree/{path}?token={TOKEN}")
            page.wait_for_selector(".jp-NotebookPanel .jp-CodeCell .jp-InputArea-editor", timeout=60_000)
            assert page.locator(".jp-LabShell").count() == 1
            run_all_cells(page, lab, path)

            # connect() without arguments found this server's hub under its base URL, and
            # reached it: the sidecars' agents are listed by the hub's API
            cells = page.locator(".jp-Cell.jp-CodeCell")
            cells.nth(0).locator(".jp-OutputArea-output", has_text="HubClient").wait_for(timeout=60_000)
            connected = cells.nth(0).locator(".jp-OutputArea").inner_text()
            assert re.search(rf"<HubClient http://127\.0\.0\.1:{lab.port}/x \((JPY_PARENT_PID|parent process)\)>",
                             connected), connected
            assert "runs its own" not in connected, connected
            cells.nth(2).locator(".jp-OutputArea-output", has_text="connected:").wait_for(timeout=60_000)
            assert "connected: ['demo-1', 'demo-2']" in cells.nth(2).locator(".jp-OutputArea").inner_text()

            panel = page.locator(".agentcom-execution-panel").first
            panel.wait_for(timeout=60_000)
            cells.nth(3).scroll_into_view_if_needed()          # the Monitor's cell (its parts redraw themselves)
            panel.locator("text=line 60 of 60").wait_for(timeout=60_000)
            wait_for_last_cell(page)
            rows = page.locator(".agentcom-cost-table tbody tr")
            deadline = time.monotonic() + 30
            while rows.count() < len(DESCRIPTIONS) and time.monotonic() < deadline:
                page.wait_for_timeout(200)
            cells.nth(3).scroll_into_view_if_needed()
            page.wait_for_timeout(500)          # let the last throttled render land before the picture
            page.screenshot(path=str(shot), full_page=True)

            # streamed: the panel showed the count part-way through, render after render
            renders: list[dict[str, Any]] = page.evaluate("window.__panelRenders")
            partial = sorted({r["highest"] for r in renders if 0 < r["highest"] < 60})
            assert len(partial) >= 2, renders
            text = panel.inner_text()
            assert "line 1 of 60" in text and "line 60 of 60" in text
            stderr = page.locator(".agentcom-execution-panel .ac-stderr", has_text="warning: <no tests found>")
            assert stderr.count() == 1, text                                      # escaped, not eaten as a tag
            assert is_amber(stderr.first.evaluate("e => getComputedStyle(e).color"))
            assert page.locator(".agentcom-execution-panel .ac-error").count() == 0

            # the scroll box follows the newest line: whenever the lines overflowed it, and now
            overflowing = [r for r in renders if r["overflowing"]]
            assert overflowing and all(r["atNewest"] for r in overflowing), renders
            scroll = panel.evaluate(SCROLL_STATE)
            assert scroll["scrollHeight"] > scroll["clientHeight"], scroll
            assert scroll["linesTop"] < scroll["boxTop"], scroll                 # the oldest lines are scrolled away
            assert scroll["boxBottom"] - 16 <= scroll["linesBottom"] <= scroll["boxBottom"] + 1, scroll

            # one row per finished task in the cost table
            table = page.locator(".agentcom-cost-table").first.inner_text()
            assert rows.count() == len(DESCRIPTIONS), table
            for description in DESCRIPTIONS:
                assert rows.filter(has_text=description).count() == 1, table
            assert "simulated-llama" in rows.filter(has_text="binary search").inner_text(), table
            assert "simulated-claude" in rows.filter(has_text="billing").inner_text(), table
            monitor_text = page.locator(".agentcom-monitor").first.inner_text()
            assert "completed 4" in monitor_text, monitor_text
            assert page.evaluate("window.__sawAgents"), "the Monitor never listed demo-1 and demo-2"
            progress = page.locator(".jupyter-widgets", has_text="4/4 done")      # asubmit_many's bar
            assert progress.count() >= 1, page.locator("body").inner_text()[:4000]

            tally = cells.nth(6).locator(".jp-OutputArea").inner_text()
            for tier, description in zip(("trivial", "trivial", "standard", "complex"), DESCRIPTIONS):
                assert re.search(rf"{tier}\s+completed\s+{re.escape(description)}", tally), tally
            prompts = [prompt.strip() for prompt in cells.locator(".jp-InputPrompt").all_inner_texts()]
            assert prompts == [f"[{i}]:" for i in range(1, len(prompts) + 1)], prompts   # each cell ran once
            assert "Traceback" not in (page.locator(".jp-Notebook").text_content() or "")
        except Exception:
            report_failure(page, lab, shot)
            raise
        finally:
            browser.close()
            shut_down_sessions(lab)
            keep = os.environ.get("AGENTCOM_SCREENSHOT")
            if keep:
                shutil.copy(shot, keep)


def run_cell(page: Any, cell: Any) -> None:
    """Shift+Enter in ``cell`` until its prompt shows it queued, running or run (a dialog is cancelled)."""
    prompt = cell.locator(".jp-InputPrompt")
    for _ in range(5):
        if page.locator(".jp-Dialog").count():
            page.keyboard.press("Escape")
        cell.locator(".jp-InputArea-editor").click()
        page.keyboard.press("Shift+Enter")
        waited = 0
        while waited < 10_000:
            if re.fullmatch(r"\[(\d+|\*)\]:", prompt.inner_text().strip()):
                return
            page.wait_for_timeout(200)
            waited += 200
    raise AssertionError("the cell never ran: " + cell.inner_text()[:500])


def test_quick_start_notebook_renders_the_monitor_in_notebook_7(lab: Lab, tmp_path: Path) -> None:
    """Notebook 7's page (not JupyterLab's): the notebook's connect cell and Monitor cell alone."""
    pytest.importorskip("notebook", minversion="7")
    from playwright.sync_api import sync_playwright

    path = f"nb7/{NOTEBOOK.name}"
    shot = tmp_path / "notebook7.png"
    with sync_playwright() as p:
        browser = launch(p)
        page = browser.new_page(viewport={"width": 1400, "height": 1300})
        try:
            page.goto(f"{lab.url}/notebooks/{path}?token={TOKEN}")
            page.wait_for_selector(".jp-NotebookPanel .jp-CodeCell .jp-InputArea-editor", timeout=60_000)
            assert page.locator(".jp-LabShell").count() == 0 and page.locator(".jp-NotebookPanel").count() == 1
            deadline = time.monotonic() + 120
            while not kernel_ready(lab, path):
                assert time.monotonic() < deadline, "the notebook's kernel never became ready"
                page.wait_for_timeout(200)
            cells = page.locator(".jp-Cell.jp-CodeCell")
            run_cell(page, cells.nth(0))
            cells.nth(0).locator(".jp-OutputArea-output", has_text="HubClient").wait_for(timeout=60_000)
            run_cell(page, cells.nth(3))                                   # monitor = client.monitor(); display(...)
            header = page.locator(".agentcom-monitor", has_text="open")
            header.wait_for(timeout=60_000)                                # its live socket is connected
            assert f"http://127.0.0.1:{lab.port}/x" in header.inner_text(), header.inner_text()
            assert "queued" in header.inner_text() and "completed" in header.inner_text(), header.inner_text()
            assert page.locator(".agentcom-execution-panel").count() == 1
            assert page.locator(".agentcom-cost-table").count() == 1
            page.screenshot(path=str(shot), full_page=True)
        except Exception:
            report_failure(page, lab, shot)
            raise
        finally:
            browser.close()
            shut_down_sessions(lab)
