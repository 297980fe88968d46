"""grpcio-reflection's client against a server: ``python reflection_probe.py HOST:PORT``.

Run by tests/grpc/test_reflection.py in a process of its own: grpcio-reflection's
``reflection_pb2`` and netkit's generated module both register the
``grpc.reflection.v1alpha`` messages in protobuf's default pool, and whichever is
imported second fails ("duplicate symbol"). This script imports nothing of netkit.

It prints one JSON object: the listed services, and for ``netkit.echo.v1.Echo`` each
method's input and output types and streaming flags, as grpcio's client resolved them
(over v1alpha, the only version it speaks); ``missing_is_key_error`` says whether an
unknown symbol became ``KeyError``, which the client only does for NOT_FOUND.
"""

from __future__ import annotations

import json
import sys

import grpc
from google.protobuf.descriptor_pool import DescriptorPool
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
    ProtoReflectionDescriptorDatabase,
)

ECHO = "netkit.echo.v1.Echo"


def probe(target: str) -> dict[str, object]:
    # No proxy: the environment's http_proxy must not reroute a loopback test.
    with grpc.insecure_channel(target, options=[("grpc.enable_http_proxy", 0)]) as channel:
        database = ProtoReflectionDescriptorDatabase(channel)
        pool = DescriptorPool(database)
        services = list(database.get_services())
        echo = pool.FindServiceByName(ECHO)
        methods = {
            method.name: {
                "input": method.input_type.full_name,
                "output": method.output_type.full_name,
                "client_streaming": method.client_streaming,
                "server_streaming": method.server_streaming,
            }
            for method in echo.methods
        }
        try:
            pool.FindMessageTypeByName("no.such.Message")
            missing_is_key_error = False
        except KeyError:
            missing_is_key_error = True
        return {
            "services": services,
            "file": echo.file.name,
            "methods": methods,
            "missing_is_key_error": missing_is_key_error,
        }


if __name__ == "__main__":
    print(json.dumps(probe(sys.argv[1])))
