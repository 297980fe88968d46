"""The errors a :class:`RestClient` call raises, in one tree.

::

    NetkitError
    └── RestClientError           a REST call failed; the base to catch them all
        ├── APIError              the service answered with a non-2xx status
        ├── APITimeout            the call's deadline (or an attempt's timeout) ran out
        └── APIConnectionError    the service could not be reached, or the connection
                                  broke mid-response, on the last attempt

``APIError`` deliberately does not derive from :class:`netkit.HTTPStatusError`: a handler
that calls another service and lets its 404 escape must answer 500 (its own bug), not
pass the other service's status on to its own client as if it were its own answer.
The httpx exception that ended the last attempt is kept as ``__cause__``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..errors import NetkitError


class RestClientError(NetkitError):
    """A REST call failed (also raised when a 2xx body is not the JSON it claims to be)."""


class APIError(RestClientError):
    """A non-2xx answer, with the RFC 9457 problem details when the body carries them.

    ``problem`` is the parsed JSON object of the body (``application/problem+json`` or
    any JSON object), else None; ``type``, ``title``, ``detail``, ``instance`` and
    ``errors`` are read from it with the RFC's defaults (``type`` is ``about:blank``
    when absent). ``request_id`` is the response's ``X-Request-Id``, which is what a
    service's operators need to find the failed call in their logs. ``attempts`` counts
    the requests sent for this call, retries included.
    """

    def __init__(
        self,
        status: int,
        *,
        method: str,
        url: str,
        problem: Mapping[str, Any] | None = None,
        text: str = "",
        request_id: str | None = None,
        headers: Mapping[str, str] | None = None,
        attempts: int = 1,
    ) -> None:
        self.status = status
        self.method = method
        self.url = url
        self.problem: dict[str, Any] | None = dict(problem) if problem is not None else None
        self.text = text
        self.request_id = request_id
        self.headers: dict[str, str] = dict(headers or {})
        self.attempts = attempts
        p = self.problem or {}
        self.type: str = str(p.get("type", "about:blank"))
        self.title: str | None = _str_or_none(p.get("title"))
        self.detail: str | None = _str_or_none(p.get("detail"))
        self.instance: str | None = _str_or_none(p.get("instance"))
        #: Field-level errors of a validation problem (the common ``errors`` extension).
        self.errors: Any = p.get("errors")
        summary = self.detail or self.title or text[:200]
        message = f"{method} {url} -> {status}"
        if summary:
            message += f": {summary}"
        if request_id:
            message += f" (request id {request_id})"
        super().__init__(message)


class APITimeout(RestClientError):
    """The call did not finish in time: its overall deadline, or the last attempt's timeout."""

    def __init__(self, message: str, *, attempts: int) -> None:
        super().__init__(message)
        self.attempts = attempts


class APIConnectionError(RestClientError):
    """The last attempt could not connect, or the connection broke before the response ended."""

    def __init__(self, message: str, *, attempts: int) -> None:
        super().__init__(message)
        self.attempts = attempts


def _str_or_none(value: Any) -> str | None:
    return None if value is None else str(value)
