"""netkit's Echo service on purerpc 0.8.0 (anyio, trio backend), for ``grpc_run.py``.

This runs in its own virtual environment, ``benchmarks/.venvs/purerpc``, which
``grpc_run.py`` creates: purerpc 0.8.0 requires ``h2<4`` and netkit requires
``h2>=4.1``, so the two cannot share one environment.  For the same reason the
messages are not imported as ``netkit.protos.echo.v1.echo_pb2``: that would import
the ``netkit`` package (and its h2 4 code) first.  The generated module is loaded
from its directory instead; it depends on nothing but protobuf.

purerpc's ``Server.serve_async`` listens on every interface; the benchmark touches
loopback only, so this module opens its own listener on ``--host`` and hands the
connections to purerpc's ``ConnectionHandler`` (what ``serve_async`` does after
binding).  Only Unary and ServerStream are served.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
from purerpc import Cardinality, RPCSignature, Server, Service
from purerpc.server import ConnectionHandler

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "netkit" / "protos" / "echo" / "v1"))
import echo_pb2  # found through the path above

SERVICE = "netkit.echo.v1.Echo"
BACKEND = os.environ.get("PURERPC_BACKEND", "trio")  # anyio backend: trio or asyncio


async def unary(request: echo_pb2.EchoRequest) -> echo_pb2.EchoResponse:
    return echo_pb2.EchoResponse(payload=request.payload)


async def server_stream(
    request: echo_pb2.EchoStreamRequest,
) -> AsyncIterator[echo_pb2.EchoResponse]:
    reply = echo_pb2.EchoResponse(payload=request.payload)
    for _ in range(request.count):
        yield reply


def echo_service() -> Service:
    service = Service(SERVICE)
    # add_method rather than the @rpc decorator: the decorator reads the signature from
    # annotations, which ``from __future__ import annotations`` turns into strings.
    service.add_method(
        "Unary",
        unary,
        RPCSignature(Cardinality.UNARY_UNARY, echo_pb2.EchoRequest, echo_pb2.EchoResponse),
    )
    service.add_method(
        "ServerStream",
        server_stream,
        RPCSignature(Cardinality.UNARY_STREAM, echo_pb2.EchoStreamRequest, echo_pb2.EchoResponse),
    )
    return service


async def serve(host: str, port: int) -> None:
    service = echo_service()
    server = Server(port=port)  # only for ConnectionHandler's bookkeeping; never serves
    handler = ConnectionHandler({service.name: service}, server)
    listener = await anyio.create_tcp_listener(local_host=host, local_port=port)
    async with listener:
        await listener.serve(handler)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    # SIGTERM keeps its default action (the process ends): nothing here needs cleaning up.
    anyio.run(serve, args.host, args.port, backend=BACKEND)


if __name__ == "__main__":
    main()
