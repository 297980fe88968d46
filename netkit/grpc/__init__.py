"""gRPC on netkit's own HTTP/2 layer: services, server dispatch, channels and stubs.

No grpcio at run time: messages are protobuf, the framing is ``netkit.wire``, and the
transport is netkit's HTTP/2 server and client. Generated code (``protoc-gen-netkit``)
builds on :class:`Service`, :class:`RPCMethod` and the four ``...Method`` stub classes.
"""

from ..wire import StatusCode as StatusCode
from ._channel import CallInfo as CallInfo
from ._channel import Channel as Channel
from ._channel import ChannelConfig as ChannelConfig
from ._channel import ClientCall as ClientCall
from ._channel import ClientInterceptor as ClientInterceptor
from ._channel import open_channel as open_channel
from ._errors import GRPCError as GRPCError
from ._errors import Metadata as Metadata
from ._server import GRPCConfig as GRPCConfig
from ._server import GRPCServer as GRPCServer
from ._server import ServerInterceptor as ServerInterceptor
from ._server_call import ServerCall as ServerCall
from ._service import Cardinality as Cardinality
from ._service import RPCMethod as RPCMethod
from ._service import Service as Service
from ._stub import StreamStreamMethod as StreamStreamMethod
from ._stub import StreamUnaryMethod as StreamUnaryMethod
from ._stub import UnaryStreamMethod as UnaryStreamMethod
from ._stub import UnaryUnaryMethod as UnaryUnaryMethod

__all__ = [
    "CallInfo",
    "Cardinality",
    "Channel",
    "ChannelConfig",
    "ClientCall",
    "ClientInterceptor",
    "GRPCConfig",
    "GRPCError",
    "GRPCServer",
    "Metadata",
    "RPCMethod",
    "ServerCall",
    "ServerInterceptor",
    "Service",
    "StatusCode",
    "StreamStreamMethod",
    "StreamUnaryMethod",
    "UnaryStreamMethod",
    "UnaryUnaryMethod",
    "open_channel",
]
