"""Credentials that clients attach: gRPC per-call metadata from an auth provider.

The providers are the REST client's (:class:`~netkit.rest.AuthProvider`, e.g.
:class:`~netkit.rest.BearerToken`), so one token source serves ``RestClient(auth=...)``,
``open_channel(interceptors=[CallCredentials(...)])`` and
``connect_events(auth=...)`` alike, and refreshes for all of them.
"""

from __future__ import annotations

from collections.abc import Mapping

from ..grpc import CallInfo, ClientInterceptor, StatusCode
from ..rest import AuthProvider


class CallCredentials(ClientInterceptor):
    """Adds the provider's headers (``authorization: Bearer ...``) to every call's metadata.

    After a call ends in UNAUTHENTICATED, the next call first asks the provider to
    ``refresh`` (calls already under way are not repeated: a streaming call cannot be
    replayed safely, so the caller decides whether to retry).
    """

    def __init__(self, provider: AuthProvider) -> None:
        self.provider = provider
        self._rejected: Mapping[str, str] | None = None
        #: Headers sent by each call in flight (by ``id`` of its CallInfo).
        self._sent: dict[int, Mapping[str, str]] = {}
        #: Refreshes asked for so far.
        self.refreshes = 0

    async def before(self, info: CallInfo) -> None:
        rejected, self._rejected = self._rejected, None
        if rejected is not None:
            self.refreshes += 1
            await self.provider.refresh(rejected)
        headers = await self.provider.headers()
        info.metadata.extend((name.lower(), value) for name, value in headers.items())
        self._sent[id(info)] = headers

    def after(self, info: CallInfo, code: StatusCode | None, error: BaseException | None) -> None:
        sent = self._sent.pop(id(info), None)
        if code == StatusCode.UNAUTHENTICATED and sent is not None:
            self._rejected = sent
