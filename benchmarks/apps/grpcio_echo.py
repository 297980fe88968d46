"""netkit's Echo service on grpcio, and a grpcio client that checks any Echo server.

grpcio is the reference implementation, so it plays two parts in ``grpc_run.py``:

* ``--mode sync``: grpcio's classic server, handlers run on a ThreadPoolExecutor;
* ``--mode aio``: grpcio's asyncio server (``grpc.aio``);
* ``--mode check``: a client that calls Unary and ServerStream once on ``--port`` and
  prints one JSON line saying whether the answers are right.  h2load only sees HTTP
  statuses (a gRPC error is still HTTP 200), so every server is checked with a peer
  that reads grpc-status and the messages before it is put under load.

There is no generated grpcio code (no ``echo_pb2_grpc``): the servers use generic
handlers and the client ``channel.unary_unary`` / ``unary_stream`` over netkit's
``echo_pb2`` messages, so the same message classes are used on every side.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
import threading
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor

import grpc
import grpc.aio

from netkit.protos.echo.v1 import echo_pb2

SERVICE = "netkit.echo.v1.Echo"
SYNC_WORKERS = 16  # enough to keep a core busy; the GIL makes more threads pointless

Request = echo_pb2.EchoRequest
StreamRequest = echo_pb2.EchoStreamRequest
Response = echo_pb2.EchoResponse


def _unary(request: echo_pb2.EchoRequest, context: object) -> echo_pb2.EchoResponse:
    return Response(payload=request.payload)


def _server_stream(
    request: echo_pb2.EchoStreamRequest, context: object
) -> Iterator[echo_pb2.EchoResponse]:
    reply = Response(payload=request.payload)
    for _ in range(request.count):
        yield reply


async def _unary_aio(request: echo_pb2.EchoRequest, context: object) -> echo_pb2.EchoResponse:
    return Response(payload=request.payload)


async def _server_stream_aio(
    request: echo_pb2.EchoStreamRequest, context: object
) -> AsyncIterator[echo_pb2.EchoResponse]:
    reply = Response(payload=request.payload)
    for _ in range(request.count):
        yield reply


def _handler(unary: object, server_stream: object) -> grpc.GenericRpcHandler:
    """Unary and ServerStream only: the benchmark drives nothing else."""
    return grpc.method_handlers_generic_handler(
        SERVICE,
        {
            "Unary": grpc.unary_unary_rpc_method_handler(
                unary,
                request_deserializer=Request.FromString,
                response_serializer=Response.SerializeToString,
            ),
            "ServerStream": grpc.unary_stream_rpc_method_handler(
                server_stream,
                request_deserializer=StreamRequest.FromString,
                response_serializer=Response.SerializeToString,
            ),
        },
    )


def serve_sync(host: str, port: int) -> None:
    server = grpc.server(ThreadPoolExecutor(max_workers=SYNC_WORKERS))
    server.add_generic_rpc_handlers((_handler(_unary, _server_stream),))
    if server.add_insecure_port(f"{host}:{port}") != port:
        raise SystemExit(f"could not bind {host}:{port}")
    stopped = threading.Event()
    # SIGTERM from the harness: stop at once (no grace), then leave.
    signal.signal(signal.SIGTERM, lambda *_: stopped.set())
    server.start()
    try:
        stopped.wait()
    finally:
        server.stop(grace=None)


async def serve_aio(host: str, port: int) -> None:
    server = grpc.aio.server()
    server.add_generic_rpc_handlers((_handler(_unary_aio, _server_stream_aio),))
    if server.add_insecure_port(f"{host}:{port}") != port:
        raise SystemExit(f"could not bind {host}:{port}")
    stopped = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stopped.set)
    await server.start()
    try:
        await stopped.wait()
    finally:
        await server.stop(grace=None)


def check(host: str, port: int, payload_size: int, count: int, timeout: float) -> dict[str, object]:
    """Call Unary and ServerStream once each; list every way the answers are wrong."""
    problems: list[str] = []
    payload = bytes(i % 251 for i in range(payload_size))  # not all zeros: a real echo
    with grpc.insecure_channel(f"{host}:{port}") as channel:
        unary = channel.unary_unary(
            f"/{SERVICE}/Unary",
            request_serializer=Request.SerializeToString,
            response_deserializer=Response.FromString,
        )
        stream = channel.unary_stream(
            f"/{SERVICE}/ServerStream",
            request_serializer=StreamRequest.SerializeToString,
            response_deserializer=Response.FromString,
        )
        try:
            reply, call = unary.with_call(Request(payload=payload), timeout=timeout)
            if call.code() != grpc.StatusCode.OK:
                problems.append(f"Unary: status {call.code().name}")
            if reply.payload != payload:
                problems.append(f"Unary: payload {reply.payload[:32]!r} is not the one sent")
        except grpc.RpcError as exc:
            problems.append(f"Unary: {exc.code().name} {exc.details()}")  # type: ignore[attr-defined]
        received = wrong = 0
        try:
            replies = stream(StreamRequest(payload=payload, count=count), timeout=timeout)
            for reply in replies:
                received += 1
                wrong += reply.payload != payload
            if replies.code() != grpc.StatusCode.OK:
                problems.append(f"ServerStream: status {replies.code().name}")
        except grpc.RpcError as exc:
            problems.append(f"ServerStream: {exc.code().name} {exc.details()}")  # type: ignore[attr-defined]
        if received != count:
            problems.append(f"ServerStream: {received} of {count} messages")
        if wrong:
            problems.append(f"ServerStream: {wrong} messages with the wrong payload")
    return {"ok": not problems, "problems": problems, "stream_messages": received}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mode", choices=["sync", "aio", "check"], required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--payload-size", type=int, default=16, help="check: bytes per message")
    parser.add_argument("--count", type=int, default=10, help="check: ServerStream messages")
    parser.add_argument("--timeout", type=float, default=20.0, help="check: seconds per call")
    args = parser.parse_args()
    if args.mode == "sync":
        serve_sync(args.host, args.port)
    elif args.mode == "aio":
        asyncio.run(serve_aio(args.host, args.port))
    else:
        result = check(args.host, args.port, args.payload_size, args.count, args.timeout)
        print(json.dumps(result))
        return 0 if result["ok"] else 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
