"""``protoc-gen-netkit``: the protoc plugin that writes netkit service classes and stubs.

For every ``.proto`` file that declares services, the plugin writes ``<name>_netkit.py``
beside protoc's own ``<name>_pb2.py`` (so run it together with ``--python_out``, and
``--pyi_out`` for typed messages). Per service ``S`` in package ``pkg`` that module holds

* ``SBase(netkit.grpc.Service)``: one ``async`` handler per method, each raising
  UNIMPLEMENTED until a subclass overrides it, and ``__rpc_methods__`` listing them for
  the server (paths ``/pkg.S/Method``, cardinalities, message classes);
* ``SStub``: built from a ``netkit.grpc.Channel``, one callable attribute per method.

Method names keep the proto's spelling. The handler signatures are the ones
:mod:`netkit.grpc._service` documents.

Running it::

    python -m grpc_tools.protoc -I protocols --python_out=OUT --pyi_out=OUT \\
        --netkit_out=OUT protocols/pkg/file.proto

protoc finds ``protoc-gen-netkit`` on ``PATH`` (it is installed as a console script); when
it is not there, name it: ``--plugin=protoc-gen-netkit=.venv/bin/protoc-gen-netkit``.
Options go in ``--netkit_opt`` (comma-separated ``key=value``):

``module_suffix=_grpc``
    name the modules ``<name>_grpc.py`` instead of ``<name>_netkit.py``.

``netkit codegen`` (:func:`codegen_main`) does all of this in-process, with protoc's
well-known types on the include path.

How the generated module imports message modules: its own file's ``_pb2`` as ``_pb``,
and the ``_pb2`` module of every other file whose messages its methods use under that
module's name. A file in the same package is imported relatively (``from . import
x_pb2``), one elsewhere in the same top-level package by a relative path (``from
..other import x_pb2``). Files in another top-level package, at the top level of the
output, or under ``google/protobuf`` are imported absolutely, as protoc's ``_pb2``
modules import them: a relative import cannot leave the top-level package.

The output is already laid out as ``ruff format`` (line length 100) would lay it out, so
regenerating is byte-for-byte stable whether or not the formatter runs afterwards.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.resources
import keyword
import os
import re
import sys
import tempfile
import textwrap
from collections.abc import Iterator, Sequence

import attrs
from google.protobuf import descriptor_pb2
from google.protobuf.compiler import plugin_pb2

__all__ = ["codegen_main", "generate", "main"]

DEFAULT_MODULE_SUFFIX = "_netkit"
LINE_LENGTH = 100
INDENT = "    "

# SourceCodeInfo paths: FileDescriptorProto.service = 6, ServiceDescriptorProto.method = 2.
_SERVICE_FIELD = 6
_METHOD_FIELD = 2

# Names the generated classes define themselves, so a proto method cannot take them.
_RESERVED_METHOD_NAMES = frozenset({"SERVICE_NAME"})


class CodegenError(Exception):
    """A .proto file or option the plugin cannot generate code for (reported by protoc)."""


@attrs.frozen
class Options:
    module_suffix: str = DEFAULT_MODULE_SUFFIX


def parse_options(parameter: str) -> Options:
    """Parse protoc's ``--netkit_opt`` string (``key=value`` pairs, comma-separated)."""
    values: dict[str, str] = {}
    for item in filter(None, (part.strip() for part in parameter.split(","))):
        key, sep, value = item.partition("=")
        if not sep:
            raise CodegenError(f"option {item!r} is not key=value")
        if key != "module_suffix":
            raise CodegenError(f"unknown option {key!r} (known: module_suffix)")
        values[key] = value
    suffix = values.get("module_suffix", DEFAULT_MODULE_SUFFIX)
    if not suffix or not (f"m{suffix}").isidentifier() or suffix == "_pb2":
        raise CodegenError(f"module_suffix {suffix!r} cannot end a module name")
    return Options(module_suffix=suffix)


# -- where protoc puts modules -------------------------------------------------------


def module_name(proto_file: str) -> str:
    """The dotted Python module protoc's Python generator writes for ``proto_file``.

    Same rule as protoc: drop ``.proto``, ``-`` becomes ``_``, ``/`` becomes ``.``.
    """
    base = proto_file.removesuffix(".protodevel").removesuffix(".proto")
    return base.replace("-", "_").replace("/", ".") + "_pb2"


def output_file_name(proto_file: str, suffix: str) -> str:
    """Path (relative to the output root) of the netkit module for ``proto_file``."""
    return module_name(proto_file).removesuffix("_pb2").replace(".", "/") + suffix + ".py"


@attrs.frozen
class _Import:
    """``from <dots><package> import <module> [as <alias>]``, or ``import <module>``."""

    #: Dots of a relative import (0: absolute).
    level: int
    #: The package after the dots, or the absolute package ("": a top-level module).
    package: str
    module: str
    alias: str

    @property
    def source(self) -> str:
        return "." * self.level + self.package

    @property
    def member(self) -> str:
        return self.module if self.alias == self.module else f"{self.module} as {self.alias}"


def _natural(name: str) -> tuple[str | int, ...]:
    """Case-insensitive natural order (``x9`` before ``x10``), as ruff's isort sorts."""
    return tuple(int(p) if i % 2 else p.lower() for i, p in enumerate(re.split(r"(\d+)", name)))


def _member_key(name: str) -> tuple[int, tuple[str | int, ...], str]:
    # isort's order-by-type: constants, then classes, then everything else.
    if len(name) > 1 and name.isupper():
        kind = 0
    elif name[:1].isupper():
        kind = 1
    else:
        kind = 2
    return (kind, _natural(name), name)


def _from_line(source: str, members: Sequence[str]) -> list[str]:
    line = f"from {source} import {', '.join(members)}"
    if len(line) <= LINE_LENGTH:
        return [line]
    return [f"from {source} import (", *(f"{INDENT}{m}," for m in members), ")"]


def _import_block(imports: Sequence[_Import]) -> list[str]:
    """One isort section, laid out as ruff's isort (default settings) lays it out.

    ``import x`` statements first, then ``from`` statements by source (relative ones
    furthest first) and first member; plain members of one source share a statement,
    each ``as`` import gets its own.
    """
    lines = [
        f"import {imp.member}"
        for imp in sorted(
            (imp for imp in imports if not imp.level and not imp.package),
            key=lambda imp: (_natural(imp.module), imp.module, imp.alias),
        )
    ]
    # (the statement's first import, all its imports)
    statements: list[tuple[_Import, list[_Import]]] = []
    for source in {imp.source for imp in imports if imp.level or imp.package}:
        group = sorted(
            (imp for imp in imports if imp.source == source),
            key=lambda imp: _member_key(imp.module),
        )
        plain = [imp for imp in group if imp.alias == imp.module]
        if plain:
            statements.append((plain[0], plain))
        statements.extend((imp, [imp]) for imp in group if imp.alias != imp.module)

    def key(statement: tuple[_Import, list[_Import]]) -> tuple[object, ...]:
        first = statement[0]
        return (-first.level, _natural(first.package), first.package, _member_key(first.module))

    for first, members in sorted(statements, key=key):
        lines.extend(_from_line(first.source, [imp.member for imp in members]))
    return lines


def _import_for(own_module: str, target_module: str, alias: str) -> _Import:
    own_dir = own_module.split(".")[:-1]
    target_parts = target_module.split(".")
    target_dir, target_name = target_parts[:-1], target_parts[-1]
    common = 0
    for a, b in zip(own_dir, target_dir, strict=False):
        if a != b:
            break
        common += 1
    absolute = common == 0 or target_module.startswith("google.protobuf.")
    if absolute:
        return _Import(0, ".".join(target_dir), target_name, alias)
    return _Import(len(own_dir) - common + 1, ".".join(target_dir[common:]), target_name, alias)


# -- the model the templates read ----------------------------------------------------


@attrs.frozen
class _Method:
    name: str
    client_streaming: bool
    server_streaming: bool
    request: str  # Python expression of the message class, e.g. ``_pb.Outer.Inner``
    response: str
    doc: str

    @property
    def cardinality(self) -> str:
        return {
            (False, False): "UNARY_UNARY",
            (False, True): "UNARY_STREAM",
            (True, False): "STREAM_UNARY",
            (True, True): "STREAM_STREAM",
        }[self.client_streaming, self.server_streaming]

    @property
    def stub_class(self) -> str:
        return {
            "UNARY_UNARY": "UnaryUnaryMethod",
            "UNARY_STREAM": "UnaryStreamMethod",
            "STREAM_UNARY": "StreamUnaryMethod",
            "STREAM_STREAM": "StreamStreamMethod",
        }[self.cardinality]


@attrs.frozen
class _Service:
    name: str
    full_name: str
    doc: str
    methods: tuple[_Method, ...]

    def path(self, method: _Method) -> str:
        return f"/{self.full_name}/{method.name}"


class _TypeIndex:
    """Fully qualified message name -> (defining file, attribute path in its module)."""

    def __init__(self, files: Sequence[descriptor_pb2.FileDescriptorProto]) -> None:
        self._types: dict[str, tuple[str, str]] = {}
        for file in files:
            prefix = f".{file.package}" if file.package else ""
            self._add(file.name, prefix, "", file.message_type)

    def _add(
        self,
        file_name: str,
        scope: str,
        attr_scope: str,
        messages: Sequence[descriptor_pb2.DescriptorProto],
    ) -> None:
        for message in messages:
            full = f"{scope}.{message.name}"
            attr = f"{attr_scope}.{message.name}" if attr_scope else message.name
            self._types[full] = (file_name, attr)
            self._add(file_name, full, attr, message.nested_type)

    def lookup(self, type_name: str) -> tuple[str, str]:
        try:
            return self._types[type_name]
        except KeyError:
            raise CodegenError(f"message type {type_name} is not defined") from None


class _Imports:
    """The message modules one generated file imports, with collision-free names."""

    def __init__(self, own_file: str) -> None:
        self._own_module = module_name(own_file)
        self._own_file = own_file
        self._by_file: dict[str, _Import] = {}

    def reference(self, file_name: str, attr: str) -> str:
        imp = self._by_file.get(file_name)
        if imp is None:
            target = module_name(file_name)
            alias = "_pb" if file_name == self._own_file else self._free_alias(target)
            imp = _import_for(self._own_module, target, alias)
            self._by_file[file_name] = imp
        return f"{imp.alias}.{attr}"

    def _free_alias(self, target: str) -> str:
        taken = {imp.alias for imp in self._by_file.values()}
        parts = target.split(".")
        candidate = parts[-1]
        if candidate in taken:
            candidate = "_".join(parts)
        n = 2
        base = candidate
        while candidate in taken:
            candidate = f"{base}{n}"
            n += 1
        return candidate

    def absolute_lines(self) -> list[str]:
        return _import_block([imp for imp in self._by_file.values() if not imp.level])

    def relative_lines(self) -> list[str]:
        return _import_block([imp for imp in self._by_file.values() if imp.level])


def _comment(file: descriptor_pb2.FileDescriptorProto, path: Sequence[int]) -> str:
    for location in file.source_code_info.location:
        if list(location.path) == list(path):
            return location.leading_comments
    return ""


def _check_identifier(name: str, what: str) -> None:
    if not name.isidentifier() or keyword.iskeyword(name):
        raise CodegenError(f"{what} {name!r} is not a usable Python identifier")


def _build_services(
    file: descriptor_pb2.FileDescriptorProto, index: _TypeIndex, imports: _Imports
) -> list[_Service]:
    services = []
    for s, service in enumerate(file.service):
        full_name = f"{file.package}.{service.name}" if file.package else service.name
        methods = []
        seen: set[str] = set()
        for m, method in enumerate(service.method):
            what = f"method {full_name}.{method.name}:"
            _check_identifier(method.name, what)
            if method.name in _RESERVED_METHOD_NAMES or method.name.startswith("__"):
                raise CodegenError(f"{what} the name is used by the generated classes")
            if method.name in seen:
                raise CodegenError(f"{what} defined twice")
            seen.add(method.name)
            types = []
            for type_name in (method.input_type, method.output_type):
                type_file, attr = index.lookup(type_name)
                for part in attr.split("."):
                    _check_identifier(part, f"{what} message name")
                types.append(imports.reference(type_file, attr))
            methods.append(
                _Method(
                    name=method.name,
                    client_streaming=method.client_streaming,
                    server_streaming=method.server_streaming,
                    request=types[0],
                    response=types[1],
                    doc=_comment(file, (_SERVICE_FIELD, s, _METHOD_FIELD, m)),
                )
            )
        services.append(
            _Service(
                name=service.name,
                full_name=full_name,
                doc=_comment(file, (_SERVICE_FIELD, s)),
                methods=tuple(methods),
            )
        )
    return services


# -- layout ------------------------------------------------------------------------


def _bracketed(indent: int, head: str, items: Sequence[str], tail: str) -> list[str]:
    """``head item, item tail`` laid out as ruff format lays out a bracketed list.

    ``head`` ends with the opening bracket and ``tail`` starts with the closing one. On
    one line if it fits; else the items together on one indented line; else one item a
    line with a trailing comma.
    """
    pad = INDENT * indent
    inner = INDENT * (indent + 1)
    joined = ", ".join(items)
    if len(pad) + len(head) + len(joined) + len(tail) <= LINE_LENGTH:
        return [f"{pad}{head}{joined}{tail}"]
    if len(inner) + len(joined) <= LINE_LENGTH:
        return [f"{pad}{head}", f"{inner}{joined}", f"{pad}{tail}"]
    return [f"{pad}{head}", *(f"{inner}{item}," for item in items), f"{pad}{tail}"]


def _docstring(indent: int, text: str) -> list[str]:
    """A docstring from a proto comment, wrapped to the line length; [] if empty.

    The text is normalised the way the formatter normalises docstrings (PEP 257: the
    first line stripped, the common indentation of the others removed), so that the
    formatter leaves the result alone.
    """
    lines = [line.rstrip() for line in text.expandtabs(8).split("\n")]
    lines = [line.replace("\\", "\\\\").replace('"""', '\\"\\"\\"') for line in lines]
    while lines and not lines[0]:
        lines.pop(0)
    while lines and not lines[-1]:
        lines.pop()
    if not lines:
        return []
    lines[0] = lines[0].lstrip()
    rest = [line for line in lines[1:] if line]
    margin = min((len(line) - len(line.lstrip()) for line in rest), default=0)
    lines[1:] = [line[margin:] for line in lines[1:]]
    pad = INDENT * indent
    if len(lines) == 1:
        single = lines[0] + (" " if lines[0].endswith('"') else "")
        if len(pad) + len(single) + 6 <= LINE_LENGTH:
            return [f'{pad}"""{single}"""']
    wrapped: list[str] = []
    for i, line in enumerate(lines):
        room = LINE_LENGTH - len(pad) - (3 if i == 0 else 0)
        if len(line) <= room:
            wrapped.append(line)
            continue
        body = line.lstrip()
        lead = line[: len(line) - len(body)]
        wrapped.extend(
            textwrap.wrap(
                body,
                width=room,
                initial_indent=lead,
                subsequent_indent=lead,
                break_long_words=False,
                break_on_hyphens=False,
            )
        )
    if len(wrapped) == 1:  # one word too long for the line: the formatter keeps it whole
        space = " " if wrapped[0].endswith('"') else ""
        return [f'{pad}"""{wrapped[0]}{space}"""']
    out = [f'{pad}"""{wrapped[0]}']
    out.extend(f"{pad}{line}" if line else "" for line in wrapped[1:])
    out.append(f'{pad}"""')
    return out


def _base_class(service: _Service) -> Iterator[str]:
    yield f"class {service.name}Base(netkit.grpc.Service):"
    doc = _docstring(1, service.doc)
    if doc:
        yield from doc
        yield ""
    yield f'{INDENT}SERVICE_NAME = "{service.full_name}"'
    for method in service.methods:
        yield ""
        if method.client_streaming:
            params = ["self", f"requests: AsyncIterator[{method.request}]", "call: ServerCall"]
        else:
            params = ["self", f"request: {method.request}", "call: ServerCall"]
        returns = "None" if method.server_streaming else method.response
        yield from _bracketed(1, f"async def {method.name}(", params, f") -> {returns}:")
        yield from _docstring(2, method.doc)
        yield f'{INDENT * 2}raise GRPCError(StatusCode.UNIMPLEMENTED, "Method not implemented!")'
    yield ""
    yield f"{INDENT}def __rpc_methods__(self) -> Iterable[RPCMethod]:"
    if not service.methods:
        yield f"{INDENT * 2}return []"
        return
    yield f"{INDENT * 2}return ["
    for method in service.methods:
        args = [
            f'"{service.path(method)}"',
            f"Cardinality.{method.cardinality}",
            f"self.{method.name}",
            method.request,
            method.response,
        ]
        yield from _bracketed(3, "RPCMethod(", args, "),")
    yield f"{INDENT * 2}]"


def _stub_class(service: _Service) -> Iterator[str]:
    yield f"class {service.name}Stub:"
    yield from _docstring(1, f"Client stub for {service.full_name}.")
    yield ""
    yield f"{INDENT}def __init__(self, channel: netkit.grpc.Channel) -> None:"
    if not service.methods:
        yield f"{INDENT * 2}pass"
    for method in service.methods:
        args = ["channel", f'"{service.path(method)}"', method.request, method.response]
        head = f"self.{method.name} = netkit.grpc.{method.stub_class}("
        yield from _bracketed(2, head, args, ")")


def _header(proto_file: str) -> list[str]:
    line = f"# Generated by protoc-gen-netkit from {proto_file}. Do not edit."
    if len(line) <= LINE_LENGTH:
        return [line]
    return ["# Generated by protoc-gen-netkit from", f"# {proto_file}. Do not edit."]


def generate_module(file: descriptor_pb2.FileDescriptorProto, index: _TypeIndex) -> str | None:
    """Source of the netkit module for ``file``, or None if it declares no services."""
    if not file.service:
        return None
    imports = _Imports(file.name)
    services = _build_services(file, index, imports)
    methods = [method for service in services for method in service.methods]
    names = ["RPCMethod"]
    if methods:
        names += ["Cardinality", "GRPCError", "ServerCall", "StatusCode"]
    abc = ["Iterable"]
    if any(method.client_streaming for method in methods):
        abc.insert(0, "AsyncIterator")

    absolute = imports.absolute_lines()
    relative = imports.relative_lines()
    out = [*_header(file.name), "", "from __future__ import annotations", ""]
    out.append(f"from collections.abc import {', '.join(abc)}")
    out.append("")
    if absolute:
        out.extend(absolute)
        out.append("")
    out.append("import netkit.grpc")
    out.append(f"from netkit.grpc import {', '.join(sorted(names, key=_member_key))}")
    if relative:
        out.append("")
        out.extend(relative)
    for service in services:
        out.extend(["", ""])
        out.extend(_base_class(service))
        out.extend(["", ""])
        out.extend(_stub_class(service))
    return "\n".join(out) + "\n"


def generate(request: plugin_pb2.CodeGeneratorRequest) -> plugin_pb2.CodeGeneratorResponse:
    """Answer one protoc request (errors go into ``response.error``, as protoc expects)."""
    response = plugin_pb2.CodeGeneratorResponse()
    response.supported_features = (
        plugin_pb2.CodeGeneratorResponse.FEATURE_PROTO3_OPTIONAL
        | plugin_pb2.CodeGeneratorResponse.FEATURE_SUPPORTS_EDITIONS
    )
    response.minimum_edition = descriptor_pb2.EDITION_PROTO2
    response.maximum_edition = descriptor_pb2.EDITION_2024
    try:
        options = parse_options(request.parameter)
        index = _TypeIndex(request.proto_file)
        by_name = {file.name: file for file in request.proto_file}
        for name in request.file_to_generate:
            source = generate_module(by_name[name], index)
            if source is None:
                continue
            out = response.file.add()
            out.name = output_file_name(name, options.module_suffix)
            out.content = source
    except CodegenError as exc:
        del response.file[:]
        response.error = str(exc)
    return response


_USAGE = """\
protoc-gen-netkit is a protoc plugin; protoc runs it. For example:

    python -m grpc_tools.protoc -I protocols --python_out=OUT --pyi_out=OUT \\
        --netkit_out=OUT [--plugin=protoc-gen-netkit=PATH] file.proto

or, with protoc's well-known types on the include path: netkit codegen --help
"""


def main() -> int:
    """Entry point of the ``protoc-gen-netkit`` executable (protoc's plugin protocol)."""
    if sys.stdin.isatty():
        sys.stderr.write(_USAGE)
        return 2
    request = plugin_pb2.CodeGeneratorRequest.FromString(sys.stdin.buffer.read())
    sys.stdout.buffer.write(generate(request).SerializeToString())
    sys.stdout.buffer.flush()
    return 0


# -- netkit codegen ----------------------------------------------------------------


def _quote(arg: str) -> str:
    return "'" + arg.replace("'", "'\\''") + "'"


def _plugin_command(workdir: str) -> str:
    """An executable protoc can run as the plugin: this file, on this interpreter.

    On POSIX it is a two-line shell script that runs this module as a script (``-P``: its
    directory is not put on ``sys.path``). That imports neither the ``netkit`` package nor
    the gRPC runtime, so code generation does not depend on the runtime importing cleanly
    and starts quickly. Elsewhere it is the installed ``protoc-gen-netkit``.
    """
    if os.name == "posix":
        path = os.path.join(workdir, "protoc-gen-netkit")
        script = os.path.abspath(__file__)
        with open(path, "w", encoding="utf-8") as f:
            f.write(f'#!/bin/sh\nexec {_quote(sys.executable)} -P {_quote(script)} "$@"\n')
        os.chmod(path, 0o755)
        return path
    scripts = os.path.dirname(sys.executable)
    for name in ("protoc-gen-netkit.exe", "protoc-gen-netkit"):
        candidate = os.path.join(scripts, name)
        if os.path.exists(candidate):
            return candidate
    raise SystemExit("netkit codegen: protoc-gen-netkit is not installed next to Python")


def codegen_main(argv: Sequence[str] | None = None) -> int:
    """``netkit codegen``: run protoc (from grpcio-tools) with this plugin, in-process.

    ``argv`` excludes the program name, e.g. ``["-I", "protocols", "--out", "build",
    "protocols/pkg/a.proto"]``. Writes ``_pb2.py``, ``_pb2.pyi`` and the netkit modules
    under ``--out`` and returns protoc's exit status (0 on success).
    """
    parser = argparse.ArgumentParser(
        prog="netkit codegen",
        description="Generate protobuf messages and netkit service classes from .proto files.",
    )
    parser.add_argument(
        "-I",
        "--proto-path",
        action="append",
        default=[],
        metavar="DIR",
        help="directory to search for imports (repeatable; default: .)",
    )
    parser.add_argument("--out", default=".", metavar="DIR", help="output root (default: .)")
    parser.add_argument(
        "--module-suffix",
        default=DEFAULT_MODULE_SUFFIX,
        help=f"suffix of the generated service modules (default: {DEFAULT_MODULE_SUFFIX})",
    )
    parser.add_argument("--no-pyi", action="store_true", help="do not write _pb2.pyi stubs")
    parser.add_argument("files", nargs="+", metavar="FILE.proto")
    args = parser.parse_args(argv)

    try:
        protoc = importlib.import_module("grpc_tools.protoc")
    except ImportError:
        sys.stderr.write("netkit codegen needs grpcio-tools: pip install grpcio-tools\n")
        return 1
    # protoc's own .proto files (google/protobuf/*.proto), bundled with grpcio-tools.
    include = str(importlib.resources.files("grpc_tools") / "_proto")
    os.makedirs(args.out, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="netkit-codegen-") as workdir:
        command = [
            "grpc_tools.protoc",
            *(f"-I{path}" for path in args.proto_path or ["."]),
            f"-I{include}",
            f"--plugin=protoc-gen-netkit={_plugin_command(workdir)}",
            f"--python_out={args.out}",
            *([] if args.no_pyi else [f"--pyi_out={args.out}"]),
            f"--netkit_out={args.out}",
            f"--netkit_opt=module_suffix={args.module_suffix}",
            *args.files,
        ]
        return int(protoc.main(command))


if __name__ == "__main__":
    sys.exit(main())
