"""The files an ONNX graph makes onnxruntime read besides itself: the `location` of every tensor stored as external
data, found by walking the protobuf wire format (the runtime does not depend on the `onnx` package).

onnxruntime opens those files itself, relative to the graph, so a bundle could make it read a file the manifest
never lists or hashes (a probe did: a graph re-saved with its weights in `hidden.dat`). `Bundle`-side callers
check each location against the manifest before the graph is opened.

Only the messages that can hold a tensor are walked, wherever the schema nests them: a model's graph and functions,
a graph's nodes and (sparse) initializers, a node's attributes, an attribute's tensors and subgraphs (an `If`, `Loop`
or `Scan` body). Every other field is skipped by its length, so a graph's inline weights cost one pass.

The same walk reads initializers' shapes (`bundle_initializer_shapes`), facts a manifest is checked against; for
bundles without ONNX files, `bundle_ir_constant_shape` reads a constant's shape from an OpenVINO IR's XML.
"""

from __future__ import annotations

import functools
import mmap
import posixpath
import re
from typing import Iterator

from .errors import BundleError

# field number → message type, per message type (onnx.proto3)
_TENSOR, _SPARSE, _GRAPH, _NODE, _ATTRIBUTE, _FUNCTION, _ENTRY = range(7)
_FIELDS = {
    "model": {7: _GRAPH, 25: _FUNCTION},
    _GRAPH: {1: _NODE, 5: _TENSOR, 15: _SPARSE},
    _FUNCTION: {7: _NODE, 11: _ATTRIBUTE},
    _NODE: {5: _ATTRIBUTE},
    _ATTRIBUTE: {5: _TENSOR, 6: _GRAPH, 10: _TENSOR, 11: _GRAPH, 22: _SPARSE, 23: _SPARSE},
    _SPARSE: {1: _TENSOR, 2: _TENSOR},
    _TENSOR: {13: _ENTRY},  # external_data: repeated StringStringEntryProto {1: key, 2: value}
}
_MAX_DEPTH = 64  # subgraphs inside subgraphs; real graphs nest two or three deep


class MalformedGraph(ValueError):
    """The bytes are not a well-formed protobuf message where the ONNX schema expects one."""


def external_data_locations(data: bytes | memoryview) -> set[str]:
    """Every external-data `location` named anywhere in the serialized ONNX model `data`."""
    found: set[str] = set()
    problem = None
    try:
        _walk(memoryview(data), "model", found, 0)
    except MalformedGraph as exc:
        problem = str(exc)
    if problem is not None:
        # raised afresh, out of the handler: the first one's traceback holds slices of `data`, and a memory map
        # cannot be closed while any exists
        raise MalformedGraph(problem)
    return found


def _varint(data: memoryview, at: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if at >= len(data) or shift > 63:
            raise MalformedGraph("a truncated or over-long varint")
        byte = data[at]
        at += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, at
        shift += 7


def _fields(data: memoryview) -> Iterator[tuple[int, int, int | memoryview]]:
    """(number, wire type, value) of each field of one message: a varint's value or a length-delimited field's body
    (a slice: nothing is copied); fixed-width fields, which no walk here reads, are skipped."""
    at = 0
    while at < len(data):
        key, at = _varint(data, at)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, at = _varint(data, at)
            yield number, wire, value
        elif wire in (1, 5):
            at += 8 if wire == 1 else 4
        elif wire == 2:
            length, at = _varint(data, at)
            if at + length > len(data):
                raise MalformedGraph("a field runs past the end of its message")
            yield number, wire, data[at:at + length]
            at += length
        else:
            raise MalformedGraph(f"wire type {wire} (groups are not used by ONNX)")
        if at > len(data):
            raise MalformedGraph("a field runs past the end of its message")


def _walk(data: memoryview, kind, found: set[str], depth: int) -> None:
    if depth > _MAX_DEPTH:
        raise MalformedGraph(f"messages nested deeper than {_MAX_DEPTH} levels")
    fields = _FIELDS.get(kind, {})
    entry: dict[int, bytes] = {}
    for number, wire, value in _fields(data):
        if wire != 2:
            continue
        if kind == _ENTRY and number in (1, 2):
            entry[number] = bytes(value)
        elif number in fields:
            _walk(value, fields[number], found, depth + 1)
    if kind == _ENTRY and entry.get(1) == b"location":
        try:
            found.add(entry.get(2, b"").decode("utf-8"))
        except UnicodeDecodeError:
            raise MalformedGraph("an external-data location that is not UTF-8") from None


def check_external_data(bundle, onnx_rel: str) -> None:
    """Refuse, before onnxruntime opens the graph `onnx_rel`, any file it stores weights in that the manifest of
    `bundle` does not list; the listed ones are hash-checked like every file a graph reads (`Bundle.file`). The
    graph is memory-mapped: skipping a tensor's inline bytes by their length touches none of their pages."""
    locations = _read_mapped(bundle, onnx_rel, bundle.file(onnx_rel), external_data_locations) or set()
    base = posixpath.dirname(onnx_rel)
    for location in sorted(locations):
        rel = posixpath.normpath(posixpath.join(base, location))
        if rel not in bundle.manifest.files:
            raise BundleError(f"{bundle.path}: graph {onnx_rel} keeps weights in {location[:80]!r}, a file the "
                              "manifest does not list (corrupt or tampered bundle)")
        bundle.file(rel)


def bundle_initializer_shapes(bundle, onnx_rel: str, names: set[str]) -> dict[str, tuple[int, ...]]:
    """`initializer_shapes` of the bundle's graph `onnx_rel`, read to check a fact against it: not hashed first (a
    lazily verified bundle hashes a graph when an engine opens it), except where the graph turns out malformed, so
    that a damaged file is named as one where the manifest can tell."""
    read = functools.partial(initializer_shapes, names=names)
    try:
        return _read_mapped(bundle, onnx_rel, bundle.unhashed(onnx_rel), read) or {}
    except BundleError:
        bundle.file(onnx_rel)  # a hash mismatch, if that is what it is, speaks first
        raise


def _read_mapped(bundle, onnx_rel: str, path, read):
    """`read(bytes)` of the graph at `path`, memory-mapped (skipping a tensor's inline bytes by length touches none of
    their pages); None for an empty file (onnxruntime says it is no graph); a malformed or unreadable one is a
    BundleError."""
    try:
        with open(path, "rb") as handle:
            if not handle.seek(0, 2):
                return None
            with mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as data:
                return read(data)
    except MalformedGraph as exc:
        raise BundleError(f"{bundle.path}: {onnx_rel} is not a well-formed ONNX graph ({exc})") from None
    except OSError as exc:
        raise BundleError(f"{bundle.path}: cannot read {onnx_rel} ({exc.strerror or exc})") from None


def initializer_shapes(data: bytes | memoryview, names: set[str]) -> dict[str, tuple[int, ...]]:
    """The dims of the main graph's initializers named in `names` (those present), read from the serialized model
    `data` without the `onnx` package; their bytes are skipped by length."""
    found: dict[str, tuple[int, ...]] = {}
    problem = None
    try:
        _find_initializers(memoryview(data), names, found)
    except MalformedGraph as exc:
        problem = str(exc)
    if problem is not None:  # raised afresh, as in `external_data_locations`: a memory map must close
        raise MalformedGraph(problem)
    return found


def _find_initializers(model: memoryview, names: set[str], found: dict[str, tuple[int, ...]]) -> None:
    # its own frame: the slices it holds are gone once it has returned or raised
    for graph in _fields_of(model, 7):  # ModelProto.graph
        for tensor in _fields_of(graph, 5):  # GraphProto.initializer
            name = next((bytes(body) for body in _fields_of(tensor, 8)), b"").decode("utf-8", "replace")
            if name in names:
                found[name] = _tensor_dims(tensor)


def _fields_of(data: memoryview, wanted: int) -> Iterator[memoryview]:
    """The bodies of every length-delimited field numbered `wanted` in one message."""
    return (value for number, wire, value in _fields(data) if number == wanted and wire == 2)


def _tensor_dims(tensor: memoryview) -> tuple[int, ...]:
    """TensorProto.dims (field 1: packed, or one varint per field)."""
    dims: list[int] = []
    for number, wire, value in _fields(tensor):
        if number != 1:
            continue
        if wire == 0:
            dims.append(value)
        elif wire == 2:
            at = 0
            while at < len(value):
                dim, at = _varint(value, at)
                dims.append(dim)
    return tuple(dims)


MAX_IR_XML_BYTES = 64 << 20  # an IR's XML describes the graph, its weights are in the .bin: full-size ones are ~1 MB


def bundle_ir_constant_shape(bundle, xml_rel: str, name: str) -> tuple[int, ...] | None:
    """The shape of the constant `name` in the bundle's OpenVINO IR `xml_rel`, as its `<data shape=...>` says (None
    when the IR has no constant of that name): the same fact `bundle_initializer_shapes` reads from an ONNX graph,
    for bundles exported without ONNX files. Read, not hashed, as there."""
    path = bundle.unhashed(xml_rel)
    try:
        with open(path, "rb") as handle:
            text = handle.read(MAX_IR_XML_BYTES + 1)
    except OSError as exc:
        raise BundleError(f"{bundle.path}: cannot read {xml_rel} ({exc.strerror or exc})") from None
    if len(text) > MAX_IR_XML_BYTES:
        raise BundleError(f"{bundle.path}: {xml_rel} is larger than an IR's XML can be ({MAX_IR_XML_BYTES >> 20} MiB)")
    # found by plain searches and matched within a bounded window after each: a crafted file costs one pass, never
    # the backtracking a pattern over the whole text could take
    attribute = b' name="' + name.encode() + b'" '
    at = text.find(attribute)
    while at >= 0:
        start = text.rfind(b"<", max(0, at - _IR_WINDOW), at)
        layer = _IR_CONST.match(text[start:at + _IR_WINDOW]) if start >= 0 else None
        if layer:
            return tuple(int(dim) for dim in layer.group(1).split(b",") if dim.strip())
        at = text.find(attribute, at + 1)
    return None


_IR_WINDOW = 512  # a constant's <layer> tag and its <data> tag are ~150 bytes
_IR_CONST = re.compile(rb'<layer [^<>]*type="Const"[^<>]*>\s*<data [^<>]*shape="([0-9, ]{0,64})"')
