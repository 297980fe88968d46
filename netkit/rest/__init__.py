"""REST on netkit: routed JSON resources with validation, problem+json, idempotency keys,
ETags, gzip, streaming and a generated OpenAPI 3.1 document (server side)."""

from ._api import EtagHook as EtagHook
from ._api import RestAPI as RestAPI
from ._api import RestHandler as RestHandler
from ._caching import etag_for as etag_for
from ._config import RestConfig as RestConfig
from ._idempotency import IdempotencyStore as IdempotencyStore
from ._idempotency import MemoryIdempotencyStore as MemoryIdempotencyStore
from ._idempotency import StoredResponse as StoredResponse
from ._messages import Problem as Problem
from ._messages import Response as Response
from ._messages import RestRequest as RestRequest
from ._messages import StreamingResponse as StreamingResponse

__all__ = [
    "EtagHook",
    "IdempotencyStore",
    "MemoryIdempotencyStore",
    "Problem",
    "Response",
    "RestAPI",
    "RestConfig",
    "RestHandler",
    "RestRequest",
    "StoredResponse",
    "StreamingResponse",
    "etag_for",
]
