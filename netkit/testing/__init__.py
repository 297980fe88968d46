"""Property-test protocols and services built on netkit with hypothesis and trio.

* In-process connections: :class:`MemoryServer` serves any App over in-memory streams;
  :func:`http1_request`, :func:`open_h2_client`, :func:`open_grpc_channel` and
  :func:`open_websocket` are clients over them (docs/testing.md).
* Fault injection: :class:`FaultyStream` driven by a :class:`FaultSchedule`
  (:func:`fault_schedules` draws them, shrinking towards "no fault").
* Strategies for the wire (HTTP, HTTP/2, gRPC, WebSocket, pub/sub) and
  :func:`protobuf_messages` for any message class.
* :class:`TrioStateMachine`: a ``RuleBasedStateMachine`` with ``async`` rules in a
  persistent trio loop (guest mode, :class:`TrioRunner`) on an autojump ``MockClock``;
  shipped machines: :class:`CallMachine`, :class:`PubSubMachine`,
  :class:`IdempotencyMachine`, :class:`RegistryMachine`, :class:`BalancerMachine`.
* A pytest plugin (fixtures ``netkit_app``, ``memory_server``, ``h2_client``,
  ``grpc_channel``), registered as the ``netkit`` pytest11 entry point.

Needs hypothesis (``pip install netkit[testing]``); ``import netkit`` does not load it.
"""

from ._balancer_machine import BalancerMachine as BalancerMachine
from ._faults import FaultSchedule as FaultSchedule
from ._faults import FaultyStream as FaultyStream
from ._faults import fault_schedules as fault_schedules
from ._find import Failure as Failure
from ._find import find_failure as find_failure
from ._find import invariant_names as invariant_names
from ._grpc_machine import PROBE_PATH as PROBE_PATH
from ._grpc_machine import CallMachine as CallMachine
from ._grpc_machine import CallProbe as CallProbe
from ._grpc_machine import HandlerRecord as HandlerRecord
from ._idempotency_machine import IdempotencyMachine as IdempotencyMachine
from ._machine import Held as Held
from ._machine import TrioStateMachine as TrioStateMachine
from ._memory import MemoryServer as MemoryServer
from ._memory import StreamWrapper as StreamWrapper
from ._memory import http1_request as http1_request
from ._memory import open_grpc_channel as open_grpc_channel
from ._memory import open_h2_client as open_h2_client
from ._memory import open_websocket as open_websocket
from ._memory import serve_in_memory as serve_in_memory
from ._protobuf import protobuf_messages as protobuf_messages
from ._pubsub_machine import PubSubMachine as PubSubMachine
from ._registry_machine import ModelInstance as ModelInstance
from ._registry_machine import RegistryMachine as RegistryMachine
from ._runner import LoopCrashed as LoopCrashed
from ._runner import StepTimeout as StepTimeout
from ._runner import TrioRunner as TrioRunner
from ._strategies import HTTPRequestSpec as HTTPRequestSpec
from ._strategies import WSFrame as WSFrame
from ._strategies import grpc_frames as grpc_frames
from ._strategies import grpc_metadata as grpc_metadata
from ._strategies import grpc_metadata_keys as grpc_metadata_keys
from ._strategies import grpc_timeouts as grpc_timeouts
from ._strategies import h2_bytes as h2_bytes
from ._strategies import h2_frame_sequences as h2_frame_sequences
from ._strategies import header_names as header_names
from ._strategies import header_values as header_values
from ._strategies import http_paths as http_paths
from ._strategies import http_requests as http_requests
from ._strategies import json_values as json_values
from ._strategies import pubsub_envelopes as pubsub_envelopes
from ._strategies import pubsub_patterns as pubsub_patterns
from ._strategies import pubsub_topics as pubsub_topics
from ._strategies import ws_frames as ws_frames
from ._strategies import ws_messages as ws_messages

__all__ = [
    "PROBE_PATH",
    "BalancerMachine",
    "CallMachine",
    "CallProbe",
    "Failure",
    "FaultSchedule",
    "FaultyStream",
    "HTTPRequestSpec",
    "HandlerRecord",
    "Held",
    "IdempotencyMachine",
    "LoopCrashed",
    "MemoryServer",
    "ModelInstance",
    "PubSubMachine",
    "RegistryMachine",
    "StepTimeout",
    "StreamWrapper",
    "TrioRunner",
    "TrioStateMachine",
    "WSFrame",
    "fault_schedules",
    "find_failure",
    "grpc_frames",
    "grpc_metadata",
    "grpc_metadata_keys",
    "grpc_timeouts",
    "h2_bytes",
    "h2_frame_sequences",
    "header_names",
    "header_values",
    "http1_request",
    "http_paths",
    "http_requests",
    "invariant_names",
    "json_values",
    "open_grpc_channel",
    "open_h2_client",
    "open_websocket",
    "protobuf_messages",
    "pubsub_envelopes",
    "pubsub_patterns",
    "pubsub_topics",
    "serve_in_memory",
    "ws_frames",
    "ws_messages",
]
