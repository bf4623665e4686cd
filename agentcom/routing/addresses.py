"""Endpoint addresses: parse what users and sidecars type, refuse what cannot work.

An endpoint id is ``host:port`` for plain HTTP (``[::1]:11434`` for IPv6) and
``https://host:port`` for TLS, so the id alone says how to reach the server and the
``endpoints`` table needs no scheme column. Hosts are lower-cased and ``localhost``
becomes ``127.0.0.1``, so the same server is not registered twice under two names.
Without a port, ``https://`` means 443 and anything else the kind's default port
(11434 for Ollama, 8000 for OpenAI-compatible servers such as llama.cpp's or vLLM's).
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from urllib.parse import urlsplit

from agentcom.errors import ValidationFailed

__all__ = [
    "DEFAULT_PORTS", "ENDPOINT_KINDS", "EndpointAddress", "host_of", "normalize_host", "parse_address", "parse_endpoint_id",
]

ENDPOINT_KINDS = ("ollama", "openai")
DEFAULT_PORTS = {"ollama": 11434, "openai": 8000}  # Ollama's; llama.cpp's and vLLM's servers
_HOSTNAME = re.compile(r"^(?=.{1,253}$)[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?(?:\.[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?)*\.?$")
_ALLOWED_PATHS = {"ollama": ("", "/"), "openai": ("", "/", "/v1", "/v1/")}


@dataclass(frozen=True)
class EndpointAddress:
    scheme: str
    host: str
    port: int

    @property
    def _netloc(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    @property
    def endpoint_id(self) -> str:
        return self._netloc if self.scheme == "http" else f"{self.scheme}://{self._netloc}"

    @property
    def base_url(self) -> str:
        return f"{self.scheme}://{self._netloc}"


def _fail(field: str, error: str) -> ValidationFailed:
    return ValidationFailed(f"invalid endpoint {field}: {error}", errors=[{"field": field, "error": error}])


def normalize_host(host: str) -> str:
    host = host.strip().lower().rstrip(".")
    return "127.0.0.1" if host == "localhost" else host


def parse_address(
    host: str, port: int | None = None, *, kind: str = "ollama", field: str = "host"
) -> EndpointAddress:
    """``host`` may be ``name``, ``name:port`` or an ``http(s)://`` URL; ``port`` overrides nothing silently.

    Raises ValidationFailed with ``errors=[{field, error}]`` naming what is wrong.
    """
    if kind not in ENDPOINT_KINDS:
        raise _fail("kind", f"must be one of {', '.join(ENDPOINT_KINDS)}, got {kind!r}")
    if not isinstance(host, str) or not host.strip():
        raise _fail(field, "must be a host name, host:port or http(s) URL, got an empty value")
    text = host.strip()
    if len(text) > 512 or any(ch.isspace() for ch in text):
        raise _fail(field, f"must be a host name, host:port or http(s) URL without spaces, got {host!r}")
    if "://" not in text:
        text = "http://" + text
    try:
        parts = urlsplit(text)
        url_port = parts.port
    except ValueError as exc:
        raise _fail(field, f"is not a valid address ({exc}), got {host!r}; e.g. '192.168.1.20:11434'") from None
    if parts.scheme not in ("http", "https"):
        raise _fail(field, f"scheme must be http or https, got {parts.scheme!r} in {host!r}")
    if parts.username is not None or parts.password is not None:
        raise _fail(field, "must not carry credentials (user:password@); they would be stored and shown")
    if parts.query or parts.fragment:
        raise _fail(field, f"must not have a query or fragment, got {host!r}")
    if parts.path not in _ALLOWED_PATHS[kind]:
        raise _fail(field, f"must not have a path for an {kind} endpoint, got {parts.path!r} in {host!r}")
    name = normalize_host(parts.hostname or "")
    if not name:
        raise _fail(field, f"has no host name: {host!r}")
    try:
        ipaddress.ip_address(name)
    except ValueError:
        if not _HOSTNAME.match(name):
            raise _fail(field, f"{name!r} is not a valid host name or IP address") from None
    if port is not None:
        if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
            raise _fail("port", f"must be an integer between 1 and 65535, got {port!r}")
        if url_port is not None and url_port != port:
            raise _fail("port", f"is {port} but {host!r} already names port {url_port}")
    if url_port == 0:
        raise _fail(field, f"port must be between 1 and 65535, got 0 in {host!r}")
    final_port = port or url_port or (443 if parts.scheme == "https" else DEFAULT_PORTS[kind])
    return EndpointAddress(parts.scheme, name, final_port)


def parse_endpoint_id(endpoint_id: str, kind: str = "ollama") -> EndpointAddress:
    """The address an endpoint id (from ``EndpointAddress.endpoint_id``) stands for."""
    return parse_address(endpoint_id, kind=kind, field="endpoint_id")


def host_of(url: str | None) -> str | None:
    """The normalized host of a URL such as a sidecar's ``ollama_url``, or None if it has none.

    Use it to fill ``AgentView.ollama_host`` so it compares equal to ``EndpointView.host``.
    """
    if not url or not url.strip():
        return None
    text = url.strip()
    try:
        hostname = urlsplit(text if "://" in text else "http://" + text).hostname
    except ValueError:
        return None
    return normalize_host(hostname) if hostname else None
