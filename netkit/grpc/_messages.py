"""Messages out of a stream's DATA: framing, decompression and parsing, for both sides.

Every way a received message can be bad maps to its gRPC status here, once: a message
over the size limit (before or after decompression) is RESOURCE_EXHAUSTED; bad framing,
a compressed flag without an encoding, data that does not decompress or parse, and a
stream that ends inside a message are INTERNAL.
"""

from __future__ import annotations

from collections import deque

from google.protobuf.message import DecodeError, Message

from ..wire import Frame, MessageDecoder, MessageTooLarge, StatusCode, WireError, decompress
from ._errors import GRPCError


class MessageReader:
    """Turns DATA chunks into protobuf messages of one type; failures raise GRPCError."""

    def __init__(self, message_type: type[Message], max_size: int, what: str) -> None:
        self._type = message_type
        self._max_size = max_size
        self._what = what  # "request" or "response", for the error messages
        self._decoder = MessageDecoder(max_size)
        self._frames: deque[Frame] = deque()
        #: The ``grpc-encoding`` of the stream (set once the headers are known).
        self.encoding = "identity"
        #: Whether the last message taken was compressed (its flag bit).
        self.last_compressed = False

    @property
    def ready(self) -> bool:
        return bool(self._frames)

    def feed(self, chunk: bytes) -> None:
        try:
            self._frames.extend(self._decoder.feed(chunk))
        except MessageTooLarge as exc:
            raise GRPCError(StatusCode.RESOURCE_EXHAUSTED, str(exc)) from exc
        except WireError as exc:
            raise GRPCError(StatusCode.INTERNAL, str(exc)) from exc

    def end(self) -> None:
        """The stream ended: it must not have ended inside a message."""
        if not self._decoder.at_boundary:
            raise GRPCError(StatusCode.INTERNAL, f"{self._what} ended inside a message")

    def take(self) -> Message:
        """The next complete message (only when ``ready``)."""
        frame = self._frames.popleft()
        payload = frame.payload
        self.last_compressed = frame.compressed
        if frame.compressed:
            if self.encoding == "identity":
                raise GRPCError(StatusCode.INTERNAL, "compressed message without a grpc-encoding")
            try:
                payload = decompress(payload, self.encoding, max_size=self._max_size)
            except MessageTooLarge as exc:
                raise GRPCError(StatusCode.RESOURCE_EXHAUSTED, str(exc)) from exc
            except (WireError, OSError, ValueError) as exc:
                raise GRPCError(StatusCode.INTERNAL, f"cannot decompress: {exc}") from exc
        message = self._type()
        try:
            message.ParseFromString(payload)
        except DecodeError as exc:
            raise GRPCError(StatusCode.INTERNAL, f"cannot parse the {self._what}: {exc}") from exc
        return message
