"""netkit: a trio-native networking framework.

One server speaks HTTP/1.1 and HTTP/2 on one port (``serve``); handlers see one stream
abstraction (``HTTPStream``) whatever the protocol; ``App`` composes them.
"""

from .app import App as App
from .app import respond_json as respond_json
from .discovery import DiscoveryClient as DiscoveryClient
from .discovery import EtcdRegistry as EtcdRegistry
from .discovery import InstanceSpec as InstanceSpec
from .discovery import MemoryRegistry as MemoryRegistry
from .discovery import RegistrationAgent as RegistrationAgent
from .discovery import RegistryConfig as RegistryConfig
from .discovery import RegistryService as RegistryService
from .discovery import RegistryUnavailable as RegistryUnavailable
from .discovery import add_registry_routes as add_registry_routes
from .errors import ConnectionClosed as ConnectionClosed
from .errors import HTTPStatusError as HTTPStatusError
from .errors import LocalProtocolError as LocalProtocolError
from .errors import NetkitError as NetkitError
from .errors import ProtocolError as ProtocolError
from .errors import RemoteProtocolError as RemoteProtocolError
from .errors import RequestBodyTooLarge as RequestBodyTooLarge
from .errors import StreamReset as StreamReset
from .http import ClientConfig as ClientConfig
from .http import ClientStream as ClientStream
from .http import H2ClientConnection as H2ClientConnection
from .http import Headers as Headers
from .http import HTTPStream as HTTPStream
from .http import Request as Request
from .http import Server as Server
from .http import ServerConfig as ServerConfig
from .http import serve as serve
from .observe import Observability as Observability
from .observe import configure_logging as configure_logging
from .rest import APIConnectionError as APIConnectionError
from .rest import APIError as APIError
from .rest import APITimeout as APITimeout
from .rest import BearerToken as BearerToken
from .rest import Problem as Problem
from .rest import Response as Response
from .rest import RestAPI as RestAPI
from .rest import RestClient as RestClient
from .rest import RestClientError as RestClientError
from .rest import RestConfig as RestConfig
from .rest import RestRequest as RestRequest
from .rest import RetryPolicy as RetryPolicy
from .rest import StreamingResponse as StreamingResponse
from .security import PeerIdentity as PeerIdentity
from .security import Policy as Policy
from .security import Principal as Principal
from .security import Security as Security
from .security import client_context as client_context
from .security import server_context as server_context
from .ws import WebSocket as WebSocket
from .ws import WebSocketClosed as WebSocketClosed
from .ws import WebSocketConfig as WebSocketConfig

__version__ = "0.1.0"

__all__ = [
    "APIConnectionError",
    "APIError",
    "APITimeout",
    "App",
    "BearerToken",
    "ClientConfig",
    "ClientStream",
    "ConnectionClosed",
    "DiscoveryClient",
    "EtcdRegistry",
    "H2ClientConnection",
    "HTTPStatusError",
    "HTTPStream",
    "Headers",
    "InstanceSpec",
    "LocalProtocolError",
    "MemoryRegistry",
    "NetkitError",
    "Observability",
    "PeerIdentity",
    "Policy",
    "Principal",
    "Problem",
    "ProtocolError",
    "RegistrationAgent",
    "RegistryConfig",
    "RegistryService",
    "RegistryUnavailable",
    "RemoteProtocolError",
    "Request",
    "RequestBodyTooLarge",
    "Response",
    "RestAPI",
    "RestClient",
    "RestClientError",
    "RestConfig",
    "RestRequest",
    "RetryPolicy",
    "Security",
    "Server",
    "ServerConfig",
    "StreamReset",
    "StreamingResponse",
    "WebSocket",
    "WebSocketClosed",
    "WebSocketConfig",
    "add_registry_routes",
    "client_context",
    "configure_logging",
    "respond_json",
    "serve",
    "server_context",
]
