"""REST on netkit: ``RestClient``, a JSON client for any REST service, with safe retries.

The client runs httpx under trio; its retry rules live in the sans-I/O
:class:`RetryPolicy`, and every failure is one of the typed errors below.
"""

from ._client import RestClient as RestClient
from ._client_auth import AuthProvider as AuthProvider
from ._client_auth import BearerToken as BearerToken
from ._client_errors import APIConnectionError as APIConnectionError
from ._client_errors import APIError as APIError
from ._client_errors import APITimeout as APITimeout
from ._client_errors import RestClientError as RestClientError
from ._client_retry import RetryPolicy as RetryPolicy

__all__ = [
    "APIConnectionError",
    "APIError",
    "APITimeout",
    "AuthProvider",
    "BearerToken",
    "RestClient",
    "RestClientError",
    "RetryPolicy",
]
