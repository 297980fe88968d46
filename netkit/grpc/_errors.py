"""``GRPCError``: a call that ended with a status other than OK, on either side.

A server handler raises it (or calls ``call.abort``) to end the call with that status; a
client sees every non-OK status as this one typed exception, carrying what the server
sent: code, message, the decoded ``google.rpc.Status`` details and the trailers.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..errors import NetkitError
from ..wire import StatusCode

MetadataValue = str | bytes
Metadata = Sequence[tuple[str, MetadataValue]]


class GRPCError(NetkitError):
    """A gRPC status other than OK."""

    def __init__(
        self,
        code: StatusCode | int,
        message: str = "",
        details: bytes | None = None,
        trailers: Metadata = (),
    ) -> None:
        self.code = StatusCode(code)
        self.message = message
        #: The serialized ``google.rpc.Status`` of ``grpc-status-details-bin``, if any.
        self.details = details
        self.trailers: list[tuple[str, MetadataValue]] = list(trailers)
        super().__init__(f"{self.code.name}: {message}" if message else self.code.name)
