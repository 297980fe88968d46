"""The hello app served with or without ``netkit.observe`` (for metrics_cost.py).

``python benchmarks/apps/hello_observed.py --port N [--metrics] [--access-log]``: the
same ``netkit.examples.hello:app`` as run.py serves; ``--metrics`` passes an
``Observability`` observer (metrics and trace context) and mounts ``/metrics``;
``--access-log`` also writes the access log (JSON, to /dev/null).
"""

from __future__ import annotations

import argparse
import functools
import logging
import os
import signal

import trio

import netkit
from netkit.examples.hello import app
from netkit.observe import Observability, configure_logging


async def main(port: int, metrics: bool, access: bool) -> None:
    observer = None
    if metrics:
        observer = Observability(access_log=access)
        observer.mount(app)
    async with trio.open_nursery() as nursery:
        server = await nursery.start(
            functools.partial(netkit.serve, app, "127.0.0.1", port, observer=observer)
        )
        with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            async for _ in signals:
                server.shutdown()
                break


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--metrics", action="store_true")
    parser.add_argument("--access-log", action="store_true")
    args = parser.parse_args()
    logging.getLogger("netkit").setLevel(logging.WARNING)
    if args.access_log:
        configure_logging(stream=open(os.devnull, "w"))  # noqa: SIM115 - lives with the process
    trio.run(main, args.port, args.metrics, args.access_log)
