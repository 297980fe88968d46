"""The hello app: ``GET /hello`` answers JSON, ``POST /echo`` sends the body back.

Run it with ``netkit serve netkit.examples.hello:app`` and ``curl localhost:8080/hello``.
"""

from __future__ import annotations

from netkit import App, HTTPStream, respond_json

app = App()

_HELLO = b'{"message":"hello, world"}'


@app.route("GET", "/hello")
async def hello(stream: HTTPStream) -> None:
    await stream.respond(200, [("content-type", "application/json")], _HELLO)


@app.route("POST", "/echo")
async def echo(stream: HTTPStream) -> None:
    """Streams the body back on HTTP/2; on HTTP/1.1 reads it all first.

    HTTP/1.1 clients (httpx, curl, browsers) write the whole request before they read
    the response. Echoing as the body arrives would fill both socket buffers once the
    body outgrows them, and then each side waits for the other forever. HTTP/2's
    per-stream flow control lets both directions move at once.
    """
    content_type = stream.request.headers.get("content-type") or "application/octet-stream"
    if stream.request.http_version != "2":
        body = await stream.read_body()
        await stream.respond(200, [("content-type", content_type)], body)
        return
    await stream.send_headers(200, [("content-type", content_type)])
    async for chunk in stream:
        await stream.send_data(chunk)
    await stream.send_data(b"", end_stream=True)


@app.route("GET", "/health")
async def health(stream: HTTPStream) -> None:
    await respond_json(stream, 200, {"status": "ok"})
