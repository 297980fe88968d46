"""Property tests of the HTTP/1.1 driver, in memory (hypothesis; pytest-trio runs each
example in its own ``trio.run``).

- Chunking: the same pipelined requests, cut into pieces anywhere, get the same answers
  as when they arrive in one piece, and the right ones.
- Malformed requests get one 4xx (501 for a transfer coding we do not implement) and a
  closed connection: never a 5xx, never a hang, never an answer to what follows.
- A request head over ``max_header_size`` gets 431 (or 400) and a close, however it is
  cut; one within the limit is served.

Requests go through ``memory_connection``; each piece is sent only once the server has
consumed the previous one and is waiting again, so the server sees exactly those pieces.
Responses are parsed with an independent h11 client connection.
"""

from __future__ import annotations

import itertools
import re

import attrs
import h11
import pytest
import trio
import trio.testing
from hypothesis import example, given
from hypothesis import strategies as st

from netkit import App, HTTPStream, ServerConfig
from netkit.examples.hello import app as hello_app
from netkit.examples.hello import hello
from netkit.http import Handler
from tests.helpers import memory_connection

HELLO = b'{"message":"hello, world"}'
TOKEN = re.compile(rb"[-!#$%&'*+.^_`|~0-9a-zA-Z]+")
REQUEST_LINE = re.compile(rb"[-!#$%&'*+.^_`|~0-9a-zA-Z]+ [\x21-\x7e]+ HTTP/[0-9]\.[0-9]")
VERSION = re.compile(rb"HTTP/[0-9]\.[0-9]")
#: A request line or header line's worth of arbitrary bytes (line breaks left out).
LINE_BYTES = st.binary(max_size=24).map(lambda b: b.replace(b"\r", b"").replace(b"\n", b""))


def buffered_echo_app() -> App:
    """The hello app's routes, but /echo reads the whole body before answering, so its
    response bytes do not depend on how the body arrived."""
    app = App()
    app.route("GET", "/hello", hello)

    @app.route("POST", "/echo")
    async def echo(stream: HTTPStream) -> None:
        body = await stream.read_body()
        content_type = stream.request.headers.get("content-type") or "application/octet-stream"
        await stream.respond(200, [("content-type", content_type)], body)

    return app


BUFFERED = buffered_echo_app()


# -- driving and parsing ---------------------------------------------------------------


async def exchange(app: Handler, pieces: list[bytes], config: ServerConfig | None = None) -> bytes:
    """Send ``pieces`` one by one; everything the server wrote until it closed.

    Fails if the server neither finishes nor closes within 2 s (a hang).
    """
    out = bytearray()
    async with memory_connection(app, config) as client:

        async def read() -> None:
            while True:
                try:
                    data = await client.receive_some(65536)
                except trio.BrokenResourceError:
                    return
                if not data:
                    return
                out.extend(data)

        with trio.move_on_after(10) as deadline:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(read)
                for piece in pieces:
                    await trio.testing.wait_all_tasks_blocked()
                    try:
                        await client.send_all(piece)
                    except (trio.BrokenResourceError, trio.ClosedResourceError):
                        break  # the server has closed: the rest is never read
        if deadline.cancelled_caught:
            raise AssertionError(f"server neither finished nor closed within 10 s; sent {out!r}")
    return bytes(out)


@attrs.frozen
class Response:
    status: int
    headers: tuple[tuple[bytes, bytes], ...]
    body: bytes

    def header(self, name: bytes) -> bytes | None:
        return next((v for k, v in self.headers if k == name), None)


def parse(data: bytes, heads: list[bool]) -> list[Response]:
    """Parse exactly ``len(heads)`` responses (True: answers a HEAD) and then the close.

    AssertionError if the bytes are not exactly that: a missing, truncated or extra
    response, or a connection the server kept open after announcing ``close``.
    """
    conn = h11.Connection(h11.CLIENT)
    conn.receive_data(data)
    conn.receive_data(b"")
    responses = []
    for is_head in heads:
        if conn.our_state is h11.DONE:
            assert conn.their_state is h11.DONE, f"connection not reusable after {responses}"
            conn.start_next_cycle()
        method = b"HEAD" if is_head else b"GET"
        conn.send(h11.Request(method=method, target="/", headers=[(b"host", b"x")]))
        conn.send(h11.EndOfMessage())
        head: h11.Response | None = None
        body = bytearray()
        while True:
            try:
                event = conn.next_event()
            except h11.RemoteProtocolError as exc:
                raise AssertionError(f"response {len(responses)} is broken: {exc}") from exc
            if isinstance(event, h11.Response):
                head = event
            elif isinstance(event, h11.Data):
                body += event.data
            elif isinstance(event, h11.EndOfMessage):
                break
            else:
                raise AssertionError(f"response {len(responses)} missing; got {event!r}")
        assert head is not None
        responses.append(Response(head.status_code, tuple(head.headers), bytes(body)))
    rest = conn.next_event()
    assert isinstance(rest, h11.ConnectionClosed), f"more after {len(heads)} responses: {rest!r}"
    return responses


def split(data: bytes, cuts: list[int]) -> list[bytes]:
    bounds = [0, *sorted(set(cuts)), len(data)]
    return [data[a:b] for a, b in itertools.pairwise(bounds) if b > a]


@st.composite
def pieces_of(draw: st.DrawFn, data: bytes) -> list[bytes]:
    """``data`` cut at arbitrary points (sometimes into single bytes)."""
    if len(data) < 2:
        return [data]
    if draw(st.integers(0, 9)) == 0:
        return [data[i : i + 1] for i in range(len(data))]
    cuts = draw(st.lists(st.integers(1, len(data) - 1), max_size=16))
    return split(data, cuts)


# -- well-formed pipelines ------------------------------------------------------------


@attrs.frozen
class Req:
    raw: bytes
    status: int
    body: bytes


EXTRA_HEADERS = st.lists(
    st.tuples(
        st.text("abcdefghijklmnopqrstuvwxyz-", min_size=1, max_size=8).map(lambda s: "x-" + s),
        st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), max_size=12),
    ),
    max_size=3,
)


@st.composite
def request(draw: st.DrawFn, last: bool) -> Req:
    kind = draw(st.sampled_from(["hello", "missing", "wrong-method", "length", "chunked"]))
    lines = [(f"{k}: {v}").encode() for k, v in draw(EXTRA_HEADERS)]
    lines.insert(draw(st.integers(0, len(lines))), b"host: example.test")
    if last:
        lines.append(b"connection: close")
    body = b""
    if kind == "hello":
        start, status, expect = b"GET /hello", 200, HELLO
    elif kind == "missing":
        start, status, expect = b"GET /missing?q=1", 404, b""
    elif kind == "wrong-method":
        start, status, expect = b"DELETE /hello", 405, b""
    elif kind == "length":
        body = draw(st.binary(max_size=300))
        lines.append(b"content-length: %d" % len(body))
        start, status, expect = b"POST /echo", 200, body
    else:
        chunks = draw(st.lists(st.binary(min_size=1, max_size=100), max_size=4))
        lines.append(b"transfer-encoding: chunked")
        for chunk in chunks:
            size = b"%x" % len(chunk) if draw(st.booleans()) else b"%X" % len(chunk)
            ext = draw(st.sampled_from([b"", b";name=value", b";flag"]))
            body += size + ext + b"\r\n" + chunk + b"\r\n"
        body += b"0\r\n" + draw(st.sampled_from([b"", b"x-trailer: yes\r\n"])) + b"\r\n"
        start, status, expect = b"POST /echo", 200, b"".join(chunks)
    head = start + b" HTTP/1.1\r\n" + b"".join(line + b"\r\n" for line in lines) + b"\r\n"
    return Req(head + body, status, expect)


@st.composite
def pipeline(draw: st.DrawFn) -> list[Req]:
    n = draw(st.integers(1, 4))
    return [draw(request(last=i == n - 1)) for i in range(n)]


def check_answers(responses: list[Response], reqs: list[Req]) -> None:
    assert [r.status for r in responses] == [q.status for q in reqs]
    for resp, req in zip(responses, reqs, strict=True):
        if req.status == 200:
            assert resp.body == req.body
    assert responses[-1].header(b"connection") == b"close"


@given(st.data())
async def test_any_chunking_gives_the_same_answers(data: st.DataObject) -> None:
    reqs = data.draw(pipeline(), label="requests")
    raw = b"".join(r.raw for r in reqs)
    pieces = data.draw(pieces_of(raw), label="pieces")
    heads = [False] * len(reqs)

    # Buffered echo: byte-for-byte the same output, whatever the chunking.
    whole = await exchange(BUFFERED, [raw])
    assert await exchange(BUFFERED, pieces) == whole
    check_answers(parse(whole, heads), reqs)

    # The example app streams its echo, so chunk framing may differ: same messages.
    streamed_whole = parse(await exchange(hello_app, [raw]), heads)
    streamed_pieces = parse(await exchange(hello_app, pieces), heads)
    assert streamed_pieces == streamed_whole
    check_answers(streamed_whole, reqs)


@given(st.data())
@example(data=None)  # type: ignore[arg-type]  # one byte at a time, explicitly
async def test_head_gets_headers_without_a_body(data: st.DataObject | None) -> None:
    raw = (
        b"HEAD /hello HTTP/1.1\r\nhost: x\r\n\r\n"
        b"GET /hello HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n"
    )
    pieces = (
        [raw[i : i + 1] for i in range(len(raw))] if data is None else data.draw(pieces_of(raw))
    )
    head, get = parse(await exchange(hello_app, pieces), [True, False])
    assert head.status == 200 and head.body == b""
    assert head.header(b"content-length") == str(len(HELLO)).encode()
    assert get.status == 200 and get.body == HELLO


# -- malformed requests ---------------------------------------------------------------

GOOD_HEAD = b"GET /hello HTTP/1.1\r\nhost: x\r\n"
FOLLOWER = b"GET /hello HTTP/1.1\r\nhost: x\r\n\r\n"  # must never be answered


MALFORMED = [
    "garbage",
    "method",
    "target",
    "version",
    "header-name",
    "header-value",
    "content-length",
    "transfer-encoding",
    "chunk",
]


@st.composite
def malformed(draw: st.DrawFn, kind: str) -> tuple[bytes, set[int]]:
    """Request bytes broken in the way ``kind`` says, and the acceptable statuses."""
    bad = {400}
    body = b""
    if kind == "garbage":
        line = draw(LINE_BYTES.filter(lambda b: b and not REQUEST_LINE.fullmatch(b)))
        head = line + b"\r\nhost: x\r\n"
    elif kind == "method":
        method = draw(LINE_BYTES.filter(lambda b: b and not TOKEN.fullmatch(b)))
        head = method + b" /hello HTTP/1.1\r\nhost: x\r\n"
    elif kind == "target":
        target = draw(LINE_BYTES.filter(lambda b: not re.fullmatch(rb"[\x21-\x7e]+", b)))
        head = b"GET " + target + b" HTTP/1.1\r\nhost: x\r\n"
    elif kind == "version":
        version = draw(LINE_BYTES.filter(lambda b: not VERSION.fullmatch(b)))
        head = b"GET /hello " + version + b"\r\nhost: x\r\n"
    elif kind == "header-name":
        # Not a token; no colon (it would end the name) and no leading whitespace (that
        # would make the line a continuation of the previous header, which is legal).
        # (An empty line is not a bad header but the end of the head: keep some bytes.)
        value = draw(st.sampled_from([b": value", b""]))
        name = draw(
            LINE_BYTES.map(lambda b: b.replace(b":", b"").lstrip(b" \t")).filter(
                lambda b: not TOKEN.fullmatch(b) and (b or value)
            )
        )
        head = GOOD_HEAD + name + value + b"\r\n"
    elif kind == "header-value":
        left, right = draw(LINE_BYTES), draw(LINE_BYTES)
        head = GOOD_HEAD + b"x-value: " + left + b"\x00" + right + b"\r\n"
    elif kind == "content-length":
        a, b = draw(st.lists(st.integers(0, 10**6), min_size=2, max_size=2, unique=True))
        value = draw(
            st.sampled_from(
                [
                    f"content-length: {a}\r\ncontent-length: {b}",
                    f"content-length: {a}, {b}",
                    "content-length: -1",
                    "content-length: abc",
                    "content-length: 1.5",
                    "content-length: 0x10",
                    "content-length: +5",
                    "content-length: 1 2",
                    "content-length: ",
                    "content-length: " + "9" * 25,
                ]
            )
        )
        head = b"POST /echo HTTP/1.1\r\nhost: x\r\n" + value.encode() + b"\r\n"
    elif kind == "transfer-encoding":
        # RFC 9112 6.1: a transfer coding the server does not understand gets 501.
        value = draw(
            st.sampled_from(
                [
                    "transfer-encoding: gzip",
                    "transfer-encoding: gzip, chunked",
                    "transfer-encoding: identity",
                    "transfer-encoding: chunked\r\ntransfer-encoding: chunked",
                ]
            )
        )
        head = b"POST /echo HTTP/1.1\r\nhost: x\r\n" + value.encode() + b"\r\n"
        bad = {501}
    else:
        head = b"POST /echo HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n"
        body = draw(
            st.sampled_from(
                [
                    b"zz\r\nabc\r\n0\r\n\r\n",  # size is not hex
                    b"\r\nabc\r\n0\r\n\r\n",  # size is missing
                    b"-3\r\nabc\r\n0\r\n\r\n",
                    b"3\r\nabcdef\r\n0\r\n\r\n",  # more data than the size says
                    b"1" * 21 + b"\r\nabc\r\n0\r\n\r\n",  # size of 21 hex digits
                ]
            )
        )
    return head + b"\r\n" + body + FOLLOWER, bad


@pytest.mark.parametrize("kind", MALFORMED)
@given(data=st.data())
async def test_malformed_request_gets_4xx_and_close(kind: str, data: st.DataObject) -> None:
    raw, statuses = data.draw(malformed(kind), label="request")
    pieces = data.draw(pieces_of(raw), label="pieces")
    (response,) = parse(await exchange(BUFFERED, pieces), [False])
    assert response.status in statuses, (kind, response)


async def test_content_length_with_transfer_encoding_closes_after_the_response() -> None:
    """RFC 9112 6.1: with both headers the server may reject the request or use the
    chunked framing, but either way it MUST close the connection after responding
    (request smuggling defence): the pipelined request after it is never answered."""
    raw = (
        b"POST /echo HTTP/1.1\r\nhost: x\r\ncontent-length: 3\r\n"
        b"transfer-encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n" + FOLLOWER
    )
    (response,) = parse(await exchange(BUFFERED, [raw]), [False])
    assert response.status in (200, 400)


# -- oversized heads ------------------------------------------------------------------

BASE = b"GET /hello HTTP/1.1\r\nhost: x\r\nconnection: close\r\n"
SHAPES = ["one-header", "many-headers", "long-target", "long-method", "padded-value"]


def head_of_size(shape: str, size: int) -> bytes:
    """A complete request head (up to and including its blank line) of ``size`` bytes."""
    end = b"\r\n\r\n"
    if shape == "one-header":
        prefix = BASE + b"x-big: "
        head = prefix + b"a" * (size - len(prefix) - len(end)) + end
    elif shape == "many-headers":
        lines = BASE
        i = 0
        while size - len(lines) - 2 > 40:
            lines += b"x-h%04d: %s\r\n" % (i, b"v" * 20)
            i += 1
        prefix = lines + b"x-last: "
        head = prefix + b"v" * (size - len(prefix) - len(end)) + end
    elif shape == "long-target":
        prefix, rest = b"GET /hello?q=", BASE[len(b"GET /hello") :]
        head = prefix + b"a" * (size - len(prefix) - len(rest) - 2) + rest + b"\r\n"
    elif shape == "long-method":
        rest = BASE[len(b"GET") :] + b"\r\n"
        head = b"G" * (size - len(rest)) + rest
    else:  # a value padded with whitespace, which h11 strips before we ever see it
        prefix = BASE + b"x-pad:"
        head = prefix + b" " * (size - len(prefix) - len(b"v") - len(end)) + b"v" + end
    assert len(head) == size, (shape, size, len(head))
    return head


@given(
    limit=st.integers(256, 2048),
    shape=st.sampled_from(SHAPES),
    excess=st.integers(5, 1024),
    data=st.data(),
)
async def test_head_over_the_limit_gets_431(
    limit: int, shape: str, excess: int, data: st.DataObject
) -> None:
    """``max_header_size`` bounds the bytes of the request head (request line and header
    lines), however they arrive; 5 bytes of slack cover any reading of the blank line."""
    raw = head_of_size(shape, limit + excess)
    pieces = data.draw(pieces_of(raw), label="pieces")
    config = ServerConfig(max_header_size=limit)
    (response,) = parse(await exchange(hello_app, pieces, config), [False])
    assert response.status in (431, 400), (len(raw), response)


@given(
    limit=st.integers(256, 2048),
    shape=st.sampled_from(SHAPES),
    room=st.integers(0, 200),
    data=st.data(),
)
async def test_head_within_the_limit_is_served(
    limit: int, shape: str, room: int, data: st.DataObject
) -> None:
    raw = head_of_size(shape, max(limit - room, 200))
    pieces = data.draw(pieces_of(raw), label="pieces")
    config = ServerConfig(max_header_size=limit)
    (response,) = parse(await exchange(hello_app, pieces, config), [False])
    assert response.status == (405 if shape == "long-method" else 200), response
