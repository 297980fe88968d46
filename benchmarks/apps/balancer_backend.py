"""The backend of benchmarks/balancer_run.py: ``GET /hello`` (JSON) and the gRPC echo
service in one netkit App, served by ``netkit serve``."""

from __future__ import annotations

import netkit
from netkit.examples.grpc_echo import EchoService
from netkit.examples.hello import hello

app = netkit.App()
app.route("GET", "/hello", hello)  # the same bytes as netkit.examples.hello
app.grpc.add_service(EchoService())
