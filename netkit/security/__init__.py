"""Security across REST, gRPC and WebSocket: TLS contexts, authentication, authorization
and request signing.

* TLS: :func:`server_context` / :func:`client_context` (TLS 1.2+, AEAD suites, ALPN,
  mutual TLS), :class:`ReloadingServerContext` (new certificates without a restart),
  :class:`PeerIdentity` (the verified client certificate's names).
* Authentication: one :class:`Authenticator` interface over every protocol's request
  head; :class:`BearerTokens`, :class:`JWTAuthenticator` (``netkit[jwt]``),
  :class:`MutualTLS`, :class:`AnyOf`.
* Authorization: a :class:`Policy` of :class:`Requirement` per REST route, gRPC method
  and WebSocket endpoint or topic; :class:`Security` enforces both on an App.
* Integrity: :class:`HMACSigner` / :class:`HMACVerifier` for signed REST requests.
* Clients: :class:`CallCredentials` for gRPC channels; RestClient and the WebSocket
  events client take the same auth providers.

See docs/security.md for the model and its decisions.
"""

from ._authn import AnyOf as AnyOf
from ._authn import Authenticator as Authenticator
from ._authn import AuthRequest as AuthRequest
from ._authn import BearerTokens as BearerTokens
from ._authn import MutualTLS as MutualTLS
from ._credentials import CallCredentials as CallCredentials
from ._devpki import DevPKI as DevPKI
from ._errors import PermissionDenied as PermissionDenied
from ._errors import Unauthenticated as Unauthenticated
from ._hmac import HMACSigner as HMACSigner
from ._hmac import HMACVerifier as HMACVerifier
from ._identity import PeerIdentity as PeerIdentity
from ._identity import peer_identity as peer_identity
from ._jwt import JWTAuthenticator as JWTAuthenticator
from ._policy import AUTHENTICATED as AUTHENTICATED
from ._policy import DENY as DENY
from ._policy import PUBLIC as PUBLIC
from ._policy import REGISTRY_READ as REGISTRY_READ
from ._policy import REGISTRY_WRITE as REGISTRY_WRITE
from ._policy import Policy as Policy
from ._policy import Requirement as Requirement
from ._policy import require as require
from ._principal import ANONYMOUS as ANONYMOUS
from ._principal import Principal as Principal
from ._security import Security as Security
from ._security import require_scopes as require_scopes
from ._tls import ReloadingServerContext as ReloadingServerContext
from ._tls import client_context as client_context
from ._tls import server_context as server_context

__all__ = [
    "ANONYMOUS",
    "AUTHENTICATED",
    "DENY",
    "PUBLIC",
    "REGISTRY_READ",
    "REGISTRY_WRITE",
    "AnyOf",
    "AuthRequest",
    "Authenticator",
    "BearerTokens",
    "CallCredentials",
    "DevPKI",
    "HMACSigner",
    "HMACVerifier",
    "JWTAuthenticator",
    "MutualTLS",
    "PeerIdentity",
    "PermissionDenied",
    "Policy",
    "Principal",
    "ReloadingServerContext",
    "Requirement",
    "Security",
    "Unauthenticated",
    "client_context",
    "peer_identity",
    "require",
    "require_scopes",
    "server_context",
]
