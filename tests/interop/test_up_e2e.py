"""``netkit up`` end to end, as a newcomer runs it: a subprocess on free ports, driven
through the balancer's port by httpx (REST), grpcio (stubs generated from
protocols/orders/v1 here) and the websockets library; one instance is crashed while
traffic flows, then SIGINT stops everything cleanly."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from websockets.sync.client import connect

pytestmark = [pytest.mark.interop, pytest.mark.timeout(60)]

ROOT = Path(__file__).resolve().parents[2]
TTL = 2.0
ORDER = {
    "customer_id": "alice",
    "items": [{"sku": "book", "quantity": 2, "unit_price_cents": 1250}],
}


class Up:
    def __init__(self, process: subprocess.Popen[str], balancer: str, registry: str) -> None:
        self.process = process
        self.balancer = balancer
        self.registry = registry
        self.output: list[str] = []


def _read_until_ready(process: subprocess.Popen[str], lines: list[str]) -> re.Match[str]:
    assert process.stdout is not None
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        lines.append(line)
        if match := re.search(r"netkit up ready: balancer=(\S+) registry=(\S+)", line):
            return match
    raise AssertionError("netkit up did not come up:\n" + "".join(lines))


@pytest.fixture
def up() -> Iterator[Up]:
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "netkit",
            "up",
            "--port",
            "0",
            "--base-port",
            "0",
            "--ttl",
            str(TTL),
            "--shutdown-grace",
            "1",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=ROOT,
    )
    lines: list[str] = []
    try:
        match = _read_until_ready(process, lines)
        running = Up(process, match.group(1), match.group(2))
        running.output = lines

        def drain() -> None:
            assert process.stdout is not None
            for line in process.stdout:
                lines.append(line)

        reader = threading.Thread(target=drain, daemon=True)
        reader.start()
        yield running
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(5)


def generate_grpcio_stubs(out: Path) -> None:
    subprocess.run(
        [
            sys.executable,
            "-m",
            "grpc_tools.protoc",
            "-I",
            str(ROOT / "protocols"),
            f"--python_out={out}",
            f"--grpc_python_out={out}",
            str(ROOT / "protocols/orders/v1/orders.proto"),
        ],
        check=True,
        timeout=60,
    )
    for package in (out / "orders", out / "orders/v1"):
        (package / "__init__.py").touch()


def test_up_serves_three_protocols_survives_a_crash_and_stops_cleanly(
    up: Up, tmp_path: Path
) -> None:
    base = f"http://{up.balancer}"
    generate_grpcio_stubs(tmp_path)
    with (
        httpx.Client(base_url=base, timeout=5) as http,
        connect(f"ws://{up.balancer}/v1/events", open_timeout=5) as ws,
    ):
        ws.send(json.dumps({"v": 1, "type": "subscribe", "id": 1, "topic": "order.*"}))
        assert json.loads(ws.recv(timeout=5))["type"] == "ack"

        # REST: created once however often it is retried, seen by the WebSocket subscriber
        key = {"idempotency-key": "e2e-1"}
        created = http.post("/v1/orders", json=ORDER, headers=key)
        assert created.status_code == 201, created.text
        assert http.post("/v1/orders", json=ORDER, headers=key).json() == created.json()
        order = created.json()
        event = json.loads(ws.recv(timeout=5))
        assert (event["topic"], event["data"]) == ("order.created", order)
        bad = http.post("/v1/orders", json={"customer_id": "alice", "items": []})
        assert bad.status_code == 422 and bad.json()["errors"][0]["pointer"] == "#/items"

        # gRPC (grpcio): reads the REST order, creates one, watches, gets BadRequest details
        result = subprocess.run(
            [
                sys.executable,
                str(ROOT / "tests/interop/up_grpcio_client.py"),
                str(tmp_path),
                up.balancer,
                order["id"],
            ],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        assert result.returncode == 0, result.stderr[-3000:]
        grpc_order_id = result.stdout.split()[-1]
        event = json.loads(ws.recv(timeout=5))
        assert (event["topic"], event["data"]["id"]) == ("order.created", grpc_order_id)
        assert http.get(f"/v1/orders/{grpc_order_id}").json()["customer_id"] == "grpc-carol"

        # WebSocket creates; REST sees it
        ws.send(json.dumps({"v": 1, "type": "create_order", "id": "w", "order": ORDER}))
        replies = [json.loads(ws.recv(timeout=5)) for _ in range(2)]
        made = next(r for r in replies if r["type"] == "order")["order"]
        assert http.get(f"/v1/orders/{made['id']}").json() == made

    # Crash orders-2 while four clients keep sending; it leaves within the TTL.
    failures: list[str] = []
    sent = [0]
    stop = threading.Event()

    def client(n: int) -> None:
        with httpx.Client(base_url=base, timeout=5) as http:
            while not stop.is_set():
                sent[0] += 1
                try:
                    answer = (
                        http.get(f"/v1/orders/{order['id']}")
                        if sent[0] % 2
                        else http.post(
                            "/v1/orders",
                            json=ORDER,
                            headers={"idempotency-key": f"load-{n}-{sent[0]}"},
                        )
                    )
                    if answer.status_code >= 500:
                        failures.append(f"{answer.status_code} {answer.text[:200]}")
                except httpx.HTTPError as exc:
                    failures.append(repr(exc))

    clients = [threading.Thread(target=client, args=(n,)) for n in range(4)]
    for thread in clients:
        thread.start()
    try:
        time.sleep(0.5)
        with httpx.Client(base_url=f"http://{up.registry}", timeout=5) as admin:
            killed = admin.post("/admin/instances/orders-2/kill")
            assert killed.status_code == 200, killed.text
            killed_at = time.monotonic()
            while True:
                rows = {r["name"]: r for r in admin.get("/admin/status").json()["instances"]}
                if rows["orders-2"]["balancer"] == "-":
                    break
                assert time.monotonic() - killed_at < TTL + 2, rows
                time.sleep(0.1)
            left_after = time.monotonic() - killed_at
            before = sent[0]
            time.sleep(0.5)
            assert sent[0] > before + 5  # traffic keeps flowing on the other two
            assert rows["orders-1"]["balancer"] == rows["orders-3"]["balancer"] == "in rotation"
            # netkit.observe's /metrics on the admin port: the balancer's traffic, its
            # backends and the registry, scraped as Prometheus would
            metrics = admin.get("/metrics")
            assert metrics.status_code == 200
            assert metrics.headers["content-type"].startswith("text/plain")
            text = metrics.text
            served = [
                float(line.rsplit(" ", 1)[1])
                for line in text.splitlines()
                if line.startswith("netkit_requests_total{")
            ]
            assert sum(served) > 20, text[:2000]
            assert 'netkit_balancer_picks_total{backend="' in text
            assert "netkit_registry_instances{" in text
    finally:
        stop.set()
        for thread in clients:
            thread.join(10)
    # At most the requests in flight on orders-2 when it died: one per client.
    print(f"sent {sent[0]}, failed {len(failures)}: {failures}")
    assert len(failures) <= len(clients), failures
    assert left_after <= TTL + 2

    up.process.send_signal(signal.SIGINT)
    assert up.process.wait(15) == 0, "".join(up.output)
    time.sleep(0.2)
    output = "".join(up.output)
    assert "netkit up: stopped" in output
    assert "Traceback" not in output, output
    # piped, the live view prints one line per change of state (rates do not count)
    status = [line for line in up.output if line.startswith("status: ")]
    assert any("orders-2 killed" in line for line in status), output
    assert len(status) < 20, output
