"""An observed app for the observability tests: REST, exact routes, gRPC and WebSocket."""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import grpc
import httpx
import trio
from prometheus_client.parser import text_string_to_metric_families

import netkit
from netkit.examples.grpc_echo import EchoService
from netkit.observe import Observability
from netkit.protos.echo.v1 import echo_pb2
from netkit.rest import RestRequest
from tests.ws.apps import echo


def make_app(obs: Observability) -> netkit.App:
    app = netkit.App()
    obs.mount(app)
    app.grpc.add_service(EchoService())
    app.ws.endpoint("/ws", echo)

    @app.rest.get("/v1/items/{item_id:int}")
    async def get_item(request: RestRequest[None]) -> dict[str, Any]:
        return {"id": request.params["item_id"]}

    async def hello(stream: netkit.HTTPStream) -> None:
        await netkit.respond_json(stream, 200, {"message": "hello, world"})

    async def slow(stream: netkit.HTTPStream) -> None:
        await trio.sleep(0.06)
        await stream.respond(200, [], b"late")

    async def upload(stream: netkit.HTTPStream) -> None:
        body = await stream.read_body()
        await stream.respond(200, [], body[:10])

    app.route("GET", "/hello", hello)
    app.route("GET", "/slow", slow)
    app.route("POST", "/upload", upload)
    return app


@asynccontextmanager
async def observed(
    obs: Observability | None = None, app: Any = None, **serve_kwargs: Any
) -> AsyncIterator[tuple[netkit.Server, Observability]]:
    obs = obs or Observability()
    async with trio.open_nursery() as nursery:
        server: netkit.Server = await nursery.start(
            functools.partial(obs.serve_with(app or make_app(obs)), **serve_kwargs),
            "127.0.0.1",
            0,
        )
        try:
            yield server, obs
        finally:
            nursery.cancel_scope.cancel()


async def wait_until(predicate: Callable[[], object]) -> None:
    """Poll ``predicate`` (state another task changes) until true, within 5 s."""
    with trio.fail_after(5):
        while True:
            if predicate():
                return
            await trio.sleep(0.01)


Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def parse(text: str) -> Samples:
    """Every sample of a scrape, parsed by prometheus-client's own text parser."""
    out: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[sample.name, tuple(sorted(sample.labels.items()))] = sample.value
    return out


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


async def scrape(client: httpx.AsyncClient, port: int, path: str = "/metrics") -> Samples:
    r = await client.get(f"http://127.0.0.1:{port}{path}")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain; version=0.0.4")
    return parse(r.text)


def echo_unary(channel: grpc.Channel) -> Any:
    """grpcio's callable for netkit.echo.v1.Echo/Unary on ``channel``."""
    return channel.unary_unary(
        "/netkit.echo.v1.Echo/Unary",
        request_serializer=echo_pb2.EchoRequest.SerializeToString,
        response_deserializer=echo_pb2.EchoResponse.FromString,
    )
