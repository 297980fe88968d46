"""A tiny app for the shutdown tests: ``GET /slow`` answers after a delay.

``netkit serve tests.interop.slow_app:app`` prints ``slow request started`` when a /slow
request reaches its handler, so a test driving the CLI knows the request is in flight
before it sends a signal. In-process tests build their own with :func:`make_app`.
"""

from __future__ import annotations

from collections.abc import Callable

import trio

from netkit import App, HTTPStream
from netkit.examples.hello import hello

#: Large enough to need several writes (and several HTTP/2 DATA frames) to arrive whole.
SLOW_BODY = b"".join(b"line %05d of a slow response\n" % i for i in range(2000))
DELAY = 1.0
STARTED = "slow request started"


def make_app(delay: float = DELAY, on_start: Callable[[], None] | None = None) -> App:
    """``GET /slow`` (calls ``on_start``, sleeps ``delay``, answers SLOW_BODY), ``GET /hello``."""
    app = App()
    app.route("GET", "/hello", hello)

    @app.route("GET", "/slow")
    async def slow(stream: HTTPStream) -> None:
        if on_start is not None:
            on_start()
        await trio.sleep(delay)
        await stream.respond(200, [("content-type", "text/plain")], SLOW_BODY)

    return app


def _announce() -> None:
    print(STARTED, flush=True)


app = make_app(on_start=_announce)
