"""``Principal``: who a request comes from, as authentication established it."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import attrs

from ._identity import PeerIdentity


def _frozen(values: Iterable[str]) -> frozenset[str]:
    if isinstance(values, str):
        return frozenset(values.split())
    return frozenset(values)


@attrs.frozen
class Principal:
    """An authenticated caller.

    ``id`` names it (a token's subject, a certificate's name); ``scopes`` and ``roles``
    are what authorization policies look at; ``method`` says how it was established
    (``"bearer"``, ``"jwt"``, ``"mtls"``, ``"hmac"``, ``"anonymous"``); ``claims`` keeps a
    JWT's verified claims (or whatever a custom authenticator wants to pass on) and
    ``peer`` the verified client certificate when there was one. Never put secrets here:
    the access log may print a principal.
    """

    id: str
    scopes: frozenset[str] = attrs.field(default=frozenset(), converter=_frozen)
    roles: frozenset[str] = attrs.field(default=frozenset(), converter=_frozen)
    method: str = ""
    claims: Mapping[str, Any] = attrs.field(factory=dict, eq=False, repr=False)
    peer: PeerIdentity | None = attrs.field(default=None, eq=False, repr=False)

    def __str__(self) -> str:
        return self.id


#: The principal of a request on a public route or endpoint that sent no credentials.
ANONYMOUS = Principal("anonymous", method="anonymous")
