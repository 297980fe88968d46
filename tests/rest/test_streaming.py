"""Streaming responses: backpressure from HTTP/2 flow control reaches the producer; HEAD
does not run the producer at all."""

from __future__ import annotations

from collections.abc import AsyncIterator

import h2.events
import trio

from netkit.rest import RestAPI, RestRequest, StreamingResponse
from tests.helpers import RawH2, running_server

CHUNK = 16 * 1024


def make_api(produced: list[int]) -> RestAPI:
    api = RestAPI()

    @api.get("/v1/flood")
    async def flood(request: RestRequest[None]) -> StreamingResponse:
        async def chunks() -> AsyncIterator[bytes]:
            for _ in range(640):  # 10 MiB if nobody stopped it
                produced.append(CHUNK)
                yield b"x" * CHUNK

        return StreamingResponse(chunks())

    return api


async def test_a_client_that_does_not_read_stops_the_producer() -> None:
    produced: list[int] = []
    async with running_server(make_api(produced)) as server, RawH2.connect(server) as client:
        client.auto_ack = False  # never give the window back
        sid = client.request("/v1/flood")
        await client.flush()
        with trio.move_on_after(1.0):
            while True:
                await client.receive()
        received = sum(
            len(e.data)
            for e in client.events
            if isinstance(e, h2.events.DataReceived) and e.stream_id == sid
        )
        assert received <= 65_535  # the client's default stream window
        # What was produced beyond what was sent sits in bounded buffers, not in memory
        # growing with the body: far below the 10 MiB the producer would make.
        assert sum(produced) < 512 * 1024, sum(produced)


async def test_head_of_a_streaming_get_does_not_produce() -> None:
    produced: list[int] = []
    async with running_server(make_api(produced)) as server, RawH2.connect(server) as client:
        sid = client.request("/v1/flood", method="HEAD")
        await client.flush()
        status, body = await client.response(sid)
    assert status == 200 and body == b""
    assert produced == []
