"""The security layer's refusals (they join the tree in ``netkit/errors.py``).

Both are :class:`~netkit.errors.HTTPStatusError`: raised from a plain or REST handler,
they answer 401 or 403 with no further code; the protocol hooks of
:class:`~netkit.security.Security` turn them into each protocol's own refusal (REST
problem+json with ``WWW-Authenticate``, gRPC status, WebSocket handshake status).
"""

from __future__ import annotations

from ..errors import HTTPStatusError


class Unauthenticated(HTTPStatusError):
    """No acceptable credentials: REST 401, gRPC UNAUTHENTICATED, WebSocket 401.

    ``error`` is the RFC 6750 error code for the challenge (``invalid_token`` when
    credentials were sent but are wrong, empty when none were sent).
    """

    def __init__(self, detail: str, *, error: str = "") -> None:
        super().__init__(401, detail)
        self.error = error


class PermissionDenied(HTTPStatusError):
    """Authenticated, but not allowed: REST 403, gRPC PERMISSION_DENIED, pub/sub error."""

    def __init__(self, detail: str, *, scopes: frozenset[str] = frozenset()) -> None:
        super().__init__(403, detail)
        #: The scopes the refused operation needs (for ``error="insufficient_scope"``).
        self.scopes = scopes
