"""The notebook side of AgentCom: ``connect()``, ``HubClient``, the live feed.

    >>> client = agentcom.connect()          # this kernel's Jupyter server hub
    >>> client.submit("fix typo in README", tier="trivial")
    >>> display(client.monitor())            # agents, queue, live output, costs
    >>> live = client.live_executions()      # live.frame grows as executions finish

Request/response calls block (or ``await`` their ``a*`` twins); live parts run as asyncio
tasks on the kernel's loop. No module here imports ipywidgets; widgets live in
:mod:`agentcom.widgets` and only draw what a :class:`Feed` holds.
"""

from __future__ import annotations

from agentcom.client._client import Batch, HubClient, connect
from agentcom.client._discovery import HubLocation, find_server, locate, running_servers
from agentcom.client._feed import ExecEvent, Feed, StreamInfo
from agentcom.client._live import LiveExecutions
from agentcom.client._stream import FeedStream

__all__ = [
    "Batch",
    "ExecEvent",
    "Feed",
    "FeedStream",
    "HubClient",
    "HubLocation",
    "LiveExecutions",
    "StreamInfo",
    "connect",
    "find_server",
    "locate",
    "running_servers",
]
