"""Fault-injecting streams, driven by a :class:`FaultSchedule` that hypothesis draws.

:class:`FaultyStream` wraps any ``trio.abc.Stream`` and misbehaves on the bytes *it
sends* as the schedule says: it splits every write into chunks of the scheduled sizes
(cycled), waits the scheduled delays (mock time) before delivering each chunk, stalls
after N bytes for a while (a peer whose receive window is zero), breaks the connection
after N bytes (what was beyond is lost; both directions then raise
``trio.BrokenResourceError``), or flips bits of the byte at an offset. Wrap both ends of
a connection (``MemoryServer(server_wrap=...)``, ``connect(wrap=...)``) to disturb both
directions.

Every field of a schedule is drawn so that its simplest value is "no fault" (no split,
no delay, no stall, no drop, no corruption): hypothesis shrinks a failing schedule to
the fewest, smallest faults that still fail, and prints it as ``FaultSchedule(...)``.
"""

from __future__ import annotations

import itertools

import attrs
import trio
from hypothesis import strategies as st


@attrs.frozen
class FaultSchedule:
    """What a :class:`FaultyStream` does to the bytes it sends.

    * ``chunks`` -- sizes each write is cut into, cycled (empty: writes go out whole);
    * ``delays`` -- mock seconds to wait before each chunk, cycled (empty: none);
    * ``stall_after`` / ``stall_for`` -- after that many bytes, send nothing for
      ``stall_for`` mock seconds, once (a zero receive window);
    * ``drop_after`` -- after that many bytes the connection breaks;
    * ``corrupt_at`` / ``corrupt_mask`` -- XOR the byte at that offset with the mask.
    """

    chunks: tuple[int, ...] = ()
    delays: tuple[float, ...] = ()
    stall_after: int | None = None
    stall_for: float = 0.0
    drop_after: int | None = None
    corrupt_at: int | None = None
    corrupt_mask: int = 0x01

    @property
    def harmless(self) -> bool:
        """Whether the bytes arrive intact and complete (only timing changes)."""
        return self.drop_after is None and self.corrupt_at is None


def fault_schedules(
    *,
    max_offset: int = 4096,
    split: bool = True,
    delay: bool = True,
    stall: bool = True,
    drop: bool = False,
    corrupt: bool = False,
    max_delay: float = 1.0,
) -> st.SearchStrategy[FaultSchedule]:
    """Schedules with the faults switched on here; each shrinks towards "none".

    Splits, delays and stalls only change timing (a correct peer must give the same
    result); drops and corruption change the bytes (a correct peer must fail cleanly),
    so they are off unless asked for.
    """
    offsets = st.integers(0, max_offset)
    return st.builds(
        FaultSchedule,
        chunks=st.lists(st.integers(1, 64), max_size=4).map(tuple) if split else st.just(()),
        delays=(
            st.lists(st.sampled_from([0.0, 0.001, 0.01, max_delay]), max_size=3).map(tuple)
            if delay
            else st.just(())
        ),
        stall_after=st.none() | offsets if stall else st.none(),
        stall_for=st.sampled_from([0.0, 0.5, 5.0]) if stall else st.just(0.0),
        drop_after=st.none() | offsets if drop else st.none(),
        corrupt_at=st.none() | offsets if corrupt else st.none(),
        corrupt_mask=st.integers(1, 255),
    )


class FaultyStream(trio.abc.Stream):
    """Wraps ``stream``; what it sends follows ``schedule`` (see the module docstring).

    ``sent`` counts the bytes delivered so far; ``dropped`` says whether the schedule
    broke the connection.
    """

    def __init__(self, stream: trio.abc.Stream, schedule: FaultSchedule) -> None:
        self.stream = stream
        self.schedule = schedule
        self.sent = 0
        self.dropped = False
        self._stalled = False
        self._chunks = itertools.cycle(schedule.chunks) if schedule.chunks else None
        self._delays = itertools.cycle(schedule.delays) if schedule.delays else None
        self._lock = trio.StrictFIFOLock()

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        async with self._lock:
            view = memoryview(bytes(data))
            while view:
                if self.dropped:
                    raise trio.BrokenResourceError("the fault schedule dropped the connection")
                size = next(self._chunks) if self._chunks is not None else len(view)
                size = min(size, len(view), self._room())
                if size == 0:  # at a stall or drop boundary: act on it, then go on
                    await self._at_boundary()
                    continue
                chunk = bytearray(view[:size])
                view = view[size:]
                at = self.schedule.corrupt_at
                if at is not None and self.sent <= at < self.sent + size:
                    chunk[at - self.sent] ^= self.schedule.corrupt_mask
                if self._delays is not None:
                    await trio.sleep(next(self._delays))
                await self.stream.send_all(chunk)
                self.sent += size
            if self._room() == 0:
                await self._at_boundary()

    def _room(self) -> int:
        """Bytes that may go before the next stall or drop boundary."""
        limits = [1 << 62]
        s = self.schedule
        if s.stall_after is not None and not self._stalled:
            limits.append(s.stall_after - self.sent)
        if s.drop_after is not None:
            limits.append(s.drop_after - self.sent)
        return max(0, min(limits))

    async def _at_boundary(self) -> None:
        s = self.schedule
        if s.drop_after is not None and self.sent >= s.drop_after:
            await self._drop()
            raise trio.BrokenResourceError("the fault schedule dropped the connection")
        if s.stall_after is not None and not self._stalled and self.sent >= s.stall_after:
            self._stalled = True
            await trio.sleep(s.stall_for)

    async def _drop(self) -> None:
        self.dropped = True
        await trio.aclose_forcefully(self.stream)

    async def wait_send_all_might_not_block(self) -> None:
        await self.stream.wait_send_all_might_not_block()

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        if self.dropped:
            await trio.lowlevel.checkpoint()
            raise trio.BrokenResourceError("the fault schedule dropped the connection")
        data = await self.stream.receive_some(max_bytes)
        if self.dropped:
            raise trio.BrokenResourceError("the fault schedule dropped the connection")
        return bytes(data)

    async def aclose(self) -> None:
        await self.stream.aclose()
