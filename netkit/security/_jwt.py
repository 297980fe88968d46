"""JWT bearer tokens (RFC 7519) verified with PyJWT: ``pip install 'netkit[jwt]'``.

Verification is PyJWT's (signature, ``exp``, ``nbf``, ``iss``, ``aud``, with a leeway
for clock skew); this module picks the key and turns claims into a :class:`Principal`.

Key rotation by ``kid``: keys are held by id; a token's header names the key that
signed it. An issuer rotating keys publishes the new key first (``add_key`` or
``set_keys`` with both), signs with it, and retires the old one once tokens signed with
it have expired. A token whose ``kid`` is unknown is refused; a token without ``kid`` is
accepted only when exactly one key is configured.

Algorithms are an allow-list fixed at construction (never taken from the token), which
rules out ``alg: none`` and, since PyJWT refuses to use an asymmetric key as an HMAC
secret, the RS256-to-HS256 confusion.
"""

from __future__ import annotations

import importlib
from collections.abc import Collection, Mapping, Sequence
from types import ModuleType
from typing import Any

from ._authn import Authenticator, AuthRequest
from ._errors import Unauthenticated
from ._principal import Principal


def _pyjwt() -> ModuleType:
    """PyJWT, imported on first use so that ``netkit.security`` works without it."""
    try:
        return importlib.import_module("jwt")
    except ImportError as exc:
        raise ImportError(
            "netkit.security.JWTAuthenticator needs PyJWT with its crypto backend: "
            "pip install 'netkit[jwt]'"
        ) from exc


#: A verification key: an HMAC secret (bytes or str), a PEM public key, a
#: ``cryptography`` key object, or a ``jwt.PyJWK``.
Key = Any


_INVALID = "invalid_token"


def _claim_set(value: Any) -> frozenset[str]:
    """``"a b c"`` (OAuth ``scope``) or ``["a", "b"]`` (``scp``, ``roles``) as a set."""
    if value is None:
        return frozenset()
    if isinstance(value, str):
        return frozenset(value.split())
    if isinstance(value, list | tuple):
        return frozenset(str(item) for item in value)
    return frozenset()


class JWTAuthenticator(Authenticator):
    """``Authorization: Bearer <JWT>`` checked against keys by ``kid``.

    ``keys``: ``{kid: key}``, or one key. ``algorithms``: the allow-list (e.g.
    ``["ES256"]``). ``issuer``/``audience``: required values of ``iss``/``aud`` (None:
    not checked). ``leeway``: seconds of clock skew tolerated on ``exp``/``nbf``.
    ``require``: claims that must be present (``exp`` by default: no eternal tokens).
    The principal's id is the ``sub`` claim; its scopes come from ``scope`` (space
    separated) or ``scp``, its roles from ``roles``; all verified claims are kept in
    ``principal.claims``.
    """

    def __init__(
        self,
        keys: Mapping[str, Key] | Key,
        *,
        algorithms: Sequence[str],
        issuer: str | Sequence[str] | None = None,
        audience: str | Collection[str] | None = None,
        leeway: float = 30.0,
        require: Sequence[str] = ("exp",),
        roles_claim: str = "roles",
    ) -> None:
        self._jwt = _pyjwt()
        if not algorithms or any(a.lower() == "none" for a in algorithms):
            raise ValueError("algorithms must list real signature algorithms")
        self.algorithms = list(algorithms)
        self.issuer = issuer
        self.audience = audience
        self.leeway = leeway
        self.require = list(require)
        self.roles_claim = roles_claim
        self._keys: dict[str | None, Key] = {}
        self.set_keys(keys)

    @classmethod
    def from_jwks(cls, jwks: Mapping[str, Any], **options: Any) -> JWTAuthenticator:
        """Keys from a JWK Set document (``{"keys": [...]}``, each with a ``kid``)."""
        keyset = _pyjwt().PyJWKSet.from_dict(dict(jwks))
        keys = {key.key_id: key for key in keyset.keys if key.key_id is not None}
        return cls(keys, **options)

    # -- rotation -------------------------------------------------------------------------
    def set_keys(self, keys: Mapping[str, Key] | Key) -> None:
        """Replace every key at once (e.g. after fetching the issuer's JWKS again)."""
        if isinstance(keys, Mapping):
            self._keys = {str(kid): key for kid, key in keys.items()}
        else:
            self._keys = {None: keys}

    def add_key(self, kid: str, key: Key) -> None:
        self._keys = {**self._keys, kid: key}

    def remove_key(self, kid: str) -> None:
        self._keys = {k: v for k, v in self._keys.items() if k != kid}

    @property
    def key_ids(self) -> list[str]:
        return [kid for kid in self._keys if kid is not None]

    # -- verification -----------------------------------------------------------------------
    def _key_for(self, token: str) -> Key:
        jwt = self._jwt
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise Unauthenticated("the bearer token is not a JWT", error=_INVALID) from None
        kid = header.get("kid")
        keys = self._keys
        if kid is not None and str(kid) in keys:
            key = keys[str(kid)]
        elif len(keys) == 1 and (kid is None or None in keys):
            key = next(iter(keys.values()))
        else:
            raise Unauthenticated("the token's signing key is not known", error=_INVALID)
        return key.key if isinstance(key, jwt.PyJWK) else key

    def verify(self, token: str) -> dict[str, Any]:
        """The token's claims once signature and claims check out; else Unauthenticated."""
        key = self._key_for(token)
        jwt = self._jwt
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=self.algorithms,
                audience=self.audience,
                issuer=self.issuer,
                leeway=self.leeway,
                options={"require": self.require, "verify_aud": self.audience is not None},
            )
        except jwt.ExpiredSignatureError:
            raise Unauthenticated("the token has expired", error=_INVALID) from None
        except jwt.ImmatureSignatureError:
            raise Unauthenticated("the token is not valid yet", error=_INVALID) from None
        except jwt.InvalidIssuerError:
            raise Unauthenticated("the token's issuer is not trusted", error=_INVALID) from None
        except jwt.InvalidAudienceError:
            raise Unauthenticated("the token is not meant for us", error=_INVALID) from None
        except jwt.MissingRequiredClaimError as exc:
            raise Unauthenticated(f"the token has no {exc.claim!r} claim", error=_INVALID) from None
        except (jwt.PyJWTError, ValueError, TypeError):
            # Bad signature, malformed token, a key unfit for the token's algorithm.
            raise Unauthenticated("the token is not valid", error=_INVALID) from None
        return claims

    async def authenticate(self, request: AuthRequest) -> Principal | None:
        token = request.bearer_token()
        if token is None:
            return None
        claims = self.verify(token)
        scopes = _claim_set(claims.get("scope")) | _claim_set(claims.get("scp"))
        return Principal(
            str(claims.get("sub", "")),
            scopes,
            _claim_set(claims.get(self.roles_claim)),
            method="jwt",
            claims=claims,
            peer=request.peer,
        )
