"""The registry's REST face: ``add_registry_routes(app.rest, registry)``.

The same operations as ``netkit.registry.v1.Registry`` under ``/v1/services``:

=========  ==========================================  =====================================
method     path                                        operation
=========  ==========================================  =====================================
GET        ``/v1/services``                            list services (blocking query)
GET        ``/v1/services/{service}``                  discover (blocking query; filters)
PUT        ``/v1/services/{service}/{id}``             register (body: :class:`Registration`)
PUT        ``/v1/services/{service}/{id}/heartbeat``   heartbeat (optional body: health)
DELETE     ``/v1/services/{service}/{id}``             deregister (idempotent)
=========  ==========================================  =====================================

Every answer carries ``X-Registry-Index`` (the registry's revision when it was read) and
the same number as ``index`` in the body. Bodies are checked by the REST layer against
the attrs shapes below (422 problem+json naming each bad field); registry errors are
converted here, at one boundary: unknown instance → 404, refused registration → 422,
registry unavailable (etcd unreachable) → 503 with ``Retry-After``, etcd refusing an
operation → 502.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Literal

import attrs
from attrs import validators as v

from ..rest import Problem, Response, RestAPI, RestRequest
from ..rest._api import decode_json
from ._backend import RegistryBackend
from ._blocking import (
    MAX_WAIT,
    WAIT_JITTER,
    BadQuery,
    block_until_changed,
    effective_wait,
    parse_index,
    parse_wait,
)
from ._types import (
    Address,
    Health,
    Instance,
    InstanceNotFound,
    InstanceSpec,
    InvalidRegistration,
    Metadata,
    RegistryBackendError,
    RegistryUnavailable,
)

HealthName = Literal["passing", "warning", "critical"]
INDEX_HEADER = "x-registry-index"
#: Seconds a client is told to wait after a 503 (the registry lost etcd).
RETRY_AFTER = "1"


# -- shapes (JSON bodies; also the OpenAPI contract) ----------------------------------------
@attrs.frozen
class ServiceAddress:
    """Where an instance listens, and the protocols it serves there (rest, grpc, ws)."""

    host: str = attrs.field(validator=v.min_len(1))
    port: int = attrs.field(validator=[v.ge(0), v.le(65535)])
    protocols: list[str] = attrs.field(factory=list)


@attrs.frozen
class ServiceMetadata:
    """What clients choose instances by."""

    version: str = ""
    zone: str = ""
    weight: int = attrs.field(default=1, validator=v.ge(0))
    tags: list[str] = attrs.field(factory=list)


@attrs.frozen
class Registration:
    """An instance to register; ``ttl`` in seconds (the registry's default when absent)."""

    address: ServiceAddress
    metadata: ServiceMetadata = attrs.field(factory=ServiceMetadata)
    health: HealthName = "passing"
    ttl: float | None = None


@attrs.frozen
class HeartbeatReport:
    """The optional body of a heartbeat: the status to report (passing when absent)."""

    health: HealthName | None = None


@attrs.frozen
class InstanceView:
    """A registered instance; times are Unix times in seconds."""

    service: str
    id: str
    address: ServiceAddress
    metadata: ServiceMetadata
    health: HealthName
    registered_at: float
    last_heartbeat: float
    ttl: float


@attrs.frozen
class RegisterReply:
    index: int
    instance: InstanceView


@attrs.frozen
class HeartbeatReply:
    index: int


@attrs.frozen
class DeregisterReply:
    index: int
    existed: bool


@attrs.frozen
class DiscoverReply:
    """Instances of one service; ``self_preservation`` warns that some may be stale."""

    index: int
    self_preservation: bool
    instances: list[InstanceView]


@attrs.frozen
class ServiceSummary:
    name: str
    instances: int
    healthy: int


@attrs.frozen
class ServicesReply:
    index: int
    services: list[ServiceSummary]


# -- conversions ------------------------------------------------------------------------------
def _view(instance: Instance, registry: RegistryBackend) -> InstanceView:
    return InstanceView(
        service=instance.service,
        id=instance.id,
        address=ServiceAddress(
            instance.address.host, instance.address.port, list(instance.address.protocols)
        ),
        metadata=ServiceMetadata(
            instance.metadata.version,
            instance.metadata.zone,
            instance.metadata.weight,
            list(instance.metadata.tags),
        ),
        health=instance.health.name.lower(),  # type: ignore[arg-type]
        registered_at=registry.to_unix(instance.registered_at),
        last_heartbeat=registry.to_unix(instance.last_heartbeat),
        ttl=instance.ttl,
    )


def _spec(service: str, instance_id: str, body: Registration) -> InstanceSpec:
    return InstanceSpec(
        service,
        instance_id,
        Address(body.address.host, body.address.port, tuple(body.address.protocols)),
        Metadata(
            body.metadata.version,
            body.metadata.zone,
            body.metadata.weight,
            tuple(body.metadata.tags),
        ),
        Health[body.health.upper()],
    )


def _same_instances(a: list[Instance], b: list[Instance]) -> bool:
    return len(a) == len(b) and all(x.same_state(y) for x, y in zip(a, b, strict=True))


@contextmanager
def rest_errors() -> Iterator[None]:
    """Registry errors as problem+json (the one boundary where they are converted)."""
    try:
        yield
    except InstanceNotFound as exc:
        raise Problem(404, str(exc)) from None
    except InvalidRegistration as exc:
        raise Problem(422, str(exc), title="Registration refused") from None
    except RegistryUnavailable as exc:
        raise Problem(503, str(exc), headers=[("retry-after", RETRY_AFTER)]) from None
    except RegistryBackendError as exc:
        raise Problem(502, str(exc)) from None
    except BadQuery as exc:
        raise Problem(400, str(exc)) from None


def _flag(request: RestRequest[Any], name: str, default: bool) -> bool:
    value = request.query_value(name)
    if value is None:
        return default
    lowered = value.strip().lower()
    if lowered in ("", "1", "true", "yes"):
        return True
    if lowered in ("0", "false", "no"):
        return False
    raise BadQuery(f"{name} must be true or false, not {value[:40]!r}")


def _tags(request: RestRequest[Any]) -> tuple[str, ...]:
    """``?tags=a,b`` or ``?tag=a&tag=b`` (Consul's spelling): instances with all of them."""
    raw = [*request.query.get("tags", ()), *request.query.get("tag", ())]
    return tuple(t.strip() for value in raw for t in value.split(",") if t.strip())


def _indexed(body: Any, index: int) -> Response:
    return Response(body, headers=[(INDEX_HEADER, str(index))])


class RegistryRoutes:
    """The handlers, bound to one registry; see the module docstring."""

    def __init__(
        self, registry: RegistryBackend, *, max_wait: float = MAX_WAIT, jitter: float = WAIT_JITTER
    ) -> None:
        self.registry = registry
        self.max_wait = max_wait
        self.jitter = jitter
        #: Set by add_to (the api's own shapes compile it).
        self._heartbeat_decoder: Any = None

    def add_to(self, api: RestAPI) -> None:
        api.route("GET", "/v1/services", self.list_services, response=ServicesReply)
        api.route("GET", "/v1/services/{service}", self.discover, response=DiscoverReply)
        api.route(
            "PUT",
            "/v1/services/{service}/{instance_id}",
            self.register,
            body=Registration,
            response=RegisterReply,
        )
        api.route(
            "PUT",
            "/v1/services/{service}/{instance_id}/heartbeat",
            self.heartbeat,
            response=HeartbeatReply,
        )
        api.route(
            "DELETE",
            "/v1/services/{service}/{instance_id}",
            self.deregister,
            response=DeregisterReply,
        )
        self._heartbeat_decoder = api.shapes.decoder(HeartbeatReport)

    def _blocking(self, request: RestRequest[Any]) -> tuple[int | None, float]:
        index = parse_index(request.query_value("index"))
        raw_wait = request.query_value("wait")
        wait = None if raw_wait is None else parse_wait(raw_wait)
        return index, effective_wait(wait, self.max_wait, self.jitter)

    async def list_services(self, request: RestRequest[None]) -> Response:
        """Every service with its number of instances (and of healthy ones).

        A blocking query with ``?index=N&wait=30s``: it returns when the list changes.
        """
        with rest_errors():
            index, wait = self._blocking(request)

            async def answer() -> list[ServiceSummary]:
                _, instances = await self.registry.all_instances()
                counts: dict[str, list[int]] = {}
                for instance in instances:
                    count = counts.setdefault(instance.service, [0, 0])
                    count[0] += 1
                    count[1] += instance.healthy
                return [ServiceSummary(name, n, h) for name, (n, h) in sorted(counts.items())]

            revision, services = await block_until_changed(
                self.registry, index, wait, answer, lambda a, b: a == b
            )
        return _indexed(ServicesReply(revision, services), revision)

    async def discover(self, request: RestRequest[None]) -> Response:
        """The instances of a service (healthy ones, having every tag asked for).

        ``healthy_only=false`` lists critical instances too; ``tags=a,b`` (or ``tag=a&tag=b``)
        keeps instances having all of them. A blocking query with ``?index=N&wait=30s``:
        while the registry is at revision N it waits (at most 5 min) for a change to this
        answer.
        """
        service = request.params["service"]
        with rest_errors():
            healthy_only = _flag(request, "healthy_only", True)
            tags = _tags(request)
            index, wait = self._blocking(request)

            async def answer() -> tuple[list[Instance], bool]:
                _, found = await self.registry.discover(
                    service, healthy_only=healthy_only, tags=tags
                )
                return found, self.registry.preserving

            revision, (found, preserving) = await block_until_changed(
                self.registry,
                index,
                wait,
                answer,
                lambda a, b: _same_instances(a[0], b[0]) and a[1] == b[1],
            )
        reply = DiscoverReply(revision, preserving, [_view(i, self.registry) for i in found])
        return _indexed(reply, revision)

    async def register(self, request: RestRequest[Registration]) -> Response:
        """Register an instance, or replace it (which also counts as a heartbeat)."""
        spec = _spec(request.params["service"], request.params["instance_id"], request.body)
        try:
            self.registry.config.check_ttl(request.body.ttl)
        except InvalidRegistration as exc:
            raise Problem(
                422,
                str(exc),
                title="Registration refused",
                errors=[{"pointer": "#/ttl", "detail": str(exc)}],
            ) from None
        with rest_errors():
            revision, instance = await self.registry.register(spec, request.body.ttl)
        return _indexed(RegisterReply(revision, _view(instance, self.registry)), revision)

    async def heartbeat(self, request: RestRequest[None]) -> Response:
        """Keep an instance alive; an optional body ``{"health": "warning"}`` reports a status."""
        report = await self._read_report(request)
        health = None if report.health is None else Health[report.health.upper()]
        with rest_errors():
            revision = await self.registry.heartbeat(
                request.params["service"], request.params["instance_id"], health
            )
        return _indexed(HeartbeatReply(revision), revision)

    async def deregister(self, request: RestRequest[None]) -> Response:
        """Remove an instance (idempotent: ``existed`` says whether it was there)."""
        with rest_errors():
            revision, existed = await self.registry.deregister(
                request.params["service"], request.params["instance_id"]
            )
        return _indexed(DeregisterReply(revision, existed), revision)

    async def _read_report(self, request: RestRequest[None]) -> HeartbeatReport:
        """The heartbeat body is optional, so the route declares none and it is read here,
        with the same answers as the REST layer gives for declared bodies."""
        raw = await request.stream.read_body()
        if not raw.strip():
            return HeartbeatReport()
        encoding = request.headers.get("content-encoding")
        if encoding not in (None, "", "identity"):
            raise Problem(415, "heartbeat bodies are not compressed")
        report = decode_json(
            raw, request.headers.get("content-type"), self._heartbeat_decoder, "HeartbeatReport"
        )
        assert isinstance(report, HeartbeatReport)
        return report


def add_registry_routes(
    api: RestAPI,
    registry: RegistryBackend,
    *,
    max_wait: float = MAX_WAIT,
    jitter: float = WAIT_JITTER,
) -> RegistryRoutes:
    """Serve ``registry`` over REST on ``api`` (e.g. ``app.rest``) under ``/v1/services``.

    ``max_wait`` caps blocking queries (and is their wait when a query names none);
    ``jitter`` adds up to that fraction of the wait at random.
    """
    routes = RegistryRoutes(registry, max_wait=max_wait, jitter=jitter)
    routes.add_to(api)
    return routes


def contract_api() -> RestAPI:
    """The REST API checked in as ``protocols/rest/registry/openapi.json``."""
    from ._memory import MemoryRegistry

    api = RestAPI(title="netkit service registry", version="1.0.0")
    add_registry_routes(api, MemoryRegistry())
    return api
