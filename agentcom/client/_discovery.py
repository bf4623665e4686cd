"""Where is the hub? ``agentcom.connect()``'s rule for finding one without arguments.

In order, the first that applies wins:

1. ``url=`` (and ``token=``) given to ``connect``: that hub. ``token`` defaults to
   ``AGENTCOM_ADMIN_TOKEN``.
2. ``AGENTCOM_HUB`` set: that hub, with ``AGENTCOM_ADMIN_TOKEN``.
3. Running Jupyter servers (``jupyter_server.serverapp.list_running_servers``; records are
   read from the directory of this kernel's connection file and from the Jupyter runtime
   directory, ``JUPYTER_RUNTIME_DIR`` included). This kernel's own server is the one that
   something ties to this process:
   a. its ``pid`` is ``JPY_PARENT_PID``, which jupyter_client sets when a server launches a
      kernel (POSIX only: on Windows that variable holds a process *handle*, not a pid), else
   b. its ``pid`` is this process or one of its ancestors (Linux ``/proc``), else
   c. this kernel's connection file is a Jupyter server's (``kernel-<uuid>.json``) and sits in
      the directory of exactly one server's record (a server writes both to its runtime
      directory): what ties a kernel to its server where there is no ``/proc``.
   A running server that nothing ties to this process is never guessed, even when it is the
   only one: a kernel that no Jupyter server started (VS Code's own, a plain ``python``) would
   otherwise talk to whichever JupyterLab happens to run. That, and several servers none of
   which is ours, is an error that lists them and says to pass ``url=`` and ``token=``.
   The hub is then at the record's ``url`` (which already ends with its ``base_url``),
   authenticated with the record's ``token`` (or ``JUPYTERHUB_API_TOKEN`` when the server
   has no token of its own). The choice and its reason are logged (INFO) and kept in ``how``.
4. Nothing found: :class:`~agentcom.errors.HubUnavailable` saying what to pass.
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass
from typing import Any, Mapping

from agentcom.errors import HubUnavailable

log = logging.getLogger(__name__)

# the name jupyter_server's kernel manager gives a kernel's connection file (kernel id = uuid4)
SERVER_CONNECTION_FILE = re.compile(r"kernel-[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\.json")


@dataclass(frozen=True)
class HubLocation:
    url: str            # base URL: http://host:port, or the Jupyter server URL with its base_url
    token: str | None
    how: str            # which rule found it, for error messages and reprs


def locate(url: str | None = None, token: str | None = None) -> HubLocation:
    """Apply the rule of the module docstring."""
    if url:
        return HubLocation(url.rstrip("/"), token or os.environ.get("AGENTCOM_ADMIN_TOKEN") or None, "given url")
    env_url = os.environ.get("AGENTCOM_HUB")
    if env_url:
        return HubLocation(env_url.rstrip("/"), token or os.environ.get("AGENTCOM_ADMIN_TOKEN") or None, "AGENTCOM_HUB")
    record, how = find_server()
    base = str(record.get("url") or "")
    base_url = str(record.get("base_url") or "/")
    if not base:
        raise HubUnavailable(f"the Jupyter server record of pid {record.get('pid')} has no url")
    if not base.rstrip("/").endswith(base_url.rstrip("/")):
        base = base.rstrip("/") + "/" + base_url.strip("/")
    server_token = token or record.get("token") or os.environ.get("JUPYTERHUB_API_TOKEN") or None
    return HubLocation(base.rstrip("/"), server_token, how)


def find_server() -> tuple[dict[str, Any], str]:
    """This kernel's Jupyter server record and the rule that tied it to this process."""
    found = _records()
    if not found:
        raise HubUnavailable(
            "no hub to connect to: no running Jupyter server was found and AGENTCOM_HUB is not set; "
            "start JupyterLab with agentcom installed, or call agentcom.connect(url, token) for a standalone hub"
        )
    records = [record for record, _ in found]
    chosen = _tied(found, parent_pid(os.environ, os.name), os.getpid(), _ancestors(os.getpid()), _connection_file())
    if chosen is not None:
        record, how = chosen
        log.info("agentcom.connect: the Jupyter server at %s (pid %s), tied to this process by %s",
                 record.get("url"), record.get("pid"), how)
        return chosen
    listed = ", ".join(f"{r.get('url')} (pid {r.get('pid')})" for r in records)
    if len(records) == 1:
        raise HubUnavailable(
            f"a Jupyter server runs at {listed} but nothing ties this process to it (it did not launch this "
            "kernel, and this kernel's connection file is not in its runtime directory): a kernel that Jupyter "
            "did not start (VS Code's, a plain python) must pass agentcom.connect(url=..., token=...)"
        )
    raise HubUnavailable(
        f"{len(records)} Jupyter servers are running and none launched this process: {listed}; "
        "pass agentcom.connect(url=..., token=...)"
    )


def parent_pid(environ: Mapping[str, str], os_name: str) -> int | None:
    """The launching server's pid from ``JPY_PARENT_PID``; None on Windows, where it is a process handle."""
    value = environ.get("JPY_PARENT_PID", "")
    if os_name != "posix" or not value.isdigit():
        return None
    return int(value)


def _tied(found: list[tuple[dict[str, Any], str]], parent: int | None, pid: int, ancestors: list[int],
          connection_file: str | None) -> tuple[dict[str, Any], str] | None:
    """The record tied to this process by rule 3a, 3b or 3c, with the rule's name; None if none is."""
    records = [record for record, _ in found]
    if parent is not None:
        for record in records:
            if record.get("pid") == parent:
                return record, "JPY_PARENT_PID"
    for candidate in (pid, *ancestors):
        for record in records:
            if record.get("pid") == candidate:
                return record, "this process" if candidate == pid else "parent process"
    if connection_file and SERVER_CONNECTION_FILE.fullmatch(os.path.basename(connection_file)):
        here = os.path.realpath(os.path.dirname(connection_file))
        beside = [record for record, directory in found if directory == here]
        if len(beside) == 1:
            return beside[0], "connection file"
    return None


def running_servers() -> list[dict[str, Any]]:
    """Records of the running Jupyter servers (deduplicated by pid), from every runtime dir we know."""
    return [record for record, _ in _records()]


def _records() -> list[tuple[dict[str, Any], str]]:
    """(record, the real path of the directory it was read from), deduplicated by pid."""
    from jupyter_core.paths import jupyter_runtime_dir
    from jupyter_server.serverapp import list_running_servers

    dirs = []
    connection_file = _connection_file()
    if connection_file:
        dirs.append(os.path.dirname(connection_file))
    dirs.append(jupyter_runtime_dir())
    seen: dict[Any, tuple[dict[str, Any], str]] = {}
    for directory in dict.fromkeys(os.path.realpath(d) for d in dirs):
        for record in list_running_servers(directory):
            seen.setdefault(record.get("pid"), (record, directory))
    return list(seen.values())


def _connection_file() -> str | None:
    """This kernel's connection file, or None outside a kernel."""
    try:
        from ipykernel.connect import get_connection_file
    except ImportError:
        return None
    try:
        return os.path.abspath(get_connection_file())
    except Exception:  # noqa: BLE001 - not inside a kernel: there is no connection file
        return None


def _ancestors(pid: int) -> list[int]:
    """Parent, grandparent, ... of ``pid`` (Linux /proc; empty elsewhere)."""
    chain: list[int] = []
    for _ in range(64):
        try:
            with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as handle:
                stat = handle.read()
        except OSError:
            break
        fields = stat.rsplit(")", 1)[-1].split()
        ppid = int(fields[1]) if len(fields) > 1 and fields[1].isdigit() else 0
        if ppid <= 1 or ppid in chain:
            break
        chain.append(ppid)
        pid = ppid
    return chain


__all__ = ["HubLocation", "find_server", "locate", "parent_pid", "running_servers"]
