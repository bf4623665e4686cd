"""``HubClient``: the notebook's handle on a hub; ``connect()`` finds one.

Design, in short:

- Request/response methods (``submit``, ``tasks``, ``agents``, ``snapshot``, ``cancel``,
  ``retry``, ``executions``) are synchronous and use blocking HTTP, so they work in a cell
  even though the kernel's loop is already running. Each has an awaitable twin
  (``asubmit``, ``atasks``, ...) for code on the loop, and for a hub started inside the
  kernel itself, which a blocking call could never reach (see ``agentcom.client._http``).
- Everything live (``feed``, ``monitor()``, ``live_executions()``, the ``submit_many``
  progress bar) rides one dashboard socket, opened lazily as an asyncio task on the running
  loop (the kernel's), reconnecting by itself. Listeners, and so widget updates, run on that
  loop: no threads.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any, Iterable, Mapping

from agentcom.client._discovery import HubLocation, locate
from agentcom.client._feed import Feed
from agentcom.client._http import HubHttp
from agentcom.client._stream import FeedStream
from agentcom.errors import AgentComError, HubUnavailable, NotFound, StoreUnavailable

if TYPE_CHECKING:
    import pandas as pd

    from agentcom.client._live import LiveExecutions

TASK_FILTERS = ("status", "agent_id", "tier", "limit", "offset")


class Batch(list):  # type: ignore[type-arg]
    """What ``submit_many`` returns: the hub's answers, in order, plus the batch's progress bar."""

    def __init__(self, answers: Iterable[dict[str, Any]] = (), progress: Any = None) -> None:
        super().__init__(answers)
        self.progress = progress

    @property
    def task_ids(self) -> list[str]:
        return [answer["task_id"] for answer in self]


class HubClient:
    """A connection to one hub (standalone, or inside a Jupyter server under its base URL)."""

    def __init__(self, url: str, token: str | None = None, *, timeout: float = 30.0, how: str = "given url") -> None:
        self.url = url.rstrip("/")
        self.token = token
        self.how = how
        self._http = HubHttp(self.url, token, timeout)
        self._feed: Feed | None = None
        self._stream: FeedStream | None = None
        self._closed = False

    # ------------------------------------------------------------------ request/response (blocking)

    def health(self) -> dict[str, Any]:
        return _object(self._http.request("GET", "agentcom/health"))

    def submit(self, description: str, **fields: Any) -> dict[str, Any]:
        """Queue a task; returns the hub's answer (``task_id``, ``status``, ``complexity``, ...).

        ``fields`` are those of ``POST /agentcom/api/tasks`` (``priority``, ``complexity_tier``,
        ``metadata``, ``file_hints``, ...); ``tier=`` and ``shell_command=`` are shorthands for
        ``complexity_tier`` and ``metadata["shell_command"]``.
        """
        return _object(self._http.request("POST", "agentcom/api/tasks", _task_body(description, fields)))

    def submit_many(self, tasks: Iterable[str | Mapping[str, Any]], *, progress: bool | None = None) -> "Batch":
        """Queue several tasks (descriptions, or dicts with ``description`` and fields).

        Returns the hub's answers in order (a list, with ``.task_ids`` and ``.progress``). In a
        notebook (or with ``progress=True``) ``.progress`` is a progress bar, displayed in the
        notebook, that counts submissions and then follows the batch live until every task ends.
        """
        items = [_item(t) for t in tasks]
        bar = self._batch_bar(len(items), progress)
        answers = Batch(progress=bar)
        try:
            for description, fields in items:
                answers.append(self.submit(description, **fields))
                if bar is not None:
                    bar.submitted(answers[-1]["task_id"])
        except AgentComError as exc:
            exc.add_note(f"submit_many: {len(answers)} of {len(items)} tasks were queued before this error")
            if bar is not None:
                bar.failed_submit(str(exc))
            raise
        return answers

    def tasks(self, **filters: Any) -> list[dict[str, Any]]:
        """Tasks, newest first; filters: ``status``, ``agent_id``, ``tier``, ``limit`` (100), ``offset``."""
        return _objects(_object(self._http.request("GET", "agentcom/api/tasks", params=_filters(filters)))["tasks"])

    def task(self, task_id: str) -> dict[str, Any]:
        """One task in full: history, complexity, routing decision, result."""
        return _object(self._http.request("GET", f"agentcom/api/tasks/{task_id}"))

    def agents(self) -> list[dict[str, Any]]:
        return _objects(self._http.request("GET", "agentcom/api/agents"))

    def snapshot(self) -> dict[str, Any]:
        """The hub's SNAPSHOT (agents, queue counts, recent completions, routing stats, totals)."""
        return _object(self._http.request("GET", "agentcom/api/snapshot"))

    def cancel(self, task_id: str) -> dict[str, Any]:
        return _object(self._http.request("POST", f"agentcom/api/tasks/{task_id}/cancel"))

    def retry(self, task_id: str) -> dict[str, Any]:
        return _object(self._http.request("POST", f"agentcom/api/tasks/{task_id}/retry"))

    def executions(self, since: int | None = None) -> "pd.DataFrame":
        """One row per finished execution, typed by :func:`agentcom.analysis.executions_frame`
        (tz-aware UTC ``completed_at``, categorical labels, ``Float64`` USD, ``Int64`` tokens)."""
        from agentcom.analysis import executions_frame

        return executions_frame(self._http.request("GET", "agentcom/api/executions", params={"since": since}))

    # ------------------------------------------------------------------ request/response (awaitable twins)

    async def ahealth(self) -> dict[str, Any]:
        return _object(await self._http.arequest("GET", "agentcom/health"))

    async def asubmit(self, description: str, **fields: Any) -> dict[str, Any]:
        return _object(await self._http.arequest("POST", "agentcom/api/tasks", _task_body(description, fields)))

    async def asubmit_many(self, tasks: Iterable[str | Mapping[str, Any]], *,
                           progress: bool | None = None) -> "Batch":
        items = [_item(t) for t in tasks]
        bar = self._batch_bar(len(items), progress)
        answers = Batch(progress=bar)
        try:
            for description, fields in items:
                answers.append(await self.asubmit(description, **fields))
                if bar is not None:
                    bar.submitted(answers[-1]["task_id"])
        except AgentComError as exc:
            exc.add_note(f"submit_many: {len(answers)} of {len(items)} tasks were queued before this error")
            if bar is not None:
                bar.failed_submit(str(exc))
            raise
        return answers

    async def atasks(self, **filters: Any) -> list[dict[str, Any]]:
        return _objects(_object(await self._http.arequest("GET", "agentcom/api/tasks", params=_filters(filters)))["tasks"])

    async def atask(self, task_id: str) -> dict[str, Any]:
        return _object(await self._http.arequest("GET", f"agentcom/api/tasks/{task_id}"))

    async def aagents(self) -> list[dict[str, Any]]:
        return _objects(await self._http.arequest("GET", "agentcom/api/agents"))

    async def asnapshot(self) -> dict[str, Any]:
        return _object(await self._http.arequest("GET", "agentcom/api/snapshot"))

    async def acancel(self, task_id: str) -> dict[str, Any]:
        return _object(await self._http.arequest("POST", f"agentcom/api/tasks/{task_id}/cancel"))

    async def aretry(self, task_id: str) -> dict[str, Any]:
        return _object(await self._http.arequest("POST", f"agentcom/api/tasks/{task_id}/retry"))

    async def aexecutions(self, since: int | None = None) -> "pd.DataFrame":
        from agentcom.analysis import executions_frame

        return executions_frame(await self._http.arequest("GET", "agentcom/api/executions", params={"since": since}))

    # ------------------------------------------------------------------ live

    @property
    def feed(self) -> Feed:
        """The live feed; its socket starts on first use (needs a running loop: a kernel has one)
        and stays up, reconnecting by itself, until :meth:`close`."""
        if self._feed is None:
            self._feed = Feed()
            self._stream = FeedStream(self._feed, self.url, self.token)
        assert self._stream is not None
        if not self._closed and not self._stream.running and self._feed.connection != "unauthorized":
            try:
                asyncio.get_running_loop()
            except RuntimeError:
                pass  # no loop yet (a plain script): the feed stays idle until used from one
            else:
                self._stream.start()
        return self._feed

    @property
    def stream(self) -> FeedStream:
        self.feed  # noqa: B018 - creates and starts the stream
        assert self._stream is not None
        return self._stream

    async def wait_live(self, timeout: float = 10.0) -> Feed:
        """Start the feed and wait for its first snapshot."""
        feed = self.feed
        await self.stream.wait_open(timeout)
        return feed

    def live_executions(self) -> "LiveExecutions":
        """An executions DataFrame holder (``.frame``) that grows as executions finish."""
        from agentcom.client._live import LiveExecutions

        return LiveExecutions(self)

    def monitor(self, **options: Any) -> Any:
        """The Monitor widget (agents, queue, execution panel, cost table): ``display(client.monitor())``."""
        from agentcom.widgets import Monitor

        return Monitor(self, **options)

    def _batch_bar(self, total: int, progress: bool | None) -> Any:
        if progress is None:
            progress = _in_notebook()
        if not progress or total == 0:
            return None
        from agentcom.widgets import BatchProgress

        bar = BatchProgress(total, source=self)
        if _in_notebook():
            from IPython.display import display

            display(bar)  # type: ignore[no-untyped-call]
        return bar

    # ------------------------------------------------------------------ lifecycle and display

    def close(self) -> None:
        """Close the live socket for good (request/response methods keep working)."""
        self._closed = True
        if self._stream is not None:
            self._stream.close()

    async def aclose(self) -> None:
        self._closed = True
        if self._stream is not None:
            await self._stream.stop()

    def __repr__(self) -> str:
        live = f", feed {self._feed.connection}" if self._feed is not None else ""
        return f"<HubClient {self.url} ({self.how}){live}>"


def connect(url: str | None = None, token: str | None = None, *, timeout: float = 30.0,
            check: bool = True) -> HubClient:
    """A :class:`HubClient` for the hub at ``url``, or, with no arguments, this kernel's Jupyter
    server hub (rule in :mod:`agentcom.client._discovery`). With ``check`` (the default) the hub's
    public health endpoint is probed first, so a wrong address fails here with a clear message
    (skipped when this thread's loop serves the hub itself, which cannot answer a blocking probe)."""
    location: HubLocation = locate(url, token)
    client = HubClient(location.url, location.token, timeout=timeout, how=location.how)
    if check and not client._http.served_by_running_loop():
        try:
            client.health()
        except StoreUnavailable:
            pass  # the hub is there; its store refuses writes for now, and reads go on
        except NotFound:
            raise HubUnavailable(
                f"{location.url} ({location.how}) answers but has no AgentCom hub: is the agentcom server "
                "extension enabled (`jupyter server extension enable agentcom`)?"
            ) from None
    return client


def _object(answer: Any) -> dict[str, Any]:
    if not isinstance(answer, dict):
        raise AgentComError(f"the hub answered {type(answer).__name__} where an object was expected")
    return answer


def _objects(answer: Any) -> list[dict[str, Any]]:
    if not isinstance(answer, list):
        raise AgentComError(f"the hub answered {type(answer).__name__} where a list was expected")
    return answer


def _task_body(description: str, fields: Mapping[str, Any]) -> dict[str, Any]:
    body: dict[str, Any] = {"description": description}
    rest = dict(fields)
    if "tier" in rest:
        body["complexity_tier"] = rest.pop("tier")
    if "shell_command" in rest:
        metadata = dict(rest.pop("metadata", None) or {})
        metadata["shell_command"] = rest.pop("shell_command")
        rest["metadata"] = metadata
    body.update({k: v for k, v in rest.items() if v is not None})
    return body


def _item(task: str | Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    if isinstance(task, str):
        return task, {}
    fields = dict(task)
    if "description" not in fields:
        raise ValueError(f"submit_many: each task needs a description, got {sorted(fields)}")
    return str(fields.pop("description")), fields


def _filters(filters: Mapping[str, Any]) -> dict[str, Any]:
    unknown = sorted(set(filters) - set(TASK_FILTERS))
    if unknown:
        raise ValueError(f"unknown task filter(s) {', '.join(unknown)}; expected {', '.join(TASK_FILTERS)}")
    return {k: v for k, v in filters.items() if v is not None}


def _in_notebook() -> bool:
    try:
        from IPython.core.getipython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()  # type: ignore[no-untyped-call]
    return shell is not None and getattr(shell, "kernel", None) is not None


__all__ = ["Batch", "HubClient", "connect"]
