"""The live status: rates and p99 from two readings, backends with their health."""

from __future__ import annotations

import io

import httpx
import trio

from netkit.observe import Observability, render_status, run_live_status
from netkit.observe._live import read
from tests.balance.backends import fleet

from .apps import parse, value, wait_until


def test_render_rates_and_p99_from_two_readings() -> None:
    obs = Observability()
    before = read(obs, 0.0)
    for _ in range(98):
        obs.metrics.series("http", "GET", "/a", 200).latency.observe(0.0008)
    for _ in range(2):
        series = obs.metrics.series("http", "GET", "/a", 503)
        series.count += 1
        series.latency.observe(0.2)
    obs.metrics.series("http", "GET", "/a", 200).count += 98
    lines = render_status(before, read(obs, 2.0))
    assert "requests/s      50.0" in lines[0]
    assert "errors/s     1.0" in lines[0]
    assert lines[0].split("p99")[1].split()[0] == "<=250ms"  # 2 of 100 in (0.1, 0.25]


async def test_live_status_lists_backends_and_picks() -> None:
    obs = Observability()
    out = io.StringIO()
    async with fleet(2) as f, trio.open_nursery() as nursery:
        obs.watch_balancer(f.proxy.balancer, f.proxy)
        nursery.start_soon(lambda: run_live_status(obs, interval=0.3, out=out))
        async with httpx.AsyncClient() as client:
            for _ in range(6):
                assert (await client.get(f"{f.url}/who")).status_code == 200
        await trio.sleep(0.7)
        nursery.cancel_scope.cancel()
    text = out.getvalue()
    ports = [s.port for s in f.servers]
    for port in ports:
        assert f"127.0.0.1:{port}" in text
    assert "healthy" in text and "requests/s" in text
    assert sum(obs.balancers[0][1].picks.values()) == 6
    assert not text.startswith("\x1b[H")  # not a terminal: plain blocks, no redraw codes


async def test_balancer_metrics_on_scrape() -> None:
    obs = Observability()
    async with fleet(2) as f:
        metrics = obs.watch_balancer(f.proxy.balancer, f.proxy)
        async with httpx.AsyncClient() as client:
            for _ in range(4):
                await client.get(f"{f.url}/who")
        # The proxy ends an attempt just after the client got the last byte.
        await wait_until(lambda: sum(metrics.outcomes.values()) == 4)
        text, _ = obs.exposition()

    samples = parse(text.decode())
    picks = [
        value(samples, "netkit_balancer_picks_total", backend=f"127.0.0.1:{s.port}")
        for s in f.servers
    ]
    assert sum(picks) == 4
    assert value(samples, "netkit_proxy_attempts_total") == 4
    assert (
        sum(
            value(
                samples,
                "netkit_balancer_upstream_duration_seconds_count",
                backend=f"127.0.0.1:{s.port}",
            )
            for s in f.servers
        )
        == 4
    )
    healthy = [
        value(samples, "netkit_balancer_backend_healthy", backend=f"127.0.0.1:{s.port}")
        for s in f.servers
    ]
    assert healthy == [1.0, 1.0]
