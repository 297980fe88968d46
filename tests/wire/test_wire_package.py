"""The shape of netkit.wire: a complete export list, the error tree, and the layering rule
that it imports nothing of netkit and never trio (DESIGN.md, "Layers")."""

from __future__ import annotations

import ast
import sys
import types
from pathlib import Path

import netkit.wire
from netkit.wire import (
    FramingError,
    InvalidMetadata,
    InvalidTimeout,
    MessageTooLarge,
    StatusCode,
    UnsupportedEncoding,
    WireError,
)

WIRE = Path(netkit.wire.__file__).parent


def test_all_lists_exactly_the_public_names() -> None:
    public = {
        name
        for name, obj in vars(netkit.wire).items()
        if not name.startswith("_") and not isinstance(obj, types.ModuleType)
    }
    public.discard("annotations")  # the __future__ feature
    assert set(netkit.wire.__all__) == public
    assert len(netkit.wire.__all__) == len(set(netkit.wire.__all__))


def _absolute_imports(path: Path) -> set[str]:
    modules = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            modules.update(alias.name.partition(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            modules.add(node.module.partition(".")[0])
    return modules


def test_wire_imports_only_the_standard_library_and_attrs() -> None:
    files = sorted(WIRE.glob("*.py"))
    assert len(files) >= 5
    for path in files:
        outside = _absolute_imports(path) - set(sys.stdlib_module_names) - {"attrs"}
        assert not outside, f"{path.name} imports {outside}"


def test_error_tree_and_status_hints() -> None:
    hints = {
        FramingError: StatusCode.INTERNAL,
        MessageTooLarge: StatusCode.RESOURCE_EXHAUSTED,
        UnsupportedEncoding: StatusCode.UNIMPLEMENTED,
        InvalidTimeout: StatusCode.INTERNAL,
        InvalidMetadata: StatusCode.INTERNAL,
    }
    for cls, status in hints.items():
        assert issubclass(cls, WireError)
        assert cls.status_hint is status
        assert cls.__doc__
    assert not issubclass(MessageTooLarge, FramingError)
    assert str(MessageTooLarge(5, 4)) == "message of 5 bytes exceeds the limit of 4 bytes"
    assert InvalidMetadata("bad", key="k").key == "k"
    assert InvalidMetadata("bad").key is None
