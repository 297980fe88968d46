"""Code generated from ``protocols/netkit/protos/`` by ``scripts/codegen``: do not edit.

``*_pb2.py``/``*_pb2.pyi`` are protoc's messages, ``*_netkit.py`` the service base classes
and client stubs of ``protoc-gen-netkit``. The .proto packages keep their published names
(``grpc.testing``, ``grpc.health.v1``, ``grpc.reflection.v1``) so that other gRPC
implementations interoperate; only the file paths are netkit's, so that they do not clash
with grpcio's own modules. Message full names do clash with grpcio-health-checking's:
``netkit.protos.grpc_health.v1.health_pb2`` and ``grpc_health.v1.health_pb2`` cannot be
imported into the same process.
"""
