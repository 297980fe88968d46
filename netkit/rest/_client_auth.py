"""Auth header providers for :class:`RestClient`: pluggable, and able to refresh.

A provider gives the headers to add to each attempt. When the service answers 401, the
client asks the provider to ``refresh`` once per call, and sends the request again if it
says it has new credentials: a 401 means the server refused the request before acting on
it, so repeating it is safe even for a POST without an ``Idempotency-Key``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Protocol, runtime_checkable

import trio


@runtime_checkable
class AuthProvider(Protocol):
    """What :class:`RestClient` needs from an auth provider."""

    async def headers(self) -> Mapping[str, str]:
        """The headers for the next attempt (fetching credentials first if needed)."""
        ...

    async def refresh(self, rejected: Mapping[str, str]) -> bool:
        """The service answered 401 to a request sent with ``rejected`` headers.

        Return True when newer credentials are available (the client then retries once),
        False when there is nothing better to try (the 401 is raised as an APIError).
        """
        ...


class BearerToken:
    """``Authorization: Bearer <token>``, the token coming from an async ``fetch``.

    The token is fetched on first use and kept; after a 401 it is fetched again. Calls
    that fail together with the same stale token share one fetch: a lock serialises
    refreshes, and a call whose rejected token has already been replaced just retries
    with the new one.
    """

    def __init__(self, fetch: Callable[[], Awaitable[str]]) -> None:
        self._fetch = fetch
        self._token: str | None = None
        self._lock = trio.Lock()

    @classmethod
    def static(cls, token: str) -> BearerToken:
        """A token that never changes (a 401 is final)."""

        async def fetch() -> str:
            return token

        provider = cls(fetch)
        provider._token = token
        return provider

    async def headers(self) -> Mapping[str, str]:
        async with self._lock:
            if self._token is None:
                self._token = await self._fetch()
            return {"Authorization": f"Bearer {self._token}"}

    async def refresh(self, rejected: Mapping[str, str]) -> bool:
        async with self._lock:
            used = rejected.get("Authorization")
            current = f"Bearer {self._token}" if self._token is not None else None
            if current is not None and used != current:
                return True  # another call refreshed it meanwhile
            old = self._token
            self._token = await self._fetch()
            return self._token != old
