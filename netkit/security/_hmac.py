"""HMAC request signing, for REST calls that cross hops TLS does not protect end to end
(webhooks relayed by a queue, a proxy that terminates TLS).

The signature header::

    X-Netkit-Signature: v1 key=<key id>,ts=<unix seconds>,nonce=<random>,sig=<base64url>

``sig`` is HMAC-SHA256, under the key's secret, of the canonical string::

    netkit-hmac-v1 \\n <key id> \\n <METHOD> \\n <target: path?query as sent> \\n
    <ts> \\n <nonce> \\n <hex SHA-256 of the body>

(newline-separated, no spaces). The body is the request body as the application reads
it (after ``Content-Encoding`` is removed). The verifier refuses, with 401: a missing
or malformed header, an unknown key id, a wrong signature (compared in constant time),
a timestamp further than ``window`` seconds from its clock (stale or future), and a
nonce it has already seen within the window (a replay). Nonces are remembered only for
the window, in a bounded table, since older requests fail the timestamp check anyway.

The host is not signed: proxies legitimately rewrite it, and the key identifies the
receiver's trust relationship with the sender already.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from ._errors import Unauthenticated
from ._principal import Principal

if TYPE_CHECKING:
    import httpx

    from ..rest import Endpoint, RestAPI, RestRequest

HEADER = "x-netkit-signature"
_VERSION = "v1"


def _secret(value: bytes | str) -> bytes:
    return value.encode() if isinstance(value, str) else value


def canonical(
    key_id: str, method: str, target: str, timestamp: int, nonce: str, body: bytes
) -> bytes:
    """The bytes that are signed (see the module docstring)."""
    digest = hashlib.sha256(body).hexdigest()
    lines = ["netkit-hmac-v1", key_id, method.upper(), target, str(timestamp), nonce, digest]
    return "\n".join(lines).encode("utf-8", "surrogateescape")


def _mac(secret: bytes, message: bytes) -> str:
    raw = hmac.new(secret, message, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


class HMACSigner:
    """Signs outgoing requests; a request hook for ``RestClient(request_hooks=[signer])``.

    Every attempt is signed afresh (a retry gets a new timestamp and nonce, so the
    server's replay check never refuses a legitimate retry).
    """

    def __init__(
        self,
        key_id: str,
        secret: bytes | str,
        *,
        clock: Callable[[], float] = time.time,
        nonce: Callable[[], str] = lambda: secrets.token_urlsafe(16),
    ) -> None:
        if not key_id or any(c in key_id for c in ",= \n"):
            raise ValueError("key_id must be non-empty, without ',', '=', spaces or newlines")
        self.key_id = key_id
        self._secret = _secret(secret)
        self._clock = clock
        self._nonce = nonce

    def sign(self, method: str, target: str, body: bytes) -> str:
        """The header value for one request."""
        ts = int(self._clock())
        nonce = self._nonce()
        mac = _mac(self._secret, canonical(self.key_id, method, target, ts, nonce, body))
        return f"{_VERSION} key={self.key_id},ts={ts},nonce={nonce},sig={mac}"

    async def __call__(self, request: httpx.Request) -> None:
        body = await request.aread()
        target = request.url.raw_path.decode("ascii")
        request.headers[HEADER] = self.sign(request.method, target, body)


def _parse(value: str) -> dict[str, str]:
    version, _, rest = value.strip().partition(" ")
    if version != _VERSION:
        raise Unauthenticated(f"unsupported signature version {version[:10]!r}")
    fields: dict[str, str] = {}
    for part in rest.split(","):
        name, sep, item = part.strip().partition("=")
        if not sep or name in fields:
            raise Unauthenticated("malformed signature header")
        fields[name] = item
    if set(fields) != {"key", "ts", "nonce", "sig"}:
        raise Unauthenticated("malformed signature header")
    return fields


class HMACVerifier:
    """Checks signed requests; a body guard for ``RestAPI`` (:meth:`install`).

    ``keys``: key id -> shared secret. ``window``: seconds a signature stays acceptable
    either side of the verifier's clock. ``applies``: which endpoints demand a signature
    (default: all of the API's). A verified request whose stream has no principal yet
    gets ``Principal(key_id, method="hmac")``.
    """

    def __init__(
        self,
        keys: Mapping[str, bytes | str],
        *,
        window: float = 300.0,
        max_nonces: int = 100_000,
        clock: Callable[[], float] = time.time,
        applies: Callable[[Endpoint], bool] | None = None,
    ) -> None:
        self._keys = {key_id: _secret(secret) for key_id, secret in keys.items()}
        self.window = window
        self.max_nonces = max_nonces
        self._clock = clock
        self._applies = applies
        #: (key id, nonce) -> when it may be forgotten; insertion order is expiry order
        #: as long as the clock does not go back, and purging stops at the first live one.
        self._seen: OrderedDict[tuple[str, str], float] = OrderedDict()

    def install(self, api: RestAPI) -> None:
        api.add_guard(self, body=True)

    def verify(self, method: str, target: str, body: bytes, header: str | None) -> str:
        """The key id of a valid, fresh, first-seen signature; else Unauthenticated."""
        if header is None:
            raise Unauthenticated("this endpoint needs a signed request")
        fields = _parse(header)
        key_id = fields["key"]
        secret = self._keys.get(key_id)
        if secret is None:
            raise Unauthenticated("unknown signing key")
        try:
            ts = int(fields["ts"])
        except ValueError:
            raise Unauthenticated("malformed signature timestamp") from None
        expected = _mac(secret, canonical(key_id, method, target, ts, fields["nonce"], body))
        if not hmac.compare_digest(expected.encode(), fields["sig"].encode("ascii", "replace")):
            raise Unauthenticated("the request signature does not match")
        now = self._clock()
        if abs(now - ts) > self.window:
            raise Unauthenticated("the request signature is stale (or from the future)")
        self._purge(now)
        seen_key = (key_id, fields["nonce"])
        if seen_key in self._seen:
            raise Unauthenticated("replayed request (nonce already used)")
        if len(self._seen) >= self.max_nonces:
            raise Unauthenticated("too many signed requests in the replay window; retry")
        self._seen[seen_key] = now + 2 * self.window
        return key_id

    def _purge(self, now: float) -> None:
        seen = self._seen
        while seen:
            key, expires = next(iter(seen.items()))
            if expires > now:
                break
            del seen[key]

    async def __call__(self, request: RestRequest[Any], endpoint: Endpoint) -> None:
        from ..rest import Problem

        if self._applies is not None and not self._applies(endpoint):
            return
        stream = request.stream
        head = stream.request
        try:
            key_id = self.verify(
                head.method, head.target, request.raw_body, head.headers.get(HEADER)
            )
        except Unauthenticated as exc:
            challenge = ("www-authenticate", 'NetkitHMAC realm="netkit"')
            raise Problem(401, exc.detail, headers=[challenge]) from None
        if stream.principal is None:
            stream.principal = Principal(key_id, method="hmac")
