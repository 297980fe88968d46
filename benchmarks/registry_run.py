"""The service registry under load: 10,000 instances, TTL 10 s, heartbeats at TTL/3.

The registry (MemoryRegistry behind netkit's gRPC server) runs in a subprocess of its
own, so its CPU (utime + stime from /proc/<pid>/stat) and memory (VmRSS) are its alone.
This process is the load: one RegistrationAgent holding all the instances on one
KeepAlive stream (~3,000 heartbeats/s), a Watch stream, and Discover calls. Reported:

* time to register every instance: RegisterMany batches (the agent's default) and, side
  by side, one Register call each with 64 in flight (a registry without RegisterMany);
* registry CPU while heartbeating, as a fraction of one core (target: < 0.5);
* registry memory (RSS) with 10,000 instances;
* Discover latency (p50/p99) for a service of 10 instances, while heartbeats flow;
* deregister -> a watcher sees the REMOVED change (p50/p99; target: < 50 ms).

With ``--etcd``, side by side: a throwaway etcd keeping as many leases (TTL 10 s) alive
at TTL/3 on one LeaseKeepAlive stream, its CPU and RSS (what etcd itself spends on the
etcd backend's heartbeats, which renew two leases per instance).

Usage::

    .venv/bin/python benchmarks/registry_run.py [--instances 10000] [--window 10] [--etcd]
        [--json out.json]

``--quick`` is ``netkit bench --quick``'s smoke selection (``QUICK``: 1,000 instances,
no settling round, a one-second window).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

import _harness as h
import attrs
import trio

import netkit
from netkit.discovery import (
    Address,
    InstanceSpec,
    MemoryRegistry,
    RegistrationAgent,
    RegistryConfig,
    RegistryService,
)
from netkit.grpc import open_channel
from netkit.protos.registry.v1 import registry_pb2 as pb
from netkit.protos.registry.v1.registry_netkit import RegistryStub

TTL = 10.0
PER_SERVICE = 10


async def serve() -> None:
    registry = MemoryRegistry(RegistryConfig(max_ttl=3600))
    app = netkit.App()
    app.grpc.add_service(RegistryService(registry))
    async with trio.open_nursery() as nursery:
        await nursery.start(registry.run)
        server = await nursery.start(netkit.serve, app, "127.0.0.1", 0)
        print(server.port, flush=True)


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def load(
    port: int, pid: int, instances: int, settle: float, window: float
) -> dict[str, float]:
    specs = [
        InstanceSpec(f"svc-{n // PER_SERVICE}", f"i-{n}", Address("10.0.0.1", 1000 + n % 60000))
        for n in range(instances)
    ]
    results: dict[str, float] = {"instances": instances}
    async with trio.open_nursery() as nursery:
        agent = RegistrationAgent("127.0.0.1", port, *specs, ttl=TTL)
        started = time.perf_counter()
        await nursery.start(agent.run)
        results["register_all_s"] = time.perf_counter() - started
        await trio.sleep(settle)  # by default one full heartbeat round before measuring
        cpu0, beats0, t0 = cpu_seconds(pid), agent.heartbeats, time.perf_counter()
        await trio.sleep(window)
        elapsed = time.perf_counter() - t0
        results["registry_cpu_cores"] = (cpu_seconds(pid) - cpu0) / elapsed
        results["heartbeats_per_s"] = (agent.heartbeats - beats0) / elapsed
        results["registry_rss_mib"] = rss_mib(pid)

        async with open_channel("127.0.0.1", port) as channel:
            stub = RegistryStub(channel)
            latencies = []
            for n in range(200):
                t = time.perf_counter()
                reply = await stub.Discover(pb.DiscoverRequest(service=f"svc-{n % 100}"))
                latencies.append(time.perf_counter() - t)
                assert len(reply.instances) == PER_SERVICE
            results["discover_p50_ms"] = pct(latencies, 0.5) * 1000
            results["discover_p99_ms"] = pct(latencies, 0.99) * 1000

            seen: list[float] = []
            async with stub.Watch(pb.WatchRequest(service="probe")) as watch:
                await watch.recv_message()  # the (empty) snapshot
                for n in range(30):
                    instance = pb.Instance(
                        service="probe", id=f"p{n}", address=pb.Address(host="h", port=1)
                    )
                    await stub.Register(pb.RegisterRequest(instance=instance, ttl=TTL))
                    await watch.recv_message()  # ADDED
                    t = time.perf_counter()
                    await stub.Deregister(pb.DeregisterRequest(service="probe", id=f"p{n}"))
                    event = await watch.recv_message()
                    seen.append(time.perf_counter() - t)
                    assert event is not None and event.change.kind == pb.Change.REMOVED
            results["deregister_to_watch_p50_ms"] = pct(seen, 0.5) * 1000
            results["deregister_to_watch_p99_ms"] = pct(seen, 0.99) * 1000
            results["deregister_to_watch_mean_ms"] = statistics.mean(seen) * 1000
        # Last (it adds as many instances again): the same number of instances with one
        # Register call each, 64 in flight, as against a registry without RegisterMany.
        unary_specs = [attrs.evolve(s, service=f"u{s.service}") for s in specs]
        unary = RegistrationAgent("127.0.0.1", port, *unary_specs, ttl=TTL, batch_size=0)
        started = time.perf_counter()
        async with trio.open_nursery() as unary_nursery:
            await unary_nursery.start(unary.run)
            results["register_all_unary_s"] = time.perf_counter() - started
            unary_nursery.cancel_scope.cancel()
        nursery.cancel_scope.cancel()
    return results


# -- etcd's own lease keep-alive cost, side by side (--etcd) ---------------------------------
def start_etcd(data_dir: str) -> tuple[subprocess.Popen[bytes], int]:
    """A throwaway single-node etcd (Debian's etcd-server) on loopback ports."""
    import shutil
    import socket
    import urllib.request

    binary = shutil.which("etcd")
    if binary is None:
        raise SystemExit("etcd is not installed (scripts/setup installs etcd-server)")

    def free_port() -> int:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            return int(sock.getsockname()[1])

    port, peer = free_port(), free_port()
    process = subprocess.Popen(
        [
            binary,
            "--name=bench",
            f"--data-dir={data_dir}",
            f"--listen-client-urls=http://127.0.0.1:{port}",
            f"--advertise-client-urls=http://127.0.0.1:{port}",
            f"--listen-peer-urls=http://127.0.0.1:{peer}",
            f"--initial-advertise-peer-urls=http://127.0.0.1:{peer}",
            f"--initial-cluster=bench=http://127.0.0.1:{peer}",
            "--log-level=error",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1) as reply:
                if b'"true"' in reply.read():
                    return process, port
        except OSError:
            time.sleep(0.05)
    process.terminate()
    raise SystemExit("etcd did not start")


async def etcd_keepalive_load(port: int, pid: int, leases: int, window: float) -> dict[str, float]:
    """``leases`` leases of TTL 10 s kept alive at TTL/3 on one LeaseKeepAlive stream: what
    etcd itself spends on the heartbeats of the etcd backend (which renews two leases
    per instance heartbeat)."""
    from netkit.protos.etcd.v3 import etcd_pb2 as epb
    from netkit.protos.etcd.v3.etcd_netkit import LeaseStub

    results: dict[str, float] = {"etcd_leases": leases}
    async with open_channel("127.0.0.1", port) as channel:
        stub = LeaseStub(channel)
        ids: list[int] = []
        pending = iter(range(leases))

        async def grant() -> None:
            for _ in pending:
                reply = await stub.LeaseGrant(epb.LeaseGrantRequest(TTL=int(TTL)))
                ids.append(reply.ID)

        started = time.perf_counter()
        async with trio.open_nursery() as nursery:
            for _ in range(64):
                nursery.start_soon(grant)
        results["etcd_grant_all_s"] = time.perf_counter() - started
        answers = 0
        async with stub.LeaseKeepAlive() as call, trio.open_nursery() as nursery:

            async def read() -> None:
                nonlocal answers
                async for _ in call:
                    answers += 1

            async def renew() -> None:
                while True:
                    next_round = trio.current_time() + TTL / 3
                    for lease in ids:
                        await call.send_message(epb.LeaseKeepAliveRequest(ID=lease))
                    await trio.sleep_until(next_round)

            nursery.start_soon(read)
            nursery.start_soon(renew)
            await trio.sleep(TTL / 3)
            cpu0, answers0, t0 = cpu_seconds(pid), answers, time.perf_counter()
            await trio.sleep(window)
            elapsed = time.perf_counter() - t0
            results["etcd_cpu_cores"] = (cpu_seconds(pid) - cpu0) / elapsed
            results["etcd_keepalives_per_s"] = (answers - answers0) / elapsed
            results["etcd_rss_mib"] = rss_mib(pid)
            nursery.cancel_scope.cancel()
    return results


#: ``--quick``: 1,000 instances, no settling heartbeat round, a one-second window.
QUICK: dict[str, object] = {"instances": 1000, "settle": 0.0, "window": 1.0}


def arguments(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--instances", type=int, default=10_000)
    parser.add_argument(
        "--settle", type=float, default=TTL / 3, help="seconds of heartbeats before measuring"
    )
    parser.add_argument("--window", type=float, default=10.0)
    parser.add_argument("--json")
    parser.add_argument(
        "--etcd", action="store_true", help="also measure etcd keeping as many leases alive"
    )
    return h.parse_args(parser, argv, QUICK)


def main(argv: list[str] | None = None) -> None:
    args = arguments(argv)
    if args.serve:
        trio.run(serve)
        return
    h.install_signal_handlers()  # SIGTERM (netkit bench's deadline) stops the registry too
    etcd_results: dict[str, float] = {}
    if args.etcd:
        import tempfile

        with tempfile.TemporaryDirectory() as data_dir:
            etcd, etcd_port = start_etcd(data_dir)
            try:
                etcd_results = trio.run(
                    etcd_keepalive_load, etcd_port, etcd.pid, args.instances, args.window
                )
            finally:
                etcd.terminate()
                etcd.wait(10)
    registry = subprocess.Popen(
        [sys.executable, __file__, "--serve"], stdout=subprocess.PIPE, text=True
    )
    try:
        assert registry.stdout is not None
        port = int(registry.stdout.readline())
        results = trio.run(load, port, registry.pid, args.instances, args.settle, args.window)
    finally:
        registry.terminate()
        registry.wait(10)
    results.update(etcd_results)
    for name, value in results.items():
        print(f"{name:32} {value:10.3f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
