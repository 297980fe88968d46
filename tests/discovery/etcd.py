"""A real etcd (Debian's etcd-server, installed by scripts/setup) on loopback ports.

Started in a temporary data directory with a short election timeout (so that leases of
one second are allowed and the node is leader at once) and stopped by the caller.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

#: Bounded start-up: etcd is usually ready in well under a second.
START_TIMEOUT = 15.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Etcd:
    def __init__(self, data_dir: Path, client_port: int | None = None) -> None:
        binary = shutil.which("etcd")
        if binary is None:
            raise RuntimeError("etcd is not installed: run ./scripts/setup (Debian etcd-server)")
        self.binary = binary
        self.data_dir = data_dir
        self.port = client_port or free_port()
        self.peer_port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> Etcd:
        client = f"http://127.0.0.1:{self.port}"
        peer = f"http://127.0.0.1:{self.peer_port}"
        self.process = subprocess.Popen(
            [
                self.binary,
                "--name=test",
                f"--data-dir={self.data_dir}",
                f"--listen-client-urls={client}",
                f"--advertise-client-urls={client}",
                f"--listen-peer-urls={peer}",
                f"--initial-advertise-peer-urls={peer}",
                f"--initial-cluster=test={peer}",
                "--heartbeat-interval=10",
                "--election-timeout=100",
                "--log-level=error",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"etcd exited with {self.process.returncode}")
            try:
                with urllib.request.urlopen(f"{client}/health", timeout=1) as reply:
                    if b'"true"' in reply.read():
                        return self
            except OSError:
                pass
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"etcd not ready after {START_TIMEOUT} s")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        self.process = None
