"""The web dashboard served by the Jupyter server extension under a non-root base_url, in a real browser.

The Jupyter server runs in this process on its own thread and event loop (set up as pytest-jupyter's
``jp_configurable_serverapp`` does it, but serving while Playwright's sync API drives the browser from
the test thread), with only the agentcom extension loaded. The browser logs in the way a user does:
the page redirects to Jupyter's login form, which takes the server's token.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import urllib.request
from pathlib import Path
from typing import Any, Iterator

import pytest

from .live import WAIT_S, wait_text

TOKEN = "browser-jupyter-token-7c2d"
BASE_URL = "/team/jupyter/"
OTHER_EXTENSIONS = ("jupyterlab", "notebook", "notebook_shim", "jupyter_lsp", "jupyter_server_terminals")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class JupyterServer:
    """A ServerApp with the agentcom extension, serving on a thread of its own."""

    def __init__(self, tmp_path: Path) -> None:
        from jupyter_server.serverapp import ServerApp
        from traitlets.config import Config

        (tmp_path / "root").mkdir()
        config = Config({
            "ServerApp": {"jpserver_extensions": {"agentcom": True, **{name: False for name in OTHER_EXTENSIONS}}},
            "IdentityProvider": {"token": TOKEN},
            "AgentCom": {"db_path": str(tmp_path / "jupyter-hub.db"), "batch_interval_ms": 50},
        })
        self.port = free_port()
        self.loop = asyncio.new_event_loop()
        ServerApp.clear_instance()
        self.app = ServerApp.instance(config=config, port=self.port, port_retries=0, ip="127.0.0.1", open_browser=False,
                                      base_url=BASE_URL, root_dir=str(tmp_path / "root"),
                                      runtime_dir=str(tmp_path / "runtime"), allow_root=True)
        self.app.init_signal = lambda: None  # type: ignore[method-assign]  # signals belong to the main thread
        self.thread = threading.Thread(target=self.loop.run_forever, name="jupyter-test-server", daemon=True)
        self.thread.start()

        async def start() -> None:
            self.app.initialize(argv=[])
            self.app.start_app()

        self.run(start())

    def run(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(WAIT_S)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}{BASE_URL}"

    def submit(self, description: str) -> str:
        """POST a task to the extension's HTTP API with the server token (it needs a gpu, so it stays queued)."""
        body = json.dumps({"description": description, "needed_capabilities": ["gpu"]}).encode()
        request = urllib.request.Request(f"{self.url}agentcom/api/tasks", data=body, method="POST",
                                         headers={"Authorization": f"token {TOKEN}", "Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=WAIT_S) as answer:
            assert answer.status == 201
            return str(json.load(answer)["task_id"])

    def stop(self) -> None:
        from jupyter_server.serverapp import ServerApp

        try:
            self.run(self.app._cleanup())
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(WAIT_S)
            self.loop.close()
            ServerApp.clear_instance()


@pytest.fixture
def jupyter(tmp_path: Path) -> Iterator[JupyterServer]:
    server = JupyterServer(tmp_path)
    yield server
    server.stop()


def test_dashboard_in_jupyter_under_base_url_after_token_login(page: Any, jupyter: JupyterServer) -> None:
    before = jupyter.submit("submitted before the page opened")
    page.goto(f"{jupyter.url}agentcom/")
    page.wait_for_selector("#password_input")             # not logged in: Jupyter's own login form
    assert page.url.startswith(f"{jupyter.url}login?next=")
    page.fill("#password_input", TOKEN)
    page.click("#login_submit")
    page.wait_for_url(f"{jupyter.url}agentcom/")
    page.wait_for_selector("#conn.conn-up")               # the socket under the base_url, on Jupyter's cookie
    assert page.get_attribute('meta[name="agentcom-auth"]', "content") == "jupyter"
    assert page.is_hidden("#token-form")
    page.wait_for_selector(f"#tasks tr[data-task='{before}'] .badge.state-queued")   # from the snapshot

    after = jupyter.submit("submitted while the page watches")
    page.wait_for_selector(f"#tasks tr[data-task='{after}'] .desc:text('submitted while the page watches')")
    wait_text(page, "document.querySelector('#queue .state-queued .n').textContent", "2")
    page.click(f"#tasks tr[data-task='{after}'] button.cancel")   # a command over the socket, as Jupyter's user
    page.wait_for_selector(f"#tasks tr[data-task='{after}'] .badge.state-cancelled")
