"""The bounded change log that lets a watcher resume from a revision it has seen."""

from __future__ import annotations

from collections import deque

from ._types import Change


class ChangeLog:
    """The last ``size`` changes, oldest first.

    ``since(r)`` gives exactly the changes after revision ``r`` when the log still holds
    all of them, else ``None`` (the caller then sends a snapshot). Several changes may
    share a revision (an etcd transaction); a revision is never split by trimming
    in a way that ``since`` would miss, because ``floor`` is the newest revision whose
    changes may have been dropped.
    """

    def __init__(self, size: int, revision: int = 0) -> None:
        self._size = size
        self._changes: deque[Change] = deque()
        #: Changes at or below this revision may be gone from the log.
        self.floor = revision

    def append(self, change: Change) -> None:
        self._changes.append(change)
        while len(self._changes) > self._size:
            self.floor = self._changes.popleft().revision

    def reset(self, revision: int) -> None:
        """Forget everything: resuming from before ``revision`` needs a snapshot."""
        self._changes.clear()
        self.floor = revision

    def since(self, revision: int) -> list[Change] | None:
        if revision < self.floor:
            return None
        # Changes are in revision order: walk back from the newest.
        out: list[Change] = []
        for change in reversed(self._changes):
            if change.revision <= revision:
                break
            out.append(change)
        out.reverse()
        return out
