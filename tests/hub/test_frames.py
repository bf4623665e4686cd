"""Frames to sidecars: written straight to the socket, the frames of one commit in one write."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from tornado import httpserver, web, websocket
from tornado.netutil import bind_sockets

from agentcom import Hub
from agentcom.hub.handlers import SidecarSocketHandler, text_frame

from .wire import Api

pytestmark = pytest.mark.anyio

# Every length class of RFC 6455: 7-bit, 16-bit (126 ..= 65535) and 64-bit lengths, at their edges.
SIZES = (0, 1, 125, 126, 127, 65535, 65536, 200_000)


def test_text_frames_of_every_length_arrive_as_written_in_one_write() -> None:
    """A real Tornado client reads back each payload of one write that holds them all."""
    payloads = [(str(size % 10) * size).encode() for size in SIZES]

    class Writer(websocket.WebSocketHandler):
        def open(self, *args: Any, **kwargs: Any) -> None:
            assert self.ws_connection is not None and self.ws_connection.stream is not None
            self.ws_connection.stream.write(b"".join(text_frame(p) for p in payloads))

    async def main() -> list[Any]:
        server = httpserver.HTTPServer(web.Application([("/", Writer)]))
        [sock] = bind_sockets(0, "127.0.0.1")[:1]
        server.add_sockets([sock])
        client = await websocket.websocket_connect(f"ws://127.0.0.1:{sock.getsockname()[1]}/",
                                                   max_message_size=1 << 20)
        try:
            return [await asyncio.wait_for(client.read_message(), 10) for _ in payloads]
        finally:
            client.close()
            server.stop()
            await server.close_all_connections()

    received = asyncio.run(main())
    assert [len(r) for r in received] == list(SIZES)
    assert received == [p.decode() for p in payloads]  # text frames: str on the client


async def test_a_commit_sends_one_connections_frames_in_one_write(
        hub: Hub, api: Api, sidecar_ws, monkeypatch: pytest.MonkeyPatch) -> None:
    """Cancelling a task and assigning the next one in the same turn: both frames leave together, in order."""
    batches: list[list[str]] = []
    write = SidecarSocketHandler._send_frames

    def spy(self: Any, frames: Any) -> Any:
        batches.append([frame.__struct_config__.tag for frame in frames])
        return write(self, frames)

    monkeypatch.setattr(SidecarSocketHandler, "_send_frames", spy)
    sidecar = await sidecar_ws(hub, "agent-1")
    first = await api.submit(description="first")
    assert (await sidecar.assignment())["task_id"] == first
    second = await api.submit(description="second")  # queued: the sidecar runs one task at a time
    status, _ = await api.call("POST", f"/agentcom/api/tasks/{first}/cancel")
    assert status == 200
    await sidecar.expect("task_cancelled", task_id=first)
    await sidecar.expect("task_assign", task_id=second)
    assert ["task_cancelled", "task_assign"] in batches
