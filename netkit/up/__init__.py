"""``netkit up``: the orders system end to end in one trio process.

A registry, orders instances that register with TTL heartbeats, and the balancer that
finds them through the registry, as one nursery tree (:class:`Constellation`); a live
status view built on :mod:`netkit.observe` (and ``/metrics`` on the admin port); an
admin endpoint to crash an instance. See docs/quickstart.md.
"""

from ._constellation import Constellation as Constellation
from ._constellation import UpConfig as UpConfig
from ._constellation import banner as banner
from ._status import Row as Row
from ._status import StatusView as StatusView
from ._status import status_view as status_view

__all__ = [
    "Constellation",
    "Row",
    "StatusView",
    "UpConfig",
    "banner",
    "status_view",
]
