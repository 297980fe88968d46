"""The HTTP layer: one server for HTTP/1.1 and HTTP/2, and the stream API above it."""

from ._config import ServerConfig as ServerConfig
from ._headers import Headers as Headers
from ._server import Server as Server
from ._server import serve as serve
from ._stream import Handler as Handler
from ._stream import HTTPStream as HTTPStream
from ._stream import Request as Request

__all__ = [
    "HTTPStream",
    "Handler",
    "Headers",
    "Request",
    "Server",
    "ServerConfig",
    "serve",
]
