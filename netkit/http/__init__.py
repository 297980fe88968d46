"""The HTTP layer: one server for HTTP/1.1 and HTTP/2, the stream API above it, and an
HTTP/2 client connection."""

from ._client import ClientStream as ClientStream
from ._client import H2ClientConnection as H2ClientConnection
from ._client_config import ClientConfig as ClientConfig
from ._config import ServerConfig as ServerConfig
from ._headers import Headers as Headers
from ._observer import ServerObserver as ServerObserver
from ._server import Server as Server
from ._server import current_server as current_server
from ._server import serve as serve
from ._stream import Handler as Handler
from ._stream import HTTPStream as HTTPStream
from ._stream import Request as Request

__all__ = [
    "ClientConfig",
    "ClientStream",
    "H2ClientConnection",
    "HTTPStream",
    "Handler",
    "Headers",
    "Request",
    "Server",
    "ServerConfig",
    "ServerObserver",
    "current_server",
    "serve",
]
