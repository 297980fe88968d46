"""A hand-driven WebSocket client over any trio stream (wsproto, frame level), for
in-memory tests: it sends exactly the frames a test asks for, fragmented as it likes."""

from __future__ import annotations

import base64
import os
from typing import Any

import trio
from wsproto.events import CloseConnection, Ping, Pong
from wsproto.frame_protocol import FrameProtocol, Opcode


class FrameClient:
    def __init__(self, stream: trio.abc.Stream) -> None:
        self.stream = stream
        self.proto = FrameProtocol(client=True, extensions=[])
        self.messages: list[str | bytes] = []
        self.pings: list[bytes] = []
        self.pongs: list[bytes] = []
        self.close_code: int | None = None
        self.answer_pings = True
        self._parts: list[Any] = []

    async def handshake(self, path: str = "/echo", extra: bytes = b"") -> bytes:
        key = base64.b64encode(os.urandom(16))
        await self.stream.send_all(
            b"GET " + path.encode() + b" HTTP/1.1\r\nHost: test\r\nUpgrade: websocket\r\n"
            b"Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: "
            + key
            + b"\r\n"
            + extra
            + b"\r\n"
        )
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = await self.stream.receive_some(65536)
            assert chunk, head
            head += chunk
        head, rest = head.split(b"\r\n\r\n", 1)
        if rest:
            self.proto.receive_bytes(rest)
        return head

    async def send(self, data: bytes) -> None:
        await self.stream.send_all(data)

    def frame(self, payload: str | bytes, fin: bool = True) -> bytes:
        return bytes(self.proto.send_data(payload, fin))

    async def pump(self) -> bool:
        """Read once and process; False on EOF."""
        try:
            data = await self.stream.receive_some(65536)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            data = b""
        if not data:
            return False
        self.proto.receive_bytes(data)
        for frame in self.proto.received_frames():
            if frame.opcode is Opcode.PING:
                self.pings.append(frame.payload)
                if self.answer_pings:
                    await self.stream.send_all(bytes(self.proto.pong(frame.payload)))
            elif frame.opcode is Opcode.CLOSE:
                self.close_code = frame.payload[0]
            elif frame.opcode is Opcode.PONG:
                self.pongs.append(frame.payload)
            else:
                self._parts.append(frame.payload)
                if frame.message_finished:
                    first = self._parts[0]
                    self.messages.append(("" if isinstance(first, str) else b"").join(self._parts))
                    self._parts = []
        return True

    async def until(self, predicate: Any) -> None:
        while not predicate():
            if not await self.pump():
                raise AssertionError("EOF")

    async def run_until_eof(self) -> None:
        while await self.pump():
            pass


__all__ = ["CloseConnection", "FrameClient", "Ping", "Pong"]
