"""Blocking queries (Consul's ``?index=N&wait=30s``): long polling for clients without
streaming.

Sans-I/O parts (parsing ``wait``, deciding whether to wait at all) are plain functions;
:func:`block_until_changed` is the one trio loop. A query that names the revision it has
seen (``index``) waits while the registry is still at that revision, and returns as soon
as a change alters *its* answer, or when the wait runs out (with the current answer, which
may be the same). A change elsewhere in the registry wakes the loop, which recomputes the
answer and goes back to sleep when it is unchanged, so a client is not woken for other
services' churn; the index it gets back is always the registry's current revision.
"""

from __future__ import annotations

import random
import re
from collections.abc import Awaitable, Callable
from typing import TypeVar

import trio

from ._backend import RegistryBackend

T = TypeVar("T")

#: Longest accepted wait (Consul: 10 min; we keep 5 min, below common proxy idle limits).
MAX_WAIT = 300.0
#: Extra random wait, as a fraction of the wait, so clients started together spread out
#: (Consul adds up to wait/16 too).
WAIT_JITTER = 1 / 16

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h)")
_NUMBER = re.compile(r"\d+(?:\.\d+)?")


class BadQuery(ValueError):
    """A query parameter that does not parse (answered with 400)."""


def parse_wait(text: str) -> float:
    """A wait such as ``30s``, ``500ms``, ``5m``, ``1m30s`` (Go durations, as Consul takes
    them) or a bare number of seconds, as seconds."""
    text = text.strip()
    if _NUMBER.fullmatch(text):
        return float(text)
    pos, total = 0, 0.0
    for match in _PART.finditer(text):
        if match.start() != pos:
            break
        total += float(match.group(1)) * _UNITS[match.group(2)]
        pos = match.end()
    if pos != len(text) or not text:
        raise BadQuery(f"wait must be a duration such as 30s, 500ms or 5m, not {text[:40]!r}")
    return total


def format_wait(seconds: float) -> str:
    """The inverse of :func:`parse_wait` for whole milliseconds (``1500`` ms → ``1500ms``)."""
    return f"{round(seconds * 1000)}ms"


def parse_index(text: str | None) -> int | None:
    if text is None or text == "":
        return None
    if not text.isdigit() or len(text) > 19:
        raise BadQuery(f"index must be a non-negative integer, not {text[:40]!r}")
    return int(text)


def should_wait(index: int | None, revision: int) -> bool:
    """Wait only when the client has seen exactly the current revision.

    No index (or 0) asks for the answer now. An index below the revision means the client
    missed changes: it gets the answer now. An index above it comes from another
    incarnation of the registry (restarted without its snapshot, or a different etcd):
    it gets the answer now too, and starts over from the index it is given (Consul
    resets such an index the same way).
    """
    return bool(index) and index == revision


def effective_wait(requested: float | None, max_wait: float, jitter: float) -> float:
    """The wait actually used: the request's (``max_wait`` when absent), capped, plus jitter."""
    wait = max_wait if requested is None else min(requested, max_wait)
    return wait + random.uniform(0, wait * jitter)


async def block_until_changed(
    registry: RegistryBackend,
    index: int | None,
    wait: float,
    answer: Callable[[], Awaitable[T]],
    same: Callable[[T, T], bool],
) -> tuple[int, T]:
    """The answer and the revision it was read at, after blocking as described above.

    Errors from ``answer`` (e.g. :class:`RegistryUnavailable` when the registry loses
    etcd while the query waits, which wakes it) propagate to the caller.
    """
    seen = registry.revision
    result = await answer()
    if not should_wait(index, seen):
        return seen, result
    with trio.move_on_after(wait):
        while True:
            if registry.revision == seen:  # nothing since the last look: sleep
                await registry.wait_changed()
            seen = registry.revision
            latest = await answer()
            if not same(result, latest):
                return seen, latest
    # The wait ran out: the current answer (a change may have come and gone).
    return registry.revision, await answer()
