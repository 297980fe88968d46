"""gRPC's interop test cases on grpcio's own (synchronous) client, as a peer for netkit.

Run as a script with the flags of gRPC's interop clients::

    python tests/interop/grpcio_interop_client.py --server_port N --test_case all \\
        [--server_host H] [--use_tls --ca_file F [--server_host_override NAME]]

It prints ``PASS name`` or ``FAIL name: why`` per case and exits 0 only if every case
passed. ``--test_case`` takes a name, several separated by commas, or ``all``.

grpcio has no interop ``_pb2`` modules installed, so the methods are called generically
with netkit's generated messages (``netkit.protos.grpc_testing``).

What grpcio's Python API cannot do, and how the cases cope:

* It does not show a response's compressed flag. The channel turns grpc core's
  per-message decompression off (``grpc.per_message_decompression=0``), so compressed
  responses arrive as sent: a gzip stream starts with 0x1f 0x8b, which can never start
  a serialized response (0x1f would be field 3 with the invalid wire type 7).
* It cannot send one message of a compressed call uncompressed (no per-message write
  flags). In client_compressed_streaming the second request therefore goes compressed
  too, and leaves ``expect_compressed`` unset (the "don't check" value the descriptions
  give the field for exactly such peers) instead of claiming false.
"""

from __future__ import annotations

import argparse
import gzip
import queue
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any, NamedTuple

import grpc

from netkit.protos.grpc_testing import empty_pb2, messages_pb2

SERVICE = "/grpc.testing.TestService/"
ECHO_INITIAL = "x-grpc-test-echo-initial"
ECHO_TRAILING = "x-grpc-test-echo-trailing-bin"
INITIAL_VALUE = "test_initial_metadata_value"
TRAILING_VALUE = b"\xab\xab\xab"
GZIP_MAGIC = b"\x1f\x8b"
RESPONSE_SIZES = (31415, 9, 2653, 58979)
REQUEST_SIZES = (27182, 8, 1828, 45904)
SPECIAL_MESSAGE = "\t\ntest with whitespace\r\nand Unicode BMP ☺ and non-BMP 😈\t\n"
CALL_SECONDS = 10.0


class Reply(NamedTuple):
    """A response message and whether it arrived compressed."""

    message: Any
    compressed: bool


def reader(message_type: Any) -> Callable[[bytes], Reply]:
    def read(data: bytes) -> Reply:
        compressed = data.startswith(GZIP_MAGIC)
        if compressed:
            data = gzip.decompress(data)
        return Reply(message_type.FromString(data), compressed)

    return read


class Stub:
    """The TestService methods as grpcio multi-callables."""

    def __init__(self, channel: grpc.Channel) -> None:
        simple = messages_pb2.SimpleRequest.SerializeToString
        output = messages_pb2.StreamingOutputCallRequest.SerializeToString
        read_simple = reader(messages_pb2.SimpleResponse)
        read_output = reader(messages_pb2.StreamingOutputCallResponse)
        empty = empty_pb2.Empty.SerializeToString
        self.EmptyCall = channel.unary_unary(
            SERVICE + "EmptyCall",
            request_serializer=empty,
            response_deserializer=reader(empty_pb2.Empty),
        )
        self.UnaryCall = channel.unary_unary(
            SERVICE + "UnaryCall", request_serializer=simple, response_deserializer=read_simple
        )
        self.StreamingOutputCall = channel.unary_stream(
            SERVICE + "StreamingOutputCall",
            request_serializer=output,
            response_deserializer=read_output,
        )
        self.StreamingInputCall = channel.stream_unary(
            SERVICE + "StreamingInputCall",
            request_serializer=messages_pb2.StreamingInputCallRequest.SerializeToString,
            response_deserializer=reader(messages_pb2.StreamingInputCallResponse),
        )
        self.FullDuplexCall = channel.stream_stream(
            SERVICE + "FullDuplexCall", request_serializer=output, response_deserializer=read_output
        )
        self.UnimplementedCall = channel.unary_unary(
            SERVICE + "UnimplementedCall", request_serializer=empty, response_deserializer=None
        )
        self.UnimplementedService = channel.unary_unary(
            "/grpc.testing.UnimplementedService/UnimplementedCall",
            request_serializer=empty,
            response_deserializer=None,
        )


# -- helpers ---------------------------------------------------------------------------
def payload(size: int) -> messages_pb2.Payload:
    return messages_pb2.Payload(type=messages_pb2.COMPRESSABLE, body=bytes(size))


def check_body(body: bytes, size: int, what: str) -> None:
    assert len(body) == size, f"{what}: payload of {len(body)} bytes, expected {size}"
    assert body.count(0) == size, f"{what}: payload is not all zero bytes"


def check_sizes(replies: list[Reply], sizes: tuple[int, ...]) -> None:
    assert len(replies) == len(sizes), f"{len(replies)} responses, expected {len(sizes)}"
    for index, (reply, size) in enumerate(zip(replies, sizes, strict=True)):
        check_body(reply.message.payload.body, size, f"response #{index + 1}")


def large_request(**fields: Any) -> messages_pb2.SimpleRequest:
    return messages_pb2.SimpleRequest(response_size=314159, payload=payload(271828), **fields)


def output_request(sizes: tuple[int, ...], request_size: int | None = None) -> Any:
    request = messages_pb2.StreamingOutputCallRequest(
        response_parameters=[messages_pb2.ResponseParameters(size=size) for size in sizes]
    )
    if request_size is not None:
        request.payload.CopyFrom(payload(request_size))
    return request


def expect_error(code: grpc.StatusCode, what: str, attempt: Callable[[], Any]) -> grpc.RpcError:
    try:
        attempt()
    except grpc.RpcError as exc:
        assert exc.code() == code, f"{what}: expected {code.name}, got {exc.code().name}"
        return exc
    raise AssertionError(f"{what}: expected {code.name}, but the call succeeded")


class Requests:
    """A request iterator fed one message at a time, for calls that must wait for a
    response before sending the next request; ``close()`` ends it (half-close)."""

    _END = object()

    def __init__(self) -> None:
        self._queue: queue.Queue[Any] = queue.Queue()

    def send(self, message: Any) -> None:
        self._queue.put(message)

    def close(self) -> None:
        self._queue.put(self._END)

    def __iter__(self) -> Iterator[Any]:
        while (message := self._queue.get()) is not self._END:
            yield message


def bool_value(value: bool) -> messages_pb2.BoolValue:
    return messages_pb2.BoolValue(value=value)


# -- the cases -------------------------------------------------------------------------
def empty_unary(stub: Stub) -> None:
    reply = stub.EmptyCall(empty_pb2.Empty(), timeout=CALL_SECONDS)
    assert isinstance(reply.message, empty_pb2.Empty), f"not an Empty: {reply.message!r}"


def large_unary(stub: Stub) -> None:
    reply = stub.UnaryCall(large_request(), timeout=CALL_SECONDS)
    check_body(reply.message.payload.body, 314159, "response")


def client_compressed_unary(stub: Stub) -> None:
    expect_error(
        grpc.StatusCode.INVALID_ARGUMENT,
        "probe (uncompressed request with expect_compressed=true)",
        lambda: stub.UnaryCall(
            large_request(expect_compressed=bool_value(True)), timeout=CALL_SECONDS
        ),
    )
    reply = stub.UnaryCall(
        large_request(expect_compressed=bool_value(True)),
        compression=grpc.Compression.Gzip,
        timeout=CALL_SECONDS,
    )
    check_body(reply.message.payload.body, 314159, "compressed request's response")
    reply = stub.UnaryCall(large_request(expect_compressed=bool_value(False)), timeout=CALL_SECONDS)
    check_body(reply.message.payload.body, 314159, "uncompressed request's response")


def server_compressed_unary(stub: Stub) -> None:
    for wanted in (True, False):
        request = large_request(response_compressed=bool_value(wanted))
        reply = stub.UnaryCall(request, timeout=CALL_SECONDS)
        assert reply.compressed == wanted, (
            f"response_compressed={wanted}, but the response's compressed flag is "
            f"{reply.compressed}"
        )
        check_body(reply.message.payload.body, 314159, f"response_compressed={wanted}")


def client_streaming(stub: Stub) -> None:
    requests = [
        messages_pb2.StreamingInputCallRequest(payload=payload(size)) for size in REQUEST_SIZES
    ]
    reply = stub.StreamingInputCall(iter(requests), timeout=CALL_SECONDS)
    size = reply.message.aggregated_payload_size
    assert size == 74922, f"aggregated_payload_size {size} != 74922"


def client_compressed_streaming(stub: Stub) -> None:
    first = messages_pb2.StreamingInputCallRequest(
        expect_compressed=bool_value(True), payload=payload(27182)
    )
    expect_error(
        grpc.StatusCode.INVALID_ARGUMENT,
        "probe (uncompressed request with expect_compressed=true)",
        lambda: stub.StreamingInputCall(iter([first]), timeout=CALL_SECONDS),
    )
    # grpcio compresses every message of a gzip call: see the module docstring.
    second = messages_pb2.StreamingInputCallRequest(payload=payload(45904))
    reply = stub.StreamingInputCall(
        iter([first, second]), compression=grpc.Compression.Gzip, timeout=CALL_SECONDS
    )
    size = reply.message.aggregated_payload_size
    assert size == 73086, f"aggregated_payload_size {size} != 73086"


def server_streaming(stub: Stub) -> None:
    replies = list(stub.StreamingOutputCall(output_request(RESPONSE_SIZES), timeout=CALL_SECONDS))
    check_sizes(replies, RESPONSE_SIZES)


def server_compressed_streaming(stub: Stub) -> None:
    request = messages_pb2.StreamingOutputCallRequest(
        response_parameters=[
            messages_pb2.ResponseParameters(size=31415, compressed=bool_value(True)),
            messages_pb2.ResponseParameters(size=92653, compressed=bool_value(False)),
        ]
    )
    replies = list(stub.StreamingOutputCall(request, timeout=CALL_SECONDS))
    check_sizes(replies, (31415, 92653))
    flags = [reply.compressed for reply in replies]
    assert flags == [True, False], f"compressed flags {flags}, expected [True, False]"


def ping_pong(stub: Stub) -> None:
    requests = Requests()
    call = stub.FullDuplexCall(iter(requests), timeout=CALL_SECONDS)
    replies = []
    try:
        for response_size, request_size in zip(RESPONSE_SIZES, REQUEST_SIZES, strict=True):
            requests.send(output_request((response_size,), request_size))
            reply = next(call, None)
            assert reply is not None, f"no response to request #{len(replies) + 1}"
            replies.append(reply)
    finally:
        requests.close()
    rest = list(call)
    assert not rest, f"{len(rest)} responses after the last request"
    check_sizes(replies, RESPONSE_SIZES)


def empty_stream(stub: Stub) -> None:
    replies = list(stub.FullDuplexCall(iter([]), timeout=CALL_SECONDS))
    assert not replies, f"{len(replies)} responses to an empty stream, expected none"


def check_metadata(what: str, initial: Any, trailing: Any) -> None:
    assert (ECHO_INITIAL, INITIAL_VALUE) in list(initial), f"{what}: initial metadata {initial}"
    assert (ECHO_TRAILING, TRAILING_VALUE) in list(trailing), f"{what}: trailing {trailing}"


def custom_metadata(stub: Stub) -> None:
    metadata = [(ECHO_INITIAL, INITIAL_VALUE), (ECHO_TRAILING, TRAILING_VALUE)]
    reply, call = stub.UnaryCall.with_call(large_request(), metadata=metadata, timeout=CALL_SECONDS)
    check_body(reply.message.payload.body, 314159, "UnaryCall response")
    check_metadata("UnaryCall", call.initial_metadata(), call.trailing_metadata())

    request = output_request((314159,), 271828)
    bidi = stub.FullDuplexCall(iter([request]), metadata=metadata, timeout=CALL_SECONDS)
    replies = list(bidi)
    check_sizes(replies, (314159,))
    check_metadata("FullDuplexCall", bidi.initial_metadata(), bidi.trailing_metadata())


def check_status(stub: Stub, message: str, *, bidi: bool) -> None:
    status = messages_pb2.EchoStatus(code=2, message=message)
    error = expect_error(
        grpc.StatusCode.UNKNOWN,
        "UnaryCall",
        lambda: stub.UnaryCall(
            messages_pb2.SimpleRequest(response_status=status), timeout=CALL_SECONDS
        ),
    )
    assert error.details() == message, f"UnaryCall: message {error.details()!r} != {message!r}"
    if bidi:
        request = messages_pb2.StreamingOutputCallRequest(response_status=status)
        error = expect_error(
            grpc.StatusCode.UNKNOWN,
            "FullDuplexCall",
            lambda: list(stub.FullDuplexCall(iter([request]), timeout=CALL_SECONDS)),
        )
        assert error.details() == message, (
            f"FullDuplexCall: message {error.details()!r} != {message!r}"
        )


def status_code_and_message(stub: Stub) -> None:
    check_status(stub, "test status message", bidi=True)


def special_status_message(stub: Stub) -> None:
    check_status(stub, SPECIAL_MESSAGE, bidi=False)


def unimplemented_method(stub: Stub) -> None:
    expect_error(
        grpc.StatusCode.UNIMPLEMENTED,
        "TestService/UnimplementedCall",
        lambda: stub.UnimplementedCall(empty_pb2.Empty(), timeout=CALL_SECONDS),
    )


def unimplemented_service(stub: Stub) -> None:
    expect_error(
        grpc.StatusCode.UNIMPLEMENTED,
        "UnimplementedService/UnimplementedCall",
        lambda: stub.UnimplementedService(empty_pb2.Empty(), timeout=CALL_SECONDS),
    )


def cancel_after_begin(stub: Stub) -> None:
    requests = Requests()  # never sends anything: the call is cancelled right after it starts
    future = stub.StreamingInputCall.future(iter(requests), timeout=CALL_SECONDS)
    try:
        future.cancel()
        assert future.code() == grpc.StatusCode.CANCELLED, f"ended with {future.code()}"
    finally:
        requests.close()


def cancel_after_first_response(stub: Stub) -> None:
    requests = Requests()
    call = stub.FullDuplexCall(iter(requests), timeout=CALL_SECONDS)
    try:
        requests.send(output_request((31415,), 27182))
        reply = next(call, None)
        assert reply is not None, "the call ended before its first response"
        check_body(reply.message.payload.body, 31415, "first response")
        call.cancel()
        assert call.code() == grpc.StatusCode.CANCELLED, f"ended with {call.code()}"
    finally:
        requests.close()


def timeout_on_sleeping_server(stub: Stub) -> None:
    requests = Requests()
    call = stub.FullDuplexCall(iter(requests), timeout=0.001)
    try:
        requests.send(messages_pb2.StreamingOutputCallRequest(payload=payload(27182)))
        expect_error(grpc.StatusCode.DEADLINE_EXCEEDED, "FullDuplexCall(1 ms)", lambda: list(call))
    finally:
        requests.close()


CASES: dict[str, Callable[[Stub], None]] = {
    case.__name__: case
    for case in (
        empty_unary,
        large_unary,
        client_compressed_unary,
        server_compressed_unary,
        client_streaming,
        client_compressed_streaming,
        server_streaming,
        server_compressed_streaming,
        ping_pong,
        empty_stream,
        custom_metadata,
        status_code_and_message,
        special_status_message,
        unimplemented_method,
        unimplemented_service,
        cancel_after_begin,
        cancel_after_first_response,
        timeout_on_sleeping_server,
    )
}


def _flag(value: str) -> bool:
    return value.lower() in ("true", "1", "yes", "on")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--server_host", default="127.0.0.1")
    parser.add_argument("--server_port", type=int, required=True)
    parser.add_argument("--test_case", default="large_unary")
    parser.add_argument("--use_tls", type=_flag, nargs="?", const=True, default=False)
    parser.add_argument("--server_host_override")
    parser.add_argument("--ca_file")
    args = parser.parse_args()
    names = list(CASES) if args.test_case == "all" else args.test_case.split(",")
    unknown = [name for name in names if name not in CASES]
    if unknown:
        parser.error(f"unknown test cases: {', '.join(unknown)}")

    target = f"{args.server_host}:{args.server_port}"
    options: list[tuple[str, Any]] = [("grpc.per_message_decompression", 0)]
    if args.use_tls:
        root = None
        if args.ca_file:
            with open(args.ca_file, "rb") as file:
                root = file.read()
        if args.server_host_override:
            options.append(("grpc.ssl_target_name_override", args.server_host_override))
        credentials = grpc.ssl_channel_credentials(root_certificates=root)
        channel = grpc.secure_channel(target, credentials, options=options)
    else:
        channel = grpc.insecure_channel(target, options=options)

    failures = 0
    with channel:
        grpc.channel_ready_future(channel).result(timeout=CALL_SECONDS)
        stub = Stub(channel)
        for name in names:
            started = time.perf_counter()
            try:
                CASES[name](stub)
            except (AssertionError, grpc.RpcError) as exc:
                if isinstance(exc, grpc.RpcError):
                    exc = AssertionError(f"unexpected status {exc.code().name}: {exc.details()!r}")
                failures += 1
                print(f"FAIL {name}: {exc}", flush=True)
            else:
                print(f"PASS {name} ({time.perf_counter() - started:.3f} s)", flush=True)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
