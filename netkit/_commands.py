"""The newer ``netkit`` commands: ``up``, ``registry``, ``call`` and ``bench`` (cli.py parses)."""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import sys
from functools import partial
from typing import Any

import trio

from .errors import NetkitError
from .http import ServerConfig


def _prog() -> str:
    """How the user can run netkit again from this shell (for the printed commands)."""
    if shutil.which("netkit"):
        return "netkit"
    return os.path.relpath(sys.argv[0]) if sys.argv and sys.argv[0] else "netkit"


async def _until_signalled(shutdown: object, nursery: trio.Nursery) -> None:
    """First SIGINT/SIGTERM: ``shutdown()`` (graceful); a second one cancels everything."""
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        stopping = False
        async for _ in signals:
            if stopping:
                nursery.cancel_scope.cancel()
                return
            stopping = True
            print("\nnetkit: stopping (Ctrl-C again to stop at once)", flush=True)
            shutdown()  # type: ignore[operator]


def up(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    import logging

    from .up import Constellation, UpConfig, banner, status_view

    if args.log_level.upper() != "DEBUG":
        # the live view is the report; the proxy's per-request lines (retries) only in DEBUG
        logging.getLogger("netkit.balance").setLevel(logging.WARNING)

    try:
        config = UpConfig(
            host=args.host,
            port=args.port,
            base_port=args.base_port,
            instances=args.instances,
            ttl=args.ttl,
            shutdown_grace=args.shutdown_grace,
        )
    except ValueError as exc:
        parser.error(str(exc))

    tls = None
    if args.tls:
        import tempfile

        from .security import DevPKI

        try:
            tls = DevPKI.create(tempfile.mkdtemp(prefix="netkit-up-tls-"))
        except ImportError as exc:
            parser.error(str(exc))

    async def main() -> None:
        constellation = Constellation(config, tls=tls)
        async with trio.open_nursery() as nursery:

            async def run(*, task_status: trio.TaskStatus[Constellation]) -> None:
                await constellation.run(task_status=task_status)
                nursery.cancel_scope.cancel()

            await nursery.start(run)
            print(banner(constellation, _prog()), flush=True)
            if tls is not None:
                print(_tls_banner(constellation, tls), flush=True)
            if not args.no_status:
                nursery.start_soon(constellation.show_status, status_view(sys.stdout))
            nursery.start_soon(_until_signalled, constellation.shutdown, nursery)
        print("netkit up: stopped", flush=True)

    trio.run(main)
    return 0


def _tls_banner(up: Any, tls: Any) -> str:
    """``netkit up --tls``: where the CA is, and curl commands that trust it."""
    host, port = up.config.host, up.balancer_server.port
    return "\n".join(
        [
            "",
            f"TLS everywhere, with development certificates (CA: {tls.ca})",
            f"  curl --cacert {tls.ca} https://{host}:{port}/v1/orders/ord-1",
            f"  curl --cacert {tls.ca} --http2 https://{host}:{port}/v1/orders?customer_id=alice",
            f"netkit up tls: ca={tls.ca} url=https://{host}:{port}",
        ]
    )


def registry(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from .app import App
    from .discovery import MemoryRegistry, RegistryConfig, RegistryService, add_registry_routes
    from .http import serve

    try:
        reg = MemoryRegistry(
            RegistryConfig(default_ttl=args.default_ttl), snapshot_path=args.snapshot
        )
    except ValueError as exc:
        parser.error(str(exc))
    app = App()
    app.grpc.add_service(RegistryService(reg))
    add_registry_routes(app.rest, reg)
    config = ServerConfig(shutdown_grace=args.shutdown_grace)
    if bool(args.certfile) != bool(args.keyfile) or (args.client_ca and not args.certfile):
        parser.error("--certfile and --keyfile go together; --client-ca needs them")
    from .cli import _server_ssl_context

    tls = _server_ssl_context(args.certfile, args.keyfile, args.client_ca)

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            await nursery.start(reg.run)
            server = await nursery.start(
                partial(serve, app, args.host, args.port, config=config, ssl_context=tls)
            )
            print(
                f"netkit registry{' (TLS)' if tls else ''} on {args.host}:{server.port} "
                f"(gRPC netkit.registry.v1.Registry; REST /v1/services)",
                flush=True,
            )

            async def stop() -> None:
                await server.wait_shutdown()
                nursery.cancel_scope.cancel()

            nursery.start_soon(stop)
            nursery.start_soon(_until_signalled, server.shutdown, nursery)

    trio.run(main)
    return 0


def call(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from . import _call
    from .cli import _first_leaf

    try:
        if args.kind == "rest":
            return trio.run(
                _call.call_rest, args.method, args.url, args.data, args.header, args.timeout
            )
        if args.kind == "grpc":
            return trio.run(
                _call.call_grpc, args.target, args.method, args.body, args.count, args.timeout
            )
        return trio.run(
            _call.call_ws, args.url, args.subscribe, args.send, args.count, args.timeout
        )
    except (_call.CallFailed, BaseExceptionGroup) as exc:
        leaf = _first_leaf(exc)  # a group: raised inside a client's nursery
        if not isinstance(leaf, _call.CallFailed | NetkitError | OSError):
            raise
        print(f"netkit call: {leaf}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


def bench(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from pathlib import Path

    from . import _bench

    budget = args.budget or (_bench.QUICK_BUDGET if args.quick else _bench.FULL_BUDGET)
    command = "netkit bench" + (" --quick" if args.quick else "")
    if args.budget:
        command += f" --budget {args.budget:g}"
    if args.max_seconds:
        command += f" --max-seconds {args.max_seconds:g}"
    return _bench.run(
        Path(args.root).resolve(),
        quick=args.quick,
        budget=budget,
        cap=args.max_seconds,
        command=command,
    )


def add_parsers(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "up",
        parents=[common],
        help="run the orders system: registry, 3 instances and the balancer, in one process",
        description="Run the orders system end to end: an embedded registry, orders "
        "instances that register with TTL heartbeats, and the balancer on --port that "
        "finds them through the registry. Ctrl-C drains and stops everything.",
    )
    p.add_argument("--port", type=int, default=8080, help="the balancer's port (0: any free one)")
    p.add_argument(
        "--base-port",
        type=int,
        default=None,
        help="the registry's port; instances use the next ones (default: --port + 1; 0: any)",
    )
    p.add_argument("--instances", type=int, default=3, help="orders instances (default 3)")
    p.add_argument(
        "--tls",
        action="store_true",
        help="TLS everywhere with a throwaway CA and certificates made at start (development)",
    )
    p.add_argument("--ttl", type=float, default=5.0, help="registration TTL in seconds (5)")
    p.add_argument("--no-status", action="store_true", help="no live status view")

    p = sub.add_parser(
        "registry",
        parents=[common],
        help="run a service registry alone (gRPC and REST on one port)",
    )
    p.add_argument("--port", type=int, default=8500)
    p.add_argument("--default-ttl", type=float, default=10.0)
    p.add_argument("--snapshot", help="file to keep the registry's state in across restarts")

    p = sub.add_parser(
        "bench",
        help="run the benchmark suites side by side; write docs/benchmarks.md and plots",
    )
    p.add_argument(
        "--quick",
        action="store_true",
        help="a smoke run of about a minute: each suite's --quick selection (netkit and one "
        "peer, one workload, a second of load), all within a 60 s budget",
    )
    p.add_argument("--root", default=".", help="the netkit checkout (default: here)")
    p.add_argument(
        "--budget",
        type=float,
        help="seconds for all the suites together; a suite still running then is stopped "
        "(default: 60 with --quick, 2700 without)",
    )
    p.add_argument("--max-seconds", type=float, help="also stop any one suite after this long")

    p = sub.add_parser("call", help="a small client: a REST request, a gRPC call, a WebSocket")
    kinds = p.add_subparsers(dest="kind", required=True)
    k = kinds.add_parser("rest", help="one HTTP request: netkit call rest GET URL")
    k.add_argument("method")
    k.add_argument("url")
    k.add_argument("-d", "--data", help="request body (JSON unless -H content-type says else)")
    k.add_argument("-H", "--header", action="append", default=[], help="'Name: value'")
    k.add_argument("--timeout", type=float, default=10.0)
    k = kinds.add_parser(
        "grpc", help="a gRPC call through server reflection: HOST:PORT pkg.Service/Method JSON"
    )
    k.add_argument("target", help="HOST:PORT")
    k.add_argument("method", help="package.Service/Method")
    k.add_argument("body", nargs="?", help="the request as JSON (a list for client streaming)")
    k.add_argument("--count", type=int, help="stop after this many responses")
    k.add_argument("--timeout", type=float, help="the call's deadline in seconds")
    k = kinds.add_parser("ws", help="a WebSocket session: URL [--subscribe P] [--send JSON]")
    k.add_argument("url")
    k.add_argument("--subscribe", action="append", default=[], help="topic pattern (events v1)")
    k.add_argument("--send", action="append", default=[], help="a raw JSON message to send")
    k.add_argument("--count", type=int, help="stop after this many messages")
    k.add_argument("--timeout", type=float, help="stop after this many seconds")
