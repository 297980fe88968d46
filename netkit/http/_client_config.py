"""Client configuration: the limits and timeouts of one :class:`H2ClientConnection`, as data.

Like :class:`~netkit.http.ServerConfig` this is a frozen attrs class with validators, so a
bad value fails where the config is built, not somewhere inside a running connection.
Times are seconds on trio's clock (tests drive them with ``MockClock``).
"""

from __future__ import annotations

import attrs
from attrs import validators as v

_pos_int = v.and_(v.instance_of(int), v.gt(0))


def _pos_num(_instance: object, attribute: attrs.Attribute[float], value: float) -> None:
    if not isinstance(value, int | float) or isinstance(value, bool) or not value > 0:
        raise ValueError(f"{attribute.name} must be a positive number, got {value!r}")


def _opt_pos_num(
    instance: object, attribute: attrs.Attribute[float | None], value: float | None
) -> None:
    if value is not None:
        _pos_num(instance, attribute, value)  # type: ignore[arg-type]


@attrs.frozen(kw_only=True)
class ClientConfig:
    """Limits and timeouts of an HTTP/2 client connection.

    Receiving (what the server may make us hold in memory):

    - ``initial_window_size``: each stream's receive window, advertised in SETTINGS. A
      stream's unread data can never exceed it, because the window is reopened only as
      the caller consumes the body. The *connection* window is enlarged to
      ``max_concurrent_streams * initial_window_size`` (capped at 2**31-1), so a stream
      nobody reads never starves the others. Together these bound the memory a
      connection can hold for unread bodies.
    - ``max_concurrent_streams``: streams this client keeps open at once; ``open_stream``
      waits at ``min(this, server's SETTINGS_MAX_CONCURRENT_STREAMS)``. It is the other
      factor of the memory bound above, so it has a limit even when the server has none.
    - ``max_frame_size``: the largest frame we accept (SETTINGS_MAX_FRAME_SIZE).
    - ``max_header_list_size``: the largest decoded response head or trailer block we
      accept, also the bound on its encoded size (SETTINGS_MAX_HEADER_LIST_SIZE). A
      server that exceeds it loses the connection: HPACK state cannot be trusted after.

    Timeouts:

    - ``connect_timeout``: TCP connect, TLS handshake and the server's first SETTINGS
      frame must all complete within it.
    - ``write_timeout``: a socket write (one batch of queued frames, at most a few
      hundred KiB) that does not complete within it means the server stopped reading:
      the connection is closed. (A stream waiting for the
      server's flow-control window is *not* timed out here: that is the caller's
      deadline to set, e.g. gRPC's, since a slow consumer is not a broken one.)
    - ``keepalive_interval``: ``None`` (off), or send a PING after the connection has
      been silent this long, and close it if the ACK does not come within
      ``keepalive_timeout``. It finds dead peers behind NATs and load balancers that
      drop idle flows without telling anyone.
    """

    initial_window_size: int = attrs.field(
        default=1024 * 1024, validator=[v.instance_of(int), v.gt(0), v.le(2**31 - 1)]
    )
    max_concurrent_streams: int = attrs.field(default=100, validator=_pos_int)
    max_frame_size: int = attrs.field(
        default=16 * 1024, validator=[v.instance_of(int), v.ge(2**14), v.le(2**24 - 1)]
    )
    max_header_list_size: int = attrs.field(default=64 * 1024, validator=_pos_int)
    connect_timeout: float = attrs.field(default=10.0, validator=_pos_num)
    write_timeout: float = attrs.field(default=30.0, validator=_pos_num)
    keepalive_interval: float | None = attrs.field(default=None, validator=_opt_pos_num)
    keepalive_timeout: float = attrs.field(default=20.0, validator=_pos_num)
