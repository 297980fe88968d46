"""Load balancing: strategies, health checks, outlier ejection, a reverse proxy and
client-side balancing.

The strategies and the :class:`LoadBalancer` core are sans-I/O; :class:`Balancer` keeps
a core up to date from a :class:`BackendSource` with active health checks;
:class:`ReverseProxy` is a netkit handler forwarding REST, gRPC and WebSocket.
"""

from ._backend import Backend as Backend
from ._backend import BackendState as BackendState
from ._balancer import LoadBalancer as LoadBalancer
from ._balancer import MembershipChange as MembershipChange
from ._balancer import Outcome as Outcome
from ._balancer import make_strategy as make_strategy
from ._balancer import strategy_names as strategy_names
from ._config import BalancerConfig as BalancerConfig
from ._config import OutlierConfig as OutlierConfig
from ._connectivity import Backoff as Backoff
from ._connectivity import BackoffConfig as BackoffConfig
from ._connectivity import Connectivity as Connectivity
from ._grpc_client import BalancedChannel as BalancedChannel
from ._grpc_client import Subchannel as Subchannel
from ._grpc_client import open_balanced_channel as open_balanced_channel
from ._hashing import MAGLEV_TABLE_SIZE as MAGLEV_TABLE_SIZE
from ._hashing import Maglev as Maglev
from ._hashing import RingHash as RingHash
from ._hashing import key_hash as key_hash
from ._health import HealthCheckConfig as HealthCheckConfig
from ._health import HealthCounter as HealthCounter
from ._health import run_health_checks as run_health_checks
from ._pool import PoolLimits as PoolLimits
from ._proxy import ProxyConfig as ProxyConfig
from ._proxy import ReverseProxy as ReverseProxy
from ._registry import RegistryBackends as RegistryBackends
from ._rest_client import BalancedTransport as BalancedTransport
from ._runtime import Balancer as Balancer
from ._source import BackendSource as BackendSource
from ._source import MutableBackends as MutableBackends
from ._source import StaticBackends as StaticBackends
from ._strategies import LeastOutstanding as LeastOutstanding
from ._strategies import PeakEWMA as PeakEWMA
from ._strategies import Random as Random
from ._strategies import RoundRobin as RoundRobin
from ._strategies import Strategy as Strategy
from ._strategies import WeightedRoundRobin as WeightedRoundRobin
from ._targets import Target as Target
from ._targets import parse_target as parse_target

__all__ = [
    "MAGLEV_TABLE_SIZE",
    "Backend",
    "BackendSource",
    "BackendState",
    "Backoff",
    "BackoffConfig",
    "BalancedChannel",
    "BalancedTransport",
    "Balancer",
    "BalancerConfig",
    "Connectivity",
    "HealthCheckConfig",
    "HealthCounter",
    "LeastOutstanding",
    "LoadBalancer",
    "Maglev",
    "MembershipChange",
    "MutableBackends",
    "Outcome",
    "OutlierConfig",
    "PeakEWMA",
    "PoolLimits",
    "ProxyConfig",
    "Random",
    "RegistryBackends",
    "ReverseProxy",
    "RingHash",
    "RoundRobin",
    "StaticBackends",
    "Strategy",
    "Subchannel",
    "Target",
    "WeightedRoundRobin",
    "key_hash",
    "make_strategy",
    "open_balanced_channel",
    "parse_target",
    "run_health_checks",
]
