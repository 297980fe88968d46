"""``RestClient``: JSON over HTTP/1.1 or HTTP/2 with httpx under trio, retried safely.

Theory of operation. One call (``get``/``post``/... or ``request``) is a loop of
attempts inside one trio cancel scope, the call's deadline:

1. The request is built once: JSON body, default headers, and for POST and PATCH an
   ``Idempotency-Key`` (a UUID4) unless the caller gave one or opted out with
   ``idempotency_key=None``. Every attempt of the call sends the same key, so a server
   that keeps keys (netkit's REST layer, Stripe-style APIs) executes it at most once.
2. Each attempt asks the auth provider for its headers and sends the request with
   httpx (which runs on trio through httpcore's trio backend).
3. A 2xx answer returns the parsed JSON (None when there is no body, as for 204). A
   401, once per call, lets the auth provider refresh and the request go again. Any
   other answer or transport failure goes to :class:`RetryPolicy`, the sans-I/O part,
   which says how long to wait before the next attempt or that there is none.
4. When there is none, the last failure is raised as a typed error: ``APIError`` for a
   status, ``APITimeout`` for an attempt's timeout, ``APIConnectionError`` for a
   connection that failed or broke mid-response. The deadline expiring anywhere (during
   an attempt or a wait) raises ``APITimeout``.
"""

from __future__ import annotations

import enum
import importlib
import json as jsonlib
import logging
import random
import ssl
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from types import TracebackType
from typing import Any, Final, Literal

import httpx
import trio

from ..observe._context import outbound_headers
from ._client_auth import AuthProvider
from ._client_errors import APIConnectionError, APIError, APITimeout, RestClientError
from ._client_retry import RetryPolicy, parse_http_date

logger = logging.getLogger("netkit.rest.client")

#: Base URL schemes that name a balanced target, and the layer that serves them.
BALANCED_SCHEMES: Final = ("registry", "static")
BALANCED_TARGETS_MODULE: Final = "netkit.balance"

#: Methods that get an automatic ``Idempotency-Key``: the non-idempotent ones that the
#: IETF httpapi Idempotency-Key draft is written for. PUT and DELETE are idempotent by
#: definition (RFC 9110 §9.2.2) and are retried without one.
KEYED_METHODS: Final = frozenset({"POST", "PATCH"})
#: Longest part of a non-JSON error body kept on the ``APIError``.
_MAX_ERROR_TEXT = 4096


class _Auto(enum.Enum):
    AUTO = "AUTO"


#: The default of ``idempotency_key``: a fresh UUID4 for POST and PATCH, none otherwise.
AUTO: Final = _Auto.AUTO
IdempotencyKey = str | None | Literal[_Auto.AUTO]


class RestClient:
    """A JSON REST client for any service, with safe retries, deadlines and typed errors.

    ``base_url`` prefixes every path. ``headers`` are sent on every request, after the
    defaults (``Accept: application/json``; ``Content-Type: application/json`` on JSON
    bodies). ``auth`` adds credentials per attempt (e.g. :class:`BearerToken`).
    ``retry`` is the :class:`RetryPolicy` (attempts, backoff, ``Retry-After`` cap,
    deadline). ``timeout`` bounds each attempt's connect, read, write and pool waits.
    ``http2=True`` enables HTTP/2: negotiated by ALPN over TLS; over cleartext add
    ``http1=False`` for HTTP/2 with prior knowledge. ``transport`` replaces httpx's
    network transport (tests use ``httpx.MockTransport``); ``jitter`` is the source of
    uniform numbers in [0, 1) for the backoff. ``request_hooks`` are awaited with each
    attempt's ``httpx.Request`` just before it is sent, and may change its headers (e.g.
    ``netkit.security.HMACSigner`` signs every attempt afresh).

    Use it as an async context manager (or call :meth:`aclose`): it owns a connection pool.
    """

    def __init__(
        self,
        base_url: str,
        *,
        headers: Mapping[str, str] | None = None,
        auth: AuthProvider | None = None,
        retry: RetryPolicy | None = None,
        timeout: float | httpx.Timeout = 10.0,
        http1: bool = True,
        http2: bool = False,
        verify: ssl.SSLContext | bool = True,
        transport: httpx.AsyncBaseTransport | None = None,
        jitter: Callable[[], float] = random.random,
        request_hooks: Sequence[Callable[[httpx.Request], Awaitable[None]]] = (),
    ) -> None:
        self.retry = retry if retry is not None else RetryPolicy()
        #: A balanced target (``registry://``, ``static://``): an httpx transport of the
        #: balancing layer picks a backend per attempt (loaded by name: see open_channel).
        self._balanced = base_url.partition("://")[0] in BALANCED_SCHEMES
        if self._balanced:
            balance = importlib.import_module(BALANCED_TARGETS_MODULE)
            inner = transport or httpx.AsyncHTTPTransport(http1=http1, http2=http2, verify=verify)
            transport, base_url = balance.BalancedTransport.for_target(base_url, inner)
        self.auth = auth
        self._jitter = jitter
        default_headers = httpx.Headers({"Accept": "application/json"})
        default_headers.update(headers or {})
        self._client = httpx.AsyncClient(
            base_url=base_url,
            headers=default_headers,
            timeout=timeout,
            http1=http1,
            http2=http2,
            verify=verify,
            transport=transport,
            event_hooks={"request": list(request_hooks)},
        )

    @property
    def base_url(self) -> str:
        return str(self._client.base_url)

    async def __aenter__(self) -> RestClient:
        await self._client.__aenter__()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._client.__aexit__(exc_type, exc, tb)

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._client.aclose()

    async def get(self, path: str, **kwargs: Any) -> Any:
        """``GET path``; keyword arguments as for :meth:`request`."""
        return await self.request("GET", path, **kwargs)

    async def post(self, path: str, json: Any = None, **kwargs: Any) -> Any:
        """``POST path`` with a JSON body; gets an ``Idempotency-Key`` by default."""
        return await self.request("POST", path, json=json, **kwargs)

    async def put(self, path: str, json: Any = None, **kwargs: Any) -> Any:
        """``PUT path`` with a JSON body (idempotent: retried without a key)."""
        return await self.request("PUT", path, json=json, **kwargs)

    async def patch(self, path: str, json: Any = None, **kwargs: Any) -> Any:
        """``PATCH path`` with a JSON body; gets an ``Idempotency-Key`` by default."""
        return await self.request("PATCH", path, json=json, **kwargs)

    async def delete(self, path: str, **kwargs: Any) -> Any:
        """``DELETE path`` (idempotent: retried without a key)."""
        return await self.request("DELETE", path, **kwargs)

    async def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        idempotency_key: IdempotencyKey = AUTO,
        retry: RetryPolicy | None = None,
    ) -> Any:
        """Send one call (retried as ``retry`` or the client's policy allows).

        ``json`` is the body to send as JSON (None: no body, as in httpx). Returns the
        response's parsed JSON, or None when it has no body (204, HEAD).
        ``idempotency_key``: AUTO (a UUID4 for POST/PATCH), a string to send, or None
        to send none; an ``Idempotency-Key`` in ``headers`` wins over all three.
        Raises :class:`APIError`, :class:`APITimeout` or :class:`APIConnectionError`.
        """
        method = method.upper()
        policy = retry if retry is not None else self.retry
        call_headers = httpx.Headers(headers or {})
        body: bytes | None = None
        if json is not None:
            body = jsonlib.dumps(json, separators=(",", ":"), ensure_ascii=False).encode()
            call_headers.setdefault("Content-Type", "application/json")
        if "Idempotency-Key" not in call_headers:
            if idempotency_key is AUTO:
                if method in KEYED_METHODS:
                    call_headers["Idempotency-Key"] = str(uuid.uuid4())
            elif idempotency_key is not None:
                call_headers["Idempotency-Key"] = idempotency_key
        call = _Call(self, policy, method, path, body, params, call_headers)
        if policy.deadline is None:
            return await call.run(None)
        with trio.move_on_after(policy.deadline) as scope:
            return await call.run(scope)
        raise APITimeout(
            f"{method} {call.url}: no answer within the {policy.deadline:g} s deadline "
            f"({call.sent} attempt(s) sent)",
            attempts=call.sent,
        )


class _Call:
    """The attempts of one call: what was sent so far and what came back."""

    def __init__(
        self,
        client: RestClient,
        policy: RetryPolicy,
        method: str,
        path: str,
        body: bytes | None,
        params: Mapping[str, Any] | None,
        headers: httpx.Headers,
    ) -> None:
        self.client = client
        self.policy = policy
        self.method = method
        self.path = path
        self.body = body
        self.params = params
        self.headers = headers
        self.has_key = "Idempotency-Key" in headers
        self.url = str(client._client.build_request(method, path, params=params).url)
        #: Requests sent (retries and the auth refresh included).
        self.sent = 0
        #: Attempts counted against ``max_attempts`` (the auth refresh is not one).
        self.attempts = 0
        #: Balanced targets: the backends this call's attempts went to (retries avoid them).
        self.extensions: dict[str, Any] = {"netkit.tried": []} if client._balanced else {}

    async def run(self, deadline: trio.CancelScope | None) -> Any:
        client = self.client
        refreshed = False
        while True:
            auth_headers: Mapping[str, str] = {}
            if client.auth is not None:
                auth_headers = await client.auth.headers()
            headers = self.headers.copy()
            headers.update(auth_headers)
            for name, value in outbound_headers():  # W3C trace context (netkit.observe)
                headers.setdefault(name, value)
            request = client._client.build_request(
                self.method,
                self.path,
                content=self.body,
                params=self.params,
                headers=headers,
                extensions=self.extensions or None,
            )
            self.sent += 1
            self.attempts += 1
            failure: httpx.TransportError | None = None
            response: httpx.Response | None = None
            try:
                response = await client._client.send(request)
            except (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError) as exc:
                # RemoteProtocolError is how httpcore reports a connection closed before
                # the response ended (mid-headers or mid-body): a connection failure.
                failure = exc
            if response is not None:
                if response.is_success:
                    return _parse_success(response, self.method)
                if response.status_code == 401 and client.auth is not None and not refreshed:
                    refreshed = True
                    if await client.auth.refresh(auth_headers):
                        self.attempts -= 1  # refused before acting on it: not a failure
                        continue
            delay = self.policy.delay_before_retry(
                method=self.method,
                has_idempotency_key=self.has_key,
                attempts=self.attempts,
                status=response.status_code if response is not None else None,
                retry_after=response.headers.get("Retry-After") if response is not None else None,
                now=_server_now(response),
                remaining=(
                    deadline.deadline - trio.current_time() if deadline is not None else None
                ),
                rand=client._jitter(),
            )
            if delay is None:
                raise self._final_error(response, failure)
            logger.info(
                "%s %s: attempt %d failed (%s); retrying in %.3f s",
                self.method,
                self.url,
                self.attempts,
                response.status_code if response is not None else repr(failure),
                delay,
            )
            await trio.sleep(delay)

    def _final_error(
        self, response: httpx.Response | None, failure: httpx.TransportError | None
    ) -> RestClientError:
        if response is not None:
            return _api_error(response, self.method, self.url, self.sent)
        assert failure is not None
        what = f"{self.method} {self.url}: {type(failure).__name__}: {failure}"
        error: RestClientError
        if isinstance(failure, httpx.TimeoutException):
            error = APITimeout(f"{what} (attempt {self.sent})", attempts=self.sent)
        else:
            error = APIConnectionError(f"{what} (attempt {self.sent})", attempts=self.sent)
        error.__cause__ = failure
        return error


def _server_now(response: httpx.Response | None) -> float:
    """The time a ``Retry-After`` HTTP-date is measured from: the server's own ``Date``.

    Comparing the server's two timestamps makes the wait immune to clock skew between
    client and server; without a ``Date`` header the local wall clock stands in.
    """
    if response is not None and "Date" in response.headers:
        server_time = parse_http_date(response.headers["Date"])
        if server_time is not None:
            return server_time
    return time.time()


def _is_json(content_type: str) -> bool:
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or media.endswith("+json")


def _parse_success(response: httpx.Response, method: str) -> Any:
    if method == "HEAD" or response.status_code in (204, 205) or not response.content:
        return None
    try:
        return jsonlib.loads(response.content)
    except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError
        raise RestClientError(
            f"{method} {response.request.url} -> {response.status_code}: the body is not JSON "
            f"(content-type {response.headers.get('Content-Type', 'missing')!r})"
        ) from exc


def _api_error(response: httpx.Response, method: str, url: str, attempts: int) -> APIError:
    problem: dict[str, Any] | None = None
    if _is_json(response.headers.get("Content-Type", "")):
        try:
            parsed = jsonlib.loads(response.content)
        except ValueError:
            parsed = None
        if isinstance(parsed, dict):
            problem = parsed
    return APIError(
        response.status_code,
        method=method,
        url=url,
        problem=problem,
        text=response.content[:_MAX_ERROR_TEXT].decode("utf-8", "replace"),
        request_id=response.headers.get("X-Request-Id"),
        headers=dict(response.headers),
        attempts=attempts,
    )
