"""What REST handlers receive (:class:`RestRequest`) and may return (:class:`Response`,
:class:`StreamingResponse`, or a plain value), and the :class:`Problem` they may raise."""

from __future__ import annotations

from collections.abc import AsyncIterable, Iterable
from http import HTTPStatus
from typing import Any, Generic, TypeVar
from urllib.parse import parse_qs

import attrs

from ..errors import HTTPStatusError
from ..http import Headers, HTTPStream
from ._caching import if_match, none_match, quote_etag

B = TypeVar("B")


class Problem(HTTPStatusError):
    """Ends the request with an ``application/problem+json`` answer (RFC 9457).

    ``errors`` is a list of ``{"pointer": "#/field", "detail": "..."}`` for validation
    problems. ``headers`` are added to the answer (e.g. ``Allow`` or ``Retry-After``).
    """

    def __init__(
        self,
        status: int,
        detail: str = "",
        *,
        title: str | None = None,
        type: str = "about:blank",
        errors: list[dict[str, str]] | None = None,
        headers: Iterable[tuple[str, str]] = (),
    ) -> None:
        super().__init__(status, detail)
        try:
            phrase = HTTPStatus(status).phrase
        except ValueError:
            phrase = "Error"
        self.title = title or phrase
        self.type = type
        self.errors = errors
        self.headers = list(headers)

    def members(self) -> dict[str, object]:
        members: dict[str, object] = {"type": self.type, "title": self.title}
        if self.errors is not None:
            members["errors"] = self.errors
        return members


@attrs.define(slots=True)
class Response:
    """An explicit response: status, headers, and a body.

    ``body`` is JSON data (dicts, lists, attrs instances...) sent as ``application/json``,
    or ``bytes`` sent as they are with ``content_type``. ``etag`` replaces the hash-based
    tag; ``cache_control`` sets ``Cache-Control``.
    """

    body: Any = None
    status: int = 200
    headers: list[tuple[str, str]] = attrs.field(factory=list)
    content_type: str | None = None
    etag: str | None = None
    cache_control: str | None = None


@attrs.define(slots=True)
class StreamingResponse:
    """A body produced while it is sent: chunked on HTTP/1.1, DATA frames on HTTP/2.

    Each chunk waits for the connection (flow control, the socket) before the next is
    taken from ``body``, so a slow client slows the producer down. A textual or JSON
    ``content_type`` is gzipped chunk by chunk when the client accepts it. ``etag`` (there
    is no body to hash in advance) enables ``If-None-Match`` → 304 on GET.
    """

    body: AsyncIterable[bytes]
    status: int = 200
    headers: list[tuple[str, str]] = attrs.field(factory=list)
    content_type: str = "application/octet-stream"
    cache_control: str | None = None
    etag: str | None = None


class RestRequest(Generic[B]):
    """One request as a REST handler sees it.

    ``params`` holds the converted path parameters, ``body`` the validated request body
    (an instance of the route's ``body=`` shape; ``None`` when the route declares none),
    ``raw_body`` the decoded bytes it came from, ``query_args`` the typed query parameters
    (an instance of the route's ``query=`` class; ``None`` when it declares none) and
    ``query`` the raw ones. ``stream`` is the underlying :class:`~netkit.HTTPStream` for
    anything else.
    """

    __slots__ = ("_query", "body", "params", "query_args", "raw_body", "stream")

    def __init__(
        self, stream: HTTPStream, params: dict[str, Any], body: B, raw_body: bytes
    ) -> None:
        self.stream = stream
        self.params = params
        self.body = body
        self.raw_body = raw_body
        self.query_args: Any = None
        self._query: dict[str, list[str]] | None = None

    @property
    def method(self) -> str:
        return self.stream.request.method

    @property
    def path(self) -> str:
        return self.stream.request.path

    @property
    def headers(self) -> Headers:
        return self.stream.request.headers

    @property
    def http_version(self) -> str:
        return self.stream.request.http_version

    @property
    def principal(self) -> Any:
        """Who made the request, as authentication found it (``stream.principal``)."""
        return self.stream.principal

    @property
    def query(self) -> dict[str, list[str]]:
        """Query parameters, each with all its values (parsed on first use)."""
        if self._query is None:
            self._query = parse_qs(self.stream.request.query_string, keep_blank_values=True)
        return self._query

    def query_value(self, name: str, default: str | None = None) -> str | None:
        """The first value of query parameter ``name``."""
        values = self.query.get(name)
        return values[0] if values else default

    def check_preconditions(self, current_etag: str | None) -> None:
        """Raise 412 unless ``If-Match``/``If-None-Match`` hold for ``current_etag``.

        ``current_etag`` is the resource's tag now (``None``: it does not exist). Call it
        inside the handler, under the same lock as the change, when the check and the
        mutation must be atomic; routes with ``etag=`` get it before the handler runs.
        """
        headers = self.stream.request.headers
        current = quote_etag(current_etag) if current_etag is not None else None
        wanted = headers.get("if-match")
        if wanted is not None and not if_match(wanted, current):
            raise Problem(412, "the resource has changed (If-Match did not match)")
        unwanted = headers.get("if-none-match")
        if unwanted is not None and none_match(unwanted, current):
            raise Problem(412, "the resource exists (If-None-Match matched)")
