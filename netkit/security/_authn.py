"""One authentication interface for REST, gRPC and WebSocket.

An :class:`Authenticator` looks at an :class:`AuthRequest` — the request head as every
protocol has it: headers (gRPC metadata are headers too), the method and path, and the
verified TLS peer — and answers with a :class:`Principal`, with ``None`` ("no
credentials of my kind here"), or by raising :class:`Unauthenticated` ("credentials
here, and they are wrong"). Each protocol's hook (``netkit.security.Security``) turns
``None`` on a protected entry point and ``Unauthenticated`` into its own refusal.

The split between ``None`` and raising is what lets :class:`AnyOf` combine methods: a
request without a token may still have a client certificate, but a request with a
forged token is refused outright rather than tried against weaker methods.
"""

from __future__ import annotations

import abc
import hashlib
import inspect
from collections.abc import Awaitable, Callable, Collection, Mapping
from typing import TYPE_CHECKING, Protocol

import attrs

from ._errors import Unauthenticated
from ._identity import PeerIdentity
from ._principal import Principal

if TYPE_CHECKING:
    from ..ws import UpgradeRequest


class HeaderLookup(Protocol):
    def get(self, name: str, /) -> str | None: ...


@attrs.frozen
class AuthRequest:
    """The request head an authenticator sees, the same for every protocol.

    ``protocol`` is ``"rest"``, ``"grpc"`` or ``"websocket"``; ``method`` the HTTP
    method (for gRPC: ``POST``); ``path`` the request path (for gRPC the method's
    ``/package.Service/Method``); ``headers`` answers ``get(lowercase_name)``.
    """

    protocol: str
    method: str
    path: str
    headers: HeaderLookup
    peer: PeerIdentity | None = None

    def bearer_token(self) -> str | None:
        """The token of an ``Authorization: Bearer`` header (RFC 6750), if any."""
        value = self.headers.get("authorization") or ""
        scheme, _, token = value.strip().partition(" ")
        if scheme.lower() != "bearer":
            return None
        return token.strip() or None


class Authenticator(abc.ABC):
    """Finds the principal of a request; see the module docstring for the contract.

    An authenticator is also a WebSocket authenticator as ``app.ws.endpoint(...,
    authenticate=...)`` expects: called with the :class:`~netkit.ws.UpgradeRequest`, it
    refuses the upgrade with 401 and a ``WWW-Authenticate`` challenge.
    """

    #: The ``WWW-Authenticate`` scheme this authenticator asks for (``""``: none, as
    #: for client certificates, which are asked for by TLS, not HTTP).
    scheme: str = "Bearer"

    @abc.abstractmethod
    async def authenticate(self, request: AuthRequest) -> Principal | None:
        """The principal, None without credentials of this kind, or raise Unauthenticated."""

    def schemes(self) -> list[str]:
        """The challenge schemes to offer in ``WWW-Authenticate``."""
        return [self.scheme] if self.scheme else []

    async def __call__(self, upgrade: UpgradeRequest) -> Principal:
        # Security.websocket with a policy that asks every path for a principal (so
        # never ANONYMOUS), in the default realm: one refusal for both ways in.
        from ._security import AUTHENTICATION_ONLY, Security

        return await Security(self, AUTHENTICATION_ONLY).websocket(upgrade)


TokenLookup = Callable[[str], Awaitable[Principal | None] | Principal | None]
"""``(token) -> principal or None``; may be sync or async."""


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8", "surrogateescape")).digest()


class BearerTokens(Authenticator):
    """``Authorization: Bearer <token>`` checked against a static set or a callable.

    ``tokens`` maps each token to its principal (or to a principal id, which gets no
    scopes); the tokens are kept only as SHA-256 digests, so the lookup's timing says
    nothing about how much of a token was right. Or pass ``lookup``, a sync or async
    function from token to principal (None: unknown) — for tokens kept in a database or
    checked by an introspection endpoint. An unknown token is refused with
    ``invalid_token``; a request without one is left to other authenticators.
    """

    def __init__(
        self,
        tokens: Mapping[str, Principal | str] | None = None,
        *,
        lookup: TokenLookup | None = None,
    ) -> None:
        if (tokens is None) == (lookup is None):
            raise ValueError("give either tokens or lookup")
        self._lookup = lookup
        self._tokens: dict[bytes, Principal] = {}
        for token, principal in (tokens or {}).items():
            if isinstance(principal, str):
                principal = Principal(principal, method="bearer")
            self._tokens[_digest(token)] = principal

    async def authenticate(self, request: AuthRequest) -> Principal | None:
        token = request.bearer_token()
        if token is None:
            return None
        principal: Principal | None
        if self._lookup is not None:
            result = self._lookup(token)
            principal = await result if inspect.isawaitable(result) else result
        else:
            principal = self._tokens.get(_digest(token))
        if principal is None:
            raise Unauthenticated("the bearer token is not valid", error="invalid_token")
        return principal


IdentityMapper = Callable[[PeerIdentity], Principal | None]


class MutualTLS(Authenticator):
    """The verified client certificate is the credential (``server_context(client_ca=...)``).

    By default the principal's id is the certificate's :attr:`PeerIdentity.name` (first
    URI SAN, DNS SAN, e-mail SAN, then common name) and its scopes come from
    ``scopes[name]``; ``allowed`` (names) turns every other certificate away, even one
    the CA signed. ``map`` replaces all of that: a function from the identity to a
    principal (None: refused).
    """

    scheme = ""

    def __init__(
        self,
        *,
        scopes: Mapping[str, Collection[str]] | None = None,
        allowed: Collection[str] | None = None,
        map: IdentityMapper | None = None,
    ) -> None:
        self._scopes = {name: frozenset(values) for name, values in (scopes or {}).items()}
        self._allowed = frozenset(allowed) if allowed is not None else None
        self._map = map

    async def authenticate(self, request: AuthRequest) -> Principal | None:
        peer = request.peer
        if peer is None:
            return None
        if self._map is not None:
            principal = self._map(peer)
            if principal is None:
                raise Unauthenticated("this client certificate is not accepted")
            return principal
        name = peer.name
        if not name or (self._allowed is not None and name not in self._allowed):
            raise Unauthenticated("this client certificate is not accepted")
        return Principal(name, self._scopes.get(name, frozenset()), method="mtls", peer=peer)


class AnyOf(Authenticator):
    """The first of ``authenticators`` that finds a principal; refusals end the search."""

    def __init__(self, *authenticators: Authenticator) -> None:
        if not authenticators:
            raise ValueError("AnyOf needs at least one authenticator")
        self.authenticators = authenticators

    def schemes(self) -> list[str]:
        found: list[str] = []
        for authenticator in self.authenticators:
            found += [s for s in authenticator.schemes() if s not in found]
        return found

    async def authenticate(self, request: AuthRequest) -> Principal | None:
        for authenticator in self.authenticators:
            principal = await authenticator.authenticate(request)
            if principal is not None:
                return principal
        return None
