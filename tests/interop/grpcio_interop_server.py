"""gRPC's interop TestService on grpcio's own (synchronous) server, as a peer for netkit.

Run as a script: ``python tests/interop/grpcio_interop_server.py --port 0 [--use_tls
--certfile F --keyfile F]``. It prints ``grpcio interop server on PORT`` once it listens
and serves until killed. netkit's interop client (``netkit interop-client``) runs its
cases against it, so this side must behave as the interop descriptions say a server
does, with grpcio deciding everything on the wire.

grpcio has no interop ``_pb2`` modules installed, so the methods are registered
generically with netkit's generated messages (``netkit.protos.grpc_testing``).

Seeing the compressed flag of a request (CompressedRequest): grpcio's Python API does
not show it, so the server turns grpc core's per-message decompression off
(``grpc.per_message_decompression=0``) and receives compressed messages as they came:
a gzip stream starts with 0x1f 0x8b, which can never start a serialized request
(0x1f would be field 3 with the invalid wire type 7). Such a message is decompressed
here and marked compressed. Only gzip is recognised, the one encoding the cases use.
"""

from __future__ import annotations

import argparse
import gzip
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent import futures
from typing import Any, NamedTuple

import grpc

from netkit.protos.grpc_testing import empty_pb2, messages_pb2

ECHO_INITIAL = "x-grpc-test-echo-initial"
ECHO_TRAILING = "x-grpc-test-echo-trailing-bin"
GZIP_MAGIC = b"\x1f\x8b"
_CODES = {code.value[0]: code for code in grpc.StatusCode}


class Received(NamedTuple):
    """A request message and whether it arrived compressed."""

    message: Any
    compressed: bool


def reader(message_type: Any) -> Callable[[bytes], Received]:
    def read(data: bytes) -> Received:
        compressed = data.startswith(GZIP_MAGIC)
        if compressed:
            data = gzip.decompress(data)
        return Received(message_type.FromString(data), compressed)

    return read


def payload(size: int) -> messages_pb2.Payload:
    return messages_pb2.Payload(type=messages_pb2.COMPRESSABLE, body=bytes(size))


def check_compressed(request: Received, context: grpc.ServicerContext) -> None:
    message = request.message
    if message.HasField("expect_compressed"):
        wanted = message.expect_compressed.value
        if wanted != request.compressed:
            context.abort(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"expect_compressed={wanted}, but the request's compressed flag is "
                f"{request.compressed}",
            )


def echo_metadata(context: grpc.ServicerContext) -> None:
    metadata = dict(context.invocation_metadata())
    if ECHO_TRAILING in metadata:
        context.set_trailing_metadata([(ECHO_TRAILING, metadata[ECHO_TRAILING])])
    if ECHO_INITIAL in metadata:
        context.send_initial_metadata([(ECHO_INITIAL, metadata[ECHO_INITIAL])])


def echo_status(message: Any, context: grpc.ServicerContext) -> None:
    if message.HasField("response_status") and message.response_status.code != 0:
        status = message.response_status
        context.abort(_CODES.get(status.code, grpc.StatusCode.UNKNOWN), status.message)


def empty_call(request: Received, context: grpc.ServicerContext) -> empty_pb2.Empty:
    echo_metadata(context)
    return empty_pb2.Empty()


def unary_call(request: Received, context: grpc.ServicerContext) -> messages_pb2.SimpleResponse:
    check_compressed(request, context)
    message = request.message
    if message.response_compressed.value:
        context.set_compression(grpc.Compression.Gzip)
    echo_metadata(context)
    echo_status(message, context)
    return messages_pb2.SimpleResponse(payload=payload(message.response_size))


def responses(message: Any, context: grpc.ServicerContext) -> Iterator[Any]:
    """The responses one StreamingOutputCallRequest asks for; the call's encoding is gzip
    (set by the caller) and each message opts out unless its parameters say compressed."""
    echo_status(message, context)
    for params in message.response_parameters:
        if params.interval_us:
            time.sleep(params.interval_us / 1_000_000)
        if not params.compressed.value:
            context.disable_next_message_compression()
        yield messages_pb2.StreamingOutputCallResponse(payload=payload(params.size))


def streaming_output_call(request: Received, context: grpc.ServicerContext) -> Iterator[Any]:
    context.set_compression(grpc.Compression.Gzip)
    echo_metadata(context)
    yield from responses(request.message, context)


def streaming_input_call(
    requests: Iterable[Received], context: grpc.ServicerContext
) -> messages_pb2.StreamingInputCallResponse:
    echo_metadata(context)
    total = 0
    for request in requests:
        check_compressed(request, context)
        total += len(request.message.payload.body)
    return messages_pb2.StreamingInputCallResponse(aggregated_payload_size=total)


def full_duplex_call(requests: Iterable[Received], context: grpc.ServicerContext) -> Iterator[Any]:
    context.set_compression(grpc.Compression.Gzip)
    echo_metadata(context)
    for request in requests:
        yield from responses(request.message, context)


def half_duplex_call(requests: Iterable[Received], context: grpc.ServicerContext) -> Iterator[Any]:
    context.set_compression(grpc.Compression.Gzip)
    echo_metadata(context)
    for request in list(requests):
        yield from responses(request.message, context)


def handlers() -> dict[str, grpc.RpcMethodHandler]:
    simple_in = reader(messages_pb2.SimpleRequest)
    output_in = reader(messages_pb2.StreamingOutputCallRequest)
    write = messages_pb2.SimpleResponse.SerializeToString
    write_output = messages_pb2.StreamingOutputCallResponse.SerializeToString
    return {
        "EmptyCall": grpc.unary_unary_rpc_method_handler(
            empty_call, reader(empty_pb2.Empty), empty_pb2.Empty.SerializeToString
        ),
        "UnaryCall": grpc.unary_unary_rpc_method_handler(unary_call, simple_in, write),
        "CacheableUnaryCall": grpc.unary_unary_rpc_method_handler(unary_call, simple_in, write),
        "StreamingOutputCall": grpc.unary_stream_rpc_method_handler(
            streaming_output_call, output_in, write_output
        ),
        "StreamingInputCall": grpc.stream_unary_rpc_method_handler(
            streaming_input_call,
            reader(messages_pb2.StreamingInputCallRequest),
            messages_pb2.StreamingInputCallResponse.SerializeToString,
        ),
        "FullDuplexCall": grpc.stream_stream_rpc_method_handler(
            full_duplex_call, output_in, write_output
        ),
        "HalfDuplexCall": grpc.stream_stream_rpc_method_handler(
            half_duplex_call, output_in, write_output
        ),
        # UnimplementedCall and UnimplementedService: not registered, so UNIMPLEMENTED.
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--use_tls", action="store_true")
    parser.add_argument("--certfile")
    parser.add_argument("--keyfile")
    args = parser.parse_args()
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=16),
        options=[("grpc.per_message_decompression", 0)],
    )
    server.add_generic_rpc_handlers(
        [grpc.method_handlers_generic_handler("grpc.testing.TestService", handlers())]
    )
    address = f"{args.host}:{args.port}"
    if args.use_tls:
        if not (args.certfile and args.keyfile):
            parser.error("--use_tls needs --certfile and --keyfile")
        with open(args.keyfile, "rb") as key, open(args.certfile, "rb") as cert:
            credentials = grpc.ssl_server_credentials([(key.read(), cert.read())])
        port = server.add_secure_port(address, credentials)
    else:
        port = server.add_insecure_port(address)
    server.start()
    print(f"grpcio interop server on {port}", flush=True)
    server.wait_for_termination()


if __name__ == "__main__":
    main()
