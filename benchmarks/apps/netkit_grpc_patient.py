"""netkit's gRPC echo example with its connection timeouts raised, for valgrind.

``grpc_instructions.py`` runs every server about 50 times slower under callgrind.
With 128 calls in flight, netkit's own 5 s keep-alive and 10 s request-head
timeouts then fire on h2load's connections between two bursts of calls (a
connection whose streams have all been answered counts as idle until the server
gets round to reading the next requests), and h2load sees hundreds of calls
errored.  Here the same app (``netkit.examples.grpc_echo:app``) is served with those
timeouts, and the write timeout, at an hour; nothing else differs from ``netkit
serve``.  A timeout's value changes no per-call work: the deadlines are set either
way.  SIGINT ends it (trio raises KeyboardInterrupt), as it ends ``netkit serve``.
"""

from __future__ import annotations

import argparse
import contextlib

import trio

import netkit
from netkit.examples.grpc_echo import app

PATIENCE = 3600.0  # seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    config = netkit.ServerConfig(
        request_head_timeout=PATIENCE, keep_alive_timeout=PATIENCE, write_timeout=PATIENCE
    )
    with contextlib.suppress(KeyboardInterrupt):
        trio.run(lambda: netkit.serve(app, args.host, args.port, config=config))


if __name__ == "__main__":
    main()
