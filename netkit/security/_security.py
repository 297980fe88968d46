"""``Security``: one authenticator and one policy, enforced on every protocol of an App.

Where each protocol is checked, and how a refusal sounds in it:

* REST: a ``RestAPI`` guard (after routing, before the body is read). Unauthenticated:
  401 problem+json with ``WWW-Authenticate``; not allowed: 403 problem+json.
* gRPC: the first server interceptor. ``UNAUTHENTICATED`` / ``PERMISSION_DENIED``.
* WebSocket: ``authenticate=security.websocket``. 401 / 403 before the upgrade.
* pub/sub: ``authorize=security.authorize_topic``. An ``error`` envelope (``forbidden``)
  answers the refused subscribe or publish; the connection stays open.

The principal is stored where the access log and handlers find it: ``stream.principal``
(REST: ``request.principal``), ``call.principal`` (gRPC) and ``ws.principal``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ..grpc import GRPCError, ServerCall, StatusCode
from ..grpc._server import Continuation
from ..rest import Endpoint, Problem, RestRequest
from ..ws import HandshakeRefused, UpgradeRequest
from ._authn import Authenticator, AuthRequest
from ._errors import PermissionDenied, Unauthenticated
from ._identity import peer_identity
from ._policy import Policy, Requirement
from ._principal import ANONYMOUS, Principal

if TYPE_CHECKING:
    from ..app import App

log = logging.getLogger("netkit.security")


def _quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def challenges(
    schemes: Sequence[str],
    realm: str,
    *,
    error: str = "",
    description: str = "",
    scopes: frozenset[str] = frozenset(),
) -> list[tuple[str, str]]:
    """``WWW-Authenticate`` headers, one per scheme (RFC 9110 §11.6.1, RFC 6750 §3)."""
    headers = []
    for scheme in schemes:
        params = [f"realm={_quote(realm)}"]
        if error:
            params.append(f"error={_quote(error)}")
        if error and description:
            # RFC 6750 limits error_description to printable ASCII without '"' and '\'.
            clean = "".join(c for c in description if 0x20 <= ord(c) < 0x7F and c not in '"\\')
            params.append(f"error_description={_quote(clean)}")
        if scopes:
            params.append(f"scope={_quote(' '.join(sorted(scopes)))}")
        headers.append(("www-authenticate", f"{scheme} " + ", ".join(params)))
    return headers


def websocket_refusal(
    exc: Unauthenticated | PermissionDenied, schemes: Sequence[str], realm: str
) -> HandshakeRefused:
    """The HTTP answer to an upgrade that authentication or the policy refused."""
    if isinstance(exc, Unauthenticated):
        headers = challenges(schemes, realm, error=exc.error, description=exc.detail)
        return HandshakeRefused(401, exc.detail, headers)
    return HandshakeRefused(403, exc.detail)


#: The policy of an authenticator used on its own as ``authenticate=`` of a WebSocket
#: endpoint: no rules but the default, so every path needs a principal. Never changed.
AUTHENTICATION_ONLY = Policy()


class _Metadata:
    """gRPC metadata as the header lookup authenticators use (text values only)."""

    __slots__ = ("_call",)

    def __init__(self, call: ServerCall) -> None:
        self._call = call

    def get(self, name: str, /) -> str | None:
        # A key's type is fixed by its name ("-bin": bytes), so the first value is the
        # first text value, or there is none.
        value = self._call.metadata_value(name)
        return value if isinstance(value, str) else None


class Security:
    """Authentication and authorization for an App's REST, gRPC and WebSocket.

    ``authenticator`` finds principals (e.g. ``AnyOf(JWTAuthenticator(...),
    MutualTLS())``); ``policy`` says what each may do (default: a :class:`Policy` that
    only asks for authentication); ``realm`` goes into ``WWW-Authenticate``.
    :meth:`install` hooks REST and gRPC; WebSocket endpoints take
    ``authenticate=security.websocket`` and pub/sub ``authorize=security.authorize_topic``.
    """

    def __init__(
        self,
        authenticator: Authenticator,
        policy: Policy | None = None,
        *,
        realm: str = "netkit",
    ) -> None:
        self.authenticator = authenticator
        self.policy = policy if policy is not None else Policy()
        self.realm = realm

    def install(self, app: App) -> None:
        """Guard ``app.rest`` and put the gRPC check first among ``app.grpc``'s interceptors."""
        app.rest.add_guard(self.rest_guard)
        app.grpc.interceptors.insert(0, self.grpc_interceptor)

    # -- the decision, shared by every protocol -----------------------------------------
    async def check(self, request: AuthRequest, requirement: Requirement) -> Principal | None:
        """Authenticate ``request`` and hold it to ``requirement``.

        Returns the principal (None on a public entry point without credentials);
        raises :class:`Unauthenticated` or :class:`PermissionDenied`.
        """
        principal = await self.authenticator.authenticate(request)
        if principal is None:
            if requirement.public and not requirement.deny:
                return None
            raise Unauthenticated("authentication required")
        if not requirement.allows(principal):
            raise PermissionDenied(
                f"{principal.id} may not {request.method} {request.path}: "
                f"needs {requirement.describe()}",
                scopes=requirement.scopes,
            )
        return principal

    # -- REST --------------------------------------------------------------------------
    async def rest_guard(self, request: RestRequest[Any], endpoint: Endpoint) -> None:
        """A ``RestAPI`` guard: 401/403 problem+json, or the principal on the stream."""
        stream = request.stream
        head = stream.request
        auth = AuthRequest("rest", head.method, head.path, head.headers, peer_identity(stream))
        requirement = self.policy.for_route(endpoint.method, endpoint.template)
        try:
            stream.principal = await self.check(auth, requirement)
        except Unauthenticated as exc:
            headers = challenges(
                self.authenticator.schemes(), self.realm, error=exc.error, description=exc.detail
            )
            raise Problem(401, exc.detail, headers=headers) from None
        except PermissionDenied as exc:
            headers = challenges(
                self.authenticator.schemes(),
                self.realm,
                error="insufficient_scope",
                scopes=exc.scopes,
            )
            raise Problem(403, exc.detail, headers=headers) from None

    # -- gRPC --------------------------------------------------------------------------
    async def grpc_interceptor(self, call: ServerCall, proceed: Continuation) -> None:
        """A ``GRPCServer`` interceptor: UNAUTHENTICATED / PERMISSION_DENIED, or proceed."""
        auth = AuthRequest("grpc", "POST", call.method, _Metadata(call), peer_identity(call))
        try:
            call.principal = await self.check(auth, self.policy.for_grpc(call.method))
        except Unauthenticated as exc:
            raise GRPCError(StatusCode.UNAUTHENTICATED, exc.detail) from None
        except PermissionDenied as exc:
            raise GRPCError(StatusCode.PERMISSION_DENIED, exc.detail) from None
        await proceed()

    # -- WebSocket -----------------------------------------------------------------------
    async def websocket(self, upgrade: UpgradeRequest) -> Principal:
        """A WebSocket authenticator: the endpoint's rule, checked before the upgrade.

        A public endpoint lets clients without credentials in as :data:`ANONYMOUS`.
        """
        auth = AuthRequest(
            "websocket",
            upgrade.request.method,
            upgrade.path,
            upgrade.headers,
            peer_identity(upgrade),
        )
        try:
            principal = await self.check(auth, self.policy.for_websocket(upgrade.path))
        except (Unauthenticated, PermissionDenied) as exc:
            raise websocket_refusal(exc, self.authenticator.schemes(), self.realm) from None
        return principal if principal is not None else ANONYMOUS

    def authorize_topic(self, principal: Any, action: str, topic: str) -> bool:
        """A pub/sub authorizer: ``(principal, "subscribe" | "publish", topic) -> bool``."""
        who = principal if isinstance(principal, Principal) and principal is not ANONYMOUS else None
        return self.policy.allows_topic(who, action, topic)


def require_scopes(principal: Any, *scopes: str) -> Principal:
    """Inside a handler: the principal, if it holds every one of ``scopes``.

    Raises :class:`Unauthenticated` (401) without a principal and
    :class:`PermissionDenied` (403) when a scope is missing, which REST and plain
    handlers answer as such.
    """
    if not isinstance(principal, Principal) or principal is ANONYMOUS:
        raise Unauthenticated("authentication required")
    missing = frozenset(scopes) - principal.scopes
    if missing:
        raise PermissionDenied(
            f"{principal.id} lacks scope {' '.join(sorted(missing))}", scopes=frozenset(scopes)
        )
    return principal
