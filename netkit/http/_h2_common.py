"""What netkit's HTTP/2 server and client both add to h2.

* :class:`H2Protocol`: h2's connection with two fixes both sides need. A graceful
  GOAWAY (NO_ERROR) received from the peer keeps the streams it already opened alive
  (h2 moves to CLOSED and drops pending output on any GOAWAY), and a header block that
  is still growing is bounded as it grows (h2 only caps the number of CONTINUATION
  frames, i.e. up to 64 x max_frame_size bytes buffered before anything is checked).
* :func:`prepare_outbound`: h2 validates outbound headers lazily, *while* HPACK-encoding
  them. A bad header in the middle leaves the headers before it in the encoder's dynamic
  table although no frame is sent, so the peer's decoder is out of step from then on and
  the next header block kills the connection. Checking first, on a copy, keeps one bad
  header a problem of one stream. The drivers then tell h2 not to validate again; the
  rules themselves live in ``_h2_headers`` (one pass instead of h2's generator chain).
"""

from __future__ import annotations

from collections import deque
from typing import Any

import h2.config
import h2.connection
import h2.exceptions
from h2.connection import ConnectionState
from h2.frame_buffer import FrameBuffer
from hyperframe.frame import Frame, GoAwayFrame

from ..errors import LocalProtocolError
from . import _h2_headers
from ._headers import HeaderPair
from ._hpack import CachingDecoder, CachingEncoder


class BoundedFrameBuffer(FrameBuffer):
    """h2's frame buffer, but a header block growing past ``limit`` bytes is an error."""

    def __init__(self, limit: int, *, server: bool) -> None:
        super().__init__(server=server)
        self.limit = limit

    def _update_header_buffer(self, f: Frame | None) -> Frame | None:
        out = super()._update_header_buffer(f)
        if self._headers_buffer:
            size = sum(len(getattr(part, "data", b"")) for part in self._headers_buffer)
            if size > self.limit:
                raise h2.exceptions.DenialOfServiceError(
                    f"header block grew past {self.limit} bytes"
                )
        return out


#: Streams held (open or closed) above which h2's exact open-stream count is taken.
_WALK_EVERY = 256


class H2Protocol(h2.connection.H2Connection):
    """h2's connection with the graceful-GOAWAY fix and a growing-header-block bound."""

    def __init__(self, config: h2.config.H2Configuration, max_header_block: int) -> None:
        super().__init__(config)
        self.encoder = CachingEncoder()  # recurring fields cost a lookup (see _hpack)
        decoder = CachingDecoder(self.decoder.max_header_list_size)  # recurring blocks too
        decoder.max_allowed_table_size = self.decoder.max_allowed_table_size
        self.decoder = decoder
        self.max_header_block = max_header_block
        self.incoming_buffer = BoundedFrameBuffer(max_header_block, server=not config.client_side)

    def _receive_goaway_frame(self, frame: GoAwayFrame) -> tuple[list[Frame], list[Any]]:
        if frame.error_code:
            return super()._receive_goaway_frame(frame)
        state, pending = self.state_machine.state, bytes(self._data_to_send)
        frames, events = super()._receive_goaway_frame(frame)
        if state is not ConnectionState.CLOSED:
            self.state_machine.state = state
        self._data_to_send = bytearray(pending)
        return frames, events

    @property
    def closed(self) -> bool:
        return self.state_machine.state is ConnectionState.CLOSED

    # h2 counts open streams by walking every stream it holds (dropping the closed ones
    # as it goes) each time a stream opens, on both sides: with a hundred streams in
    # flight that walk was several per cent of a request. Its callers only ask whether
    # one more stream fits under the limit, and the number of streams held bounds the
    # open ones from above; so below the limit (and below _WALK_EVERY, which bounds how
    # many closed streams wait to be dropped) that number gives the same answer for free.
    @property
    def open_outbound_streams(self) -> int:
        held = len(self.streams)
        if held < self.remote_settings.max_concurrent_streams and held < _WALK_EVERY:
            return held
        return super().open_outbound_streams

    def exact_open_inbound_streams(self) -> int:
        """h2's own count (the walk), where the exact number matters."""
        return super().open_inbound_streams

    @property
    def open_inbound_streams(self) -> int:
        held = len(self.streams)
        if held < self.local_settings.max_concurrent_streams and held < _WALK_EVERY:
            return held
        return super().open_inbound_streams


def take_chunks(chunks: deque[tuple[bytes, int]]) -> tuple[bytes, int]:
    """All of a stream's buffered body at once: (the bytes, their flow-controlled length),
    the buffer left empty. The flow is the caller's to hand back to the windows."""
    if len(chunks) == 1:
        data, flow = chunks[0]
    else:
        data = b"".join([c for c, _ in chunks])
        flow = sum([n for _, n in chunks])
    chunks.clear()
    return data, flow


def prepare_outbound(
    headers: list[HeaderPair], *, client: bool, is_trailer: bool, what: str
) -> list[HeaderPair]:
    """Outbound headers normalized and validated before h2 sees them (``_h2_headers``).

    The drivers' h2 connections are configured to neither normalize nor validate again
    (see the module docstring for why the check must come first). Raises
    LocalProtocolError naming ``what`` was invalid.
    """
    try:
        return _h2_headers.prepare_outbound(headers, client=client, is_trailer=is_trailer)
    except _h2_headers.MalformedHeaders as exc:
        raise LocalProtocolError(f"invalid {what}: {exc}") from exc
