"""The optional C accelerator for unmasking (``pip install netkit[speedups]``).

The ``websockets`` package ships ``apply_mask`` in C: 64 KiB in about 2 µs, where the
pure-Python version in :mod:`netkit.wire.ws_frames` takes about 120 µs. When it is not
installed, the pure-Python one is used; both give the same bytes (property-tested).
"""

from __future__ import annotations

from collections.abc import Callable

from ..wire import ws_frames

Unmask = Callable[[bytes | bytearray | memoryview, bytes], bytes]


def _load_c_unmask() -> Unmask | None:
    try:
        from websockets.speedups import apply_mask  # type: ignore[import-not-found,unused-ignore]
    except ImportError:  # pragma: no cover - depends on what is installed
        return None
    c_apply: Unmask = apply_mask
    return c_apply


#: The C unmasking function when the accelerator is installed, else None.
c_unmask = _load_c_unmask()

#: What the WebSocket session unmasks with.
unmask: Unmask = c_unmask or ws_frames.unmask
