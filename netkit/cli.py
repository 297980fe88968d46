"""The ``netkit`` command: ``netkit serve MODULE:ATTR [--host H] [--port N] [...]``.

SIGINT and SIGTERM start a graceful shutdown (GOAWAY, in-flight requests finish within
the grace period); a second signal cancels at once.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import resource
import signal
import ssl
import sys
from typing import Any

import trio

from .http import Server, ServerConfig, serve

log = logging.getLogger("netkit.cli")


def load_app(spec: str) -> Any:
    """Import ``module:attribute`` (the uvicorn/hypercorn convention)."""
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise SystemExit(f"netkit: expected MODULE:ATTR, got {spec!r}")
    module = importlib.import_module(module_name)
    try:
        obj = module
        for part in attr.split("."):
            obj = getattr(obj, part)
    except AttributeError:
        raise SystemExit(f"netkit: {module_name} has no attribute {attr!r}") from None
    return obj


def _raise_fd_limit(wanted: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))


async def _serve_until_signalled(args: argparse.Namespace) -> None:
    app = load_app(args.app)
    config = ServerConfig(max_connections=args.max_connections, shutdown_grace=args.shutdown_grace)
    ssl_context = None
    if args.certfile:
        ssl_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ssl_context.load_cert_chain(args.certfile, args.keyfile)
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with trio.open_nursery() as nursery:

            async def run_server(*, task_status: trio.TaskStatus[Server]) -> None:
                await serve(
                    app,
                    args.host,
                    args.port,
                    ssl_context=ssl_context,
                    config=config,
                    task_status=task_status,
                )
                nursery.cancel_scope.cancel()  # serve() has finished: stop watching signals

            server: Server = await nursery.start(run_server)
            scheme = "https" if ssl_context else "http"
            print(
                f"netkit serving {args.app} on {scheme}://{server.host}:{server.port}", flush=True
            )
            async for signum in signals:
                if server.shutting_down:
                    nursery.cancel_scope.cancel()  # second signal: stop now
                    break
                log.warning("%s: shutting down gracefully", signal.Signals(signum).name)
                server.shutdown()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="netkit", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("serve", help="serve an App (MODULE:ATTR) over HTTP/1.1 and HTTP/2")
    p.add_argument("app", help="the App to serve, as MODULE:ATTR")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8080)
    p.add_argument("--certfile", help="TLS certificate chain (PEM); enables HTTPS with ALPN")
    p.add_argument("--keyfile", help="TLS private key (PEM)")
    p.add_argument("--max-connections", type=int, default=ServerConfig().max_connections)
    p.add_argument("--shutdown-grace", type=float, default=ServerConfig().shutdown_grace)
    p.add_argument("--log-level", default="INFO")
    args = parser.parse_args(argv)
    if bool(args.certfile) != bool(args.keyfile):
        parser.error("--certfile and --keyfile go together")
    logging.basicConfig(level=args.log_level.upper(), format="%(levelname)s %(name)s: %(message)s")
    _raise_fd_limit(args.max_connections + 64)
    sys.path.insert(0, ".")
    trio.run(_serve_until_signalled, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
