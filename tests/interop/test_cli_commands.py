"""The ``netkit`` subcommands: every one has --help, bad arguments get one line, and
``netkit call`` talks REST, gRPC (through server reflection) and WebSocket to a real
orders server running as ``netkit serve``."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from netkit.cli import main

pytestmark = pytest.mark.interop

ROOT = Path(__file__).resolve().parents[2]
COMMANDS = [
    ["up"],
    ["serve"],
    ["registry"],
    ["balancer"],
    ["call"],
    ["call", "rest"],
    ["call", "grpc"],
    ["call", "ws"],
    ["codegen"],
    ["interop-server"],
    ["interop-client"],
    ["bench"],
]


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_every_command_has_help(command: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main([*command, "--help"])
    assert exited.value.code == 0
    assert "usage: " in capsys.readouterr().out


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["up", "--port", "eighty"], "invalid int value: 'eighty'"),
        (["up", "--ttl", "0.1"], "'ttl' must be >= 1.0"),
        (["balancer"], "--backend HOST:PORT (repeatable) or --registry"),
        (
            ["balancer", "--registry", "nowhere", "--service", "orders"],
            "--registry expects HOST:PORT",
        ),
        (["nonsense"], "invalid choice: 'nonsense'"),
        (["call", "grpc", "localhost", "x/y"], "expected HOST:PORT"),
    ],
)
def test_bad_arguments_get_one_line(
    argv: list[str], says: str, capsys: pytest.CaptureFixture[str]
) -> None:
    try:
        code = main(argv)
    except SystemExit as exited:
        code = exited.code  # type: ignore[assignment]
    assert code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert says in err


@pytest.fixture(scope="module")
def orders_server() -> Iterator[str]:
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "netkit",
            "serve",
            "netkit.examples.order_service:app",
            "--port",
            "0",
            "--log-level",
            "WARNING",
        ],
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        match = re.search(r"http://(\S+):(\d+)", line)
        assert match, line
        yield f"127.0.0.1:{match.group(2)}"
    finally:
        process.terminate()
        process.wait(10)


def test_call_rest_grpc_and_ws(orders_server: str, capsys: pytest.CaptureFixture[str]) -> None:
    order = '{"customer_id": "cli", "items": [{"sku": "a", "quantity": 1, "unit_price_cents": 5}]}'
    assert main(["call", "rest", "POST", f"http://{orders_server}/v1/orders", "-d", order]) == 0
    out = capsys.readouterr().out
    assert out.startswith("HTTP/1.1 201 Created\n")
    created = json.loads(out[out.index("{") :])

    method = "netkit.orders.v1.OrderService/GetOrder"
    body = json.dumps({"id": created["id"]})
    assert main(["call", "grpc", orders_server, method, body]) == 0
    got = json.loads(capsys.readouterr().out)
    assert got["customerId"] == "cli" and got["status"] == "PENDING"

    assert main(["call", "grpc", orders_server, method, '{"id": "ord-404"}']) == 1
    assert "NOT_FOUND" in capsys.readouterr().err

    imports = json.dumps([json.loads(order), {"customer_id": "x"}])
    assert (
        main(["call", "grpc", orders_server, "netkit.orders.v1.OrderService/ImportOrders", imports])
        == 0
    )
    summary = json.loads(capsys.readouterr().out)
    assert summary["received"] == "2" and summary["created"] == "1"

    assert main(["call", "grpc", orders_server, "netkit.orders.v1.OrderService/Nope", "{}"]) == 2
    assert "has no method Nope" in capsys.readouterr().err

    create = json.dumps({"v": 1, "type": "create_order", "id": 1, "order": json.loads(order)})
    url = f"ws://{orders_server}/v1/events"
    argv = ["call", "ws", url, "--subscribe", "order.*", "--send", create, "--count", "3"]
    assert main([*argv, "--timeout", "5"]) == 0
    messages = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [m["type"] for m in messages] == ["ack", "message", "order"]
    assert messages[1]["data"] == messages[2]["order"]
