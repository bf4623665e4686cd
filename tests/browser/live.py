"""A standalone hub serving on its own thread, and a sidecar driven from the test over a raw WebSocket.

Playwright's sync API drives the browser from the test thread; the hub, its SQLite store
and the test's sidecar live on the hub thread's event loop, reached only through ``run``
and ``call`` so the hub is never touched from two threads.
"""

from __future__ import annotations

import asyncio
import json
import threading
from typing import Any, Awaitable, Callable, TypeVar, cast

from tornado.websocket import WebSocketClientConnection, websocket_connect

from agentcom import Hub
from agentcom.protocol import codec
from agentcom.protocol import messages as m

T = TypeVar("T")
WAIT_S = 20.0


class LiveHub:
    def __init__(self, db_path: str, **settings: Any) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="agentcom-test-hub", daemon=True)
        self.thread.start()

        async def start() -> Hub:
            return await Hub(db_path=db_path, host="127.0.0.1", port=0, **settings).start()

        self.hub: Hub = self.run(start())

    def run(self, awaitable: Awaitable[T]) -> T:
        """Await on the hub's loop (a coroutine, or a Tornado future made there) and return its result."""

        async def wait() -> T:
            return await awaitable

        return asyncio.run_coroutine_threadsafe(wait(), self.loop).result(WAIT_S)

    def call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        async def invoke() -> T:
            return fn(*args, **kwargs)

        return self.run(invoke())

    def sidecar(self, agent_id: str, name: str | None = None) -> "Sidecar":
        return Sidecar(self, agent_id, name)

    def stop(self) -> None:
        self.run(self.hub.stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(WAIT_S)
        self.loop.close()


class Sidecar:
    """A test sidecar: identify, take an assignment, stream events, complete."""

    def __init__(self, live: LiveHub, agent_id: str, name: str | None) -> None:
        self.live = live
        token = live.call(live.hub.create_agent_token, agent_id)
        self.ws: WebSocketClientConnection = live.run(self._connect())
        self.send(m.Identify(agent_id=agent_id, token=token, protocol_version=1, name=name, capabilities=["shell"]))
        assert self.until("identified")["agent_id"] == agent_id

    async def _connect(self) -> WebSocketClientConnection:
        return await websocket_connect(self.live.hub.ws_url)

    def send(self, frame: Any) -> None:
        async def write() -> None:
            await self.ws.write_message(codec.encode(frame))

        self.live.run(write())

    def until(self, frame_type: str) -> dict[str, Any]:
        async def read() -> dict[str, Any]:
            while True:
                raw = await asyncio.wait_for(self.ws.read_message(), WAIT_S)
                assert raw is not None, f"socket closed before {frame_type}"
                frame = json.loads(raw)
                if frame["type"] == frame_type:
                    return frame

        return self.live.run(read())

    def take_task(self, description: str, **fields: Any) -> dict[str, Any]:
        """Submit a task and take its assignment. By default it is trivial shell work, which the router sends
        to a sidecar at once (other work waits ``fallback_wait_ms`` for a model endpoint first)."""
        hub = self.live.hub
        body = {"description": description, "complexity_tier": "trivial", "metadata": {"shell_command": "true"}}
        self.live.call(lambda: hub.submit_dict(body | fields))
        assign = self.until("task_assign")
        self.send(m.TaskAccepted(task_id=assign["task_id"], generation=assign["generation"]))
        self.until("task_ack")
        return assign

    def emit(self, assign: dict[str, Any], seq: int, event_type: str, text: str) -> None:
        event = m.ExecutionEvent(event_type=cast(m.EventType, event_type), text=text, timestamp=0, seq=seq, model="qwen2.5-coder:7b")
        self.send(m.TaskProgress(task_id=assign["task_id"], generation=assign["generation"], execution_event=event))

    def complete(self, assign: dict[str, Any], **result: Any) -> None:
        fields: dict[str, Any] = {"status": "success", "output": "ok", "model_used": "qwen2.5-coder:7b",
                                  "tokens_in": 1200, "tokens_out": 340, "estimated_cost_usd": 0.0,
                                  "equivalent_claude_cost_usd": 0.0087, "execution_ms": 900, "price_table": "test-1"}
        self.send(m.TaskComplete(task_id=assign["task_id"], generation=assign["generation"],
                                 result=m.ExecutionResult(**(fields | result))))
        self.until("task_ack")

    def close(self) -> None:
        self.live.loop.call_soon_threadsafe(self.ws.close)


def open_dashboard(page: Any, live: LiveHub, query: str = "") -> None:
    """Open the page with the admin token (plus ``query``, e.g. ``"keep=3&"``) and wait until it is live."""
    page.goto(f"{live.hub.url}/agentcom/?{query}token={live.hub.admin_token}")
    page.wait_for_selector("#conn.conn-up")


def wait_text(page: Any, expression: str, expected: Any) -> None:
    """Wait until a JS expression (rendered on the next animation frame) gives ``expected`` (compared as JSON)."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    wanted = json.dumps(expected, separators=(",", ":"), ensure_ascii=False)
    try:
        page.wait_for_function(f"() => JSON.stringify({expression}) === {json.dumps(wanted)}")
    except PlaywrightTimeout:
        raise AssertionError(f"{expression} gave {page.evaluate(expression)!r}, expected {expected!r}") from None
