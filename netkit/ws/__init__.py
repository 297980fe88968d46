"""WebSocket on the netkit server: endpoints over HTTP/1.1 Upgrade and HTTP/2 extended
CONNECT (RFC 8441), authentication before the upgrade, heartbeats, a pub/sub hub, and an
events client.

The server side is one code path on both transports: netkit's HTTP layer checks the
handshake and hands over the byte stream; wsproto's frame layer handles the frames.
"""

from ._client import EventsClient as EventsClient
from ._client import EventsError as EventsError
from ._client import connect_events as connect_events
from ._config import WebSocketConfig as WebSocketConfig
from ._endpoint import Authenticator as Authenticator
from ._endpoint import UpgradeRequest as UpgradeRequest
from ._endpoint import WebSocketRoutes as WebSocketRoutes
from ._errors import HandshakeRefused as HandshakeRefused
from ._errors import WebSocketClosed as WebSocketClosed
from ._hub import Authorizer as Authorizer
from ._hub import Hub as Hub
from ._session import Overflow as Overflow
from ._session import WebSocket as WebSocket
from ._session import WebSocketHandler as WebSocketHandler

__all__ = [
    "Authenticator",
    "Authorizer",
    "EventsClient",
    "EventsError",
    "HandshakeRefused",
    "Hub",
    "Overflow",
    "UpgradeRequest",
    "WebSocket",
    "WebSocketClosed",
    "WebSocketConfig",
    "WebSocketHandler",
    "WebSocketRoutes",
    "connect_events",
]
