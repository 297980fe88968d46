"""WebSocket limits and timeouts, as data (DESIGN.md principle 7).

Every field has a default safe for a public server, a validator, and a test. Times are
seconds on trio's clock, so tests drive them with ``MockClock(autojump_threshold=0)``.
"""

from __future__ import annotations

import attrs
from attrs import validators as v

_pos_int = v.and_(v.instance_of(int), v.gt(0))


def _pos_num(_instance: object, attribute: attrs.Attribute[float], value: float) -> None:
    if not isinstance(value, int | float) or isinstance(value, bool) or not value > 0:
        raise ValueError(f"{attribute.name} must be a positive number, got {value!r}")


def _opt_pos_num(instance: object, attribute: attrs.Attribute[float], value: float | None) -> None:
    if value is not None:
        _pos_num(instance, attribute, value)


@attrs.frozen(kw_only=True)
class WebSocketConfig:
    """Limits and timeouts of one WebSocket endpoint (server side).

    - ``max_message_size``: bytes of one received message, after decompression; a larger
      one closes the connection with 1009 (Message Too Big).
    - ``max_frame_size``: payload bytes of one received frame, as declared in its header;
      checked before any of it is buffered; 1009 too.
    - ``receive_queue_size``: received messages waiting for the handler. When full the
      connection stops reading (TCP / HTTP/2 flow control push back on the peer); see
      docs/websocket.md, "Backpressure", for why and what it means for pings.
    - ``send_queue_size``: messages queued for one connection by ``send_nowait`` and by the
      pub/sub hub before the full policy applies.
    - ``ping_interval`` / ``ping_timeout``: the server pings every ``ping_interval``; no
      pong within ``ping_timeout`` closes with 1011. ``ping_interval=None`` turns it off.
    - ``close_timeout``: how long the closing handshake may take before the connection
      is dropped anyway.
    - ``compression``: accept permessage-deflate when the client offers it.
    - ``max_target_size`` / ``max_header_count``: the upgrade request's target (path and
      query) in characters, and its number of header fields; over them the handshake
      is refused with 414 / 431 (the HTTP layer's ``max_header_size`` bounds the whole
      head before either is looked at).
    """

    max_message_size: int = attrs.field(default=1024 * 1024, validator=_pos_int)
    max_frame_size: int = attrs.field(default=1024 * 1024, validator=_pos_int)
    receive_queue_size: int = attrs.field(default=64, validator=_pos_int)
    send_queue_size: int = attrs.field(default=256, validator=_pos_int)
    ping_interval: float | None = attrs.field(default=20.0, validator=_opt_pos_num)
    ping_timeout: float = attrs.field(default=20.0, validator=_pos_num)
    close_timeout: float = attrs.field(default=5.0, validator=_pos_num)
    compression: bool = attrs.field(default=True, validator=v.instance_of(bool))
    max_target_size: int = attrs.field(default=8192, validator=_pos_int)
    max_header_count: int = attrs.field(default=128, validator=_pos_int)
