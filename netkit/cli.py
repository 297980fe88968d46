"""The netkit command: serve apps, run gRPC interop tests, generate gRPC code.

``netkit serve MODULE:ATTR [--host H] [--port N] [...]``
    serve an App over HTTP/1.1 and HTTP/2 (TLS with ``--certfile/--keyfile``).
``netkit interop-server --port N [--use_tls --certfile F --keyfile F]``
    serve gRPC's interop TestService; flags as gRPC's interop servers have them.
``netkit interop-client --server_host H --server_port N --test_case NAME [...]``
    run gRPC's interop test cases (``all`` for every one) against any gRPC server.
``netkit balancer --backend HOST:PORT[;weight=N][;protocol=h1]... [--port N] [...]``
    (or ``--registry HOST:PORT --service NAME``; ``--backend-tls [--backend-ca PEM]``)
    a reverse proxy balancing REST, gRPC and WebSocket over the backends (docs/balancer.md).
``netkit codegen [-I DIR]... [--out DIR] FILE.proto...``
    generate protobuf messages and netkit service classes (``netkit.grpc.codegen``).
``netkit up [--port N] [--base-port N] [--instances N] [--ttl S]``
    the orders system end to end: registry, instances, balancer (``netkit.up``).
``netkit registry [--port N]``
    a service registry alone: gRPC and its REST face on one port.
``netkit call rest|grpc|ws ...``
    a small client: a REST request, a gRPC call (server reflection), a WebSocket session.
``netkit bench [--quick]``
    the benchmark suites side by side; tables and plots into docs/benchmarks.md.

Bad arguments are answered with one line (``netkit <command>: error: ...``), not a
traceback.

For the servers, SIGINT and SIGTERM start a graceful shutdown (GOAWAY, in-flight
requests finish within the grace period); a second signal cancels at once.

The interop modules are imported only by the interop commands: they register the
``grpc.testing`` messages in protobuf's default pool, where an application served with
``netkit serve`` may have messages of the same names.
"""

from __future__ import annotations

import argparse
import functools
import importlib
import logging
import resource
import signal
import ssl
import sys
import time
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any, NoReturn

import trio

from .http import Server, ServerConfig, serve

log = logging.getLogger("netkit.cli")

#: Time limit of one interop case: generous, since large_unary moves ~0.6 MB.
INTEROP_CASE_SECONDS = 10.0


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


def _server_ssl_context(
    certfile: str | None, keyfile: str | None, client_ca: str | None = None
) -> ssl.SSLContext | None:
    if not certfile:
        return None
    if client_ca:  # mutual TLS: clients must present a certificate from this CA
        from .security import server_context

        return server_context(certfile, keyfile, client_ca=client_ca)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(certfile, keyfile)
    return context


async def _serve_until_signalled(
    app: Any,
    host: str,
    port: int,
    *,
    ssl_context: ssl.SSLContext | None,
    config: ServerConfig,
    banner: Callable[[Server], str],
    observer: Any = None,
) -> None:
    """Serve ``app`` until a signal; print ``banner(server)`` once it is listening.

    The banner line is the readiness signal that scripts and tests wait for (with
    port 0 it is also the only place the chosen port is told), so it is flushed.
    """
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with trio.open_nursery() as nursery:

            async def run_server(*, task_status: trio.TaskStatus[Server]) -> None:
                await serve(
                    app,
                    host,
                    port,
                    ssl_context=ssl_context,
                    config=config,
                    observer=observer,
                    task_status=task_status,
                )
                nursery.cancel_scope.cancel()  # serve() has finished: stop watching signals

            server: Server = await nursery.start(run_server)
            print(banner(server), flush=True)
            async for signum in signals:
                if server.shutting_down:
                    nursery.cancel_scope.cancel()  # second signal: stop now
                    break
                log.info("%s: shutting down gracefully", signal.Signals(signum).name)
                server.shutdown()


def _flag(value: str) -> bool:
    """A boolean flag value as gRPC's interop binaries take it (``--use_tls=true``)."""
    lowered = value.lower()
    if lowered in ("true", "1", "yes", "on"):
        return True
    if lowered in ("false", "0", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {value!r}")


def _add_bool(parser: argparse.ArgumentParser, name: str, help: str) -> None:
    """``--name``, ``--name=true`` and ``--name=false`` all work, as in gRPC's flags."""
    parser.add_argument(name, type=_flag, nargs="?", const=True, default=False, help=help)


def _server_options() -> argparse.ArgumentParser:
    """Options that every serving command shares."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    common.add_argument("--certfile", help="TLS certificate chain (PEM)")
    common.add_argument("--keyfile", help="TLS private key (PEM)")
    common.add_argument(
        "--client-ca", help="with --certfile: require client certificates from this CA (mTLS)"
    )
    common.add_argument("--max-connections", type=int, default=ServerConfig().max_connections)
    common.add_argument("--shutdown-grace", type=float, default=ServerConfig().shutdown_grace)
    common.add_argument("--log-level", default="INFO")
    return common


class _OneLineParser(argparse.ArgumentParser):
    """Bad arguments get one line on stderr and exit status 2, not a usage block."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _parser() -> argparse.ArgumentParser:
    parser = _OneLineParser(prog="netkit", description=__doc__.splitlines()[0])
    sub: argparse._SubParsersAction[argparse.ArgumentParser] = parser.add_subparsers(
        dest="command", required=True, parser_class=_OneLineParser
    )
    common = _server_options()

    p = sub.add_parser(
        "serve", parents=[common], help="serve an App (MODULE:ATTR) over HTTP/1.1 and HTTP/2"
    )
    p.add_argument("app", help="the App to serve, as MODULE:ATTR")
    p.add_argument("--port", type=int, default=8080)

    p = sub.add_parser("interop-server", parents=[common], help="serve gRPC's interop TestService")
    p.add_argument("--port", type=int, default=0, help="port to listen on (0: any free port)")
    _add_bool(p, "--use_tls", "serve TLS (needs --certfile and --keyfile)")

    p = sub.add_parser("interop-client", help="run gRPC's interop test cases against a server")
    p.add_argument("--server_host", default="localhost")
    p.add_argument("--server_port", type=int, required=True)
    p.add_argument(
        "--test_case",
        default="large_unary",
        help="a case name, several separated by commas, or 'all'",
    )
    _add_bool(p, "--use_tls", "connect with TLS (ALPN h2)")
    p.add_argument(
        "--server_host_override",
        help="with --use_tls: the name to send (SNI) and verify the certificate against",
    )
    p.add_argument(
        "--ca_file", help="with --use_tls: CA certificates (PEM) to trust instead of the system's"
    )
    p.add_argument("--log-level", default="WARNING")

    p = sub.add_parser(
        "balancer", parents=[common], help="reverse proxy balancing REST, gRPC and WebSocket"
    )
    p.add_argument("--port", type=int, default=8080)
    p.add_argument(
        "--backend",
        action="append",
        default=[],
        help="HOST:PORT[;weight=N][;protocol=auto|h1|h2], repeatable (or --registry)",
    )
    p.add_argument("--registry", help="HOST:PORT of a netkit registry to take backends from")
    p.add_argument("--service", help="with --registry: the service whose instances to use")
    p.add_argument("--backend-tls", action="store_true", help="speak TLS to the backends")
    p.add_argument("--backend-ca", help="with --backend-tls: CA (PEM) to trust for the backends")
    p.add_argument(
        "--registry-ca", help="with --registry: reach the registry over TLS, trusting this CA"
    )
    p.add_argument(
        "--client-cert", help="certificate (PEM) to present to a TLS registry and backends"
    )
    p.add_argument("--client-key", help="private key (PEM) of --client-cert")
    p.add_argument("--strategy", default="peak_ewma", help="peak_ewma (default), round_robin...")
    p.add_argument("--hash-key", help="for ring_hash/maglev: 'ip' or 'header:NAME'")
    p.add_argument(
        "--health-check", help="tcp, http:/PATH or grpc[:SERVICE] (default: none, passive only)"
    )
    p.add_argument(
        "--health-interval", type=float, help="seconds between checks (HealthCheckConfig's: 5)"
    )
    p.add_argument(
        "--status", action="store_true", help="live status on stderr (requests/s, p99, backends)"
    )
    p.add_argument("--metrics-port", type=int, help="serve Prometheus metrics on this port")

    # Dispatched before parsing (see main); listed here for ``netkit --help``.
    sub.add_parser("codegen", help="generate messages and netkit services from .proto files")
    from ._commands import add_parsers

    add_parsers(sub, common)
    return parser


def _serve(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    if bool(args.certfile) != bool(args.keyfile):
        parser.error("--certfile and --keyfile go together")
    sys.path.insert(0, ".")
    if args.client_ca and not args.certfile:
        parser.error("--client-ca goes with --certfile and --keyfile")
    app = load_app(args.app)
    ssl_context = _server_ssl_context(args.certfile, args.keyfile, args.client_ca)
    scheme = "https" if ssl_context else "http"
    return _run_server(
        app,
        args,
        ssl_context,
        lambda server: f"netkit serving {args.app} on {scheme}://{server.host}:{server.port}",
    )


def _interop_server(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    if args.use_tls and not (args.certfile and args.keyfile):
        parser.error(
            "--use_tls needs --certfile and --keyfile: netkit ships no test certificate "
            "(gRPC's interop servers use server1.pem; pass it, or one of your own)"
        )
    if not args.use_tls and (args.certfile or args.keyfile):
        parser.error("--certfile/--keyfile are only used with --use_tls")
    from .grpc.interop.server import interop_app

    ssl_context = (
        _server_ssl_context(args.certfile, args.keyfile, args.client_ca) if args.use_tls else None
    )
    return _run_server(
        interop_app(), args, ssl_context, lambda server: f"netkit interop server on {server.port}"
    )


def _run_server(
    app: Any,
    args: argparse.Namespace,
    ssl_context: ssl.SSLContext | None,
    banner: Callable[[Server], str],
) -> int:
    """The serving commands' common part: limits from ``args``, then serve until signalled."""
    config = ServerConfig(max_connections=args.max_connections, shutdown_grace=args.shutdown_grace)
    _raise_fd_limit(args.max_connections + 64)
    trio.run(
        partial(
            _serve_until_signalled,
            app,
            args.host,
            args.port,
            ssl_context=ssl_context,
            config=config,
            banner=banner,
        )
    )
    return 0


def _balancer(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    if bool(args.certfile) != bool(args.keyfile):
        parser.error("--certfile and --keyfile go together")
    if args.client_ca and not args.certfile:
        parser.error("--client-ca goes with --certfile and --keyfile")
    from .balance import (
        Backend,
        BackendSource,
        Balancer,
        HealthCheckConfig,
        ProxyConfig,
        RegistryBackends,
        ReverseProxy,
        StaticBackends,
        make_strategy,
    )

    source: BackendSource
    try:
        backends = [Backend.parse(spec) for spec in args.backend]
        strategy = make_strategy(args.strategy)
        if args.registry:
            if backends or not args.service:
                parser.error("--registry takes --service and no --backend")
            host, sep, port = args.registry.rpartition(":")
            if not sep or not port.isdigit():
                parser.error(f"--registry expects HOST:PORT, got {args.registry!r}")
            registry_tls = None
            if args.registry_ca:
                from .security import client_context

                registry_tls = client_context(
                    args.registry_ca, cert=args.client_cert, key=args.client_key, alpn=["h2"]
                )
            source = RegistryBackends(
                host.strip("[]"), int(port), args.service, ssl_context=registry_tls
            )
        elif backends:
            source = StaticBackends(backends)
        else:
            parser.error("give --backend HOST:PORT (repeatable) or --registry and --service")
    except ValueError as exc:
        parser.error(str(exc))
    if args.backend_ca and not args.backend_tls:
        parser.error("--backend-ca goes with --backend-tls")
    if args.registry_ca and not args.registry:
        parser.error("--registry-ca goes with --registry")
    if bool(args.client_cert) != bool(args.client_key):
        parser.error("--client-cert and --client-key go together")
    contexts: dict[str, ssl.SSLContext] = {}
    if args.backend_tls:
        from .security import client_context

        contexts = {
            "ssl_context": client_context(
                args.backend_ca, cert=args.client_cert, key=args.client_key, alpn=["h2"]
            ),
            "h1_ssl_context": client_context(
                args.backend_ca, cert=args.client_cert, key=args.client_key, alpn=["http/1.1"]
            ),
        }
    health = None
    if args.health_check:
        kind, _, rest = args.health_check.partition(":")
        if kind not in ("tcp", "http", "grpc"):
            parser.error("--health-check is tcp, http:/PATH or grpc[:SERVICE]")
        extra = {"path": rest or "/healthz"} if kind == "http" else {"grpc_service": rest}
        if args.health_interval is not None:
            extra["interval"] = args.health_interval
        health = HealthCheckConfig(kind=kind, **extra)
    proxy = ReverseProxy(
        Balancer(source, strategy, health=health), ProxyConfig(hash_key=args.hash_key), **contexts
    )
    ssl_context = _server_ssl_context(args.certfile, args.keyfile, args.client_ca)
    scheme = "https" if ssl_context else "http"

    config = ServerConfig(max_connections=args.max_connections, shutdown_grace=args.shutdown_grace)
    _raise_fd_limit(args.max_connections + 64)

    obs = None
    if args.status or args.metrics_port is not None:
        from .observe import Observability

        obs = Observability(access_log=False)
        obs.watch_balancer(proxy.balancer, proxy)

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            await nursery.start(proxy.run)
            if obs is not None and args.metrics_port is not None:
                await nursery.start(obs.serve_metrics, args.host, args.metrics_port)
            if obs is not None and args.status:
                from .observe import run_live_status

                nursery.start_soon(functools.partial(run_live_status, obs, out=sys.stderr))
            await _serve_until_signalled(
                proxy,
                args.host,
                args.port,
                ssl_context=ssl_context,
                config=config,
                banner=lambda server: (
                    f"netkit balancer ({scheme}, {source!r}) on port {server.port}"
                ),
                observer=obs,
            )
            nursery.cancel_scope.cancel()

    trio.run(main)
    return 0


def _interop_client(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from .grpc.interop.client import CASES

    names = list(CASES) if args.test_case == "all" else args.test_case.split(",")
    unknown = [name for name in names if name not in CASES]
    if unknown:
        parser.error(f"unknown --test_case {', '.join(unknown)}; known: all, {', '.join(CASES)}")
    # Without --use_tls, --ca_file and --server_host_override are ignored rather than
    # refused: harnesses pass gRPC's flags to every client whatever the transport.
    ssl_context = ssl.create_default_context(cafile=args.ca_file) if args.use_tls else None
    failures = trio.run(_run_interop_cases, args, names, ssl_context)
    return 1 if failures else 0


async def _run_interop_cases(
    args: argparse.Namespace, names: Sequence[str], ssl_context: ssl.SSLContext | None
) -> int:
    """Run the cases one after another on one channel; one line per case; the failures.

    One channel for all of them, as a long-lived client would use it: a case that
    leaves the connection broken shows up in the cases after it, too.
    """
    from .grpc import open_channel
    from .grpc.interop.client import CASES

    failures = 0
    async with open_channel(
        args.server_host,
        args.server_port,
        ssl_context=ssl_context,
        server_hostname=args.server_host_override or (args.server_host if ssl_context else None),
    ) as channel:
        for name in names:
            started = time.perf_counter()
            try:
                with trio.fail_after(INTEROP_CASE_SECONDS):
                    await CASES[name](channel)
            except trio.TooSlowError:
                outcome = f"FAIL {name}: no result within {INTEROP_CASE_SECONDS:g} s"
            except AssertionError as exc:
                outcome = f"FAIL {name}: {exc}"
            else:
                outcome = f"PASS {name} ({time.perf_counter() - started:.3f} s)"
            failures += outcome.startswith("FAIL")
            print(outcome, flush=True)
    return failures


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["codegen"]:
        # codegen_main has its own parser (and --help); hand it the rest untouched.
        from .grpc.codegen import codegen_main

        return codegen_main(argv[1:])
    parser = _parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=getattr(args, "log_level", "WARNING").upper(),
        format="%(levelname)s %(name)s: %(message)s",
    )
    from . import _commands

    commands: dict[str, Callable[[argparse.Namespace, argparse.ArgumentParser], int]] = {
        "serve": _serve,
        "interop-server": _interop_server,
        "interop-client": _interop_client,
        "balancer": _balancer,
        "up": _commands.up,
        "registry": _commands.registry,
        "call": _commands.call,
        "bench": _commands.bench,
    }
    try:
        return commands[args.command](args, parser)
    except (OSError, BaseExceptionGroup) as exc:
        # e.g. a port in use: one line, as for bad arguments
        leaf = _first_leaf(exc)
        if not isinstance(leaf, OSError):
            raise
        print(f"netkit {args.command}: {leaf}", file=sys.stderr)
        return 2


def _first_leaf(error: BaseException) -> BaseException:
    while isinstance(error, BaseExceptionGroup):
        error = error.exceptions[0]
    return error


if __name__ == "__main__":
    sys.exit(main())
