"""curl agrees with the REST layer: gzip both ways, conditional requests, HEAD, problems."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from tests.helpers import running_server, url
from tests.interop.peers import run_tool
from tests.interop.test_rest_httpx import BIG, make_app

pytestmark = pytest.mark.interop

PROTOCOLS = pytest.mark.parametrize(
    ("flag", "version"),
    [("--http1.1", "1.1"), ("--http2-prior-knowledge", "2")],
    ids=["http1.1", "h2-prior-knowledge"],
)
WRITE_OUT = "%{http_version} %{response_code}"


def header_lines(path: Path) -> dict[str, str]:
    """The last response head curl dumped with ``-D`` (lower-cased names)."""
    heads = path.read_text().replace("\r\n", "\n").strip().split("\n\n")
    lines = heads[-1].splitlines()[1:]
    return {k.strip().lower(): v.strip() for k, v in (line.split(":", 1) for line in lines)}


@PROTOCOLS
async def test_compressed_response(curl: str, flag: str, version: str, tmp_path: Path) -> None:
    out, head = tmp_path / "out", tmp_path / "head"
    async with running_server(make_app()) as server:
        result = await run_tool(
            [
                curl,
                "-sS",
                flag,
                "--compressed",
                "-D",
                str(head),
                "-o",
                str(out),
                "-w",
                WRITE_OUT,
                url(server, "/v1/big"),
            ]
        )
    assert result.stdout.decode() == f"{version} 200"
    headers = header_lines(head)
    assert headers["content-encoding"] == "gzip"
    assert headers["vary"] == "accept-encoding"
    assert json.loads(out.read_bytes()) == BIG  # curl inflated it


@PROTOCOLS
async def test_etag_save_and_compare(curl: str, flag: str, version: str, tmp_path: Path) -> None:
    """curl's own ETag cache: the second fetch is a 304 with no body."""
    etags, out = tmp_path / "etags", tmp_path / "out"
    async with running_server(make_app()) as server:
        created = await run_tool(
            [
                curl,
                "-sS",
                flag,
                "-o",
                str(out),
                "-w",
                WRITE_OUT,
                "-H",
                "content-type: application/json",
                "--data",
                '{"sku": "book", "quantity": 1}',
                url(server, "/v1/orders"),
            ]
        )
        assert created.stdout.decode() == f"{version} 201"
        order = url(server, "/v1/orders/1")
        first = await run_tool(
            [curl, "-sS", flag, "--etag-save", str(etags), "-o", str(out), "-w", WRITE_OUT, order]
        )
        assert first.stdout.decode() == f"{version} 200"
        assert etags.read_text().strip().startswith('"')
        second = await run_tool(
            [
                curl,
                "-sS",
                flag,
                "--etag-compare",
                str(etags),
                "-o",
                str(out),
                "-w",
                WRITE_OUT,
                order,
            ]
        )
        assert second.stdout.decode() == f"{version} 304"
        tag = etags.read_text().strip()
        stale = await run_tool(
            [
                curl,
                "-sS",
                flag,
                "-X",
                "PUT",
                "-H",
                'if-match: "stale"',
                "-o",
                str(out),
                "-H",
                "content-type: application/json",
                "--data",
                '{"sku": "x", "quantity": 2}',
                "-w",
                WRITE_OUT,
                order,
            ]
        )
        assert stale.stdout.decode() == f"{version} 412"
        assert json.loads(out.read_bytes())["status"] == 412
        fresh = await run_tool(
            [
                curl,
                "-sS",
                flag,
                "-X",
                "PUT",
                "-H",
                f"if-match: {tag}",
                "-o",
                str(out),
                "-H",
                "content-type: application/json",
                "--data",
                '{"sku": "x", "quantity": 2}',
                "-w",
                WRITE_OUT,
                order,
            ]
        )
        assert fresh.stdout.decode() == f"{version} 200"


@PROTOCOLS
async def test_gzip_request_body_and_head(
    curl: str, flag: str, version: str, tmp_path: Path
) -> None:
    body = tmp_path / "body.gz"
    body.write_bytes(gzip.compress(b'{"sku": "zipped", "quantity": 4}'))
    out, head = tmp_path / "out", tmp_path / "head"
    async with running_server(make_app()) as server:
        created = await run_tool(
            [
                curl,
                "-sS",
                flag,
                "--data-binary",
                f"@{body}",
                "-o",
                str(out),
                "-w",
                WRITE_OUT,
                "-H",
                "content-type: application/json",
                "-H",
                "content-encoding: gzip",
                url(server, "/v1/orders"),
            ]
        )
        assert created.stdout.decode() == f"{version} 201"
        assert json.loads(out.read_bytes())["sku"] == "zipped"
        head_only = await run_tool(
            [
                curl,
                "-sS",
                flag,
                "-I",
                "-D",
                str(head),
                "-o",
                str(out),
                "-w",
                WRITE_OUT,
                url(server, "/v1/orders/1"),
            ]
        )
        assert head_only.stdout.decode() == f"{version} 200"
        headers = header_lines(head)
        assert headers["content-length"] == str(
            len(b'{"id":1,"sku":"zipped","quantity":4,"note":null}')
        )
        assert headers["etag"].startswith('"')
