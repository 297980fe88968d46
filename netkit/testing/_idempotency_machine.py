"""``IdempotencyMachine``: REST requests with ``Idempotency-Key`` against a model.

An App with one JSON ``POST`` resource (it counts its executions) is served in memory;
clients send POSTs over HTTP/1.1 with keys drawn from a small set and bodies from a
small set (so keys and bodies repeat), while mock time passes (``advance``).

Invariants, checked on every response:

1. **At most once per key.** A key's first request runs the handler; a retry with the
   same key and the same request (method, target, body) within the TTL does *not*: it
   gets the stored response again -- same status, same body -- marked
   ``idempotent-replayed: true``.
2. **A key is bound to its request.** The same key with another body gets 422 (and the
   handler does not run).
3. **Keys expire.** After ``idempotency_ttl`` seconds the key is free: the request runs
   again and its new response is stored.
4. **The handler ran exactly as often as the model says** (its counter is checked).

Point it at your own resource by overriding :meth:`IdempotencyMachine.make_app` (a
``POST`` on ``PATH`` whose response body changes on every execution, or the replay
check cannot see a re-execution). The model assumes no key is evicted for space
(``idempotency_max_keys`` above the number of keys).
"""

from __future__ import annotations

import json
from typing import Any, ClassVar

import trio
from hypothesis import strategies as st
from hypothesis.stateful import initialize, invariant, rule

from ..app import App
from ..rest import RestAPI, RestConfig, RestRequest
from ._machine import TrioStateMachine
from ._memory import MemoryServer, http1_request


class IdempotencyMachine(TrioStateMachine):
    """See the module docstring."""

    PATH: ClassVar[str] = "/v1/things"
    TTL: ClassVar[float] = 10.0
    KEYS: ClassVar[tuple[str, ...]] = ("k1", "k2", "k3")
    BODIES: ClassVar[tuple[bytes, ...]] = (b'{"a":1}', b'{"a":2}')
    ADVANCES: ClassVar[tuple[float, ...]] = (0.5, 3.0, 10.0)

    def make_app(self) -> App:
        """An App whose ``POST PATH`` returns ``{"run": n}``, n counting executions."""
        app = App()
        app.rest = RestAPI(config=RestConfig(idempotency_ttl=self.TTL, idempotency_max_keys=100))

        async def create(request: RestRequest[Any]) -> dict[str, Any]:
            self.executions += 1
            return {"run": self.executions}

        app.rest.route("POST", self.PATH, create, status=201)
        return app

    @initialize()
    async def start_server(self) -> None:
        self.executions = 0
        self.expected_executions = 0
        #: key -> (body, status, response body, expiry)
        self.stored: dict[str, tuple[bytes, int, bytes, float]] = {}
        self.server: MemoryServer = await self.start(MemoryServer(self.make_app()).run)

    @rule(key=st.sampled_from(KEYS), body=st.sampled_from(BODIES))
    async def post(self, key: str, body: bytes) -> None:
        headers = [("content-type", "application/json"), ("idempotency-key", key)]
        status, response_headers, content = await http1_request(
            self.server, "POST", self.PATH, headers, body
        )
        replayed = ("idempotent-replayed", "true") in response_headers
        now = trio.current_time()
        stored = self.stored.get(key)
        if stored is not None and stored[3] <= now:
            stored = None  # expired
        if stored is None:
            self.expected_executions += 1
            assert status < 300 and not replayed, f"first use of {key!r}: {status} {content!r}"
            assert json.loads(content) == {"run": self.expected_executions}, content
            self.stored[key] = (body, status, content, now + self.TTL)
        elif stored[0] == body:
            assert replayed, f"retry of {key!r} was not a replay: {status} {content!r}"
            assert (status, content) == stored[1:3], (
                f"replay of {key!r} gave {status} {content!r}, stored {stored[1]} {stored[2]!r}"
            )
        else:
            assert status == 422, f"{key!r} reused for another body: {status} {content!r}"

    @rule(seconds=st.sampled_from(ADVANCES))
    async def advance(self, seconds: float) -> None:
        await trio.sleep(seconds)

    @invariant()
    def handler_ran_as_often_as_the_model_says(self) -> None:
        assert self.executions == self.expected_executions, (
            f"the handler ran {self.executions} times, the model says {self.expected_executions}"
        )
