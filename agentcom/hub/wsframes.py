"""WebSocket frames on the sidecar socket, both ways, without a future per field.

Out: ``text_frame`` builds a server's text frame, so that the frames one commit releases
go to a sidecar in one socket write.

In: Tornado's reader awaits the stream four times per frame (header, extended length,
mask, payload), one future each. Under load one socket read brings several frames;
``BatchedFrameProtocol`` keeps what the stream gave it and cuts every complete frame out
of that buffer, awaiting the stream again only when no complete frame is left. What is
done with a frame -- size limit, control frames, fragments, the close handshake, UTF-8
and ``on_message`` -- is Tornado's own (``_handle_message``), in Tornado's order.
"""

from __future__ import annotations

import struct
from typing import Any

from tornado.util import _websocket_mask
from tornado.websocket import WebSocketProtocol13

READ_CHUNK = 65_536  # at most this much per socket read; a frame may span several


def text_frame(payload: bytes) -> bytes:
    """A final, unmasked, uncompressed WebSocket text frame (RFC 6455 5.2), as a server sends it."""
    size = len(payload)
    if size < 126:
        return b"\x81" + bytes((size,)) + payload
    if size <= 0xFFFF:
        return struct.pack("!BBH", 0x81, 126, size) + payload
    return struct.pack("!BBQ", 0x81, 127, size) + payload


class BatchedFrameProtocol(WebSocketProtocol13):
    """RFC 6455 as Tornado speaks it, reading frames in batches (see the module docstring)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._unparsed = bytearray()

    async def _receive_frame(self) -> None:
        if self._decompressor is not None:  # permessage-deflate (never offered to sidecars): Tornado's reader
            await super()._receive_frame()
            return
        buf = self._unparsed
        while True:  # until one whole frame is buffered, refusing a bad header as soon as it is known
            header = self._header(buf)
            if header is False:
                return  # refused: the connection is closing
            if header is not None and len(buf) >= header[3]:
                break
            buf += await self.stream.read_bytes(READ_CHUNK, partial=True)
        first, masked, start, end = header
        payload = bytes(buf[start:end])
        if masked:
            payload = _websocket_mask(bytes(buf[start - 4:start]), payload)
        del buf[:end]
        if hasattr(self, "_wire_bytes_in"):  # Tornado >= 6.5 paces its read loop by it
            self._wire_bytes_in += end
        await self._dispatch(bool(first & self.FIN), first & self.OPCODE_MASK, payload)

    def _header(self, buf: bytearray) -> tuple[int, bool, int, int] | None | bool:
        """(first byte, masked, payload start, frame end) of the frame at the head of ``buf``;
        None while its header is incomplete; False when it is refused (connection aborted)."""
        if len(buf) < 2:
            return None
        first, second = buf[0], buf[1]
        if first & self.RSV_MASK:  # extensions were not negotiated
            self._abort()
            return False
        size, start = second & 0x7F, 2
        if first & 0x8 and size >= 126:  # a control frame's payload is under 126 bytes
            self._abort()
            return False
        if size == 126:
            if len(buf) < 4:
                return None
            size, start = int.from_bytes(buf[2:4], "big"), 4
        elif size == 127:
            if len(buf) < 10:
                return None
            size, start = int.from_bytes(buf[2:10], "big"), 10
        held = len(self._fragmented_message_buffer) if self._fragmented_message_buffer is not None else 0
        if size + held > self.params.max_message_size:
            self.close(1009, "message too big")
            self._abort()
            return False
        masked = bool(second & 0x80)
        start += 4 if masked else 0
        return first, masked, start, start + size

    async def _dispatch(self, final: bool, opcode: int, payload: bytes) -> None:
        """One frame's payload: control frames at once, data frames joined with their fragments."""
        if opcode & 0x8:
            if not final:  # control frames are never fragmented
                self._abort()
                return
        elif opcode == 0:  # continuation
            if self._fragmented_message_buffer is None:
                self._abort()
                return
            self._fragmented_message_buffer.extend(payload)
            if not final:
                return
            opcode, payload = self._fragmented_message_opcode, bytes(self._fragmented_message_buffer)
            self._fragmented_message_buffer = None
        elif self._fragmented_message_buffer is not None:  # a new message inside a fragmented one
            self._abort()
            return
        elif not final:
            self._fragmented_message_opcode = opcode
            self._fragmented_message_buffer = bytearray(payload)
            return
        handled = self._handle_message(opcode, payload)
        if handled is not None:
            await handled
