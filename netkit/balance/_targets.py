"""Balanced targets: ``registry://HOST:PORT/SERVICE`` and ``static://H1:P1,H2:P2``.

The gRPC channel (``open_channel(target)``) and the REST client
(``RestClient(target)``) accept either; a list of ``"host:port"`` strings or
:class:`Backend` objects is a static target too. Options go in the query string:
``?strategy=NAME`` (any of :func:`make_strategy`'s, default ``round_robin`` as gRPC's
round_robin policy) and, for the registry, ``tags=a,b`` (instances carrying all of
them). Static entries take the CLI's backend syntax (``host:port;weight=N``).
"""

from __future__ import annotations

from collections.abc import Sequence
from urllib.parse import parse_qs

import attrs

from ._backend import Backend
from ._registry import RegistryBackends
from ._source import BackendSource, StaticBackends, as_backends

SCHEMES = ("registry", "static")
DEFAULT_CLIENT_STRATEGY = "round_robin"


@attrs.frozen
class Target:
    """A parsed balanced target: where the backends come from, and how to choose."""

    source: BackendSource
    strategy: str = DEFAULT_CLIENT_STRATEGY
    #: A name for the target (the service, or the first backend): the REST Host header.
    name: str = "backends"


def parse_target(target: str | Sequence[str | Backend]) -> Target:
    """``registry://``, ``static://`` or a list; ValueError when it is none of them."""
    if not isinstance(target, str):
        backends = as_backends(target)
        if not backends:
            raise ValueError("a static target needs at least one backend")
        return Target(StaticBackends(backends), name=backends[0].host)
    scheme, sep, rest = target.partition("://")
    if not sep or scheme not in SCHEMES:
        raise ValueError(f"expected registry://HOST:PORT/SERVICE or static://..., got {target!r}")
    rest, _, query = rest.partition("?")
    options = {k: v[-1] for k, v in parse_qs(query, strict_parsing=bool(query)).items()}
    strategy = options.pop("strategy", DEFAULT_CLIENT_STRATEGY)
    tags = [t for t in options.pop("tags", "").split(",") if t]
    if options:
        raise ValueError(f"unknown target option(s) {sorted(options)} in {target!r}")
    if scheme == "registry":
        address, _, service = rest.partition("/")
        host, colon, port = address.rpartition(":")
        if not colon or not port.isdigit() or not host or not service:
            raise ValueError(f"expected registry://HOST:PORT/SERVICE, got {target!r}")
        source: BackendSource = RegistryBackends(host.strip("[]"), int(port), service, tags=tags)
        return Target(source, strategy, service)
    if tags:
        raise ValueError("tags= is for registry targets")
    backends = [Backend.parse(spec) for spec in rest.split(",") if spec]
    if not backends:
        raise ValueError(f"a static target needs at least one backend: {target!r}")
    return Target(StaticBackends(backends), strategy, backends[0].host)
