"""netkit.wire.h1_client against h11, an HTTP/1.1 implementation we did not write.

Responses are written by h11's server side (any status, headers, body, framing and
split into reads anywhere) and must parse to what h11's client side reads from the same
bytes, including whether the connection may carry another request. Request heads go the
other way: what ``encode_request_head`` writes, h11's server reads back unchanged. The
framing rules h11 never produces are checked one by one on hand-written responses.
"""

from __future__ import annotations

import h11
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from netkit.wire.h1_client import (
    END,
    LAST_CHUNK,
    NEED_DATA,
    IncompleteResponse,
    ResponseError,
    ResponseHead,
    ResponseParser,
    encode_chunk,
    encode_request_head,
)

TCHAR = "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
names = st.text(TCHAR, min_size=1, max_size=12).map(str.encode)
#: Field values h11 accepts: visible ASCII and obs-text, inner spaces and tabs.
values = st.builds(
    lambda core, inner: (core[:1] + inner + core[1:] if len(core) > 1 else core).encode("latin-1"),
    st.text(
        st.characters(min_codepoint=0x21, max_codepoint=0xFF, exclude_characters="\x7f"),
        max_size=10,
    ),
    st.sampled_from(["", " ", "\t", " x "]),
)
framing = {b"content-length", b"transfer-encoding", b"connection"}
plain_headers = st.lists(st.tuples(names, values), max_size=6).map(
    lambda hs: [(n.lower(), v) for n, v in hs if n.lower() not in framing]
)


def _split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    pieces, last = [], 0
    for p in [*points, len(data)]:
        pieces.append(data[last:p])
        last = p
    return [p for p in pieces if p]


def _parse(parser: ResponseParser, pieces: list[bytes], eof: bool) -> tuple[list[object], bool]:
    """Every event, feeding one piece whenever the parser needs data."""
    events: list[object] = []
    feed = list(pieces) + ([b""] if eof else [])
    while True:
        event = parser.next_event()
        if event is NEED_DATA:
            if not feed:
                return events, False
            parser.feed(feed.pop(0))
            continue
        events.append(event)
        if event is END:
            return events, True


def _h11_reads(method: bytes, wire: bytes, eof: bool) -> tuple[list[h11.Event], bool]:
    client = h11.Connection(h11.CLIENT)
    client.send(h11.Request(method=method, target="/", headers=[("host", "x")]))
    client.send(h11.EndOfMessage())
    client.receive_data(wire)
    if eof:
        client.receive_data(b"")
    events = []
    while True:
        event = client.next_event()
        if event is h11.NEED_DATA or event is h11.PAUSED:
            break
        events.append(event)
        if isinstance(event, h11.EndOfMessage):
            break
    reusable = client.our_state is h11.DONE and client.their_state is h11.DONE
    return events, reusable


@st.composite
def h11_responses(draw: st.DrawFn) -> tuple[bytes, bytes, bool]:
    """(method, the bytes h11's server side wrote, whether the peer then closes)."""
    method = draw(st.sampled_from([b"GET", b"POST", b"HEAD"]))
    http10_client = draw(st.booleans())
    server = h11.Connection(h11.SERVER)
    request = b"%s / HTTP/%s\r\nhost: x\r\n\r\n" % (method, b"1.0" if http10_client else b"1.1")
    server.receive_data(request)
    assert isinstance(server.next_event(), h11.Request)
    assert isinstance(server.next_event(), h11.EndOfMessage)
    wire = b""
    for _ in range(draw(st.integers(0, 2))):
        status = draw(st.sampled_from([100, 102, 103]))
        wire += server.send(h11.InformationalResponse(status_code=status, headers=[]))
    status = draw(st.sampled_from([200, 201, 204, 301, 304, 404, 500, 503]))
    headers = draw(plain_headers)
    body = draw(st.lists(st.binary(min_size=1, max_size=40), max_size=4))
    total = sum(map(len, body))
    kind = draw(st.sampled_from(["length", "chunked", "none"]))
    if draw(st.booleans()):
        headers.append((b"connection", b"close"))
    if kind == "length":
        headers.append((b"content-length", str(total).encode()))
    elif kind == "chunked" and not http10_client:
        headers.append((b"transfer-encoding", b"chunked"))
    wire += server.send(h11.Response(status_code=status, headers=headers))
    sends_body = method != b"HEAD" and status not in (204, 304)
    for piece in body if sends_body else []:
        wire += server.send(h11.Data(data=piece))
    trailers = draw(plain_headers) if kind == "chunked" and not http10_client else []
    end = server.send(h11.EndOfMessage(headers=trailers if sends_body else []))
    wire += end or b""
    closes = server.our_state is h11.MUST_CLOSE
    return method, wire, closes


@given(h11_responses(), st.lists(st.integers(0, 2000), max_size=6))
def test_reads_what_h11_reads(case: tuple[bytes, bytes, bool], cuts: list[int]) -> None:
    method, wire, closes = case
    expected, h11_reusable = _h11_reads(method, wire, eof=closes)
    parser = ResponseParser()
    parser.start(method)
    events, ended = _parse(parser, _split(wire, cuts), eof=closes)
    assert ended
    heads = [e for e in events if isinstance(e, ResponseHead)]
    want_heads = [e for e in expected if isinstance(e, h11.InformationalResponse | h11.Response)]
    assert [(h.status, h.reason, h.headers) for h in heads] == [
        (e.status_code, bytes(e.reason), list(e.headers)) for e in want_heads
    ]
    body = b"".join(e for e in events if isinstance(e, bytes))
    assert body == b"".join(bytes(e.data) for e in expected if isinstance(e, h11.Data))
    end = expected[-1]
    assert isinstance(end, h11.EndOfMessage)
    assert parser.trailers == list(end.headers)
    assert parser.idle
    assert parser.reusable == h11_reusable


@given(h11_responses())
def test_complete_body_is_the_whole_body(case: tuple[bytes, bytes, bool]) -> None:
    method, wire, closes = case
    expected, _ = _h11_reads(method, wire, eof=closes)
    parser = ResponseParser()
    parser.start(method)
    parser.feed(wire)
    while not isinstance(head := parser.next_event(), ResponseHead) or head.status < 200:
        pass
    body = parser.complete_body()
    want = b"".join(bytes(e.data) for e in expected if isinstance(e, h11.Data))
    if body is None:  # only for bodies whose end is not known from the head
        assert any(n in (b"transfer-encoding",) for n, _ in head.headers) or closes
    else:
        assert body == want
        assert parser.idle


def test_keeps_the_connection_for_the_next_response() -> None:
    parser = ResponseParser()
    for n in range(3):
        parser.start(b"GET")
        parser.feed(b"HTTP/1.1 200 OK\r\ncontent-length: 1\r\n\r\n%d" % n)
        assert isinstance(parser.next_event(), ResponseHead)
        assert parser.next_event() == b"%d" % n
        assert parser.next_event() is END
        assert parser.reusable and parser.idle


def test_a_101_hands_the_rest_over() -> None:
    parser = ResponseParser()
    parser.start(b"GET")
    parser.feed(b"HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\n\r\n\x81\x02hi")
    head = parser.next_event()
    assert isinstance(head, ResponseHead) and head.status == 101
    assert parser.switched and not parser.reusable
    assert parser.leftover() == b"\x81\x02hi"


@pytest.mark.parametrize(
    ("wire", "why"),
    [
        (b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\ncontent-length: 3\r\n\r\nab", "content-length"),
        (b"HTTP/1.1 200 OK\r\ncontent-length: 2, 3\r\n\r\nab", "content-length"),
        (b"HTTP/1.1 200 OK\r\ncontent-length: -1\r\n\r\n", "content-length"),
        (b"HTTP/1.1 200 OK\r\ncontent-length: 0x10\r\n\r\n", "content-length"),
        (b"HTTP/1.1 200 OK\r\ntransfer-encoding: gzip\r\n\r\n", "transfer-encoding"),
        (b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked, gzip\r\n\r\n", "transfer-encoding"),
        (b"HTTP/1.1 200 OK\r\nbad name: x\r\n\r\n", "header line"),
        (b"HTTP/1.1 200 OK\r\nname : x\r\n\r\n", "header line"),
        (b"HTTP/1.1 200 OK\r\na: b\r\n folded\r\n\r\n", "header line"),
        (b"HTTP/1.1 200 OK\r\na: b\nc: d\r\n\r\n", "header line"),
        (b"HTTP/1.1 200 OK\r\na: b\x01c\r\n\r\n", "header line"),
        (b"HTTP/1.1 200 OK\r\na: b\rc\r\n\r\n", "header line"),
        (b"HTTP/2 200 OK\r\n\r\n", "status line"),
        (b"HTTP/1.1 20 OK\r\n\r\n", "status line"),
        (b"HTTP/1.1  200 OK\r\n\r\n", "status line"),
        (b"\r\n\r\n", "status line"),
        (b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nzz\r\n", "chunk-size"),
        (b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n2\r\nabX\r\n", "CRLF"),
        (b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n" + b"1" * 5000, "too long"),
        (b"HTTP/1.1 200 OK\r\n" + b"a: b\r\n" * 20000, "exceeds"),
    ],
)
def test_refuses_broken_framing(wire: bytes, why: str) -> None:
    parser = ResponseParser()
    parser.start(b"GET")
    parser.feed(wire)
    with pytest.raises(ResponseError, match=why) as caught:
        while parser.next_event() is not NEED_DATA:
            pass
    assert not isinstance(caught.value, IncompleteResponse)


@pytest.mark.parametrize(
    "wire",
    [
        b"",
        b"HTTP/1.1 200 OK\r\ncontent-le",
        b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nab",
        b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nab",
        b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n2\r\nab",
        b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n2\r\nab\r\n0\r\nx: y\r\n",
    ],
)
def test_a_close_inside_a_response_is_incomplete(wire: bytes) -> None:
    parser = ResponseParser()
    parser.start(b"GET")
    parser.feed(wire)
    parser.feed(b"")
    with pytest.raises(IncompleteResponse):
        while parser.next_event() is not END:
            pass


def test_transfer_encoding_wins_over_content_length_and_closes() -> None:
    parser = ResponseParser()
    parser.start(b"GET")
    parser.feed(
        b"HTTP/1.1 200 OK\r\ncontent-length: 99\r\ntransfer-encoding: chunked\r\n\r\n"
        b"3\r\nabc\r\n0\r\n\r\n"
    )
    events, ended = _parse(parser, [], eof=False)
    assert ended and b"".join(e for e in events if isinstance(e, bytes)) == b"abc"
    assert not parser.reusable


def test_unasked_bytes_after_a_response_end_the_connection() -> None:
    parser = ResponseParser()
    parser.start(b"GET")
    parser.feed(b"HTTP/1.1 200 OK\r\ncontent-length: 1\r\n\r\naHTTP/1.1 200 OK\r\n")
    assert _parse(parser, [], eof=False)[1]
    assert not parser.reusable
    with pytest.raises(RuntimeError):
        parser.start(b"GET")


def test_a_response_without_length_runs_to_the_close() -> None:
    parser = ResponseParser()
    parser.start(b"GET")
    events, ended = _parse(parser, [b"HTTP/1.1 200 OK\r\n\r\nab", b"cd"], eof=True)
    assert ended and b"".join(e for e in events if isinstance(e, bytes)) == b"abcd"
    assert not parser.reusable


# -- requests ---------------------------------------------------------------------------
methods = st.text("ABCDEFGHIJKLMNOPQRSTUVWXYZ", min_size=1, max_size=8).map(str.encode)
targets = st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=30)


@given(methods, targets, plain_headers, st.lists(st.binary(min_size=1, max_size=20), max_size=3))
def test_h11_reads_the_request_as_written(
    method: bytes, target: str, headers: list[tuple[bytes, bytes]], chunks: list[bytes]
) -> None:
    target = "/" + target
    head = [(b"host", b"example"), *headers, (b"transfer-encoding", b"chunked")]
    wire = encode_request_head(method, target.encode(), head)
    wire += b"".join(encode_chunk(c) for c in chunks) + LAST_CHUNK
    server = h11.Connection(h11.SERVER)
    server.receive_data(wire)
    request = server.next_event()
    assert isinstance(request, h11.Request)
    assert (request.method, request.target) == (method, target.encode())
    assert list(request.headers) == [(n, v.strip(b" \t")) for n, v in head]
    body = b""
    while isinstance(event := server.next_event(), h11.Data):
        body += event.data
    assert isinstance(event, h11.EndOfMessage)
    assert body == b"".join(chunks)


@given(
    st.sampled_from(["value", "name", "method", "target"]),
    st.sampled_from([b"\r", b"\n", b"\x00", b"\r\nx: y", b" "]),
    st.integers(0, 4),
)
def test_refuses_what_would_split_the_request(where: str, bad: bytes, at: int) -> None:
    parts = {"value": b"abcd", "name": b"abcd", "method": b"GET", "target": b"/abc"}
    clean = parts[where]
    parts[where] = clean[:at] + bad + clean[at:]
    assume(not (where == "value" and bad == b" "))  # a space inside a value is fine
    with pytest.raises(ValueError):
        encode_request_head(parts["method"], parts["target"], [(parts["name"], parts["value"])])


@pytest.mark.parametrize(
    ("method", "wire"),
    [
        (b"GET", b"HTTP/1.1 304 Not Modified\r\ncontent-length: 10\r\n\r\n"),
        (b"GET", b"HTTP/1.1 204 No Content\r\ncontent-length: 10\r\n\r\n"),
        (b"HEAD", b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\n"),
        (b"HEAD", b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n"),
    ],
)
def test_bodyless_responses_end_with_their_head(method: bytes, wire: bytes) -> None:
    parser = ResponseParser()
    parser.start(method)
    events, ended = _parse(parser, [wire], eof=False)
    assert ended and len(events) == 2 and parser.reusable


def test_an_http10_response_is_the_connections_last() -> None:
    parser = ResponseParser()
    parser.start(b"GET")
    events, ended = _parse(parser, [b"HTTP/1.0 200 OK\r\ncontent-length: 1\r\n\r\na"], eof=False)
    assert ended and events[1] == b"a"
    assert not parser.reusable


def test_a_trailer_section_is_bounded_like_a_head() -> None:
    parser = ResponseParser(max_head_size=1024)
    parser.start(b"GET")
    parser.feed(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n1\r\na\r\n0\r\n")
    parser.feed(b"x-t: " + b"v" * 2000 + b"\r\n")
    with pytest.raises(ResponseError, match="trailer section exceeds"):
        while parser.next_event() is not NEED_DATA:
            pass
