"""Whether an OpenAI-compatible endpoint is our own hardware, so local model names may price at 0.

Why it matters: the ``openai`` target reaches any OpenAI-compatible server, a llama.cpp
box on the desk as well as a cloud provider that also serves ``mistral-*`` or ``qwen-*``
models for money. A model name alone cannot tell them apart; where the server is can.

Local means an address that cannot be a public cloud service: an IP address that is not
globally routable (loopback, private, link-local, unique-local, shared: ``127.0.0.1``,
``10.0.0.7``, ``192.168.1.20``, ``100.101.102.103``, ``fd00::1``), ``localhost``, a host name without a dot (``gpu-box``, resolved on the LAN)
or under a suffix no public DNS serves (``.local``, ``.lan``, ``.internal``,
``.home.arpa``, ``.localhost``). Hosts are read as the endpoint registry reads them
(``agentcom.routing.addresses.host_of``). Anything else (a public name or address) is a
cloud endpoint: its models are priced by explicit entries of the price table only.
"""

from __future__ import annotations

import ipaddress

from agentcom.routing.addresses import host_of

__all__ = ["LOCAL_SUFFIXES", "endpoint_is_local"]

LOCAL_SUFFIXES = (".local", ".lan", ".internal", ".home.arpa", ".localhost")


def endpoint_is_local(endpoint: str | None) -> bool:
    """True when ``endpoint`` (``host:port`` or an http(s) URL) is on our own machines or network."""
    host = host_of(endpoint)
    if not host:
        return False
    try:
        address = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return "." not in host or host.endswith(LOCAL_SUFFIXES)
    return not address.is_global  # loopback, private, link-local, shared (100.64/10), unspecified
