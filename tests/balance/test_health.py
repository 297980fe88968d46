"""Active health checks on trio's MockClock: thresholds, interval with jitter, timeout."""

from __future__ import annotations

import itertools
import random

import trio
import trio.testing

from netkit.balance import Backend, HealthCheckConfig, HealthCounter, run_health_checks
from tests.helpers import running_server

B = Backend("127.0.0.1", 9)


def test_counter_thresholds() -> None:
    counter = HealthCounter(HealthCheckConfig(unhealthy_threshold=3, healthy_threshold=2))
    assert counter.record(True) is None
    assert [counter.record(False) for _ in range(3)] == [None, None, False]
    assert [counter.record(True) for _ in range(2)] == [None, True]


def test_a_backend_that_never_passed_fails_at_the_first_failure() -> None:
    counter = HealthCounter(HealthCheckConfig(unhealthy_threshold=3))
    assert counter.record(False) is False


async def test_checker_loop_on_the_mock_clock(autojump_clock: trio.testing.MockClock) -> None:
    config = HealthCheckConfig(interval=2.0, jitter=0.1, timeout=0.5, unhealthy_threshold=2)
    answers = iter([True, True, False, "hang", True, True] + [True] * 100)
    probes: list[float] = []
    verdicts: list[tuple[float, bool]] = []

    async def probe() -> bool:
        probes.append(trio.current_time())
        answer = next(answers)
        if answer == "hang":
            await trio.sleep_forever()  # the timeout counts it as a failure
        return bool(answer)

    with trio.move_on_after(20):
        await run_health_checks(
            B,
            config,
            lambda b, ok: verdicts.append((trio.current_time(), ok)),
            probe=probe,
            rng=random.Random(3),
        )
    gaps = [b - a for a, b in itertools.pairwise(probes)]
    assert probes[0] == 0.0  # the first check runs at once
    assert all(1.8 <= gap <= 2.2 + 0.5 for gap in gaps)  # interval +-10% (+ the timeout)
    assert len(set(round(g, 6) for g in gaps)) > 1  # jittered, not in step
    assert [ok for _, ok in verdicts] == [False, True]
    # unhealthy after the 2nd consecutive failure (the hang), healthy after 2 passes
    assert verdicts[0][0] == probes[3] + 0.5


async def test_real_probes_tcp_http_grpc() -> None:
    from netkit import App
    from netkit.balance._health import open_probe
    from netkit.grpc.health import HealthService

    app = App()
    app.grpc.add_service(HealthService())

    async with running_server() as hello, running_server(app) as grpc_server:
        for kind, port, protocol, path in [
            ("tcp", hello.port, "h2", ""),
            ("http", hello.port, "h2", "/hello"),
            ("http", hello.port, "h1", "/hello"),
            ("grpc", grpc_server.port, "h2", ""),
        ]:
            config = HealthCheckConfig(kind=kind, path=path or "/healthz")
            async with open_probe(Backend("127.0.0.1", port, protocol=protocol), config) as probe:
                assert await probe(), kind
        bad = HealthCheckConfig(kind="http", path="/nope")
        async with open_probe(Backend("127.0.0.1", hello.port), bad) as probe:
            assert not await probe()
    async with open_probe(Backend("127.0.0.1", hello.port), HealthCheckConfig()) as probe:
        assert not await probe()  # the server is gone: TCP connect fails
