"""gRPC server reflection: ``grpc.reflection.v1`` and ``grpc.reflection.v1alpha``.

Reflection lets a client that has no ``.proto`` files (grpcurl, grpcui, Postman,
grpcio-reflection's ``ProtoReflectionDescriptorDatabase``) ask a server which services it
serves and fetch the descriptors of their files, so that it can build requests at run
time. :func:`enable_reflection` adds it to an App or a :class:`GRPCServer`::

    app.grpc.add_service(OrderService(store))
    enable_reflection(app)

Both protocol versions are served because clients disagree: grpcurl asks v1 and falls back
to v1alpha, grpcio-reflection's client only speaks v1alpha. Their messages are the same
field for field and only the package differs, so the answering logic is written once
(:class:`_Reflector` decides, :func:`_response` builds the message of either package from
the generated module it is given) and each version is a thin subclass of its generated
base class.

What the answers contain
------------------------
* ``list_services``: the name of every service the :class:`GRPCServer` serves at the time
  of the question, in the order they were added, reflection itself included.
* ``file_by_filename``, ``file_containing_symbol``, ``file_containing_extension``: the
  serialized ``FileDescriptorProto`` of the file, first, then those of its transitive
  dependencies. Per stream, each dependency is sent at most once: a client keeps what it
  got on a stream, so repeating ``descriptor.proto`` with every answer only costs bytes
  (grpc-go's server does the same). The file asked for is always sent, even if it went
  out before, so that no answer is empty. grpcio's client opens a stream per question and
  so gets every dependency each time.
* ``all_extension_numbers_of_type``: the field numbers of the extensions the pool knows
  for that message type, ascending.
* A name the pool does not know gets ``error_response`` NOT_FOUND (what grpcio's client
  turns into ``KeyError``); a request with no question set gets INVALID_ARGUMENT. Either
  way the stream goes on answering: one bad name in a client's session is not a reason
  to end it.

Every answer echoes ``host`` as ``valid_host`` and carries the request as
``original_request``, so a client that pipelines questions can match the answers.

Where descriptors come from
---------------------------
A :class:`~google.protobuf.descriptor_pool.DescriptorPool`, by default protobuf's default
pool, where every generated ``_pb2`` module registers its file when imported. A service's
file is there as soon as its generated module is imported, which serving it requires.
protobuf's pools resolve services, messages, enums, enum values and fields, but not
method names (``pkg.Service.Method``, which grpcurl's ``describe`` asks for); those are
resolved here through their service.

Importing this module registers the ``grpc.reflection.v1alpha`` messages in protobuf's
default pool under netkit's file name, so it cannot share a process with
grpcio-reflection's own ``grpc_reflection.v1alpha.reflection_pb2``: whichever is imported
second fails with "duplicate symbol 'grpc.reflection.v1alpha.ServerReflectionRequest'".
netkit's tests run grpcio's reflection client in a subprocess.
"""

from __future__ import annotations

from collections import deque
from collections.abc import AsyncIterator
from types import ModuleType
from typing import Any, Protocol, cast

import attrs
from google.protobuf import descriptor_pool
from google.protobuf.descriptor import Descriptor, FileDescriptor, ServiceDescriptor
from google.protobuf.descriptor_pb2 import FileDescriptorProto
from google.protobuf.descriptor_pool import DescriptorPool
from google.protobuf.message import Message

from ..protos.grpc_reflection.v1 import reflection_netkit as v1_netkit
from ..protos.grpc_reflection.v1 import reflection_pb2 as v1_pb2
from ..protos.grpc_reflection.v1alpha import reflection_netkit as v1alpha_netkit
from ..protos.grpc_reflection.v1alpha import reflection_pb2 as v1alpha_pb2
from ..wire import StatusCode
from ._server import GRPCServer
from ._server_call import ServerCall

__all__ = ["ReflectionService", "ReflectionServiceV1Alpha", "enable_reflection"]


# -- what a request looks like, in either package -----------------------------------------
class _ExtensionRequest(Protocol):
    @property
    def containing_type(self) -> str: ...
    @property
    def extension_number(self) -> int: ...


class _Request(Protocol):
    """The fields of ``ServerReflectionRequest``, which v1 and v1alpha share."""

    @property
    def host(self) -> str: ...
    @property
    def file_by_filename(self) -> str: ...
    @property
    def file_containing_symbol(self) -> str: ...
    @property
    def file_containing_extension(self) -> _ExtensionRequest: ...
    @property
    def all_extension_numbers_of_type(self) -> str: ...
    def WhichOneof(self, oneof_group: Any, /) -> Any: ...


# -- the answers, before they become messages ---------------------------------------------
@attrs.frozen
class _Files:
    #: Serialized ``FileDescriptorProto``: the file asked for, then dependencies.
    files: list[bytes]


@attrs.frozen
class _ExtensionNumbers:
    base_type_name: str
    numbers: list[int]


@attrs.frozen
class _Services:
    names: list[str]


@attrs.frozen
class _Error:
    code: StatusCode
    message: str


_Answer = _Files | _ExtensionNumbers | _Services | _Error


class _NotFound(Exception):
    """A name the pool does not know; becomes an ``error_response`` NOT_FOUND."""


class _Reflector:
    """Answers reflection questions from a server's services and a descriptor pool.

    No messages and no I/O here: :meth:`answer` decides, :func:`_response` writes the
    decision in the package of the stream that asked.
    """

    def __init__(self, server: GRPCServer, pool: DescriptorPool | None = None) -> None:
        self._server = server
        self._pool = pool if pool is not None else descriptor_pool.Default()

    def answer(self, request: _Request, sent: set[str]) -> _Answer:
        """The answer to ``request``; ``sent`` is the stream's already-sent file names."""
        question = request.WhichOneof("message_request")
        try:
            if question == "list_services":
                return _Services(self.service_names())
            if question == "file_by_filename":
                return _Files(
                    _with_dependencies(self.file_by_filename(request.file_by_filename), sent)
                )
            if question == "file_containing_symbol":
                file = self.file_containing_symbol(request.file_containing_symbol)
                return _Files(_with_dependencies(file, sent))
            if question == "file_containing_extension":
                extension = request.file_containing_extension
                file = self.file_containing_extension(
                    extension.containing_type, extension.extension_number
                )
                return _Files(_with_dependencies(file, sent))
            if question == "all_extension_numbers_of_type":
                name = request.all_extension_numbers_of_type
                return _ExtensionNumbers(name, self.extension_numbers(name))
        except _NotFound as exc:
            return _Error(StatusCode.NOT_FOUND, str(exc))
        # No question set, or one added to the protocol after this was written (it then
        # arrives as an unknown field).
        return _Error(StatusCode.INVALID_ARGUMENT, "the request asks no question known here")

    def service_names(self) -> list[str]:
        """Every served service, in the order added; read per question, so never stale."""
        return list(dict.fromkeys(m.service_name for m in self._server.methods.values()))

    def file_by_filename(self, name: str) -> FileDescriptor:
        try:
            return self._pool.FindFileByName(name)
        except KeyError:
            raise _NotFound(f"no file named {name!r}") from None

    def file_containing_symbol(self, symbol: str) -> FileDescriptor:
        try:
            return self._pool.FindFileContainingSymbol(symbol)
        except KeyError:
            pass
        # The pool does not index methods; find the service and look the method up in it.
        service_name, _, method = symbol.rpartition(".")
        service: ServiceDescriptor | None
        try:
            service = self._pool.FindServiceByName(service_name)
        except KeyError:
            service = None
        if service is not None and method in service.methods_by_name:
            return service.file
        raise _NotFound(f"no symbol {symbol!r}")

    def file_containing_extension(self, containing_type: str, number: int) -> FileDescriptor:
        message = self._message_type(containing_type)
        try:
            extension = self._pool.FindExtensionByNumber(message, number)
        except KeyError:
            raise _NotFound(f"no extension {number} of {containing_type!r}") from None
        # Every FieldDescriptor has .file (upb and pure Python); types-protobuf omits it.
        return cast(FileDescriptor, cast(Any, extension).file)

    def extension_numbers(self, type_name: str) -> list[int]:
        message = self._message_type(type_name)
        return sorted(extension.number for extension in self._pool.FindAllExtensions(message))

    def _message_type(self, name: str) -> Descriptor:
        try:
            return self._pool.FindMessageTypeByName(name)
        except KeyError:
            raise _NotFound(f"no message type {name!r}") from None


def _with_dependencies(file: FileDescriptor, sent: set[str]) -> list[bytes]:
    """``file``, always, then its transitive dependencies not in ``sent`` (which grows).

    ``sent`` stays closed under dependencies (a file goes in only with everything it
    imports), so a file already sent needs no walk below it.
    """
    files = [_serialized(file)]
    sent.add(file.name)
    pending = deque(file.dependencies)
    while pending:
        dependency = pending.popleft()
        if dependency.name in sent:
            continue
        sent.add(dependency.name)
        files.append(_serialized(dependency))
        pending.extend(dependency.dependencies)
    return files


def _serialized(file: FileDescriptor) -> bytes:
    """The file's ``FileDescriptorProto``: as registered, or rebuilt if the pool kept none."""
    if file.serialized_pb:
        return file.serialized_pb
    proto = FileDescriptorProto()
    file.CopyToProto(proto)
    return proto.SerializeToString()


def _response(pb: ModuleType, request: Message, answer: _Answer) -> Message:
    """``answer`` as a ``ServerReflectionResponse`` of the generated module ``pb``."""
    response = pb.ServerReflectionResponse(
        valid_host=cast(_Request, request).host, original_request=request
    )
    if isinstance(answer, _Files):
        response.file_descriptor_response.file_descriptor_proto.extend(answer.files)
    elif isinstance(answer, _ExtensionNumbers):
        numbers = response.all_extension_numbers_response
        numbers.base_type_name = answer.base_type_name
        numbers.extension_number.extend(answer.numbers)
    elif isinstance(answer, _Services):
        listed = response.list_services_response
        listed.SetInParent()  # set even when empty: the oneof says what was answered
        listed.service.extend(pb.ServiceResponse(name=name) for name in answer.names)
    else:
        response.error_response.error_code = int(answer.code)
        response.error_response.error_message = answer.message
    return cast(Message, response)


async def _serve(
    reflector: _Reflector, pb: ModuleType, requests: AsyncIterator[Message], call: ServerCall
) -> None:
    """Answer each request as it arrives, until the client half-closes."""
    sent: set[str] = set()  # per stream: what this client has already been given
    async for request in requests:
        answer = reflector.answer(cast(_Request, request), sent)
        await call.send(_response(pb, request, answer))


# -- the two services -----------------------------------------------------------------------
class ReflectionService(v1_netkit.ServerReflectionBase):
    """``grpc.reflection.v1.ServerReflection`` for ``server``'s services.

    ``pool`` is where file descriptors are looked up (default: protobuf's default pool,
    where generated modules register their files).
    """

    def __init__(self, server: GRPCServer, pool: DescriptorPool | None = None) -> None:
        self._reflector = _Reflector(server, pool)

    async def ServerReflectionInfo(
        self, requests: AsyncIterator[v1_pb2.ServerReflectionRequest], call: ServerCall
    ) -> None:
        await _serve(self._reflector, v1_pb2, requests, call)


class ReflectionServiceV1Alpha(v1alpha_netkit.ServerReflectionBase):
    """``grpc.reflection.v1alpha.ServerReflection``: the same answers as
    :class:`ReflectionService`, for clients that only speak the pre-release version.
    """

    def __init__(self, server: GRPCServer, pool: DescriptorPool | None = None) -> None:
        self._reflector = _Reflector(server, pool)

    async def ServerReflectionInfo(
        self, requests: AsyncIterator[v1alpha_pb2.ServerReflectionRequest], call: ServerCall
    ) -> None:
        await _serve(self._reflector, v1alpha_pb2, requests, call)


class _HasGRPC(Protocol):
    """An App (or anything else) with a ``grpc`` server; keeps this module below ``app``."""

    @property
    def grpc(self) -> GRPCServer: ...


def enable_reflection(
    app_or_server: GRPCServer | _HasGRPC, pool: DescriptorPool | None = None
) -> None:
    """Serve reflection, v1 and v1alpha, on ``app_or_server`` (an App or a GRPCServer).

    The services list whatever the server serves when a client asks, so services may be
    added before or after this. Calling it twice on one server is an error (the
    reflection methods would be served twice).
    """
    server = app_or_server if isinstance(app_or_server, GRPCServer) else app_or_server.grpc
    server.add_service(ReflectionService(server, pool))
    server.add_service(ReflectionServiceV1Alpha(server, pool))
