"""``RestAPI``: JSON resources on netkit's stream API.

One request goes through these steps, in this order (each can end it with problem+json):

1. route: 404 (naming the versions served when ``/vN/`` is unknown), 405 with ``Allow``;
   ``OPTIONS`` answered with ``Allow``; ``HEAD`` served by the ``GET`` endpoint;
2. query (routes with ``query=``): 422 naming every parameter (``/query/<name>``) that
   is missing, repeated or does not convert;
3. body (routes with ``body=``, or any request with ``Idempotency-Key``): 415 for an
   unknown ``Content-Encoding`` or a non-JSON content type, gzip inflated with a bound
   (413), 400 for malformed JSON, 422 naming every field that does not fit the shape;
4. idempotency (POST and PATCH with ``Idempotency-Key``): replay, 409 or 422;
5. preconditions (routes with ``etag=``): ``If-Match`` / ``If-None-Match`` → 412,
   checked before the handler can change anything;
6. the handler; its result becomes the response: a value → JSON with the route's
   status, ``None`` → 204, :class:`Response` / :class:`StreamingResponse` as given;
7. GET/HEAD 200 responses get a strong ``ETag`` (streaming ones only when they give one)
   and ``If-None-Match`` → 304; textual bodies of ``gzip_min_size`` bytes or more, and
   textual streaming bodies chunk by chunk, are gzipped when ``Accept-Encoding`` allows.

Any other handler exception is logged on ``netkit.server`` (as ``run_handler`` does) and
answered with a 500 problem that says nothing about it; once a streaming response has
started, ``run_handler`` resets the stream instead.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, TypeVar, overload
from urllib.parse import parse_qs

import attrs
import trio

from ..errors import ConnectionClosed, HTTPStatusError, StreamReset
from ..http import HTTPStream
from ..http._stream import error_body
from ._caching import encode_json, etag_of_bytes, gzip_etag, none_match, quote_etag
from ._config import RestConfig
from ._encoding import GzipStream, accepts_gzip, gzip_body, read_body, request_coding
from ._idempotency import (
    IdempotencyStore,
    InFlight,
    MemoryIdempotencyStore,
    Mismatch,
    Replay,
    StoredResponse,
    fingerprint,
)
from ._messages import Problem, Response, RestRequest, StreamingResponse
from ._query import QueryDecoder
from ._routing import Found, Router, requested_version
from ._shapes import Decoder, Errors, Shapes, ValidationFailed

RestHandler = Callable[[RestRequest[Any]], Awaitable[Any]]
"""``async def handler(request: RestRequest[Body]) -> value | Response | StreamingResponse``"""
EtagHook = Callable[[RestRequest[Any]], Awaitable[str | None]]
"""``async def current_etag(request) -> str | None``: the resource's tag now, ``None`` if absent."""
RestGuard = Callable[[RestRequest[Any], "Endpoint"], Awaitable[None]]
"""``async def guard(request, endpoint) -> None``: runs after routing, before the handler;
raises :class:`Problem` to refuse (authentication, authorization, signatures)."""
F = TypeVar("F", bound=RestHandler)

log = logging.getLogger("netkit.server")

METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS")
_IDEMPOTENT_KEYED = frozenset({"POST", "PATCH"})
_CONDITIONAL = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_JSON = "application/json"
_REPLAYED = ("idempotent-replayed", "true")
_VARY = ("vary", "accept-encoding")


@attrs.frozen
class Endpoint:
    """One registered (method, template) and what the layer does around its handler."""

    method: str
    template: str
    handler: RestHandler
    body: Any
    decoder: Decoder | None
    response: Any
    status: int
    etag: EtagHook | None
    summary: str | None
    tags: tuple[str, ...]
    query: Any = None
    query_decoder: QueryDecoder | None = None


def _compressible(content_type: str) -> bool:
    ct = content_type.split(";", 1)[0].strip().lower()
    return (
        ct.startswith("text/")
        or ct.endswith("json")
        or ct.endswith("xml")
        or (ct == "application/javascript")
    )


def _is_json(content_type: str | None) -> bool:
    if content_type is None:
        return False
    ct = content_type.split(";", 1)[0].strip().lower()
    return ct == _JSON or (ct.startswith("application/") and ct.endswith("+json"))


class RestAPI:
    """JSON resources: ``api.route("GET", "/v1/orders/{order_id:int}", get_order)``.

    ``App`` has one as ``app.rest``; it can also be served on its own (``serve(api, ...)``).
    """

    def __init__(
        self,
        *,
        config: RestConfig | None = None,
        idempotency_store: IdempotencyStore | None = None,
        title: str = "netkit service",
        version: str = "0.1.0",
    ) -> None:
        self.config = config or RestConfig()
        self.idempotency_store: IdempotencyStore = idempotency_store or MemoryIdempotencyStore(
            self.config.idempotency_ttl, self.config.idempotency_max_keys
        )
        self.title = title
        self.version = version
        self.shapes = Shapes()
        self._router: Router[Endpoint] = Router()
        self._openapi_body: bytes | None = None
        self._head_guards: list[RestGuard] = []
        self._body_guards: list[RestGuard] = []

    @property
    def router(self) -> Router[Endpoint]:
        return self._router

    def __bool__(self) -> bool:
        """True once a route is registered (``App`` passes requests on only then)."""
        return bool(self._router.resources)

    # -- registration ---------------------------------------------------------------
    @overload
    def route(
        self,
        method: str,
        template: str,
        handler: None = None,
        *,
        body: Any = None,
        query: Any = None,
        response: Any = None,
        status: int = 200,
        etag: EtagHook | None = None,
        summary: str | None = None,
        tags: Iterable[str] = (),
    ) -> Callable[[F], F]: ...
    @overload
    def route(
        self,
        method: str,
        template: str,
        handler: F,
        *,
        body: Any = None,
        query: Any = None,
        response: Any = None,
        status: int = 200,
        etag: EtagHook | None = None,
        summary: str | None = None,
        tags: Iterable[str] = (),
    ) -> F: ...
    def route(
        self,
        method: str,
        template: str,
        handler: F | None = None,
        *,
        body: Any = None,
        query: Any = None,
        response: Any = None,
        status: int = 200,
        etag: EtagHook | None = None,
        summary: str | None = None,
        tags: Iterable[str] = (),
    ) -> Any:
        """Register ``handler`` for ``method template`` (a decorator without ``handler``).

        ``body``: the request shape (an attrs class or any annotation :mod:`._shapes`
        understands); the handler gets the decoded value as ``request.body``.
        ``query``: an attrs class of typed query parameters (see :mod:`._query`); the
        handler gets an instance as ``request.query_args``, a misfit gets a 422.
        ``response``: the shape of successful responses (for the OpenAPI document).
        ``status``: the status of a plain returned value (e.g. 201 for a create).
        ``etag``: the resource's current ETag, checked against ``If-Match`` /
        ``If-None-Match`` before the handler runs.
        """
        method = method.upper()
        if method not in METHODS:
            raise ValueError(f"unsupported method {method!r}; choose from {', '.join(METHODS)}")
        decoder = self.shapes.decoder(body) if body is not None else None
        if body is not None:
            self.shapes.schema(body)  # fail at registration, not when the document is built
        if response is not None:
            self.shapes.schema(response)
        query_decoder = QueryDecoder(query, self.shapes) if query is not None else None

        def register(fn: F) -> F:
            endpoint = Endpoint(
                method,
                template,
                fn,
                body,
                decoder,
                response,
                status,
                etag,
                summary,
                tuple(tags),
                query,
                query_decoder,
            )
            self._router.add(method, template, endpoint)
            self._openapi_body = None
            return fn

        return register(handler) if handler is not None else register

    def add_guard(self, guard: RestGuard, *, body: bool = False) -> None:
        """Run ``guard(request, endpoint)`` on every routed request, before the handler.

        Guards see the matched :class:`Endpoint` (its ``method`` and ``template``, not
        the raw path) and run in the order added. Without ``body`` they run before the
        body is read, so a refused client never gets to upload it; with ``body=True``
        they run after every head guard, with the whole (size-bounded, decoded) body in
        ``request.raw_body``, which the layer then decodes as usual (signature checks).
        """
        (self._body_guards if body else self._head_guards).append(guard)

    def get(self, template: str, **options: Any) -> Callable[[F], F]:
        decorator: Callable[[F], F] = self.route("GET", template, **options)
        return decorator

    def post(self, template: str, **options: Any) -> Callable[[F], F]:
        decorator: Callable[[F], F] = self.route("POST", template, **options)
        return decorator

    def put(self, template: str, **options: Any) -> Callable[[F], F]:
        decorator: Callable[[F], F] = self.route("PUT", template, **options)
        return decorator

    def patch(self, template: str, **options: Any) -> Callable[[F], F]:
        decorator: Callable[[F], F] = self.route("PATCH", template, **options)
        return decorator

    def delete(self, template: str, **options: Any) -> Callable[[F], F]:
        decorator: Callable[[F], F] = self.route("DELETE", template, **options)
        return decorator

    def openapi(self) -> dict[str, Any]:
        """The OpenAPI 3.1 document of the routes registered so far."""
        from ._openapi import build_openapi

        return build_openapi(self)

    # -- serving ----------------------------------------------------------------------
    async def __call__(self, stream: HTTPStream) -> None:
        request = stream.request
        method = request.method
        target = request.target
        path = target.split("?", 1)[0] if "?" in target else target
        found = self._router.match(method, path)
        try:
            if type(found) is Found:
                stream.route = found.resource.template
                await self._serve(stream, found.endpoint, found.params)
            else:
                await self._no_endpoint(stream, found, method, path)
        except Problem as problem:
            if stream.headers_sent:
                raise
            await send_problem(stream, problem)
        except HTTPStatusError as exc:
            if stream.headers_sent:
                raise
            await send_problem(stream, Problem(exc.status, exc.detail))
        except (StreamReset, ConnectionClosed):
            raise
        except Exception:
            if stream.headers_sent:
                raise  # run_handler resets the stream and logs
            log.exception(
                "handler failed: %s %s (HTTP/%s stream %d)",
                method,
                target,
                request.http_version,
                stream.stream_id,
            )
            await send_problem(stream, Problem(500, "internal server error"))

    async def _no_endpoint(self, stream: HTTPStream, found: Any, method: str, path: str) -> None:
        if found is None:
            if path == self.config.openapi_path and method in ("GET", "HEAD"):
                await self._send(stream, method, self._openapi_response(), replayed=False)
                return
            version = requested_version(path)
            versions = self._router.versions
            if version is not None and versions and version not in versions:
                served = ", ".join(sorted(versions, key=lambda v: int(v[1:])))
                raise Problem(
                    404,
                    f"API version {version} does not exist; versions served: {served}",
                    title="Unknown API version",
                )
            raise Problem(404, f"no resource at {path}")
        allow = ", ".join(sorted(found.allowed))
        if method == "OPTIONS":
            await stream.respond(204, [("allow", allow)])
            return
        raise Problem(405, f"{method} is not allowed on {path}", headers=[("allow", allow)])

    def _openapi_response(self) -> StoredResponse:
        if self._openapi_body is None:
            self._openapi_body = json.dumps(self.openapi(), indent=2).encode()
        return StoredResponse(200, (("content-type", _JSON),), self._openapi_body)

    async def _serve(self, stream: HTTPStream, ep: Endpoint, params: dict[str, Any]) -> None:
        method = stream.request.method
        preread: bytes | None = None
        if self._head_guards or self._body_guards:
            preread = await self._guard(stream, ep, params)
        query_args = _decode_query(ep, stream) if ep.query_decoder is not None else None
        if ep.decoder is None and method not in _IDEMPOTENT_KEYED:
            raw_body = b"" if preread is None else preread
            request = RestRequest(stream, params, None, raw_body)
            request.query_args = query_args
            await self._run(stream, method, ep, request)
            return
        wanted = _body_headers(stream)
        key = wanted.get(b"idempotency-key") if method in _IDEMPOTENT_KEYED else None
        raw = b"" if preread is None else preread
        value: Any = None
        if ep.decoder is not None or key is not None:
            if preread is None:
                raw = await read_body(
                    stream,
                    request_coding(wanted.get(b"content-encoding")),
                    self.config.max_decompressed_body_size,
                )
            if ep.decoder is not None:
                value = _decode(ep, raw, wanted.get(b"content-type"))
        request = RestRequest(stream, params, value, raw)
        request.query_args = query_args
        if key is None:
            await self._run(stream, method, ep, request)
            return
        await self._run_once(stream, method, ep, request, key)

    async def _guard(
        self, stream: HTTPStream, ep: Endpoint, params: dict[str, Any]
    ) -> bytes | None:
        """Run the guards; returns the body when a body guard needed it read."""
        request: RestRequest[Any] = RestRequest(stream, params, None, b"")
        for guard in self._head_guards:
            await guard(request, ep)
        if not self._body_guards:
            return None
        request.raw_body = await read_body(
            stream,
            request_coding(_body_headers(stream).get(b"content-encoding")),
            self.config.max_decompressed_body_size,
        )
        for guard in self._body_guards:
            await guard(request, ep)
        return request.raw_body

    async def _run(
        self, stream: HTTPStream, method: str, ep: Endpoint, request: RestRequest[Any]
    ) -> StoredResponse | None:
        """Preconditions, handler, response. Returns what was sent, when it can be stored."""
        if ep.etag is not None and method in _CONDITIONAL:
            headers = stream.request.headers
            if "if-match" in headers or "if-none-match" in headers:
                request.check_preconditions(await ep.etag(request))
        result = await ep.handler(request)
        if type(result) is StreamingResponse:
            await self._stream(stream, method, result)
            return None
        rendered = self._render(ep, result)
        await self._send(stream, method, rendered, replayed=False)
        return rendered

    async def _run_once(
        self, stream: HTTPStream, method: str, ep: Endpoint, request: RestRequest[Any], key: str
    ) -> None:
        if not key or len(key) > self.config.max_idempotency_key_length or not key.isprintable():
            raise Problem(
                400,
                "Idempotency-Key must be 1 to "
                f"{self.config.max_idempotency_key_length} printable characters",
            )
        store = self.idempotency_store
        fp = fingerprint(method, stream.request.target, request.raw_body)
        claim = await store.claim(key, fp)
        if type(claim) is Replay:
            await self._send(stream, method, claim.response, replayed=True)
            return
        if type(claim) is InFlight:
            raise Problem(
                409,
                "a request with this Idempotency-Key is still being processed; retry later",
                headers=[("retry-after", "1")],
            )
        if type(claim) is Mismatch:
            raise Problem(422, "this Idempotency-Key was used for a different request")
        stored: StoredResponse | None = None
        try:
            try:
                stored = await self._run(stream, method, ep, request)
            except Problem as problem:  # a handler's own 4xx is its answer: store it too
                if problem.status >= 500:
                    raise
                stored = problem_response(problem)
                await self._send(stream, method, stored, replayed=False)
        finally:
            if stored is not None and stored.status < 500:
                with trio_shield():
                    await store.complete(key, fp, stored)
            else:
                with trio_shield():
                    await store.release(key, fp)

    def _render(self, ep: Endpoint, result: Any) -> StoredResponse:
        if result is None:
            return StoredResponse(204, (), b"")
        if type(result) is not Response:
            return StoredResponse(ep.status, (("content-type", _JSON),), encode_json(result))
        headers: list[tuple[str, str]] = []
        body = result.body
        if body is None:
            data = b""
        elif isinstance(body, bytes | bytearray | memoryview):
            data = bytes(body)
            headers.append(("content-type", result.content_type or "application/octet-stream"))
        else:
            data = encode_json(body)
            headers.append(("content-type", result.content_type or _JSON))
        if result.etag is not None:
            headers.append(("etag", quote_etag(result.etag)))
        if result.cache_control is not None:
            headers.append(("cache-control", result.cache_control))
        headers.extend(result.headers)
        return StoredResponse(result.status, tuple(headers), data)

    async def _send(
        self, stream: HTTPStream, method: str, response: StoredResponse, *, replayed: bool
    ) -> None:
        """Send a buffered response: ETag and 304, gzip, the replay mark."""
        status = response.status
        body = response.body
        headers = list(response.headers)
        if replayed:
            headers.append(_REPLAYED)
        if status in (204, 304):
            await stream.respond(status, headers)
            return
        req_headers = stream.request.headers
        etag: str | None = None
        content_type = ""
        for name, val in headers:
            if name == "etag":
                etag = val
            elif name == "content-type":
                content_type = val
        compressible = (
            len(body) >= self.config.gzip_min_size
            and _compressible(content_type)
            and not any(name == "content-encoding" for name, _ in headers)
        )
        if compressible:
            headers.append(_VARY)
        if status == 200 and (method == "GET" or method == "HEAD"):
            if etag is None:
                etag = etag_of_bytes(body)
                headers.append(("etag", etag))
            kept = _not_modified(req_headers.get("if-none-match"), etag, headers)
            if kept is not None:
                await stream.respond(304, kept)
                return
        if compressible and accepts_gzip(req_headers.get("accept-encoding")):
            body = gzip_body(body, self.config.gzip_level)
            headers.append(("content-encoding", "gzip"))
            if etag is not None:
                headers = [(n, gzip_etag(v) if n == "etag" else v) for n, v in headers]
        await stream.respond(status, headers, body)

    async def _stream(self, stream: HTTPStream, method: str, result: StreamingResponse) -> None:
        """Send a streaming response: ETag and 304, gzip chunk by chunk, ``aclose()``."""
        headers = [("content-type", result.content_type), *result.headers]
        if result.cache_control is not None:
            headers.append(("cache-control", result.cache_control))
        if result.etag is not None:
            headers.append(("etag", quote_etag(result.etag)))
        body = result.body
        closer = getattr(body, "aclose", None)
        try:
            status = result.status
            if status in (204, 304):
                await stream.send_headers(status, headers, end_stream=True)
                return
            req_headers = stream.request.headers
            etag = next((v for n, v in headers if n == "etag"), None)
            compressible = _compressible(result.content_type) and not any(
                n == "content-encoding" for n, _ in headers
            )
            if compressible:
                headers.append(_VARY)
            if status == 200 and etag is not None and method in ("GET", "HEAD"):
                kept = _not_modified(req_headers.get("if-none-match"), etag, headers)
                if kept is not None:
                    await stream.send_headers(304, kept, end_stream=True)
                    return
            gzipper: GzipStream | None = None
            if compressible and accepts_gzip(req_headers.get("accept-encoding")):
                gzipper = GzipStream(self.config.gzip_level)
                headers = [
                    (n, gzip_etag(v) if n == "etag" else v)
                    for n, v in headers
                    if n != "content-length"  # the coded length is not known in advance
                ]
                headers.append(("content-encoding", "gzip"))
            await stream.send_headers(status, headers)
            if method == "HEAD":
                await stream.send_data(b"", end_stream=True)
                return
            async for chunk in body:
                if chunk:
                    await stream.send_data(chunk if gzipper is None else gzipper.chunk(chunk))
            await stream.send_data(b"" if gzipper is None else gzipper.end(), end_stream=True)
        finally:
            if closer is not None:
                await closer()


_KEPT_BY_304 = frozenset({"etag", "cache-control", "vary", "content-location", "expires"})


def _not_modified(
    if_none_match: str | None, etag: str, headers: list[tuple[str, str]]
) -> list[tuple[str, str]] | None:
    """The headers of the 304 to send instead when ``If-None-Match`` matches ``etag``
    (those RFC 9110 §15.4.5 keeps), else ``None``."""
    if if_none_match is None or not none_match(if_none_match, etag):
        return None
    return [(n, v) for n, v in headers if n in _KEPT_BY_304]


_BODY_HEADERS = frozenset({b"idempotency-key", b"content-encoding", b"content-type"})


def _body_headers(stream: HTTPStream) -> dict[bytes, str]:
    """The request headers the body steps need, found in one pass (first value wins)."""
    found: dict[bytes, str] = {}
    for name, value in stream.request.headers.raw():
        if name in _BODY_HEADERS and name not in found:
            found[name] = value.decode("latin-1")
    return found


def _decode(ep: Endpoint, raw: bytes, content_type: str | None) -> Any:
    assert ep.decoder is not None
    if not raw:
        raise Problem(
            422,
            "a request body is required",
            errors=[{"pointer": "#", "detail": "request body is missing"}],
        )
    return decode_json(raw, content_type, ep.decoder, getattr(ep.body, "__name__", str(ep.body)))


def decode_json(raw: bytes, content_type: str | None, decoder: Decoder, shape: str) -> Any:
    """A request body through ``decoder``: 415 unless ``content_type`` is JSON, 400 for
    malformed JSON, 422 naming every field that does not fit ``shape``."""
    if not _is_json(content_type):
        raise Problem(415, f"content-type must be {_JSON}, got {(content_type or 'none')[:60]!r}")
    try:
        data = json.loads(raw.decode())
    except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError
        raise Problem(400, f"malformed JSON in request body: {str(exc)[:120]}") from None
    errors: Errors = []
    value = decoder(data, "#", errors)
    if errors:
        fields = ", ".join(e["pointer"] for e in errors[:10])
        raise Problem(
            422,
            f"request body does not match {shape}: {fields}",
            title="Request body failed validation",
            errors=errors,
        )
    return value


def _decode_query(ep: Endpoint, stream: HTTPStream) -> Any:
    assert ep.query_decoder is not None
    values = parse_qs(stream.request.query_string, keep_blank_values=True)
    try:
        return ep.query_decoder(values)
    except ValidationFailed as failed:
        shape = getattr(ep.query, "__name__", str(ep.query))
        names = ", ".join(e["pointer"] for e in failed.errors[:10])
        raise Problem(
            422,
            f"query parameters do not match {shape}: {names}",
            title="Query parameters failed validation",
            errors=failed.errors,
        ) from None


def problem_response(problem: Problem) -> StoredResponse:
    headers, body = error_body(problem.status, problem.detail, **problem.members())
    return StoredResponse(problem.status, (*headers, *problem.headers), body)


async def send_problem(stream: HTTPStream, problem: Problem) -> None:
    response = problem_response(problem)
    await stream.respond(response.status, response.headers, response.body)


def trio_shield() -> trio.CancelScope:
    """Store bookkeeping must finish even when the request is being cancelled."""
    return trio.CancelScope(shield=True)
