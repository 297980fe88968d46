"""Reads and writes straight on a plain TCP socket's descriptor, for HTTP/1.1 and its tunnels.

Why: trio's ``SocketStream`` spends, per call, two context managers, a ``recv`` that fails
with EAGAIN before every wait, and a scheduler round after every successful ``send``;
around a small HTTP/1.1 response (or WebSocket message) that is a large share of the
CPU. On a plain TCP socket netkit therefore

* writes with one ``os.write``; when the kernel takes everything (the usual case) the
  write costs a cancellation check, and the task yields to the scheduler once per
  ``_YIELD_EVERY`` bytes written (each write counting ``_YIELD_COST`` more, so a stream of
  tiny writes yields too), as HTTP/2's small writes do. What the kernel does not take
  goes through the caller's slow path (trio's ``send_all`` under ``write_timeout``);
* reads by waiting for readability first (that wait is the checkpoint, and the caller's
  cancel scope bounds it) and then reading once.

TLS and any other transport keep using the transport's own methods (``fd`` is -1).
"""

from __future__ import annotations

import errno
import os
import sys

import trio

_YIELD_EVERY = 256 * 1024
_YIELD_COST = 256
_CLOSED_ERRNOS = {errno.EBADF, errno.ENOTSOCK}


class DirectIO:
    """The direct path of one connection; ``fd`` is -1 where it does not apply."""

    __slots__ = ("_unyielded", "fd")

    def __init__(self, transport: trio.abc.Stream) -> None:
        self.fd = -1
        if isinstance(transport, trio.SocketStream) and sys.platform != "win32":
            self.fd = transport.socket.fileno()
        self._unyielded = 0

    def write_now(self, data: bytes | bytearray | memoryview) -> int:
        """Write what the kernel takes without waiting; how many bytes that was.

        Raises trio's BrokenResourceError (peer gone) or ClosedResourceError (closed here).
        """
        try:
            return os.write(self.fd, data)
        except BlockingIOError:
            return 0
        except OSError as exc:
            raise translate(exc) from exc

    async def after_write(self, size: int) -> None:
        """The checkpoint of a write the kernel took whole (see the module docstring)."""
        self._unyielded += size + _YIELD_COST
        if self._unyielded < _YIELD_EVERY:
            await trio.lowlevel.checkpoint_if_cancelled()
        else:
            self._unyielded = 0
            await trio.lowlevel.checkpoint()

    async def write(self, data: bytes | bytearray | memoryview) -> bytes | bytearray | memoryview:
        """The fast path of a write: what the kernel takes at once, with its checkpoint.

        Returns what is left for the caller's slow path (its own timeout and error
        mapping): nothing in the usual case, all of ``data`` where the direct path does
        not apply. Raises as :meth:`write_now` does.
        """
        if not data:
            await trio.lowlevel.checkpoint()
            return b""
        if self.fd < 0:
            return data
        sent = self.write_now(data)
        if sent == len(data):
            await self.after_write(sent)
            return b""
        self._unyielded = 0  # it will wait: the yield budget starts afresh
        return memoryview(data)[sent:]

    def read_now(self, max_bytes: int) -> bytes | None:
        """One read after readability was signalled; None if it would block after all."""
        try:
            return os.read(self.fd, max_bytes)
        except BlockingIOError:
            return None
        except OSError as exc:
            raise translate(exc) from exc

    async def receive(self, transport: trio.abc.Stream, max_bytes: int) -> bytes | bytearray:
        """One read: on a plain TCP socket, wait for readability and ``os.read`` once;
        otherwise (or if that read would block after all) the transport's own read.

        Raises trio's BrokenResourceError or ClosedResourceError, as the transport does.
        """
        if self.fd >= 0:
            await trio.lowlevel.wait_readable(self.fd)
            data = self.read_now(max_bytes)
            if data is not None:
                return data
        return await transport.receive_some(max_bytes)


def translate(exc: OSError) -> trio.BrokenResourceError | trio.ClosedResourceError:
    """An ``os.read``/``os.write`` failure in trio's terms."""
    if exc.errno in _CLOSED_ERRNOS:
        return trio.ClosedResourceError("connection closed")
    return trio.BrokenResourceError(f"connection lost: {exc}")
