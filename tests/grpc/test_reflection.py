"""gRPC server reflection (v1 and v1alpha): netkit's client asks, and grpcio's agrees.

Every test serves on 127.0.0.1:0 under a trio deadline. grpcio-reflection's client runs
in a subprocess (reflection_probe.py): its ``reflection_pb2`` and netkit's register the
same ``grpc.reflection.v1alpha`` message names in protobuf's default pool, so the two
cannot be imported into one process.
"""

from __future__ import annotations

import json
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import trio
from google.protobuf import descriptor_pb2, descriptor_pool
from google.protobuf.descriptor_pool import DescriptorPool

from netkit import App
from netkit.examples.grpc_echo import EchoService
from netkit.grpc import GRPCServer, StatusCode, open_channel
from netkit.grpc.reflection import (
    ReflectionService,
    ReflectionServiceV1Alpha,
    enable_reflection,
)
from netkit.protos.grpc_reflection.v1 import reflection_netkit as v1_netkit
from netkit.protos.grpc_reflection.v1 import reflection_pb2 as v1
from netkit.protos.grpc_reflection.v1alpha import reflection_netkit as v1alpha_netkit
from netkit.protos.grpc_reflection.v1alpha import reflection_pb2 as v1alpha
from netkit.protos.grpc_testing import test_pb2  # registers grpc.testing.* in the pool
from tests.helpers import running_server

ECHO = "netkit.echo.v1.Echo"
ECHO_FILE = "netkit/protos/echo/v1/echo.proto"
REFLECTION_V1 = "grpc.reflection.v1.ServerReflection"
REFLECTION_V1ALPHA = "grpc.reflection.v1alpha.ServerReflection"
PROBE = Path(__file__).with_name("reflection_probe.py")


def echo_app() -> App:
    app = App()
    app.grpc.add_service(EchoService())
    enable_reflection(app)
    return app


class Session:
    """One reflection stream: ask, and get the answer before asking again."""

    def __init__(self, call: Any, pb: ModuleType) -> None:
        self.call = call
        self.pb = pb

    async def ask(self, **question: Any) -> Any:
        request = self.pb.ServerReflectionRequest(host="localhost", **question)
        await self.call.send_message(request)
        reply = await self.call.recv_message()
        assert reply is not None
        assert reply.valid_host == "localhost"
        assert reply.original_request == request
        return reply


@asynccontextmanager
async def session(app: App, pb: ModuleType = v1) -> AsyncIterator[Session]:
    stub_module = v1_netkit if pb is v1 else v1alpha_netkit
    async with running_server(app) as server, open_channel("127.0.0.1", server.port) as channel:
        stub = stub_module.ServerReflectionStub(channel)
        async with stub.ServerReflectionInfo() as call:
            yield Session(call, pb)
            await call.end()
            assert await call.recv_message() is None


def files_of(reply: Any) -> list[descriptor_pb2.FileDescriptorProto]:
    assert reply.WhichOneof("message_response") == "file_descriptor_response"
    return [
        descriptor_pb2.FileDescriptorProto.FromString(blob)
        for blob in reply.file_descriptor_response.file_descriptor_proto
    ]


@pytest.mark.parametrize("pb", [v1, v1alpha], ids=["v1", "v1alpha"])
async def test_list_services(pb: ModuleType) -> None:
    with trio.fail_after(5):
        async with session(echo_app(), pb) as reflection:
            reply = await reflection.ask(list_services="*")
            assert reply.WhichOneof("message_response") == "list_services_response"
            names = [service.name for service in reply.list_services_response.service]
            assert names == [ECHO, REFLECTION_V1, REFLECTION_V1ALPHA]


async def test_file_containing_symbol_describes_the_service() -> None:
    with trio.fail_after(5):
        async with session(echo_app()) as reflection:
            [file] = files_of(await reflection.ask(file_containing_symbol=ECHO))
            assert (file.name, file.package) == (ECHO_FILE, "netkit.echo.v1")
            [service] = file.service
            assert service.name == "Echo"
            methods = {m.name: (m.input_type, m.client_streaming) for m in service.method}
            assert methods == {
                "Unary": (".netkit.echo.v1.EchoRequest", False),
                "ServerStream": (".netkit.echo.v1.EchoStreamRequest", False),
                "ClientStream": (".netkit.echo.v1.EchoRequest", True),
                "Bidi": (".netkit.echo.v1.EchoRequest", True),
            }
            # Methods (which protobuf's pool does not index), messages and fields resolve
            # to the same file; the file asked for is sent again on the same stream.
            for symbol in [
                f"{ECHO}.Bidi",
                "netkit.echo.v1.EchoRequest",
                "netkit.echo.v1.EchoStreamRequest.count",
            ]:
                [again] = files_of(await reflection.ask(file_containing_symbol=symbol))
                assert again == file
            [by_name] = files_of(await reflection.ask(file_by_filename=ECHO_FILE))
            assert by_name == file


async def test_unknown_names_get_not_found_and_the_stream_goes_on() -> None:
    unknown: list[dict[str, Any]] = [
        {"file_containing_symbol": "no.such.Symbol"},
        {"file_containing_symbol": f"{ECHO}.NoSuchMethod"},
        {"file_by_filename": "no/such.proto"},
        {"all_extension_numbers_of_type": "no.such.Message"},
        {
            "file_containing_extension": v1.ExtensionRequest(
                containing_type="netkit.echo.v1.EchoRequest", extension_number=100
            )
        },
    ]
    with trio.fail_after(5):
        async with session(echo_app()) as reflection:
            for question in unknown:
                reply = await reflection.ask(**question)
                assert reply.WhichOneof("message_response") == "error_response"
                assert reply.error_response.error_code == StatusCode.NOT_FOUND
                assert reply.error_response.error_message
                # ...and the next question on the same stream is answered.
                listed = await reflection.ask(list_services="")
                assert listed.list_services_response.service[0].name == ECHO
            reply = await reflection.ask()  # no question at all
            assert reply.error_response.error_code == StatusCode.INVALID_ARGUMENT
            assert files_of(await reflection.ask(file_containing_symbol=ECHO))


async def test_dependencies_are_sent_once_per_stream() -> None:
    service = test_pb2.DESCRIPTOR.services_by_name["TestService"].full_name
    test_file = test_pb2.DESCRIPTOR.name
    imports = [dependency.name for dependency in test_pb2.DESCRIPTOR.dependencies]
    assert len(imports) == 2
    with trio.fail_after(5):
        async with session(echo_app()) as reflection:
            first = files_of(await reflection.ask(file_containing_symbol=service))
            assert [f.name for f in first] == [test_file, *imports]
            # The dependency itself: sent although it went out before (it was asked for).
            dependency = files_of(await reflection.ask(file_by_filename=imports[1]))
            assert [f.name for f in dependency] == [imports[1]]
            again = files_of(await reflection.ask(file_containing_symbol=service))
            assert [f.name for f in again] == [test_file]
        async with session(echo_app()) as fresh:  # a new stream starts from nothing
            first = files_of(await fresh.ask(file_containing_symbol=service))
            assert [f.name for f in first] == [test_file, *imports]


def extension_pool() -> DescriptorPool:
    """A pool of its own with one custom option: an extension of FieldOptions."""
    pool = descriptor_pool.DescriptorPool()
    pool.AddSerializedFile(descriptor_pb2.DESCRIPTOR.serialized_pb)
    file = descriptor_pb2.FileDescriptorProto(
        name="nkreflect/options.proto",
        package="nkreflect",
        dependency=["google/protobuf/descriptor.proto"],
        syntax="proto2",
    )
    file.extension.add(
        name="label",
        number=50001,
        label=descriptor_pb2.FieldDescriptorProto.LABEL_OPTIONAL,
        type=descriptor_pb2.FieldDescriptorProto.TYPE_STRING,
        extendee=".google.protobuf.FieldOptions",
    )
    pool.AddSerializedFile(file.SerializeToString())
    return pool


async def test_extensions_from_a_pool_of_ones_own() -> None:
    server = GRPCServer()
    server.add_service(ReflectionService(server, extension_pool()))
    server.add_service(ReflectionServiceV1Alpha(server, extension_pool()))
    app = App()
    app.grpc = server
    options = "google.protobuf.FieldOptions"
    with trio.fail_after(5):
        async with session(app) as reflection:
            reply = await reflection.ask(all_extension_numbers_of_type=options)
            numbers = reply.all_extension_numbers_response
            assert (numbers.base_type_name, list(numbers.extension_number)) == (options, [50001])
            extension = v1.ExtensionRequest(containing_type=options, extension_number=50001)
            found = files_of(await reflection.ask(file_containing_extension=extension))
            assert [f.name for f in found] == [
                "nkreflect/options.proto",
                "google/protobuf/descriptor.proto",
            ]
            # Only this pool is consulted: the echo service's file is not in it.
            reply = await reflection.ask(file_containing_symbol=ECHO)
            assert reply.error_response.error_code == StatusCode.NOT_FOUND
            reply = await reflection.ask(list_services="")
            names = [service.name for service in reply.list_services_response.service]
            assert names == [REFLECTION_V1, REFLECTION_V1ALPHA]


def test_enabling_twice_is_an_error() -> None:
    app = echo_app()
    with pytest.raises(ValueError, match="served twice"):
        enable_reflection(app.grpc)


async def test_grpcio_reflection_client_agrees() -> None:
    with trio.fail_after(30):
        async with running_server(echo_app()) as server:
            result = await trio.run_process(
                [sys.executable, str(PROBE), f"127.0.0.1:{server.port}"],
                capture_stdout=True,
                capture_stderr=True,
                check=False,
            )
    assert result.returncode == 0, result.stderr.decode()
    probe = json.loads(result.stdout)
    assert probe["services"] == [ECHO, REFLECTION_V1, REFLECTION_V1ALPHA]
    assert probe["file"] == ECHO_FILE
    request, response = "netkit.echo.v1.EchoRequest", "netkit.echo.v1.EchoResponse"
    assert probe["methods"] == {
        "Unary": {
            "input": request,
            "output": response,
            "client_streaming": False,
            "server_streaming": False,
        },
        "ServerStream": {
            "input": "netkit.echo.v1.EchoStreamRequest",
            "output": response,
            "client_streaming": False,
            "server_streaming": True,
        },
        "ClientStream": {
            "input": request,
            "output": response,
            "client_streaming": True,
            "server_streaming": False,
        },
        "Bidi": {
            "input": request,
            "output": response,
            "client_streaming": True,
            "server_streaming": True,
        },
    }
    assert probe["missing_is_key_error"] is True
