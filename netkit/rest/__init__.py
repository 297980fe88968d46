"""REST on netkit.

Server side: routed JSON resources with validation, problem+json, idempotency keys, ETags,
gzip, streaming and a generated OpenAPI 3.1 document (``app.rest``).

Client side: ``RestClient``, a JSON client for any REST service with safe retries. It
runs httpx under trio; its retry rules live in the sans-I/O :class:`RetryPolicy`, and
every failure is one of the typed errors below.
"""

from ._api import Endpoint as Endpoint
from ._api import EtagHook as EtagHook
from ._api import RestAPI as RestAPI
from ._api import RestGuard as RestGuard
from ._api import RestHandler as RestHandler
from ._caching import etag_for as etag_for
from ._client import RestClient as RestClient
from ._client_auth import AuthProvider as AuthProvider
from ._client_auth import BearerToken as BearerToken
from ._client_errors import APIConnectionError as APIConnectionError
from ._client_errors import APIError as APIError
from ._client_errors import APITimeout as APITimeout
from ._client_errors import RestClientError as RestClientError
from ._client_retry import RetryPolicy as RetryPolicy
from ._config import RestConfig as RestConfig
from ._idempotency import IdempotencyStore as IdempotencyStore
from ._idempotency import MemoryIdempotencyStore as MemoryIdempotencyStore
from ._idempotency import StoredResponse as StoredResponse
from ._messages import Problem as Problem
from ._messages import Response as Response
from ._messages import RestRequest as RestRequest
from ._messages import StreamingResponse as StreamingResponse

__all__ = [
    "APIConnectionError",
    "APIError",
    "APITimeout",
    "AuthProvider",
    "BearerToken",
    "Endpoint",
    "EtagHook",
    "IdempotencyStore",
    "MemoryIdempotencyStore",
    "Problem",
    "Response",
    "RestAPI",
    "RestClient",
    "RestClientError",
    "RestConfig",
    "RestGuard",
    "RestHandler",
    "RestRequest",
    "RetryPolicy",
    "StoredResponse",
    "StreamingResponse",
    "etag_for",
]
