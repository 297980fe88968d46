"""``netkit balancer`` from the command line: backends from the registry, TLS to the
backends (a trustme CA), with curl and websockets as the clients."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import trio
import trustme
from websockets.trio.client import connect

from netkit.discovery import Address, InstanceSpec, MemoryRegistry, RegistrationAgent
from netkit.security import server_context
from tests.balance.backends import Behaviour, backend_app
from tests.discovery.test_registry_grpc import registry_server
from tests.helpers import running_server
from tests.interop.peers import run_tool, tool
from tests.security import pki

from .test_grpc_interop import NETKIT, background

pytestmark = pytest.mark.interop


async def curl_json(port: int, path: str = "/who") -> dict[str, str]:
    result = await run_tool(
        [tool("curl"), "-s", "--max-time", "5", f"http://127.0.0.1:{port}{path}"]
    )
    parsed: dict[str, str] = json.loads(result.stdout)
    return parsed


async def test_backends_from_the_registry() -> None:
    registry = MemoryRegistry()
    async with (
        registry_server(registry) as reg,
        running_server(backend_app(Behaviour("r1"))) as b1,
        running_server(backend_app(Behaviour("r2"))) as b2,
        trio.open_nursery() as nursery,
    ):
        agent = RegistrationAgent(
            "127.0.0.1", reg.port, InstanceSpec("orders", "r1", Address("127.0.0.1", b1.port))
        )
        scope = trio.CancelScope()

        async def keep(task_status: trio.TaskStatus[None]) -> None:
            with scope:
                await agent.run(task_status=task_status)

        await nursery.start(keep)
        args = [*NETKIT, "balancer", "--port", "0", "--registry", f"127.0.0.1:{reg.port}"]
        async with background([*args, "--service", "orders"], "netkit balancer") as proxy:
            assert (await curl_json(proxy.port))["backend"] == "r1"
            # r2 joins and r1 leaves: the proxy follows the registry.
            await registry.register(InstanceSpec("orders", "r2", Address("127.0.0.1", b2.port)))
            scope.cancel()
            for _ in range(100):  # the proxy learns of it through its own watch
                if (await curl_json(proxy.port)).get("backend") == "r2":
                    break
                await trio.sleep(0.05)
            assert {(await curl_json(proxy.port))["backend"] for _ in range(4)} == {"r2"}
        nursery.cancel_scope.cancel()


async def test_cli_refuses_backend_and_registry_together() -> None:
    args = [*NETKIT, "balancer", "--backend", "127.0.0.1:1", "--registry", "127.0.0.1:2"]
    result = await run_tool([*args, "--service", "x"], check=False)
    assert result.returncode == 2 and b"--registry takes --service" in result.stderr


@pytest.mark.parametrize("protocol", ["h2", "h1"])
async def test_backend_tls_with_a_private_ca(tmp_path: Path, protocol: str) -> None:
    ca = trustme.CA()
    ca_path = pki.ca_file(ca, tmp_path)
    files = pki.write(pki.server_cert(ca), tmp_path, "server")
    context = server_context(files.cert, files.key)
    async with running_server(backend_app(Behaviour("tls")), ssl_context=context) as backend:
        spec = f"127.0.0.1:{backend.port};protocol={protocol}"
        base = [*NETKIT, "balancer", "--port", "0", "--backend", spec]
        # Without --backend-tls the backend's TLS handshake refuses cleartext: 502/503.
        async with background(base, "netkit balancer") as proxy:
            result = await run_tool(
                [
                    tool("curl"),
                    "-s",
                    "-o",
                    "/dev/null",
                    "-w",
                    "%{http_code}",
                    f"http://127.0.0.1:{proxy.port}/who",
                ]
            )
            assert result.stdout.strip() in (b"502", b"503")
        # With it, and the CA: through.
        tls = [*base, "--backend-tls", "--backend-ca", str(ca_path)]
        async with background(tls, "netkit balancer") as proxy:
            assert (await curl_json(proxy.port))["backend"] == "tls"
            async with connect(f"ws://127.0.0.1:{proxy.port}/ws") as ws:
                await ws.send("over tls")
                assert await ws.recv() == "over tls"
        # An unknown CA (the system store) is refused: the proxy answers, never hangs.
        other = [*base, "--backend-tls"]
        async with background(other, "netkit balancer") as proxy:
            result = await run_tool(
                [
                    tool("curl"),
                    "-s",
                    "-o",
                    "/dev/null",
                    "-w",
                    "%{http_code}",
                    f"http://127.0.0.1:{proxy.port}/who",
                ]
            )
            assert result.stdout.strip() in (b"502", b"503")
