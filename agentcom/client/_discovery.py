"""Where is the hub? ``agentcom.connect()``'s rule for finding one without arguments.

In order, the first that applies wins:

1. ``url=`` (and ``token=``) given to ``connect``: that hub. ``token`` defaults to
   ``AGENTCOM_ADMIN_TOKEN``.
2. ``AGENTCOM_HUB`` set: that hub, with ``AGENTCOM_ADMIN_TOKEN``.
3. Running Jupyter servers (``jupyter_server.serverapp.list_running_servers``; records are
   read from the directory of this kernel's connection file and from the Jupyter runtime
   directory, ``JUPYTER_RUNTIME_DIR`` included). Among them, this kernel's own server is:
   a. the one whose ``pid`` is ``JPY_PARENT_PID`` (set by jupyter_client when a server
      launches a kernel), else
   b. the one whose ``pid`` is an ancestor of this process (Linux ``/proc``), else
   c. the only running server.
   Several servers and none of them ours is an error that lists them, never a guess.
   The hub is then at the record's ``url`` (which already ends with its ``base_url``),
   authenticated with the record's ``token`` (or ``JUPYTERHUB_API_TOKEN`` when the server
   has no token of its own).
4. Nothing found: :class:`~agentcom.errors.HubUnavailable` saying what to pass.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from agentcom.errors import HubUnavailable


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
    """This kernel's Jupyter server record and the rule that picked it."""
    records = running_servers()
    if not records:
        raise HubUnavailable(
            "no hub to connect to: no running Jupyter server was found and AGENTCOM_HUB is not set; "
            "start JupyterLab with agentcom installed, or call agentcom.connect(url, token) for a standalone hub"
        )
    parent = os.environ.get("JPY_PARENT_PID", "")
    if parent.isdigit():
        for record in records:
            if str(record.get("pid")) == parent:
                return record, "JPY_PARENT_PID"
    ancestors = _ancestors(os.getpid())
    for pid in ancestors:
        for record in records:
            if record.get("pid") == pid:
                return record, "parent process"
    if len(records) == 1:
        return records[0], "only running server"
    listed = ", ".join(f"{r.get('url')} (pid {r.get('pid')})" for r in records)
    raise HubUnavailable(
        f"{len(records)} Jupyter servers are running and none launched this process: {listed}; "
        "pass agentcom.connect(url=..., token=...)"
    )


def running_servers() -> list[dict[str, Any]]:
    """Records of the running Jupyter servers (deduplicated by pid), from every runtime dir we know."""
    from jupyter_core.paths import jupyter_runtime_dir
    from jupyter_server.serverapp import list_running_servers

    dirs = []
    connection_dir = _connection_file_dir()
    if connection_dir:
        dirs.append(connection_dir)
    dirs.append(jupyter_runtime_dir())
    seen: dict[Any, dict[str, Any]] = {}
    for directory in dict.fromkeys(os.path.realpath(d) for d in dirs):
        for record in list_running_servers(directory):
            seen.setdefault(record.get("pid"), record)
    return list(seen.values())


def _connection_file_dir() -> str | None:
    try:
        from ipykernel.connect import get_connection_file
    except ImportError:
        return None
    try:
        return os.path.dirname(get_connection_file())
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


__all__ = ["HubLocation", "find_server", "locate", "running_servers"]
