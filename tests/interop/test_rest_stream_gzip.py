"""gzip on streaming responses, as httpx and curl see it (HTTP/1.1 and HTTP/2)."""

from __future__ import annotations

import zlib
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import trio

from netkit.rest import RestAPI, RestRequest, StreamingResponse
from tests.helpers import running_server, url
from tests.interop.peers import run_tool

pytestmark = pytest.mark.interop

PROTOCOLS = pytest.mark.parametrize("http2", [False, True], ids=["http1.1", "h2"])
LINES = [b'{"tick":%d,"text":"lorem ipsum dolor sit amet"}\n' % n for n in range(50)]
GZIP = {"accept-encoding": "gzip"}


class Gated:
    """A producer that yields its next line only when the test allows it."""

    def __init__(self) -> None:
        self.send, self.receive = trio.open_memory_channel[None](0)
        self.produced = 0
        self.closed = trio.Event()

    async def lines(self) -> AsyncIterator[bytes]:
        try:
            async for _ in self.receive:
                yield LINES[self.produced]
                self.produced += 1
        finally:
            self.closed.set()


def make_api(gated: Gated | None = None) -> RestAPI:
    api = RestAPI()

    async def plain() -> AsyncIterator[bytes]:
        for line in LINES:
            yield line

    @api.get("/v1/ticks")
    async def ticks(request: RestRequest[None]) -> StreamingResponse:
        return StreamingResponse(plain(), content_type="application/x-ndjson")

    @api.get("/v1/tagged")
    async def tagged(request: RestRequest[None]) -> StreamingResponse:
        return StreamingResponse(plain(), content_type="text/plain", etag="v7")

    @api.get("/v1/binary")
    async def binary(request: RestRequest[None]) -> StreamingResponse:
        return StreamingResponse(plain())  # application/octet-stream: left alone

    @api.get("/v1/gated")
    async def gate(request: RestRequest[None]) -> StreamingResponse:
        assert gated is not None
        return StreamingResponse(gated.lines(), content_type="application/x-ndjson")

    return api


def client(http2: bool) -> httpx.AsyncClient:
    return httpx.AsyncClient(http1=not http2, http2=http2, timeout=5.0)


@PROTOCOLS
async def test_streams_are_gzipped_when_accepted(http2: bool) -> None:
    async with running_server(make_api()) as server, client(http2) as c:
        with trio.fail_after(10):
            resp = await c.get(url(server, "/v1/ticks"), headers=GZIP)
            assert resp.headers["content-encoding"] == "gzip"
            assert resp.headers["vary"] == "accept-encoding"
            assert "content-length" not in resp.headers
            assert resp.content == b"".join(LINES)  # httpx inflated it
            for refusal in ("identity", "gzip;q=0, *;q=1", "br"):
                plain = await c.get(url(server, "/v1/ticks"), headers={"accept-encoding": refusal})
                assert "content-encoding" not in plain.headers, refusal
                assert plain.headers["vary"] == "accept-encoding"
                assert plain.content == b"".join(LINES)
            star = await c.get(url(server, "/v1/ticks"), headers={"accept-encoding": "*;q=0.5"})
            assert star.headers["content-encoding"] == "gzip"
            binary = await c.get(url(server, "/v1/binary"), headers=GZIP)
            assert "content-encoding" not in binary.headers and "vary" not in binary.headers
            head = await c.head(url(server, "/v1/ticks"), headers=GZIP)
            assert head.headers["content-encoding"] == "gzip" and head.content == b""


@PROTOCOLS
async def test_etag_of_a_gzipped_stream(http2: bool) -> None:
    async with running_server(make_api()) as server, client(http2) as c:
        with trio.fail_after(10):
            zipped = await c.get(url(server, "/v1/tagged"), headers=GZIP)
            assert zipped.headers["etag"] == '"v7-gzip"'
            assert zipped.text == b"".join(LINES).decode()
            plain = await c.get(url(server, "/v1/tagged"), headers={"accept-encoding": "identity"})
            assert plain.headers["etag"] == '"v7"'
            for tag in ('"v7"', '"v7-gzip"', 'W/"v7"'):
                again = await c.get(
                    url(server, "/v1/tagged"), headers={**GZIP, "if-none-match": tag}
                )
                assert again.status_code == 304 and again.content == b""
                assert again.headers["etag"] == '"v7"'


@PROTOCOLS
async def test_each_chunk_arrives_before_the_stream_ends(http2: bool) -> None:
    """The producer makes line n+1 only after the client decoded line n from the raw bytes:
    a server that buffered (or held data in the compressor) would never let it through."""
    gated = Gated()
    async with running_server(make_api(gated)) as server, client(http2) as c:
        with trio.fail_after(10):
            async with c.stream("GET", url(server, "/v1/gated"), headers=GZIP) as resp:
                assert resp.headers["content-encoding"] == "gzip"
                raw = resp.aiter_raw()  # the bytes as sent, not inflated
                decoder = zlib.decompressobj(wbits=31)
                first = True
                for n in range(5):
                    await gated.send.send(None)
                    text = b""
                    while text != LINES[n]:
                        data = await raw.__anext__()
                        if first:
                            assert data[:2] == b"\x1f\x8b"  # a gzip member starts
                            first = False
                        text += decoder.decompress(data)
                        assert LINES[n].startswith(text)
                    assert gated.produced == n + 1
                await gated.send.aclose()
                async for data in raw:
                    assert decoder.decompress(data) == b""
                assert decoder.eof and not decoder.unused_data
        with trio.fail_after(5):
            await gated.closed.wait()  # the producer's aclose() ran


@pytest.mark.parametrize("flag", ["--http1.1", "--http2-prior-knowledge"])
async def test_curl_inflates_a_stream(curl: str, flag: str, tmp_path: Path) -> None:
    out, head = tmp_path / "out", tmp_path / "head"
    async with running_server(make_api()) as server:
        result = await run_tool(
            [
                *(curl, "-sS", flag, "--compressed", "-N", "-D", str(head), "-o", str(out)),
                *("-w", "%{response_code}", url(server, "/v1/ticks")),
            ]
        )
    assert result.stdout.decode() == "200"
    assert "content-encoding: gzip" in head.read_text().lower()
    assert out.read_bytes() == b"".join(LINES)
