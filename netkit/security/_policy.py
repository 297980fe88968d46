"""Authorization: which principal may do what, per REST route, gRPC method and topic.

A :class:`Policy` maps entry points to a :class:`Requirement`:

* REST: ``(method, route template)`` — the template as registered (``/v1/orders/{id}``),
  never the raw path, so ``..``, ``%2F`` or a trailing slash cannot dodge a rule; the
  method may be ``*``.
* gRPC: ``/package.Service/Method``, ``/package.Service/*`` or ``*``.
* WebSocket: the endpoint's path (checked before the upgrade), and pub/sub topics for
  ``subscribe`` and ``publish`` in the hub's own syntax (``orders.*``, ``orders.>``).

The most specific rule wins: an exact REST method over ``*``; an exact gRPC method over
its service's ``*`` over ``*``; for topics, the rule with the most literal segments.
Entry points without a rule get the policy's ``default`` (``AUTHENTICATED``: any
principal; ``DENY`` for a closed-by-default service).

A subscribe names a *pattern*; it is allowed when the rule's pattern covers every topic
the subscription's pattern can match (``orders.>`` covers ``orders.eu.*``, but
``orders.*`` does not cover ``orders.>``), so a wildcard subscription cannot collect
topics the principal could not subscribe to one by one.
"""

from __future__ import annotations

from collections.abc import Iterable

import attrs

from ..wire.ws_envelope import check_topic
from ._principal import Principal

#: The permission (a scope) that the service registry's write operations (register,
#: deregister, heartbeat on behalf of an instance) demand; see docs/security.md.
REGISTRY_WRITE = "registry:write"
#: Reading the registry (resolve, watch).
REGISTRY_READ = "registry:read"

#: The registry's gRPC service (netkit.discovery.RegistryService).
REGISTRY_SERVICE = "/netkit.registry.v1.Registry"
#: Its methods that change the registry, and those that only read it.
REGISTRY_GRPC_WRITES = ("Register", "RegisterMany", "Heartbeat", "KeepAlive", "Deregister")
REGISTRY_GRPC_READS = ("Discover", "Watch")
#: Its REST face (netkit.discovery.add_registry_routes), as registered templates.
REGISTRY_REST_WRITES = (
    ("PUT", "/v1/services/{service}/{instance_id}"),
    ("PUT", "/v1/services/{service}/{instance_id}/heartbeat"),
    ("DELETE", "/v1/services/{service}/{instance_id}"),
)
REGISTRY_REST_READS = (("GET", "/v1/services"), ("GET", "/v1/services/{service}"))


def _names(values: Iterable[str]) -> frozenset[str]:
    return frozenset({values} if isinstance(values, str) else values)


@attrs.frozen
class Requirement:
    """What a principal needs: every one of ``scopes``, and one of ``roles`` if any.

    ``public``: no authentication needed at all (credentials, if sent, are still
    checked). ``deny``: nobody, whatever they hold.
    """

    scopes: frozenset[str] = attrs.field(default=frozenset(), converter=_names)
    roles: frozenset[str] = attrs.field(default=frozenset(), converter=_names)
    public: bool = False
    deny: bool = False

    def allows(self, principal: Principal | None) -> bool:
        if self.deny:
            return False
        if principal is None:
            return self.public
        if not self.scopes <= principal.scopes:
            return False
        return not self.roles or bool(self.roles & principal.roles)

    def describe(self) -> str:
        """For refusal messages: what was missing (names only, never credentials)."""
        if self.deny:
            return "nobody is allowed"
        parts = []
        if self.scopes:
            parts.append("scope " + " ".join(sorted(self.scopes)))
        if self.roles:
            parts.append("one of the roles " + ", ".join(sorted(self.roles)))
        return " and ".join(parts) or "authentication"


PUBLIC = Requirement(public=True)
AUTHENTICATED = Requirement()
DENY = Requirement(deny=True)

Rule = Requirement | str | Iterable[str]
"""A requirement, or scope name(s) as shorthand for ``Requirement(scopes=...)``."""


def require(*scopes: str, roles: Iterable[str] = ()) -> Requirement:
    """``require("orders:write")``; ``require(roles=["admin"])``."""
    return Requirement(_names(scopes), _names(roles))


def _as_requirement(rule: Rule) -> Requirement:
    if isinstance(rule, Requirement):
        return rule
    return Requirement(_names(rule))


def covers(rule: str, pattern: str) -> bool:
    """Does every topic that ``pattern`` matches also match ``rule``? (Both may be patterns.)

    ``*`` matches one segment, ``>`` one or more trailing segments (the hub's syntax).
    """
    r, p = rule.split("."), pattern.split(".")
    for i, seg in enumerate(r):
        if seg == ">":
            return len(p) > i  # one or more segments remain, whatever they are
        if i >= len(p):
            return False
        if p[i] == ">":
            return False  # the pattern reaches arbitrarily deep; only '>' covers that
        if seg == "*":
            continue
        if seg != p[i]:
            return False  # a literal covers only the same literal
    return len(p) == len(r)


def overlaps(a: str, b: str) -> bool:
    """Can some topic match both patterns ``a`` and ``b``?"""
    x, y = a.split("."), b.split(".")
    for i in range(max(len(x), len(y))):
        if i >= len(x) or i >= len(y):
            return False
        if x[i] == ">" or y[i] == ">":
            return True  # the other has a segment here, and '>' takes it and any rest
        if x[i] != "*" and y[i] != "*" and x[i] != y[i]:
            return False
    return True


def _topic_specificity(pattern: str) -> tuple[int, int, int]:
    segments = pattern.split(".")
    literal = sum(1 for s in segments if s not in ("*", ">"))
    return (literal, 0 if segments[-1] == ">" else 1, len(segments))


class Policy:
    """Requirements per entry point; see the module docstring.

    ``policy.route("POST", "/v1/orders", "orders:write")``,
    ``policy.grpc("/shop.v1.Orders/*", require(roles=["staff"]))``,
    ``policy.topic("orders.>", subscribe="orders:read", publish=DENY)``.
    """

    def __init__(
        self,
        *,
        default: Requirement = AUTHENTICATED,
        registry_write: Rule = REGISTRY_WRITE,
        registry_read: Rule = REGISTRY_READ,
    ) -> None:
        self.default = default
        self._routes: dict[tuple[str, str], Requirement] = {}
        self._grpc: dict[str, Requirement] = {}
        self._websocket: dict[str, Requirement] = {}
        self._topics: dict[str, dict[str, Requirement]] = {"subscribe": {}, "publish": {}}
        self.registry(write=registry_write, read=registry_read)

    def registry(self, *, write: Rule = REGISTRY_WRITE, read: Rule = REGISTRY_READ) -> Policy:
        """The service registry's rules (set by default; call again to change them).

        Writes (gRPC Register, RegisterMany, Heartbeat, KeepAlive, Deregister; REST PUT
        and DELETE under ``/v1/services/{service}/{instance_id}``) need ``write``, so a
        random client cannot register itself as a backend and receive traffic. Reads
        (Discover, Watch; REST GET ``/v1/services[/{service}]``) need ``read``; pass
        ``read=PUBLIC`` for an open read side. Rules added later for the same method
        or route replace these.
        """
        for name in REGISTRY_GRPC_WRITES:
            self.grpc(f"{REGISTRY_SERVICE}/{name}", write)
        for name in REGISTRY_GRPC_READS:
            self.grpc(f"{REGISTRY_SERVICE}/{name}", read)
        for method, template in REGISTRY_REST_WRITES:
            self.route(method, template, write)
        for method, template in REGISTRY_REST_READS:
            self.route(method, template, read)
        return self

    # -- rules ---------------------------------------------------------------------------
    def route(self, method: str, template: str, rule: Rule) -> Policy:
        """A REST route (as registered on ``RestAPI``); ``method`` may be ``*``."""
        self._routes[(method.upper(), template)] = _as_requirement(rule)
        return self

    def grpc(self, pattern: str, rule: Rule) -> Policy:
        """``/pkg.Service/Method``, ``/pkg.Service/*`` or ``*``."""
        if pattern != "*" and not (pattern.startswith("/") and pattern.count("/") == 2):
            raise ValueError(f"gRPC rule {pattern!r}: expected /package.Service/Method or *")
        self._grpc[pattern] = _as_requirement(rule)
        return self

    def websocket(self, path: str, rule: Rule) -> Policy:
        """Who may open a WebSocket on ``path`` (refused with 403 before the upgrade)."""
        self._websocket[path] = _as_requirement(rule)
        return self

    def topic(
        self, pattern: str, *, subscribe: Rule | None = None, publish: Rule | None = None
    ) -> Policy:
        """Who may subscribe to / publish on topics matching ``pattern``."""
        check_topic(pattern, pattern=True)  # EnvelopeError is a ValueError
        if subscribe is not None:
            self._topics["subscribe"][pattern] = _as_requirement(subscribe)
        if publish is not None:
            self._topics["publish"][pattern] = _as_requirement(publish)
        return self

    # -- decisions -----------------------------------------------------------------------
    def for_route(self, method: str, template: str) -> Requirement:
        rule = self._routes.get((method.upper(), template))
        if rule is None and method.upper() == "HEAD":
            rule = self._routes.get(("GET", template))
        if rule is None:
            rule = self._routes.get(("*", template))
        return rule if rule is not None else self.default

    def for_grpc(self, path: str) -> Requirement:
        rule = self._grpc.get(path)
        if rule is None:
            service = path.rsplit("/", 1)[0]
            rule = self._grpc.get(service + "/*")
        if rule is None:
            rule = self._grpc.get("*")
        return rule if rule is not None else self.default

    def for_websocket(self, path: str) -> Requirement:
        rule = self._websocket.get(path)
        return rule if rule is not None else self.default

    def for_topic(self, action: str, topic: str) -> list[Requirement]:
        """Every requirement a principal must meet to ``action`` on ``topic``.

        ``action`` is ``subscribe`` (``topic`` may be a pattern) or ``publish``. The
        most specific rule covering the whole of ``topic`` (or the default), plus every
        narrower rule that could match some of its topics: a subscription to
        ``orders.>`` must also satisfy the rule of ``orders.secret.*``.
        """
        rules = self._topics.get(action)
        if rules is None:
            raise ValueError(f"unknown pub/sub action {action!r}")
        covering = [p for p in rules if covers(p, topic)]
        found = [rules[max(covering, key=_topic_specificity)] if covering else self.default]
        found += [rules[p] for p in rules if p not in covering and overlaps(p, topic)]
        return found

    def allows_topic(self, principal: Principal | None, action: str, topic: str) -> bool:
        return all(rule.allows(principal) for rule in self.for_topic(action, topic))
