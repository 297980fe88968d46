"""Server configuration: every limit and timeout the HTTP layer enforces, as data.

Each field has a default chosen to be safe for a public-facing server and a test that
shows the limit holds. Times are seconds on trio's clock, so tests can drive them with
``MockClock(autojump_threshold=0)``.
"""

from __future__ import annotations

import attrs
from attrs import validators as v

_pos_int = v.and_(v.instance_of(int), v.gt(0))


def _pos_num(_instance: object, attribute: attrs.Attribute[float], value: float) -> None:
    if not isinstance(value, int | float) or isinstance(value, bool) or not value > 0:
        raise ValueError(f"{attribute.name} must be a positive number, got {value!r}")


@attrs.frozen(kw_only=True)
class ServerConfig:
    """Limits and timeouts of :func:`netkit.serve`.

    Limits on input:

    - ``max_header_size``: bytes of one request head (HTTP/1.1 request line + headers;
      HTTP/2 encoded header block *and* decoded header list). Larger heads get 431 on
      HTTP/1.1 and GOAWAY(ENHANCE_YOUR_CALM) on HTTP/2, as HPACK state cannot be trusted
      after an oversized block.
    - ``max_request_body_size``: bytes of one request body; reading past it raises
      :class:`~netkit.errors.RequestBodyTooLarge` and the client gets 413.
    - ``max_concurrent_streams``: HTTP/2 streams per connection, advertised in SETTINGS;
      one more is refused with RST_STREAM(REFUSED_STREAM), the connection lives on.
      Handlers of reset streams still count until they have really finished, so a
      client cannot run more handlers than this by resetting streams (CVE-2023-44487).
    - ``max_connections``: open connections; at the limit the server stops accepting
      and new clients wait in the kernel's backlog.

    Timeouts:

    - ``request_head_timeout``: a new connection must deliver its first request head
      (and a later request its head, once its first byte arrived) within this time.
    - ``keep_alive_timeout``: an idle connection (no request in flight) is closed after it.
    - ``write_timeout``: a write to a peer that does not read is abandoned after it and the
      connection closed; an HTTP/2 stream whose send window stays at zero this long is reset.
    - ``shutdown_grace``: on graceful shutdown, in-flight requests get this long to finish.

    HTTP/2 abuse budgets (token buckets: ``*_burst`` tokens, refilled at ``*_rate`` per
    second; an empty bucket ends the connection with GOAWAY(ENHANCE_YOUR_CALM)):

    - ``h2_reset_*``: streams the client resets before their response finished, plus
      streams refused for exceeding ``max_concurrent_streams`` (rapid reset).
    - ``h2_control_*``: PING, SETTINGS and PRIORITY frames and empty DATA frames that do
      not end a stream, which cost work and produce nothing.
    """

    max_header_size: int = attrs.field(default=16 * 1024, validator=_pos_int)
    max_request_body_size: int = attrs.field(default=16 * 1024 * 1024, validator=_pos_int)
    max_concurrent_streams: int = attrs.field(default=100, validator=_pos_int)
    max_connections: int = attrs.field(default=1024, validator=_pos_int)
    h2_initial_window_size: int = attrs.field(
        default=256 * 1024, validator=[v.instance_of(int), v.gt(0), v.le(2**31 - 1)]
    )
    h2_max_frame_size: int = attrs.field(
        default=16 * 1024, validator=[v.instance_of(int), v.ge(2**14), v.le(2**24 - 1)]
    )
    request_head_timeout: float = attrs.field(default=10.0, validator=_pos_num)
    keep_alive_timeout: float = attrs.field(default=5.0, validator=_pos_num)
    write_timeout: float = attrs.field(default=30.0, validator=_pos_num)
    shutdown_grace: float = attrs.field(default=10.0, validator=_pos_num)
    h2_reset_burst: int = attrs.field(default=200, validator=_pos_int)
    h2_reset_rate: float = attrs.field(default=100.0, validator=_pos_num)
    h2_control_burst: int = attrs.field(default=500, validator=_pos_int)
    h2_control_rate: float = attrs.field(default=100.0, validator=_pos_num)
    backlog: int = attrs.field(default=1024, validator=_pos_int)
