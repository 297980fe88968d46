"""The client side of gRPC's interop tests, run with netkit's own Channel and stubs.

One coroutine per test case of gRPC's interop-test descriptions, each taking a
:class:`~netkit.grpc.Channel` and raising :class:`AssertionError` with a message that
says what the server got wrong. A status the case did not expect is a failure too: it
arrives as :class:`~netkit.grpc.GRPCError` and is turned into an AssertionError at the
case boundary, so a runner only has to tell AssertionError from a bug in the runner.

The cases use the sizes and values of the descriptions exactly (271828-byte requests,
314159-byte responses, the four ping-pong sizes...), since peers' servers may check
them. The time limit that the descriptions leave open is the runner's to set (a case
blocked on a server that never answers is cut off by the caller's ``trio.fail_after``).
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Sequence

from ...protos.grpc_testing import empty_pb2, messages_pb2
from ...protos.grpc_testing.test_netkit import TestServiceStub, UnimplementedServiceStub
from ...wire import StatusCode
from .._channel import Channel, ClientCall
from .._errors import GRPCError, Metadata, MetadataValue
from .._stub import UnaryUnaryMethod
from .server import ECHO_INITIAL, ECHO_TRAILING

Case = Callable[[Channel], Awaitable[None]]

#: The ping-pong / server-streaming response sizes and request sizes of the descriptions.
RESPONSE_SIZES = (31415, 9, 2653, 58979)
REQUEST_SIZES = (27182, 8, 1828, 45904)
LARGE_REQUEST = 271828
LARGE_RESPONSE = 314159
INITIAL_VALUE = "test_initial_metadata_value"
TRAILING_VALUE = b"\xab\xab\xab"
SPECIAL_MESSAGE = "\t\ntest with whitespace\r\nand Unicode BMP ☺ and non-BMP 😈\t\n"


# -- helpers ---------------------------------------------------------------------------
def _payload(size: int) -> messages_pb2.Payload:
    return messages_pb2.Payload(type=messages_pb2.COMPRESSABLE, body=bytes(size))


def _check_body(body: bytes, size: int, what: str) -> None:
    if len(body) != size:
        raise AssertionError(f"{what}: payload of {len(body)} bytes, expected {size}")
    if body.count(0) != size:
        raise AssertionError(f"{what}: payload is not all zero bytes")


def _large_request(
    *, expect_compressed: bool | None = None, response_compressed: bool | None = None
) -> messages_pb2.SimpleRequest:
    """large_unary's request; the BoolValue fields stay unset (null) unless given."""
    request = messages_pb2.SimpleRequest(
        response_size=LARGE_RESPONSE, payload=_payload(LARGE_REQUEST)
    )
    if expect_compressed is not None:
        request.expect_compressed.value = expect_compressed
    if response_compressed is not None:
        request.response_compressed.value = response_compressed
    return request


def _output_request(
    sizes: Sequence[int], request_size: int | None = None
) -> messages_pb2.StreamingOutputCallRequest:
    request = messages_pb2.StreamingOutputCallRequest(
        response_parameters=[messages_pb2.ResponseParameters(size=size) for size in sizes]
    )
    if request_size is not None:
        request.payload.CopyFrom(_payload(request_size))
    return request


async def _expect_status(
    code: StatusCode, what: str, attempt: Awaitable[object], message: str | None = None
) -> None:
    """``attempt`` must fail with ``code`` (and ``message``, when given)."""
    try:
        await attempt
    except GRPCError as exc:
        if exc.code != code:
            raise AssertionError(
                f"{what}: expected {code.name}, got {exc.code.name} ({exc.message!r})"
            ) from exc
        if message is not None and exc.message != message:
            raise AssertionError(
                f"{what}: expected the message {message!r}, got {exc.message!r}"
            ) from exc
        return
    raise AssertionError(f"{what}: expected {code.name}, but the call succeeded")


SimpleCall = ClientCall[messages_pb2.SimpleRequest, messages_pb2.SimpleResponse]


async def _unary(
    method: UnaryUnaryMethod[messages_pb2.SimpleRequest, messages_pb2.SimpleResponse],
    request: messages_pb2.SimpleRequest,
    *,
    compression: str | None = None,
    compress: bool | None = None,
    metadata: Metadata = (),
) -> tuple[messages_pb2.SimpleResponse, SimpleCall, bool]:
    """A unary call through ``open()``: the reply, the call (for its metadata) and
    whether the reply arrived compressed, which the plain stub call hides."""
    async with method.open(compression=compression, metadata=metadata) as call:
        await call.send_message(request, end=True, compress=compress)
        reply = await call.recv_message()
        if reply is None:
            raise AssertionError("the server sent no response message")
        compressed = call.last_response_compressed
        if await call.recv_message() is not None:
            raise AssertionError("the server sent more than one response message")
    return reply, call, compressed


def _check_metadata(
    what: str,
    initial: Sequence[tuple[str, MetadataValue]] | None,
    trailing: Sequence[tuple[str, MetadataValue]] | None,
) -> None:
    if (ECHO_INITIAL, INITIAL_VALUE) not in (initial or []):
        raise AssertionError(f"{what}: {ECHO_INITIAL} not echoed in initial metadata {initial}")
    if (ECHO_TRAILING, TRAILING_VALUE) not in (trailing or []):
        raise AssertionError(f"{what}: {ECHO_TRAILING} not echoed in trailing metadata {trailing}")


def _case(fn: Case) -> Case:
    """Turn an unexpected status into an AssertionError naming it (see module doc)."""

    @functools.wraps(fn)
    async def run(channel: Channel) -> None:
        try:
            await fn(channel)
        except GRPCError as exc:
            raise AssertionError(f"unexpected status {exc.code.name}: {exc.message!r}") from exc

    return run


# -- the cases -------------------------------------------------------------------------
@_case
async def empty_unary(channel: Channel) -> None:
    reply = await TestServiceStub(channel).EmptyCall(empty_pb2.Empty())
    if not isinstance(reply, empty_pb2.Empty) or reply.ByteSize() != 0:
        raise AssertionError(f"expected an empty Empty, got {reply!r}")


@_case
async def large_unary(channel: Channel) -> None:
    reply = await TestServiceStub(channel).UnaryCall(_large_request())
    _check_body(reply.payload.body, LARGE_RESPONSE, "response")


@_case
async def client_compressed_unary(channel: Channel) -> None:
    stub = TestServiceStub(channel)
    await _expect_status(
        StatusCode.INVALID_ARGUMENT,
        "probe (uncompressed request with expect_compressed=true)",
        stub.UnaryCall(_large_request(expect_compressed=True)),
    )
    reply, _, _ = await _unary(
        stub.UnaryCall, _large_request(expect_compressed=True), compression="gzip"
    )
    _check_body(reply.payload.body, LARGE_RESPONSE, "compressed request's response")
    # Uncompressed by the message's own flag on a gzip call: the per-message switch.
    reply, _, _ = await _unary(
        stub.UnaryCall,
        _large_request(expect_compressed=False),
        compression="gzip",
        compress=False,
    )
    _check_body(reply.payload.body, LARGE_RESPONSE, "uncompressed request's response")


@_case
async def server_compressed_unary(channel: Channel) -> None:
    stub = TestServiceStub(channel)
    for wanted in (True, False):
        request = _large_request(response_compressed=wanted)
        reply, _, compressed = await _unary(stub.UnaryCall, request)
        if compressed != wanted:
            raise AssertionError(
                f"response_compressed={wanted}, but the response's compressed flag is {compressed}"
            )
        _check_body(reply.payload.body, LARGE_RESPONSE, f"response_compressed={wanted}")


@_case
async def client_streaming(channel: Channel) -> None:
    requests = [
        messages_pb2.StreamingInputCallRequest(payload=_payload(size)) for size in REQUEST_SIZES
    ]
    reply = await TestServiceStub(channel).StreamingInputCall(requests)
    if reply.aggregated_payload_size != 74922:
        raise AssertionError(f"aggregated_payload_size {reply.aggregated_payload_size} != 74922")


@_case
async def client_compressed_streaming(channel: Channel) -> None:
    stub = TestServiceStub(channel)
    expect_true = messages_pb2.BoolValue(value=True)
    probe = messages_pb2.StreamingInputCallRequest(
        expect_compressed=expect_true, payload=_payload(27182)
    )
    await _expect_status(
        StatusCode.INVALID_ARGUMENT,
        "probe (uncompressed request with expect_compressed=true)",
        stub.StreamingInputCall([probe]),
    )
    async with stub.StreamingInputCall.open(compression="gzip") as call:
        await call.send_message(probe, compress=True)
        second = messages_pb2.StreamingInputCallRequest(
            expect_compressed=messages_pb2.BoolValue(value=False), payload=_payload(45904)
        )
        await call.send_message(second, end=True, compress=False)
        reply = await call.recv_message()
        if reply is None:
            raise AssertionError("the server sent no response message")
        await call.wait_status()
    if reply.aggregated_payload_size != 73086:
        raise AssertionError(f"aggregated_payload_size {reply.aggregated_payload_size} != 73086")


@_case
async def server_streaming(channel: Channel) -> None:
    async with TestServiceStub(channel).StreamingOutputCall(
        _output_request(RESPONSE_SIZES)
    ) as call:
        bodies = [reply.payload.body async for reply in call]
    _check_sizes(bodies, RESPONSE_SIZES)


def _check_sizes(bodies: Sequence[bytes], sizes: Sequence[int]) -> None:
    if len(bodies) != len(sizes):
        raise AssertionError(f"{len(bodies)} responses, expected {len(sizes)}")
    for index, (body, size) in enumerate(zip(bodies, sizes, strict=True)):
        _check_body(body, size, f"response #{index + 1}")


@_case
async def server_compressed_streaming(channel: Channel) -> None:
    request = messages_pb2.StreamingOutputCallRequest(
        response_parameters=[
            messages_pb2.ResponseParameters(
                size=31415, compressed=messages_pb2.BoolValue(value=True)
            ),
            messages_pb2.ResponseParameters(
                size=92653, compressed=messages_pb2.BoolValue(value=False)
            ),
        ]
    )
    bodies: list[bytes] = []
    async with TestServiceStub(channel).StreamingOutputCall(request) as call:
        async for reply in call:
            wanted = request.response_parameters[len(bodies)].compressed.value
            if call.last_response_compressed != wanted:
                raise AssertionError(
                    f"response #{len(bodies) + 1}: compressed={wanted} asked, but its "
                    f"compressed flag is {call.last_response_compressed}"
                )
            bodies.append(reply.payload.body)
    _check_sizes(bodies, (31415, 92653))


@_case
async def ping_pong(channel: Channel) -> None:
    bodies: list[bytes] = []
    async with TestServiceStub(channel).FullDuplexCall() as call:
        for response_size, request_size in zip(RESPONSE_SIZES, REQUEST_SIZES, strict=True):
            await call.send_message(_output_request([response_size], request_size))
            reply = await call.recv_message()
            if reply is None:
                raise AssertionError(f"no response to request #{len(bodies) + 1}")
            bodies.append(reply.payload.body)
        await call.end()
        if await call.recv_message() is not None:
            raise AssertionError("a response after the last request")
    _check_sizes(bodies, RESPONSE_SIZES)


@_case
async def empty_stream(channel: Channel) -> None:
    async with TestServiceStub(channel).FullDuplexCall() as call:
        await call.end()
        replies = [reply async for reply in call]
    if replies:
        raise AssertionError(f"{len(replies)} responses to an empty stream, expected none")


@_case
async def custom_metadata(channel: Channel) -> None:
    stub = TestServiceStub(channel)
    metadata: list[tuple[str, MetadataValue]] = [
        (ECHO_INITIAL, INITIAL_VALUE),
        (ECHO_TRAILING, TRAILING_VALUE),
    ]
    reply, call, _ = await _unary(stub.UnaryCall, _large_request(), metadata=metadata)
    _check_body(reply.payload.body, LARGE_RESPONSE, "UnaryCall response")
    _check_metadata("UnaryCall", call.initial_metadata, call.trailing_metadata)

    async with stub.FullDuplexCall(metadata=metadata) as bidi:
        await bidi.send_message(_output_request([LARGE_RESPONSE], LARGE_REQUEST), end=True)
        bodies = [reply.payload.body async for reply in bidi]
    _check_sizes(bodies, [LARGE_RESPONSE])
    _check_metadata("FullDuplexCall", bidi.initial_metadata, bidi.trailing_metadata)


async def _status_echoed(channel: Channel, message: str, *, bidi: bool) -> None:
    stub = TestServiceStub(channel)
    status = messages_pb2.EchoStatus(code=StatusCode.UNKNOWN, message=message)
    await _expect_status(
        StatusCode.UNKNOWN,
        "UnaryCall",
        stub.UnaryCall(messages_pb2.SimpleRequest(response_status=status)),
        message,
    )
    if not bidi:
        return

    async def full_duplex() -> None:
        async with stub.FullDuplexCall() as call:
            request = messages_pb2.StreamingOutputCallRequest(response_status=status)
            await call.send_message(request, end=True)
            await call.wait_status()

    await _expect_status(StatusCode.UNKNOWN, "FullDuplexCall", full_duplex(), message)


@_case
async def status_code_and_message(channel: Channel) -> None:
    await _status_echoed(channel, "test status message", bidi=True)


@_case
async def special_status_message(channel: Channel) -> None:
    await _status_echoed(channel, SPECIAL_MESSAGE, bidi=False)


@_case
async def unimplemented_method(channel: Channel) -> None:
    await _expect_status(
        StatusCode.UNIMPLEMENTED,
        "TestService/UnimplementedCall",
        TestServiceStub(channel).UnimplementedCall(empty_pb2.Empty()),
    )


@_case
async def unimplemented_service(channel: Channel) -> None:
    await _expect_status(
        StatusCode.UNIMPLEMENTED,
        "UnimplementedService/UnimplementedCall",
        UnimplementedServiceStub(channel).UnimplementedCall(empty_pb2.Empty()),
    )


@_case
async def cancel_after_begin(channel: Channel) -> None:
    async with TestServiceStub(channel).StreamingInputCall.open() as call:
        await call.cancel()
        await _expect_status(StatusCode.CANCELLED, "after cancel()", call.recv_message())
    if call.code != StatusCode.CANCELLED:
        raise AssertionError(f"the call ended with {call.code}, expected CANCELLED")


@_case
async def cancel_after_first_response(channel: Channel) -> None:
    async with TestServiceStub(channel).FullDuplexCall() as call:
        await call.send_message(_output_request([31415], 27182))
        reply = await call.recv_message()
        if reply is None:
            raise AssertionError("the call ended before its first response")
        _check_body(reply.payload.body, 31415, "first response")
        await call.cancel()
        await _expect_status(StatusCode.CANCELLED, "after cancel()", call.recv_message())
    if call.code != StatusCode.CANCELLED:
        raise AssertionError(f"the call ended with {call.code}, expected CANCELLED")


@_case
async def timeout_on_sleeping_server(channel: Channel) -> None:
    async def sleepy_call() -> None:
        async with TestServiceStub(channel).FullDuplexCall(timeout=0.001) as call:
            await call.send_message(
                messages_pb2.StreamingOutputCallRequest(payload=_payload(27182))
            )
            await call.wait_status()  # the client waits; only the deadline ends this

    await _expect_status(StatusCode.DEADLINE_EXCEEDED, "FullDuplexCall(timeout=1ms)", sleepy_call())


#: Every case, by the name gRPC's interop clients give it (``--test_case``).
CASES: dict[str, Case] = {
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


__all__ = ["CASES", "Case"]
