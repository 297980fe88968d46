"""The WebSocket layer's exceptions (they join the tree in ``netkit/errors.py``)."""

from __future__ import annotations

from ..errors import ConnectionClosed, HTTPStatusError


class WebSocketClosed(ConnectionClosed):
    """The WebSocket connection is closed; ``code``/``reason`` say how (RFC 6455 §7.4).

    1000 normal, 1001 going away, 1002 protocol error, 1006 dropped without a close
    frame, 1007 invalid UTF-8 text, 1009 message too big, 1011 server error (or no pong
    in time), 1013 try again later (a pub/sub subscriber that fell too far behind).
    """

    def __init__(self, code: int, reason: str = "") -> None:
        super().__init__(f"WebSocket closed with {code}" + (f": {reason}" if reason else ""))
        self.code = code
        self.reason = reason


class HandshakeRefused(HTTPStatusError):
    """The upgrade request is refused with an HTTP status (400, 401, 403, 426...).

    An authenticator raises it (or returns None, which means 401) to refuse a client;
    ``headers`` go out with the response (e.g. ``www-authenticate``).
    """

    def __init__(
        self, status: int, detail: str = "", headers: list[tuple[str, str]] | None = None
    ) -> None:
        super().__init__(status, detail)
        self.headers = headers or []
