"""Structured logs: one access line per request/call/session with a trace id on every
line, and no credential ever printed, whatever the peer sends."""

from __future__ import annotations

import io
import json
import logging

import grpc
import httpx
from websockets.trio.client import connect

from netkit.observe import KeyValueFormatter, configure_logging, redact_headers
from netkit.protos.echo.v1 import echo_pb2

from .apps import echo_unary, observed

SECRETS = ["s3cr3t-bearer", "cookie-v4lue", "qu3ry-token", "ap1-key", "b1n-secret"]


def _grpcio_call(port: int) -> None:
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        unary = echo_unary(channel)
        metadata = [("authorization", "Bearer s3cr3t-bearer"), ("auth-bin", b"b1n-secret")]
        unary(echo_pb2.EchoRequest(payload=b"x"), metadata=metadata)


async def test_access_lines_have_trace_ids_and_no_secrets() -> None:
    import trio

    out = io.StringIO()
    handler = configure_logging(format="json", level=logging.DEBUG, stream=out)
    try:
        async with observed() as (server, _obs):
            base = f"http://127.0.0.1:{server.port}"
            secret_headers = {
                "authorization": "Bearer s3cr3t-bearer",
                "cookie": "session=cookie-v4lue",
                "x-api-key": "ap1-key",
            }
            async with httpx.AsyncClient(headers=secret_headers) as client:
                await client.get(f"{base}/hello?token=qu3ry-token")
                await client.get(f"{base}/v1/items/7?access_token=qu3ry-token")
                await client.get(f"{base}/missing?token=qu3ry-token")
            await trio.to_thread.run_sync(_grpcio_call, server.port)
            async with connect(
                f"ws://127.0.0.1:{server.port}/ws?token=qu3ry-token",
                additional_headers=secret_headers,
            ) as ws:
                await ws.send("hi")
                await ws.recv()
            # A handler that logs headers itself gets them redacted by the formatter.
            logging.getLogger("app").info(
                "headers", extra={"headers": list(secret_headers.items())}
            )
            logging.getLogger("app").info("creds", extra={"password": "ap1-key"})
    finally:
        logging.getLogger().removeHandler(handler)
    text = out.getvalue()
    for secret in SECRETS:
        assert secret not in text
    lines = [json.loads(line) for line in text.splitlines()]
    assert all("trace_id" in line for line in lines)
    access = [line for line in lines if line["logger"] == "netkit.access"]
    assert [(a["protocol"], a["route"], a["status"]) for a in access] == [
        ("http", "/hello", 200),
        ("http", "/v1/items/{item_id:int}", 200),
        ("http", "/missing", 404),
        ("grpc", "/netkit.echo.v1.Echo/Unary", 200),
        ("websocket", "/ws", 101),
    ]
    assert access[3]["outcome"] == "OK" and access[4]["outcome"] == "1000"
    assert all(len(a["trace_id"]) == 32 and a["duration_ms"] >= 0 for a in access)
    assert len({a["trace_id"] for a in access}) == 5  # a new trace per request


def test_key_value_lines_and_redaction() -> None:
    record = logging.LogRecord("x", logging.INFO, "", 0, "hello %s", ("world",), None)
    record.token = "ap1-key"
    record.trace_id = "abc"
    line = KeyValueFormatter().format(record)
    assert 'msg="hello world"' in line and "trace_id=abc" in line
    assert "ap1-key" not in line and "token=[redacted]" in line
    pairs = redact_headers(
        [(b"Authorization", b"x"), ("grpc-trace-bin", "y"), ("accept", "z"), ("Set-Cookie", "c")]
    )
    assert pairs == [
        ("Authorization", "[redacted]"),
        ("grpc-trace-bin", "[redacted]"),
        ("accept", "z"),
        ("Set-Cookie", "[redacted]"),
    ]
