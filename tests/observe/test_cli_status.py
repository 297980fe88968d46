"""``netkit balancer --status --metrics-port``: the live view and the scrape, from a real
process, with curl as the client."""

from __future__ import annotations

import socket

import httpx
import trio

from tests.helpers import running_server
from tests.interop.peers import run_tool, tool
from tests.interop.test_grpc_interop import NETKIT, background

from .apps import parse, value


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def test_balancer_status_and_metrics_port() -> None:
    curl = tool("curl")
    metrics_port = _free_port()
    async with running_server() as hello:
        backend = f"127.0.0.1:{hello.port}"
        args = [*NETKIT, "balancer", "--port", "0", "--backend", backend, "--status"]
        args += ["--metrics-port", str(metrics_port)]
        async with background(args, "netkit balancer") as proxy:
            for _ in range(3):
                result = await run_tool([curl, "-s", f"http://127.0.0.1:{proxy.port}/hello"])
                assert b"hello, world" in result.stdout
            async with httpx.AsyncClient() as client:
                r = await client.get(f"http://127.0.0.1:{metrics_port}/metrics")
            with trio.fail_after(10):
                await proxy.output.wait_for(f"{backend}")
    samples = parse(r.text)
    assert value(samples, "netkit_balancer_picks_total", backend=backend) == 3
    assert value(samples, "netkit_balancer_backend_healthy", backend=backend) == 1
    ok = {"protocol": "http", "method": "GET", "route": "<unmatched>", "status": "200"}
    assert value(samples, "netkit_requests_total", **ok) == 3
