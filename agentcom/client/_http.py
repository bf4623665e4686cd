"""Request/response calls to the hub's HTTP API: blocking (urllib) and awaitable (Tornado).

Why two: a notebook cell is synchronous code running *inside* the kernel's event loop, so a
synchronous method cannot wait on that loop. Blocking calls therefore use ``urllib`` (fine
when the hub lives in another process: the Jupyter server, a standalone hub). A hub started
inside this very process on this thread's running loop (``await agentcom.Hub(...).start()``
in a notebook) cannot answer while the loop is blocked, so the blocking path refuses that
case with a clear error instead of hanging, and the ``a*`` twins (``await client.asubmit``)
use Tornado's ``AsyncHTTPClient`` on the running loop, which works everywhere.

Error answers (``{error, message, ...}``) become the matching :mod:`agentcom.errors` class;
an unreachable hub or a refused token is :class:`~agentcom.errors.HubUnavailable`.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from tornado import httpclient

from agentcom import errors

_BY_CODE: dict[str, type[errors.ProtocolError]] = {
    cls.code: cls
    for cls in (errors.InvalidJson, errors.ValidationFailed, errors.UnknownType, errors.NotIdentified,
                errors.Unauthorized, errors.StaleGeneration, errors.InvalidState, errors.NotFound, errors.RateLimited,
                errors.StoreUnavailable)
}


class HubHttp:
    """The HTTP API of one hub at ``base`` (``http://host:port`` or a Jupyter base URL)."""

    def __init__(self, base: str, token: str | None, timeout: float = 30.0) -> None:
        self.base = base.rstrip("/")
        self.token = token or None
        self.timeout = timeout
        self._local: bool | None = None

    def url(self, path: str, params: dict[str, Any] | None = None) -> str:
        query = {k: v for k, v in (params or {}).items() if v is not None}
        suffix = ("?" + urllib.parse.urlencode(query)) if query else ""
        return f"{self.base}/{path.lstrip('/')}{suffix}"

    def _headers(self, body: bytes | None) -> dict[str, str]:
        headers = {"Accept": "application/json"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        if body is not None:
            headers["Content-Type"] = "application/json"
        return headers

    # ------------------------------------------------------------------ blocking

    def request(self, method: str, path: str, body: Any = None, params: dict[str, Any] | None = None) -> Any:
        """Blocking call; see the module docstring for why it refuses an in-loop hub."""
        self._refuse_in_loop_hub()
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.url(path, params), data=data, method=method, headers=self._headers(data))
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as answer:  # noqa: S310 - URL given by the user
                return _parse(answer.read(), answer.headers.get("Content-Type", ""))
        except urllib.error.HTTPError as exc:
            raise self._error(exc.code, exc.read(), method, path) from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise errors.HubUnavailable(f"cannot reach the hub at {self.base}: {reason}") from None

    def served_by_running_loop(self) -> bool:
        """Whether this thread's running loop is (most likely) the one serving the hub: the hub
        listens in this very process and this thread runs a loop. A blocking call would hang."""
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return False  # no loop in this thread: blocking is harmless
        if self._local is None:
            parts = urllib.parse.urlsplit(self.base)
            port = parts.port or (443 if parts.scheme == "https" else 80)
            self._local = _served_by_this_process(parts.hostname or "", port)
        return self._local

    def _refuse_in_loop_hub(self) -> None:
        if self.served_by_running_loop():
            raise errors.AgentComError(
                f"the hub at {self.base} runs in this process on the event loop this code runs in, so a blocking "
                "call would wait forever; use the awaitable twin instead, e.g. `await client.asubmit(...)`, "
                "`await client.atasks()`, `await client.asnapshot()`"
            )

    # ------------------------------------------------------------------ awaitable

    async def arequest(self, method: str, path: str, body: Any = None, params: dict[str, Any] | None = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        req = httpclient.HTTPRequest(self.url(path, params), method=method, body=data, headers=self._headers(data),
                                     connect_timeout=self.timeout, request_timeout=self.timeout,
                                     allow_nonstandard_methods=True)
        try:
            answer = await httpclient.AsyncHTTPClient().fetch(req, raise_error=False)
        except (OSError, httpclient.HTTPClientError) as exc:
            raise errors.HubUnavailable(f"cannot reach the hub at {self.base}: {exc}") from None
        if answer.code == 599:
            raise errors.HubUnavailable(f"cannot reach the hub at {self.base}: {answer.error}")
        if answer.code >= 400:
            raise self._error(answer.code, answer.body or b"", method, path)
        return _parse(answer.body or b"", answer.headers.get("Content-Type", ""))

    # ------------------------------------------------------------------ errors

    def _error(self, status: int, raw: bytes, method: str, path: str) -> errors.AgentComError:
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            body = {}
        if not isinstance(body, dict):
            body = {}
        message = str(body.get("message") or body.get("error") or raw[:200].decode(errors="replace") or f"HTTP {status}")
        if status in (401, 403):
            return errors.HubUnavailable(f"the hub at {self.base} refused the credentials (HTTP {status}): {message}")
        code = body.get("error")
        cls = _BY_CODE.get(code) if isinstance(code, str) else None
        if cls is errors.ValidationFailed:
            return errors.ValidationFailed(message, list(body.get("errors") or []), body.get("message_type"))
        if cls is errors.RateLimited:
            return errors.RateLimited(message, int(body.get("retry_after_ms") or 0))
        if cls is not None:
            extra = {k: v for k, v in body.items() if k not in ("error", "message")}
            return cls(message, **extra)
        if status == 404:
            return errors.NotFound(f"{method} {path}: {message}")
        return errors.AgentComError(f"{method} {path} failed with HTTP {status}: {message}")


def _parse(raw: bytes, content_type: str) -> Any:
    if "json" in content_type or raw[:1] in (b"{", b"["):
        return json.loads(raw or b"null")
    return raw.decode("utf-8", errors="replace")


def _served_by_this_process(host: str, port: int) -> bool:
    """Whether a listening TCP socket on ``port`` belongs to this process (Linux ``/proc``; else False)."""
    try:
        addresses = {str(info[4][0]) for info in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)}
    except OSError:
        return False
    if not any(_is_local_address(a) for a in addresses):
        return False
    inodes: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table, encoding="ascii") as handle:
                next(handle, None)
                for line in handle:
                    fields = line.split()
                    if len(fields) > 9 and fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:
                        inodes.add(fields[9])
        except OSError:
            continue
    if not inodes:
        return False
    try:
        fds = os.listdir("/proc/self/fd")
    except OSError:
        return False
    for fd in fds:
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:[") and target[8:-1] in inodes:
            return True
    return False


def _is_local_address(address: str) -> bool:
    if address.startswith("127.") or address in ("::1", "0.0.0.0", "::"):
        return True
    try:
        local = {str(info[4][0]) for info in socket.getaddrinfo(socket.gethostname(), None)}
    except OSError:
        return False
    return address in local


__all__ = ["HubHttp"]
