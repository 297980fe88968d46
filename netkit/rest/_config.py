"""The REST layer's limits and switches, as data (every field has a default and a test)."""

from __future__ import annotations

import attrs
from attrs import validators as v

_pos_int = v.and_(v.instance_of(int), v.gt(0))


def _pos_num(_instance: object, attribute: attrs.Attribute[float], value: float) -> None:
    if not isinstance(value, int | float) or isinstance(value, bool) or not value > 0:
        raise ValueError(f"{attribute.name} must be a positive number, got {value!r}")


@attrs.frozen(kw_only=True)
class RestConfig:
    """Limits of :class:`~netkit.rest.RestAPI`.

    - ``max_decompressed_body_size``: bytes a ``Content-Encoding: gzip`` request body may
      inflate to; past it, 413. (The compressed size is bounded by the server's
      ``max_request_body_size``.)
    - ``gzip_min_size``: responses with fewer body bytes are sent uncompressed.
    - ``gzip_level``: zlib level for responses (1 fastest .. 9 smallest).
    - ``idempotency_ttl``: seconds a stored response answers retries with its key.
    - ``idempotency_max_keys``: stored responses kept by the default in-memory store;
      the oldest is dropped when a new one does not fit.
    - ``max_idempotency_key_length``: longer ``Idempotency-Key`` values get 400.
    - ``openapi_path``: where the generated OpenAPI document is served (``None``: not served).
    """

    max_decompressed_body_size: int = attrs.field(default=16 * 1024 * 1024, validator=_pos_int)
    gzip_min_size: int = attrs.field(default=1024, validator=v.and_(v.instance_of(int), v.ge(0)))
    gzip_level: int = attrs.field(default=6, validator=[v.instance_of(int), v.ge(1), v.le(9)])
    idempotency_ttl: float = attrs.field(default=24 * 3600.0, validator=_pos_num)
    idempotency_max_keys: int = attrs.field(default=10_000, validator=_pos_int)
    max_idempotency_key_length: int = attrs.field(default=255, validator=_pos_int)
    openapi_path: str | None = "/openapi.json"
