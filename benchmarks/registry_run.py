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

Usage::

    .venv/bin/python benchmarks/registry_run.py [--instances 10000] [--window 10] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

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


async def load(port: int, pid: int, instances: int, window: float) -> dict[str, float]:
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
        await trio.sleep(TTL / 3)  # one full heartbeat round before measuring
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--instances", type=int, default=10_000)
    parser.add_argument("--window", type=float, default=10.0)
    parser.add_argument("--json")
    args = parser.parse_args()
    if args.serve:
        trio.run(serve)
        return
    registry = subprocess.Popen(
        [sys.executable, __file__, "--serve"], stdout=subprocess.PIPE, text=True
    )
    try:
        assert registry.stdout is not None
        port = int(registry.stdout.readline())
        results = trio.run(load, port, registry.pid, args.instances, args.window)
    finally:
        registry.terminate()
        registry.wait(10)
    for name, value in results.items():
        print(f"{name:32} {value:10.3f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
