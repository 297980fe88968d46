"""Sans-I/O codecs of our own for the gRPC wire: message framing and compression,
grpc-timeout, status codes and grpc-message, metadata.

Nothing here touches a socket, trio, or the rest of netkit (DESIGN.md, "Layers"): the
drivers in ``netkit.grpc`` feed bytes and header values in and act on what comes out,
and the tests drive these functions directly with hypothesis.
"""

from __future__ import annotations

from .errors import FramingError as FramingError
from .errors import InvalidMetadata as InvalidMetadata
from .errors import InvalidTimeout as InvalidTimeout
from .errors import MessageTooLarge as MessageTooLarge
from .errors import UnsupportedEncoding as UnsupportedEncoding
from .errors import WireError as WireError
from .grpc_framing import DEFAULT_MAX_MESSAGE_SIZE as DEFAULT_MAX_MESSAGE_SIZE
from .grpc_framing import Frame as Frame
from .grpc_framing import MessageDecoder as MessageDecoder
from .grpc_framing import compress as compress
from .grpc_framing import decompress as decompress
from .grpc_framing import encode_message as encode_message
from .grpc_metadata import content_type_is_grpc as content_type_is_grpc
from .grpc_metadata import decode_binary as decode_binary
from .grpc_metadata import decode_binary_values as decode_binary_values
from .grpc_metadata import decode_metadata as decode_metadata
from .grpc_metadata import encode_binary as encode_binary
from .grpc_metadata import encode_metadata as encode_metadata
from .grpc_metadata import is_reserved as is_reserved
from .grpc_metadata import is_valid_key as is_valid_key
from .grpc_status import StatusCode as StatusCode
from .grpc_status import decode_grpc_message as decode_grpc_message
from .grpc_status import encode_grpc_message as encode_grpc_message
from .grpc_status import status_from_http as status_from_http
from .grpc_status import status_from_rst_stream as status_from_rst_stream
from .grpc_timeout import MAX_TIMEOUT as MAX_TIMEOUT
from .grpc_timeout import decode_timeout as decode_timeout
from .grpc_timeout import encode_timeout as encode_timeout

__all__ = [
    "DEFAULT_MAX_MESSAGE_SIZE",
    "MAX_TIMEOUT",
    "Frame",
    "FramingError",
    "InvalidMetadata",
    "InvalidTimeout",
    "MessageDecoder",
    "MessageTooLarge",
    "StatusCode",
    "UnsupportedEncoding",
    "WireError",
    "compress",
    "content_type_is_grpc",
    "decode_binary",
    "decode_binary_values",
    "decode_grpc_message",
    "decode_metadata",
    "decode_timeout",
    "decompress",
    "encode_binary",
    "encode_grpc_message",
    "encode_message",
    "encode_metadata",
    "encode_timeout",
    "is_reserved",
    "is_valid_key",
    "status_from_http",
    "status_from_rst_stream",
]
