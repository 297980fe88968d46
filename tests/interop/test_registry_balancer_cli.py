"""``netkit registry`` and ``netkit balancer --registry`` as processes: an instance
registered through the registry's REST face (httpx) gets traffic from curl through the
balancer, and leaves it when deregistered; SIGINT stops both cleanly."""

from __future__ import annotations

import json
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

pytestmark = [pytest.mark.interop, pytest.mark.timeout(60)]

ROOT = Path(__file__).resolve().parents[2]
ORDER = {"customer_id": "bob", "items": [{"sku": "pen", "quantity": 1, "unit_price_cents": 150}]}


@pytest.fixture
def start() -> Iterator[Callable[..., tuple[subprocess.Popen[str], str]]]:
    """Start ``netkit ARGS...`` and wait for the line matching ``ready`` (its port)."""
    processes: list[subprocess.Popen[str]] = []

    def run(ready: str, *args: str) -> tuple[subprocess.Popen[str], str]:
        process = subprocess.Popen(
            [sys.executable, "-m", "netkit", *args, "--log-level", "WARNING"],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            cwd=ROOT,
        )
        processes.append(process)
        assert process.stdout is not None
        seen = []
        for line in process.stdout:
            seen.append(line)
            if match := re.search(ready, line):
                return process, match.group(1)
        raise AssertionError(f"netkit {args[0]} did not start:\n{''.join(seen)}")

    try:
        yield run
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait(5)


def curl(*args: str) -> tuple[int, str]:
    result = subprocess.run(
        ["curl", "-s", "--max-time", "5", "-w", "\n%{http_code}", *args],
        capture_output=True,
        text=True,
        timeout=10,
        check=False,
    )
    body, _, code = result.stdout.rpartition("\n")
    return int(code or 0), body


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is installed by scripts/setup")
def test_balancer_follows_the_registry(
    start: Callable[..., tuple[subprocess.Popen[str], str]],
) -> None:
    registry, registry_port = start(r"netkit registry on \S+:(\d+)", "registry", "--port", "0")
    _, instance_port = start(
        r"http://\S+:(\d+)", "serve", "netkit.examples.order_service:app", "--port", "0"
    )
    balancer, balancer_port = start(
        r"on port (\d+)",
        "balancer",
        "--port",
        "0",
        "--registry",
        f"127.0.0.1:{registry_port}",
        "--service",
        "orders",
    )
    front = f"http://127.0.0.1:{balancer_port}"
    # nothing registered yet: the balancer has no backend to offer
    code, _ = curl(f"{front}/v1/orders/ord-1")
    assert code == 503

    with httpx.Client(base_url=f"http://127.0.0.1:{registry_port}", timeout=5) as rest:
        registration = {
            "address": {"host": "127.0.0.1", "port": int(instance_port)},
            "metadata": {"version": "1.0.0", "weight": 1},
            "ttl": 30,
        }
        answer = rest.put("/v1/services/orders/orders-1", json=registration)
        assert answer.status_code in (200, 201), answer.text

        deadline = time.monotonic() + 10
        while (code := curl(f"{front}/v1/orders/ord-404")[0]) == 503:
            assert time.monotonic() < deadline, "the balancer never saw the instance"
            time.sleep(0.1)
        assert code == 404  # the orders app answered through the balancer
        code, body = curl(
            "-X", "POST", f"{front}/v1/orders",
            "-H", "content-type: application/json", "-d", json.dumps(ORDER),
        )  # fmt: skip
        assert code == 201, body
        created = json.loads(body)
        code, body = curl(f"{front}/v1/orders/{created['id']}")
        assert code == 200 and json.loads(body) == created

        assert rest.delete("/v1/services/orders/orders-1").status_code == 200
        deadline = time.monotonic() + 10
        while curl(f"{front}/v1/orders/{created['id']}")[0] != 503:
            assert time.monotonic() < deadline, "the balancer kept a deregistered instance"
            time.sleep(0.1)

    for process in (balancer, registry):
        process.send_signal(signal.SIGINT)
        assert process.wait(15) == 0
