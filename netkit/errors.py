"""The exceptions netkit raises, in one tree.

::

    NetkitError
    ├── ProtocolError                 the bytes on the wire broke a protocol rule
    │   ├── LocalProtocolError        we (or the handler) tried to do something illegal
    │   └── RemoteProtocolError       the peer sent something illegal
    ├── HTTPStatusError               ends the request with an HTTP status (400, 413, ...)
    │   ├── RequestBodyTooLarge       the request body exceeded ``max_request_body_size`` (413)
    │   ├── Unauthenticated           no acceptable credentials (401; netkit/security/_errors.py)
    │   └── PermissionDenied          authenticated but not allowed (403; same module)
    ├── StreamReset                   the stream was reset (by the peer, or by us after a stall)
    ├── ConnectionClosed              the connection went away while the handler used it
    └── RestClientError               a RestClient call failed (netkit/rest/_client_errors.py)
        ├── APIError                  the service answered with a non-2xx status
        ├── APITimeout                the call's deadline or the last attempt's timeout ran out
        └── APIConnectionError        no connection, or it broke mid-response, on the last attempt

Handlers may raise :class:`HTTPStatusError` to answer with a status; the server turns
any other exception into a 500 (or RST_STREAM once the response has started) and logs it.
Transport errors from trio are mapped at the edge with ``raise ... from exc`` so that
callers see one family, while trio's distinction survives in ``__cause__``:
``trio.ClosedResourceError`` means we closed it, ``trio.BrokenResourceError`` means the peer did.
"""

from __future__ import annotations


class NetkitError(Exception):
    """Base class of every exception netkit raises on purpose."""


class ProtocolError(NetkitError):
    """A protocol rule was broken."""


class LocalProtocolError(ProtocolError):
    """This side tried to do something the protocol forbids (e.g. send after end of stream)."""


class RemoteProtocolError(ProtocolError):
    """The peer broke the protocol."""


class HTTPStatusError(NetkitError):
    """Ends the current request with ``status``; raised by handlers or by the stream itself."""

    def __init__(self, status: int, detail: str = "") -> None:
        super().__init__(f"{status} {detail}".strip())
        self.status = status
        self.detail = detail


class RequestBodyTooLarge(HTTPStatusError):
    """The request body is larger than the configured limit; answered with 413."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"request body larger than {limit} bytes")
        self.limit = limit


class StreamReset(NetkitError):
    """The stream was reset; ``error_code`` is the HTTP/2 error code (0 for HTTP/1.1 closes)."""

    def __init__(self, error_code: int = 0, detail: str = "") -> None:
        super().__init__(detail or f"stream reset with error code {error_code}")
        self.error_code = error_code


class ConnectionClosed(NetkitError):
    """The connection was closed or broken while a handler still used it."""
