"""What wsproto's frame layer is given beyond its defaults: limits and a bounded inflate.

wsproto streams a frame's payload as it arrives (it never buffers a whole frame), and
its extension hooks see every frame header before any payload. Two extensions use them:

* :class:`FrameLimits` — always on, never negotiated: a frame whose declared length is
  over ``max_frame_size``, or an uncompressed message growing past ``max_message_size``,
  fails the connection with 1009 as soon as its header arrives.
* :class:`BoundedDeflate` — wsproto's permessage-deflate (RFC 7692), except that inflating
  stops at ``max_message_size``: wsproto's own ``decompress`` has no bound, so a few KiB
  of compressed zeros would inflate to megabytes before any limit could be checked.
  Offer and parameter negotiation stay wsproto's; only the two inbound hooks differ.
"""

from __future__ import annotations

import zlib

from wsproto.extensions import Extension, PerMessageDeflate
from wsproto.frame_protocol import CloseReason, FrameDecoder, FrameProtocol, Opcode, RsvBits


class FrameLimits(Extension):
    name = "netkit-frame-limits"  # never offered nor accepted: a local check only

    def __init__(self, max_frame_size: int, max_message_size: int) -> None:
        self.max_frame_size = max_frame_size
        self.max_message_size = max_message_size
        self._message = 0
        self._compressed = False

    def enabled(self) -> bool:
        return True

    def offer(self) -> bool | str:
        return False

    def frame_inbound_header(
        self,
        proto: FrameDecoder | FrameProtocol,
        opcode: Opcode,
        rsv: RsvBits,
        payload_length: int,
    ) -> CloseReason | RsvBits:
        if payload_length > self.max_frame_size:
            return CloseReason.MESSAGE_TOO_BIG
        if not opcode.iscontrol():
            if opcode is not Opcode.CONTINUATION:
                self._message = 0
                self._compressed = rsv.rsv1  # BoundedDeflate bounds the inflated size
            self._message += payload_length
            if not self._compressed and self._message > self.max_message_size:
                return CloseReason.MESSAGE_TOO_BIG
        return RsvBits(False, False, False)


class BoundedDeflate(PerMessageDeflate):
    """permessage-deflate whose inflated output per message is capped (1009 past it)."""

    def __init__(self, max_message_size: int) -> None:
        super().__init__()
        self.max_message_size = max_message_size
        self._inflated = 0
        #: The current frame is a control frame: it must not touch the message's state.
        self._control = False

    def frame_inbound_header(
        self,
        proto: FrameDecoder | FrameProtocol,
        opcode: Opcode,
        rsv: RsvBits,
        payload_length: int,
    ) -> CloseReason | RsvBits:
        # wsproto lets a control frame between two fragments of a compressed message
        # reset the message's "compressed" flag; control frames are kept out of it here.
        self._control = opcode.iscontrol()
        if self._control:
            return CloseReason.PROTOCOL_ERROR if rsv.rsv1 else RsvBits(False, False, False)
        return super().frame_inbound_header(proto, opcode, rsv, payload_length)

    def _inflate(self, data: bytes) -> bytes | CloseReason:
        assert self._decompressor is not None
        budget = self.max_message_size - self._inflated
        try:
            # One byte over the budget is enough to know the message is too big; the
            # rest of the input stays unconsumed and is never inflated.
            out = self._decompressor.decompress(data, budget + 1)
        except zlib.error:
            return CloseReason.INVALID_FRAME_PAYLOAD_DATA
        self._inflated += len(out)
        if self._inflated > self.max_message_size:
            return CloseReason.MESSAGE_TOO_BIG
        return out

    def frame_inbound_payload_data(
        self, proto: FrameDecoder | FrameProtocol, data: bytes
    ) -> bytes | CloseReason:
        if self._control or not self._inbound_compressed:
            return data
        return self._inflate(bytes(data))

    def frame_inbound_complete(
        self, proto: FrameDecoder | FrameProtocol, fin: bool
    ) -> bytes | CloseReason | None:
        if not fin or self._control:
            return None
        compressed = self._inbound_compressed
        self._inbound_compressed = None
        if not compressed:
            return None
        tail = self._inflate(b"\x00\x00\xff\xff")
        self._inflated = 0
        takeover_off = (
            self.server_no_context_takeover if proto.client else self.client_no_context_takeover
        )
        if takeover_off:
            self._decompressor = None
        return tail
