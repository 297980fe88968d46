"""Hypothesis strategies for the wire: HTTP requests, HTTP/2 frames, gRPC, WebSocket, pub/sub.

Every strategy draws *valid* input within netkit's default limits unless its docstring
says otherwise (fuzzing with garbage is ``st.binary()``'s job; these reach the states
behind the parsers). Each shrinks towards the simplest value: ``GET /``, an empty
message, no metadata, a one-frame text message.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from typing import Any

import attrs
import h11
import hpack
from hyperframe.frame import (
    DataFrame,
    Frame,
    HeadersFrame,
    PingFrame,
    PriorityFrame,
    RstStreamFrame,
    SettingsFrame,
    WindowUpdateFrame,
)
from hypothesis import strategies as st

from ..wire import grpc_framing
from ..wire import ws_envelope as env
from ..wire.grpc_metadata import is_reserved

# -- HTTP -----------------------------------------------------------------------------

#: Methods netkit routes; ``CONNECT`` and ``TRACE`` are left out (they need special forms).
METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
_TCHAR = "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyz"
_PCHAR = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~!$&'()*+,;=:@"
#: Headers the drawn requests never carry: the client library (or framing) owns them.
_FRAMING = frozenset(
    {"host", "content-length", "transfer-encoding", "connection", "upgrade", "te", "expect"}
)


@attrs.frozen
class HTTPRequestSpec:
    """A request to send: method, target (path and query), headers and body."""

    method: str
    target: str
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes = b""

    def to_http1(self, host: str = "in-memory") -> bytes:
        """The request's HTTP/1.1 bytes (with ``host`` and, for a body, content-length)."""
        conn = h11.Connection(h11.CLIENT)
        headers = [("host", host), *self.headers]
        if self.body:
            headers.append(("content-length", str(len(self.body))))
        data = conn.send(h11.Request(method=self.method, target=self.target, headers=headers))
        if self.body:
            data += conn.send(h11.Data(data=self.body))
        return data + conn.send(h11.EndOfMessage())


def http_paths(*, max_segments: int = 4, max_segment: int = 12) -> st.SearchStrategy[str]:
    """Absolute paths of RFC 3986 ``pchar`` segments, percent-escapes included."""
    segment = st.lists(
        st.sampled_from(_PCHAR) | st.sampled_from(["%20", "%2F", "%C3%A9"]),
        max_size=max_segment,
    ).map("".join)
    return st.lists(segment, max_size=max_segments).map(lambda s: "/" + "/".join(s))


def header_names() -> st.SearchStrategy[str]:
    """Lower-case RFC 9110 tokens (not the framing headers), e.g. ``x-a1``."""
    return (
        st.text(_TCHAR, min_size=1, max_size=20)
        .map(lambda name: "x-" + name)
        .filter(lambda name: name not in _FRAMING)
    )


def header_values(*, max_size: int = 64) -> st.SearchStrategy[str]:
    """Visible ASCII with inner spaces; no leading or trailing whitespace."""
    return st.text(
        st.characters(min_codepoint=0x21, max_codepoint=0x7E) | st.just(" "), max_size=max_size
    ).map(str.strip)


def http_requests(
    *,
    methods: Sequence[str] = METHODS,
    paths: st.SearchStrategy[str] | None = None,
    max_headers: int = 8,
    max_header_bytes: int = 8192,
    max_body: int = 1024,
) -> st.SearchStrategy[HTTPRequestSpec]:
    """Requests whose head stays within ``max_header_bytes`` (the default ``max_header_size``
    of :class:`~netkit.ServerConfig` is 64 KiB; this stays well below) and with a body
    only for the methods that carry one."""

    @st.composite
    def build(draw: st.DrawFn) -> HTTPRequestSpec:
        method = draw(st.sampled_from(list(methods)))
        path = draw(paths if paths is not None else http_paths())
        query = draw(st.none() | st.text(_PCHAR, max_size=16))
        target = path if query is None else f"{path}?{query}"
        headers: list[tuple[str, str]] = []
        size = len(target) + 32
        for name, value in draw(
            st.lists(st.tuples(header_names(), header_values()), max_size=max_headers)
        ):
            size += len(name) + len(value) + 4
            if size > max_header_bytes:
                break
            headers.append((name, value))
        body = b""
        if method in ("POST", "PUT", "PATCH"):
            body = draw(st.binary(max_size=max_body))
        return HTTPRequestSpec(method, target, tuple(headers), body)

    return build()


# -- HTTP/2 ---------------------------------------------------------------------------


def h2_frame_sequences(
    *, max_frames: int = 12, max_streams: int = 4, max_data: int = 64
) -> st.SearchStrategy[list[Frame]]:
    """Client frame sequences after the preface: a SETTINGS first, then HEADERS (a GET or
    a POST to ``/``), DATA, RST_STREAM, WINDOW_UPDATE, PING, PRIORITY and SETTINGS in any
    order, stream ids odd and increasing. Legal per frame, but not always per state (DATA
    after END_STREAM, or on a reset stream, happens): a server must answer each with the
    RFC 9113 error, never crash. Serialise with :func:`h2_bytes`.
    """

    @st.composite
    def build(draw: st.DrawFn) -> list[Frame]:
        encoder = hpack.Encoder()
        frames: list[Frame] = [SettingsFrame(0)]
        opened: list[int] = []
        for _ in range(draw(st.integers(0, max_frames))):
            kind = draw(
                st.sampled_from(
                    ["headers", "data", "rst", "window", "ping", "priority", "settings"]
                )
            )
            if kind == "headers" or not opened:
                if len(opened) >= max_streams:
                    continue
                sid = 1 + 2 * len(opened)
                opened.append(sid)
                method = draw(st.sampled_from(["GET", "POST"]))
                block = encoder.encode(
                    [
                        (":method", method),
                        (":scheme", "http"),
                        (":authority", "in-memory"),
                        (":path", "/"),
                    ]
                )
                frame: Frame = HeadersFrame(sid, block)
                frame.flags.add("END_HEADERS")
                if method == "GET":
                    frame.flags.add("END_STREAM")
            elif kind == "data":
                frame = DataFrame(draw(st.sampled_from(opened)), draw(st.binary(max_size=max_data)))
                if draw(st.booleans()):
                    frame.flags.add("END_STREAM")
            elif kind == "rst":
                frame = RstStreamFrame(draw(st.sampled_from(opened)), draw(st.integers(0, 13)))
            elif kind == "window":
                sid = draw(st.sampled_from([0, *opened]))
                frame = WindowUpdateFrame(sid, draw(st.integers(1, 65535)))
            elif kind == "ping":
                frame = PingFrame(0, draw(st.binary(min_size=8, max_size=8)))
            elif kind == "priority":
                frame = PriorityFrame(draw(st.sampled_from(opened)), depends_on=0, stream_weight=15)
            else:
                frame = SettingsFrame(0, {0x4: draw(st.integers(0, 1 << 20))})
            frames.append(frame)
        return frames

    return build()


def h2_bytes(frames: Sequence[Frame], *, preface: bool = True) -> bytes:
    """The bytes of ``frames``, after the client preface unless ``preface=False``."""
    head = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" if preface else b""
    return head + b"".join(frame.serialize() for frame in frames)


# -- gRPC -----------------------------------------------------------------------------


def grpc_metadata_keys(*, binary: bool | None = None) -> st.SearchStrategy[str]:
    """Valid application keys (not reserved); ``binary`` True/False forces the ``-bin`` suffix."""
    base = st.text("abcdefghijklmnopqrstuvwxyz0123456789_-.", min_size=1, max_size=16).filter(
        lambda key: not is_reserved(key) and not key.endswith("-bin")
    )
    if binary is True:
        return base.map(lambda key: key + "-bin")
    if binary is False:
        return base
    return base | base.map(lambda key: key + "-bin")


def grpc_metadata(*, max_size: int = 6) -> st.SearchStrategy[list[tuple[str, str | bytes]]]:
    """Metadata pairs: ``-bin`` keys carry arbitrary bytes, the others printable ASCII
    (no leading/trailing space); keys repeat sometimes, as the protocol allows."""
    text_value = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=32).map(
        str.strip
    )
    pair = st.one_of(
        st.tuples(grpc_metadata_keys(binary=False), text_value),
        st.tuples(grpc_metadata_keys(binary=True), st.binary(max_size=32)),
    )
    return st.lists(pair, max_size=max_size)


def grpc_timeouts() -> st.SearchStrategy[str]:
    """``grpc-timeout`` header values: 1 to 8 digits and a unit (``H M S m u n``)."""
    return st.builds(
        lambda value, unit: f"{value}{unit}",
        st.integers(0, 99_999_999),
        st.sampled_from("HMSmun"),
    )


def grpc_frames(payloads: st.SearchStrategy[bytes] | None = None) -> st.SearchStrategy[bytes]:
    """Length-prefixed gRPC messages (uncompressed) carrying ``payloads``."""
    return (payloads if payloads is not None else st.binary(max_size=256)).map(
        grpc_framing.encode_message
    )


# -- WebSocket --------------------------------------------------------------------------


@attrs.frozen
class WSFrame:
    """One RFC 6455 frame. ``to_bytes`` masks it (clients must) unless ``masked`` is off."""

    opcode: int
    payload: bytes
    fin: bool = True
    masked: bool = True
    mask: bytes = b"\x00\x00\x00\x00"

    def to_bytes(self) -> bytes:
        head = bytearray([(0x80 if self.fin else 0) | self.opcode])
        bit = 0x80 if self.masked else 0
        n = len(self.payload)
        if n < 126:
            head.append(bit | n)
        elif n < 1 << 16:
            head.append(bit | 126)
            head += struct.pack("!H", n)
        else:
            head.append(bit | 127)
            head += struct.pack("!Q", n)
        if not self.masked:
            return bytes(head) + self.payload
        body = bytes(b ^ self.mask[i % 4] for i, b in enumerate(self.payload))
        return bytes(head) + self.mask + body


TEXT, BINARY, CONTINUATION, CLOSE, PING, PONG = 0x1, 0x2, 0x0, 0x8, 0x9, 0xA


def ws_messages(*, max_size: int = 256) -> st.SearchStrategy[str | bytes]:
    """Text or binary message payloads."""
    return st.text(max_size=max_size) | st.binary(max_size=max_size)


def ws_frames(
    message: st.SearchStrategy[str | bytes] | None = None,
    *,
    max_fragments: int = 4,
    control: bool = True,
) -> st.SearchStrategy[list[WSFrame]]:
    """The frames of one message, fragmented at drawn points, with PINGs (if ``control``)
    between fragments as RFC 6455 section 5.4 allows; masks drawn too."""

    @st.composite
    def build(draw: st.DrawFn) -> list[WSFrame]:
        payload = draw(message if message is not None else ws_messages())
        data = payload.encode() if isinstance(payload, str) else payload
        opcode = TEXT if isinstance(payload, str) else BINARY
        cuts = sorted(
            draw(st.lists(st.integers(0, len(data)), max_size=max_fragments - 1, unique=True))
        )
        pieces = [data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)], strict=True)]
        mask = draw(st.binary(min_size=4, max_size=4))
        frames: list[WSFrame] = []
        for n, piece in enumerate(pieces):
            if n and control and draw(st.booleans()):
                frames.append(WSFrame(PING, draw(st.binary(max_size=8)), mask=mask))
            last = n == len(pieces) - 1
            frames.append(WSFrame(opcode if n == 0 else CONTINUATION, piece, last, mask=mask))
        return frames

    return build()


# -- pub/sub envelopes -------------------------------------------------------------------


def pubsub_topics(
    segments: Sequence[str] = ("a", "b", "c"), *, max_depth: int = 3
) -> st.SearchStrategy[str]:
    """Concrete topics: dot-joined segments."""
    return st.lists(st.sampled_from(list(segments)), min_size=1, max_size=max_depth).map(".".join)


def pubsub_patterns(
    segments: Sequence[str] = ("a", "b", "c"), *, max_depth: int = 3
) -> st.SearchStrategy[str]:
    """Subscription patterns: segments, ``*`` for one segment, a trailing ``>``."""
    return st.lists(st.sampled_from([*segments, "*"]), min_size=1, max_size=max_depth).flatmap(
        lambda segs: st.sampled_from([".".join(segs), ".".join([*segs, ">"])])
    )


def json_values(*, max_leaves: int = 8) -> st.SearchStrategy[Any]:
    """JSON data (no floats that do not round-trip: NaN and infinities are left out)."""
    scalars = (
        st.none()
        | st.booleans()
        | st.integers(-(2**53), 2**53)
        | st.floats(allow_nan=False, allow_infinity=False)
        | st.text(max_size=16)
    )
    return st.recursive(
        scalars,
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
        max_leaves=max_leaves,
    )


def pubsub_envelopes(
    topics: st.SearchStrategy[str] | None = None,
    patterns: st.SearchStrategy[str] | None = None,
) -> st.SearchStrategy[env.ClientMessage]:
    """Client envelopes (``subscribe``, ``unsubscribe``, ``publish``); encode with
    ``netkit.wire.ws_envelope.encode_client``."""
    topics = topics if topics is not None else pubsub_topics()
    patterns = patterns if patterns is not None else pubsub_patterns()
    ids = st.integers(0, 2**31) | st.text("abcdef0123456789", min_size=1, max_size=8)
    return st.one_of(
        st.builds(env.Subscribe, ids, patterns),
        st.builds(env.Unsubscribe, ids, patterns),
        st.builds(env.Publish, ids, topics, json_values()),
    )


__all__ = [
    "BINARY",
    "CLOSE",
    "CONTINUATION",
    "METHODS",
    "PING",
    "PONG",
    "TEXT",
    "HTTPRequestSpec",
    "WSFrame",
    "grpc_frames",
    "grpc_metadata",
    "grpc_metadata_keys",
    "grpc_timeouts",
    "h2_bytes",
    "h2_frame_sequences",
    "header_names",
    "header_values",
    "http_paths",
    "http_requests",
    "json_values",
    "pubsub_envelopes",
    "pubsub_patterns",
    "pubsub_topics",
    "ws_frames",
    "ws_messages",
]
