"""The server side of gRPC's interop tests: ``grpc.testing.TestService`` on netkit.

Every feature that the "Server" section of gRPC's interop-test descriptions names is
implemented here, because peers' interop clients probe them:

* payloads are ``size`` zero bytes of type COMPRESSABLE (the only type there is; any
  other ``response_type`` is refused with INVALID_ARGUMENT);
* **Echo Status**: a request carrying a non-OK ``response_status`` ends the call with
  that code and message, and nothing after it is processed;
* **Echo Metadata**: ``x-grpc-test-echo-initial`` comes back in the initial metadata,
  ``x-grpc-test-echo-trailing-bin`` in the trailing metadata;
* **CompressedResponse**: ``response_compressed`` (unary) and
  ``ResponseParameters.compressed`` (streaming) decide each response's compressed flag;
* **CompressedRequest**: ``expect_compressed`` that disagrees with the request's own
  compressed flag fails the call with INVALID_ARGUMENT;
* ``interval_us`` delays each streamed response, relative to the previous one.

Authentication is not part of netkit's interop server: ``fill_username`` and
``fill_oauth_scope`` are ignored, as the descriptions allow for unauthenticated calls.
``UnimplementedCall`` and the whole ``UnimplementedService`` stay unimplemented, since
that is what the ``unimplemented_*`` cases check.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence

import trio

from ...app import App
from ...protos.grpc_testing import empty_pb2, messages_pb2
from ...protos.grpc_testing.test_netkit import TestServiceBase, UnimplementedServiceBase
from ...wire import StatusCode
from .._errors import GRPCError, MetadataValue
from .._server_call import ServerCall

#: Metadata keys that the server echoes back (initial, trailing).
ECHO_INITIAL = "x-grpc-test-echo-initial"
ECHO_TRAILING = "x-grpc-test-echo-trailing-bin"

#: The only compression the interop cases use; the client must accept it.
RESPONSE_ENCODING = "gzip"


def payload(size: int) -> messages_pb2.Payload:
    """``size`` zero bytes, as every interop payload is."""
    return messages_pb2.Payload(type=messages_pb2.COMPRESSABLE, body=bytes(size))


def _check_response_type(response_type: int) -> None:
    if response_type != messages_pb2.COMPRESSABLE:
        raise GRPCError(StatusCode.INVALID_ARGUMENT, f"unsupported response_type {response_type}")


def _check_compressed(
    expect: messages_pb2.BoolValue | None, call: ServerCall, what: str = "request"
) -> None:
    """CompressedRequest: the request's compressed flag must be what the client says.

    ``expect`` is None when the field is absent ("nullable"): then there is nothing to
    check, which is how clients talk to servers that cannot see the flag.
    """
    if expect is None or expect.value == call.last_request_compressed:
        return
    state = "compressed" if call.last_request_compressed else "uncompressed"
    raise GRPCError(
        StatusCode.INVALID_ARGUMENT,
        f"expect_compressed={str(expect.value).lower()}, but the {what} arrived {state}",
    )


def _echo_status(status: messages_pb2.EchoStatus | None) -> None:
    """Echo Status: end the call with the requested code and message (unless OK)."""
    if status is None or status.code == StatusCode.OK:
        return
    try:
        code = StatusCode(status.code)
    except ValueError:
        raise GRPCError(
            StatusCode.UNKNOWN, f"response_status code {status.code} is not a gRPC status"
        ) from None
    raise GRPCError(code, status.message)


async def _echo_metadata(call: ServerCall) -> None:
    """Echo Metadata; sends the response headers when there is initial metadata to echo,
    so compression must be chosen before this is called."""
    trailing = call.metadata_value(ECHO_TRAILING)
    if trailing is not None:
        call.set_trailing_metadata([(ECHO_TRAILING, trailing)])
    initial = call.metadata_value(ECHO_INITIAL)
    if initial is not None:
        echoed: list[tuple[str, MetadataValue]] = [(ECHO_INITIAL, initial)]
        await call.send_initial_metadata(echoed)


async def _stream_responses(
    call: ServerCall, parameters: Sequence[messages_pb2.ResponseParameters]
) -> None:
    """Send one response per ``ResponseParameters``, each after its ``interval_us``."""
    for params in parameters:
        if params.interval_us:
            await trio.sleep(params.interval_us / 1_000_000)
        compress = params.HasField("compressed") and params.compressed.value
        response = messages_pb2.StreamingOutputCallResponse(payload=payload(params.size))
        await call.send(response, compress=compress)


async def _start_streaming(call: ServerCall) -> None:
    """Common start of the server-streaming methods.

    The call's encoding is gzip from the start whenever the client accepts it, because
    ``grpc-encoding`` is a response header and goes out before the first message; each
    message's own flag (``ResponseParameters.compressed``) then decides whether it is
    actually compressed, which is what server_compressed_streaming checks.
    """
    call.set_compression(RESPONSE_ENCODING)
    await _echo_metadata(call)


class TestService(TestServiceBase):
    """``grpc.testing.TestService`` as the interop-test descriptions define it."""

    async def EmptyCall(self, request: empty_pb2.Empty, call: ServerCall) -> empty_pb2.Empty:
        await _echo_metadata(call)
        return empty_pb2.Empty()

    async def UnaryCall(
        self, request: messages_pb2.SimpleRequest, call: ServerCall
    ) -> messages_pb2.SimpleResponse:
        expect = request.expect_compressed if request.HasField("expect_compressed") else None
        _check_compressed(expect, call)
        _check_response_type(request.response_type)
        if request.HasField("response_compressed") and request.response_compressed.value:
            # Unary responses are sent by the server with the call's default flag, so the
            # call-level encoding is the switch: set only when compression is wanted.
            call.set_compression(RESPONSE_ENCODING)
        await _echo_metadata(call)
        _echo_status(request.response_status if request.HasField("response_status") else None)
        return messages_pb2.SimpleResponse(payload=payload(request.response_size))

    async def CacheableUnaryCall(
        self, request: messages_pb2.SimpleRequest, call: ServerCall
    ) -> messages_pb2.SimpleResponse:
        """Answered like UnaryCall: a response that depends only on the request is what a
        caching proxy may serve twice, which is all cacheable_unary can observe here
        (netkit's client has no cacheable GET calls)."""
        return await self.UnaryCall(request, call)

    async def StreamingOutputCall(
        self, request: messages_pb2.StreamingOutputCallRequest, call: ServerCall
    ) -> None:
        _check_response_type(request.response_type)
        await _start_streaming(call)
        _echo_status(request.response_status if request.HasField("response_status") else None)
        await _stream_responses(call, request.response_parameters)

    async def StreamingInputCall(
        self, requests: AsyncIterator[messages_pb2.StreamingInputCallRequest], call: ServerCall
    ) -> messages_pb2.StreamingInputCallResponse:
        await _echo_metadata(call)
        total = 0
        index = 0
        async for request in requests:
            index += 1
            expect = request.expect_compressed if request.HasField("expect_compressed") else None
            _check_compressed(expect, call, f"request #{index}")
            total += len(request.payload.body)
        return messages_pb2.StreamingInputCallResponse(aggregated_payload_size=total)

    async def FullDuplexCall(
        self, requests: AsyncIterator[messages_pb2.StreamingOutputCallRequest], call: ServerCall
    ) -> None:
        await _start_streaming(call)
        async for request in requests:
            await self._answer(request, call)

    async def HalfDuplexCall(
        self, requests: AsyncIterator[messages_pb2.StreamingOutputCallRequest], call: ServerCall
    ) -> None:
        await _start_streaming(call)
        received = [request async for request in requests]
        for request in received:
            await self._answer(request, call)

    @staticmethod
    async def _answer(request: messages_pb2.StreamingOutputCallRequest, call: ServerCall) -> None:
        """One request of a bidirectional call: its status if any, else its responses."""
        _check_response_type(request.response_type)
        _echo_status(request.response_status if request.HasField("response_status") else None)
        await _stream_responses(call, request.response_parameters)


class UnimplementedService(UnimplementedServiceBase):
    """``grpc.testing.UnimplementedService``: served, but every method is UNIMPLEMENTED."""


def interop_app() -> App:
    """An App serving the interop TestService and UnimplementedService."""
    app = App()
    app.grpc.add_service(TestService())
    app.grpc.add_service(UnimplementedService())
    return app


__all__ = [
    "ECHO_INITIAL",
    "ECHO_TRAILING",
    "TestService",
    "UnimplementedService",
    "interop_app",
    "payload",
]
