"""``connect()`` without arguments: finding this kernel's Jupyter server from its running-server record.

The records are real ``jpserver-*.json`` files in a temporary ``JUPYTER_RUNTIME_DIR``, read by
jupyter_server's own ``list_running_servers``; the hub they point at is a real standalone hub
(it serves the same routes under its root as the extension does under a Jupyter base URL).
The connection-file rule runs in real ipykernels, whose connection files are where Jupyter puts them.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any, Iterator

import pytest
from jupyter_client.manager import KernelManager
from tornado import httpserver, netutil, web

import agentcom
from agentcom import errors
from agentcom.client import find_server, locate
from agentcom.client._discovery import parent_pid
from agentcom.hub import Hub

pytestmark = pytest.mark.anyio


@pytest.fixture
def runtime_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    directory = tmp_path / "runtime"
    directory.mkdir()
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(directory))
    for name in ("AGENTCOM_HUB", "AGENTCOM_ADMIN_TOKEN", "JPY_PARENT_PID", "JUPYTERHUB_API_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    return directory


def write_record(directory: Path, pid: int, url: str, token: str, base_url: str = "/") -> None:
    record = {"url": url, "base_url": base_url, "token": token, "pid": pid, "port": 0, "hostname": "127.0.0.1",
              "sock": "", "secure": False, "root_dir": str(directory), "password": False, "version": "2"}
    (directory / f"jpserver-{pid}.json").write_text(json.dumps(record), encoding="utf-8")


def bystander() -> Iterator[int]:
    """A live process that is neither this one nor one of its ancestors."""
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    yield proc.pid
    proc.kill()
    proc.wait()


other_pid = pytest.fixture(bystander, name="other_pid")
third_pid = pytest.fixture(bystander, name="third_pid")


async def test_connect_finds_this_processs_server_and_reaches_its_hub(hub: Hub, runtime_dir: Path) -> None:
    write_record(runtime_dir, os.getpid(), hub.url + "/", hub.admin_token)   # code running in the server itself
    client = await asyncio.to_thread(agentcom.connect)   # probes the hub's health endpoint
    assert (client.url, client.token, client.how) == (hub.url, hub.admin_token, "this process")
    assert (await client.asubmit("found you", tier="trivial"))["status"] == "queued"
    assert len(await asyncio.to_thread(client.tasks)) == 1


async def test_the_kernels_own_server_wins_over_others(hub: Hub, runtime_dir: Path, other_pid: int,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    write_record(runtime_dir, other_pid, "http://127.0.0.1:1/", "other-token")
    write_record(runtime_dir, os.getppid(), hub.url + "/", hub.admin_token)   # our parent process
    record, how = find_server()
    assert (record["pid"], how) == (os.getppid(), "parent process")
    monkeypatch.setenv("JPY_PARENT_PID", str(other_pid))                    # jupyter_client's marker wins
    record, how = find_server()
    assert (record["pid"], how) == (other_pid, "JPY_PARENT_PID")


def test_jpy_parent_pid_is_trusted_only_on_posix() -> None:
    # on Windows jupyter_client puts a process handle there, which may equal some unrelated server's pid
    assert parent_pid({"JPY_PARENT_PID": "4242"}, "posix") == 4242
    assert parent_pid({"JPY_PARENT_PID": "4242"}, "nt") is None
    assert parent_pid({"JPY_PARENT_PID": "not-a-pid"}, "posix") is None
    assert parent_pid({}, "posix") is None


def test_an_only_server_that_nothing_ties_to_this_process_is_not_guessed(runtime_dir: Path, other_pid: int,
                                                                         caplog: pytest.LogCaptureFixture) -> None:
    # e.g. VS Code's own kernel while a JupyterLab runs: that JupyterLab is not this kernel's server
    write_record(runtime_dir, other_pid, "http://127.0.0.1:1/", "not-yours")
    with pytest.raises(errors.HubUnavailable, match="nothing ties this process to it") as exc:
        agentcom.connect()
    assert "http://127.0.0.1:1/" in str(exc.value) and "url=..., token=..." in str(exc.value)
    write_record(runtime_dir, os.getpid(), "http://127.0.0.1:2/", "mine")
    with caplog.at_level(logging.INFO, logger="agentcom.client._discovery"):
        assert find_server()[1] == "this process"
    assert "http://127.0.0.1:2/" in caplog.text and "tied to this process by this process" in caplog.text


def run_in_kernel(connection_file: Path, code: str) -> str:
    """Start a real ipykernel with this connection file, run ``code`` in it and return what it printed."""
    manager = KernelManager(connection_file=str(connection_file))
    manager.start_kernel()
    kernel = manager.client()
    kernel.start_channels()
    printed: list[str] = []
    try:
        kernel.wait_for_ready(timeout=60)
        reply = kernel.execute_interactive(code, timeout=60, output_hook=lambda msg: printed.append(
            msg["content"].get("text", "") if msg["msg_type"] == "stream" else ""))
        assert reply["content"]["status"] == "ok", reply["content"]
    finally:
        kernel.stop_channels()
        manager.shutdown_kernel(now=True)
    return "".join(printed)


FIND = """
from agentcom import errors
from agentcom.client import find_server
try:
    record, how = find_server()
    print("found", record["pid"], how)
except errors.HubUnavailable as exc:
    print("error", exc)
"""


def test_a_kernel_whose_connection_file_sits_by_a_servers_record_is_that_servers(runtime_dir: Path,
                                                                                 other_pid: int) -> None:
    # neither JPY_PARENT_PID nor the process tree names the server (as on Windows, or a kernel nanny):
    # jupyter_server writes kernel-<uuid>.json next to its jpserver-<pid>.json, and that ties them
    write_record(runtime_dir, other_pid, "http://127.0.0.1:1/", "server-token")
    printed = run_in_kernel(runtime_dir / f"kernel-{uuid.uuid4()}.json", FIND + """
import json, os
with open(os.path.join(os.environ["JUPYTER_RUNTIME_DIR"], "jpserver-1.json"), "w") as handle:
    json.dump({"url": "http://127.0.0.1:2/", "pid": 1, "token": "t"}, handle)   # a second server, same directory
""" + FIND)
    assert f"found {other_pid} connection file" in printed.splitlines()[0], printed
    assert "2 Jupyter servers are running" in printed.splitlines()[1], printed      # ambiguous: no guess


def test_a_kernel_jupyter_did_not_name_is_not_tied_by_its_directory(runtime_dir: Path, other_pid: int) -> None:
    # VS Code's kernels keep their connection files in the runtime directory too, under their own names
    write_record(runtime_dir, other_pid, "http://127.0.0.1:1/", "server-token")
    printed = run_in_kernel(runtime_dir / "kernel-v2-4242abcdEFGH.json", FIND)
    assert "error" in printed and "nothing ties this process to it" in printed, printed


def test_several_servers_and_none_ours_is_an_error_not_a_guess(runtime_dir: Path, other_pid: int,
                                                                third_pid: int) -> None:
    write_record(runtime_dir, other_pid, "http://127.0.0.1:1/", "a")
    write_record(runtime_dir, third_pid, "http://127.0.0.1:2/", "b")
    with pytest.raises(errors.HubUnavailable, match="2 Jupyter servers are running") as exc:
        agentcom.connect()
    assert "http://127.0.0.1:1/" in str(exc.value) and "url=" in str(exc.value)


def test_no_server_and_no_url_says_what_to_do(runtime_dir: Path) -> None:
    with pytest.raises(errors.HubUnavailable, match="no running Jupyter server"):
        agentcom.connect()


def test_base_url_and_token_fallbacks(runtime_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_record(runtime_dir, os.getpid(), "http://127.0.0.1:8888/", "", base_url="/user/ann/")
    monkeypatch.setenv("JUPYTERHUB_API_TOKEN", "hub-api-token")
    location = locate()
    assert (location.url, location.token) == ("http://127.0.0.1:8888/user/ann", "hub-api-token")
    write_record(runtime_dir, os.getpid(), "http://127.0.0.1:8888/user/ann/", "server-token", base_url="/user/ann/")
    assert locate().url == "http://127.0.0.1:8888/user/ann"
    assert locate().token == "server-token"


async def test_explicit_url_and_environment(hub: Hub, runtime_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENTCOM_HUB", hub.url + "/")
    monkeypatch.setenv("AGENTCOM_ADMIN_TOKEN", hub.admin_token)
    client = await asyncio.to_thread(agentcom.connect)
    assert (client.url, client.token, client.how) == (hub.url, hub.admin_token, "AGENTCOM_HUB")
    given = await asyncio.to_thread(agentcom.connect, hub.url, hub.admin_token)
    assert given.how == "given url"
    # on the loop that serves the hub the health probe is skipped (it could never be answered)
    assert agentcom.connect(hub.url, hub.admin_token).url == hub.url


async def test_a_server_without_the_extension_is_named(runtime_dir: Path, anyio_backend: str) -> None:
    sockets = netutil.bind_sockets(0, "127.0.0.1")
    server = httpserver.HTTPServer(web.Application([]))   # a web server with no AgentCom routes
    server.add_sockets(sockets)
    port = sockets[0].getsockname()[1]
    write_record(runtime_dir, os.getpid(), f"http://127.0.0.1:{port}/", "t")
    try:
        with pytest.raises(errors.HubUnavailable, match="server extension"):
            await asyncio.to_thread(agentcom.connect)
    finally:
        server.stop()


def test_unreachable_hub_fails_at_connect(runtime_dir: Path) -> None:
    with pytest.raises(errors.HubUnavailable, match="cannot reach"):
        agentcom.connect("http://127.0.0.1:9", "t")

