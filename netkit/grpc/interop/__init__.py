"""gRPC's standard interop service and test cases, so netkit can be checked against peers.

``server`` implements ``grpc.testing.TestService`` as gRPC's interop-test descriptions
ask of a server; ``client`` holds the client-side test cases, one coroutine per case,
run with netkit's own :class:`~netkit.grpc.Channel`. ``netkit interop-server`` and
``netkit interop-client`` wrap them with the command-line flags of gRPC's own interop
binaries, so either side can be paired with any other gRPC implementation.

Neither module is imported by ``netkit.grpc`` itself: both register the
``grpc.testing`` messages in protobuf's default pool, which must stay free for
applications that define those names themselves.
"""
