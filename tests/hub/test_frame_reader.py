"""Frames from sidecars, read in batches: whatever way the bytes arrive, each message arrives once, whole,
in order, and a bad frame ends the connection as Tornado's own reader would end it."""

from __future__ import annotations

import asyncio
import base64
import os
import struct
from typing import Any

import msgspec
import pytest
from tornado import httpserver, web, websocket
from tornado.netutil import bind_sockets

from agentcom import Hub
from agentcom.hub.wsframes import BatchedFrameProtocol

pytestmark = pytest.mark.anyio

MAX = 4096


def frame(payload: bytes, opcode: int = 0x1, *, final: bool = True, rsv: int = 0, length: int | None = None) -> bytes:
    """A masked client frame (RFC 6455 5.2); ``length`` overrides the length the header claims."""
    size = len(payload) if length is None else length
    head = bytes(((0x80 if final else 0) | rsv | opcode,))
    if size < 126:
        head += bytes((0x80 | size,))
    elif size <= 0xFFFF:
        head += struct.pack("!BH", 0x80 | 126, size)
    else:
        head += struct.pack("!BQ", 0x80 | 127, size)
    mask = os.urandom(4)
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


class RawClient:
    """A WebSocket client on a bare TCP stream, so a test decides how the bytes are cut into writes."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def connect(cls, port: int, path: str) -> RawClient:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        key = base64.b64encode(os.urandom(16)).decode()
        writer.write(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                     f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode())
        status = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
        assert status.startswith(b"HTTP/1.1 101"), status
        return cls(reader, writer)

    async def write(self, *chunks: bytes) -> None:
        for chunk in chunks:  # each its own write (and, with TCP_NODELAY, its own segment)
            self.writer.write(chunk)
            await self.writer.drain()
            await asyncio.sleep(0.002)

    async def recv(self) -> tuple[int, bytes]:
        """(opcode, payload) of the server's next frame; (-1, b"") once the server closed the stream."""
        try:
            first, second = await asyncio.wait_for(self.reader.readexactly(2), 10)
            size = second & 0x7F
            if size == 126:
                size = struct.unpack("!H", await self.reader.readexactly(2))[0]
            elif size == 127:
                size = struct.unpack("!Q", await self.reader.readexactly(8))[0]
            return first & 0x0F, await self.reader.readexactly(size)
        except asyncio.IncompleteReadError:
            return -1, b""

    async def ends(self) -> list[tuple[int, bytes]]:
        """Every frame until the server drops the connection."""
        frames = []
        while (item := await self.recv())[0] != -1:
            frames.append(item)
        return frames

    def close(self) -> None:
        self.writer.close()


class Echo(websocket.WebSocketHandler):
    """Answers every message with "<type>:<message>", on the batched reader as the sidecar socket uses it."""

    def get_websocket_protocol(self) -> Any:
        protocol = super().get_websocket_protocol()
        return BatchedFrameProtocol(self, protocol.mask_outgoing, protocol.params)

    def on_message(self, message: str | bytes) -> None:
        self.write_message(f"{type(message).__name__}:{message if isinstance(message, str) else message.hex()}")


@pytest.fixture
def echo(jp_asyncio_loop: asyncio.AbstractEventLoop, anyio_backend: str) -> Any:
    """``await echo()``: a raw client of an ``Echo`` server on the test's loop."""
    server = httpserver.HTTPServer(web.Application([("/", Echo)], websocket_max_message_size=MAX))
    [sock] = bind_sockets(0, "127.0.0.1")[:1]
    server.add_sockets([sock])
    clients: list[RawClient] = []

    async def connect() -> RawClient:
        clients.append(await RawClient.connect(sock.getsockname()[1], "/"))
        return clients[-1]

    yield connect
    for client in clients:
        client.close()
    server.stop()
    jp_asyncio_loop.run_until_complete(server.close_all_connections())


async def test_many_frames_in_one_write_arrive_each_once_in_order(echo: Any) -> None:
    client = await echo()
    messages = [f"m{i}-" + "x" * (i * 37 % 300) for i in range(40)]  # 7-bit and 16-bit lengths mixed
    await client.write(b"".join(frame(m.encode()) for m in messages))
    assert [(await client.recv())[1].decode() for _ in messages] == [f"str:{m}" for m in messages]


async def test_a_frame_cut_into_single_bytes_arrives_whole(echo: Any) -> None:
    client = await echo()
    data = frame(("ü" * 200).encode()) + frame(b"\x00\xff", opcode=0x2)  # UTF-8 split mid-character too
    await client.write(*[data[i:i + 1] for i in range(len(data))])
    assert (await client.recv())[1].decode() == "str:" + "ü" * 200
    assert (await client.recv())[1] == b"bytes:00ff"


async def test_fragments_join_and_a_ping_between_them_is_answered_at_once(echo: Any) -> None:
    client = await echo()
    await client.write(frame(b"hel", final=False) + frame(b"ping!", opcode=0x9) + frame(b"lo ", opcode=0x0, final=False),
                       frame(b"world", opcode=0x0))
    assert await client.recv() == (0xA, b"ping!")  # pong, before the message is complete
    assert await client.recv() == (0x1, b"str:hello world")


async def test_a_close_frame_is_echoed_and_ends_the_connection(echo: Any) -> None:
    client = await echo()
    await client.write(frame(b"last") + frame(struct.pack("!H", 1000) + b"bye", opcode=0x8) + frame(b"ignored"))
    assert await client.ends() == [(0x1, b"str:last"), (0x8, struct.pack("!H", 1000))]


async def test_an_oversize_frame_is_refused_from_its_header_before_its_payload_is_sent(echo: Any) -> None:
    client = await echo()
    await client.write(frame(b"small"), frame(b"", length=MAX + 1)[:8])  # the header alone, claiming MAX + 1 bytes
    assert await client.ends() == [(0x1, b"str:small"), (0x8, struct.pack("!H", 1009) + b"message too big")]


async def test_fragments_over_the_limit_together_are_refused(echo: Any) -> None:
    client = await echo()
    await client.write(frame(b"a" * 3000, final=False), frame(b"b" * 2000, opcode=0x0))
    assert await client.ends() == [(0x8, struct.pack("!H", 1009) + b"message too big")]


@pytest.mark.parametrize("bad", [
    pytest.param(frame(b"x", rsv=0x40), id="reserved bit"),
    pytest.param(frame(b"x" * 126, opcode=0x9), id="control frame over 125 bytes"),
    pytest.param(frame(b"x", opcode=0x9, final=False), id="fragmented control frame"),
    pytest.param(frame(b"x", opcode=0x0), id="continuation of nothing"),
    pytest.param(frame(b"a", final=False) + frame(b"b"), id="new message inside a fragmented one"),
    pytest.param(frame(b"\xff\xfe"), id="text that is not UTF-8"),
    pytest.param(frame(b"x", opcode=0x3), id="unknown opcode"),
])
async def test_a_bad_frame_drops_the_connection_after_what_came_before(echo: Any, bad: bytes) -> None:
    client = await echo()
    await client.write(frame(b"before") + bad + frame(b"after"))
    assert await client.ends() == [(0x1, b"str:before")]


async def test_the_sidecar_socket_reads_frames_in_batches(hub: Hub) -> None:
    """The hub's own socket: an identify and three pings in one write, answered in order."""
    from agentcom.protocol import messages as m

    client = await RawClient.connect(int(hub.ws_url.rsplit(":", 1)[1].split("/")[0]), "/agentcom/ws/sidecar")
    try:
        token = hub.create_agent_token("agent-raw")
        encode = msgspec.json.encode
        await client.write(frame(encode(m.Identify(agent_id="agent-raw", token=token, protocol_version=1)))
                           + b"".join(frame(encode(m.Ping())) for _ in range(3)))
        types = [msgspec.json.decode((await client.recv())[1])["type"] for _ in range(4)]
        assert types == ["identified", "pong", "pong", "pong"]
    finally:
        client.close()
