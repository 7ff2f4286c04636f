"""The model bundle: a folder of graphs plus `manifest.json`, which says everything a runtime needs.

```
bundle/
  manifest.json          format version, model family/version, sample rate, symbols, graphs, hashes, options
  manifest.sha256        sha256 of manifest.json (`sha256sum` format), written with it
  <graph>.xml/.bin       OpenVINO IR of each graph
  <graph>.onnx           the ONNX each IR was converted from (onnxruntime CPU/GPU backends)
  <other files>          a family's tables, each named by a `*_file` fact in `model` (vocabularies, lexicons, ...)
```

Bundles are written into a temporary sibling folder and renamed into place, so a reader never sees half a
bundle; `Bundle.load` checks the format version and (optionally) every file's sha256.

A bundle is a closed box: it may come from anyone, so nothing it says reaches outside its folder.

* Every file the manifest names (the keys of `files`, each graph's `files`, any `*_file` in `model`) must be a
  plain relative POSIX path (no `..`, `.`, empty parts, backslashes, drive letters or absolute paths), listed in
  `files`, and a regular file inside the folder reached without a symlink at any step; `Bundle.load` checks all
  of them before it opens or hashes any file, and `Bundle.file` returns only such listed files.
* `manifest.sha256` covers the manifest itself; `Bundle.load(verify=True)` checks it when it is present (bundles
  written before it existed have none and still load).
* `runtime_options` may only set the OpenVINO properties in `OPENVINO_RUNTIME_OPTIONS` (precision and
  threading hints, none of which names a path), each to a value OpenVINO takes (`OPENVINO_OPTION_VALUES`), and the
  onnxruntime session settings in `ONNXRUNTIME_RUNTIME_OPTIONS` to "0" or "1"; the compile cache folder comes only
  from the user (`OpenVINOBackend(cache_dir=...)`).
* A manifest of the wrong shape (not an object, a wrong type anywhere) is refused with a one-line `BundleError`.
"""

from __future__ import annotations

import glob
import hashlib
import json
import math
import os
import re
import shutil
import stat
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, Iterable, Iterator

from .errors import BundleError
from .files import current_umask

FORMAT = "edgevoice-bundle"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
MANIFEST_HASH = "manifest.sha256"

# OpenVINO compile properties a bundle may set for its graphs: precision and threading hints only. Anything that
# can name a path (CACHE_DIR, ...) or change what is loaded is refused when the manifest is read.
OPENVINO_RUNTIME_OPTIONS = frozenset({
    "INFERENCE_PRECISION_HINT", "KV_CACHE_PRECISION", "KEY_CACHE_PRECISION", "VALUE_CACHE_PRECISION",
    "KEY_CACHE_GROUP_SIZE", "VALUE_CACHE_GROUP_SIZE", "DYNAMIC_QUANTIZATION_GROUP_SIZE", "EXECUTION_MODE_HINT",
    "PERFORMANCE_HINT", "NUM_STREAMS", "INFERENCE_NUM_THREADS", "ENABLE_HYPER_THREADING", "ENABLE_CPU_PINNING",
})
_COUNT_LIMIT = 1 << 16  # threads, streams and group sizes: a larger number is a mistake (or an attack on memory)


def _count(value: Any) -> bool:
    text = str(value) if isinstance(value, int) and not isinstance(value, bool) else value
    return isinstance(text, str) and text.isdecimal() and int(text) <= _COUNT_LIMIT


def _one_of(*names: str):
    return lambda value: isinstance(value, str) and value in names


def _switch(value: Any) -> bool:
    return isinstance(value, bool) or value in ("YES", "NO", "True", "False", "true", "false")


# What each allow-listed OpenVINO property may be set to (as OpenVINO 2026.4's CPU plugin accepts them, minus spellings
# it takes for "automatic", such as NUM_STREAMS -1): a value it would refuse makes every run of the graph fail, and
# `quantize` would copy it into its output, so it is refused when the manifest is read.
_PRECISIONS = _one_of("f32", "bf16", "f16", "dynamic", "undefined")
_CACHE_PRECISIONS = _one_of("f32", "bf16", "f16", "u8", "u4")
OPENVINO_OPTION_VALUES = {
    "INFERENCE_PRECISION_HINT": ("f32, bf16, f16, dynamic or undefined", _PRECISIONS),
    **{key: ("f32, bf16, f16, u8 or u4", _CACHE_PRECISIONS)
       for key in ("KV_CACHE_PRECISION", "KEY_CACHE_PRECISION", "VALUE_CACHE_PRECISION")},
    **{key: (f"a whole number 0…{_COUNT_LIMIT}", _count)
       for key in ("KEY_CACHE_GROUP_SIZE", "VALUE_CACHE_GROUP_SIZE", "DYNAMIC_QUANTIZATION_GROUP_SIZE",
                   "INFERENCE_NUM_THREADS")},
    "NUM_STREAMS": (f"a whole number 0…{_COUNT_LIMIT}, AUTO or NUMA", lambda v: _count(v) or v in ("AUTO", "NUMA")),
    "EXECUTION_MODE_HINT": ("PERFORMANCE or ACCURACY", _one_of("PERFORMANCE", "ACCURACY")),
    "PERFORMANCE_HINT": ("LATENCY, THROUGHPUT or CUMULATIVE_THROUGHPUT",
                         _one_of("LATENCY", "THROUGHPUT", "CUMULATIVE_THROUGHPUT")),
    "ENABLE_HYPER_THREADING": ("a boolean, YES or NO", _switch),
    "ENABLE_CPU_PINNING": ("a boolean, YES or NO", _switch),
}
assert set(OPENVINO_OPTION_VALUES) == OPENVINO_RUNTIME_OPTIONS
# onnxruntime session settings a bundle may set (`SessionOptions.add_session_config_entry`): thread-pool behaviour only.
ONNXRUNTIME_RUNTIME_OPTIONS = frozenset({"session.intra_op.allow_spinning"})
RUNTIME_OPTION_GROUPS = {"openvino": OPENVINO_RUNTIME_OPTIONS, "onnxruntime": ONNXRUNTIME_RUNTIME_OPTIONS}
# Which engine a graph may name to run it under every CPU backend (`GraphEntry.engine`; "" = each backend its own).
GRAPH_ENGINES = ("", "onnxruntime")

_SHA256 = re.compile(r"[0-9a-f]{64}")
_MAX_PATH = 1024
# above every audio rate in use (the families make 16, 24 and 32 kHz); a manifest's rate sizes buffers per second
MAX_SAMPLE_RATE = 384_000
_MAX_OPTION_TEXT = 64
_MAX_NESTING = 64


def sha256_file(path: Path, chunk: int = 1 << 22) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def _short(value: Any, limit: int = 80) -> str:
    """repr of an untrusted manifest value, on one line and short enough for an error message."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _kind(value: Any) -> str:
    names = {dict: "an object", list: "a list", str: "a string", bool: "a boolean", int: "an integer",
             float: "a number", type(None): "null"}
    return names.get(type(value), f"a {type(value).__name__}")


def _expect(value: Any, types: type | tuple, what: str, wanted: str) -> Any:
    """`value` if it is of `types` (a bool is never taken for an int), else a one-line BundleError."""
    if not isinstance(value, types) or (isinstance(value, bool) and bool not in (types if isinstance(types, tuple)
                                                                                 else (types,))):
        raise BundleError(f"{what} must be {wanted}, found {_kind(value)}")
    return value


def _expect_str_dict(value: Any, what: str) -> dict[str, str]:
    _expect(value, dict, what, "an object")
    for key, item in value.items():
        _expect(item, str, f"{what}[{_short(key)}]", "a string")
    return dict(value)


def path_problem(rel: Any) -> str | None:
    """Why `rel` is not a plain relative POSIX path inside a bundle, or None when it is."""
    if not isinstance(rel, str):
        return f"is {_kind(rel)}, not a path string"
    if not rel:
        return "is empty"
    if len(rel) > _MAX_PATH:
        return f"is longer than {_MAX_PATH} characters"
    if any(ord(c) < 32 or ord(c) == 127 for c in rel):
        return "contains control characters"
    if "\\" in rel:
        return "contains a backslash"
    if rel.startswith("/"):
        return "is an absolute path"
    if re.match(r"[A-Za-z]:", rel):
        return "is a drive path"
    parts = rel.split("/")
    if any(part in ("", ".", "..") for part in parts):
        return "has an empty, '.' or '..' part"
    return None


def _check_rel(rel: Any, what: str) -> str:
    problem = path_problem(rel)
    if problem:
        raise BundleError(f"{what} {_short(rel)} {problem}; a bundle may only name plain relative paths inside "
                          "its folder")
    return rel


def check_runtime_options(options: Any, what: str = "runtime_options") -> dict:
    """Validate a graph's `runtime_options` ({"openvino": {PROPERTY: scalar}, "onnxruntime": {KEY: scalar}});
    returns a copy."""
    _expect(options, dict, what, "an object")
    checked = {}
    for group, values in options.items():
        if group not in RUNTIME_OPTION_GROUPS:
            raise BundleError(f"{what}: unknown option group {_short(group)} (a bundle may only set "
                              f"{', '.join(RUNTIME_OPTION_GROUPS)} options)")
        _expect(values, dict, f"{what}[{group!r}]", "an object")
        for key, value in values.items():
            if key not in RUNTIME_OPTION_GROUPS[group]:
                engine = "OpenVINO" if group == "openvino" else "onnxruntime"
                raise BundleError(f"{what}: {engine} option {_short(key)} may not be set by a bundle (only "
                                  "precision and threading hints; a cache folder is the user's choice)")
            _expect(value, (str, int, float, bool), f"{what}[{group!r}][{key!r}]", "a string, number or boolean")
            if isinstance(value, float) and not math.isfinite(value):
                raise BundleError(f"{what}[{group!r}][{key!r}] must be a finite number")
            if group == "onnxruntime" and value not in ("0", "1"):
                raise BundleError(f"{what}[{group!r}][{key!r}] must be \"0\" or \"1\"")
            if isinstance(value, str) and (len(value) > _MAX_OPTION_TEXT or re.search(r"[/\\:\x00-\x1f\x7f]", value)):
                raise BundleError(f"{what}[{group!r}][{key!r}] = {_short(value)} is not a plain option value "
                                  "(no paths)")
            if group == "openvino" and not OPENVINO_OPTION_VALUES[key][1](value):
                raise BundleError(f"{what}[{group!r}][{key!r}] = {_short(value)} is not a value OpenVINO takes "
                                  f"({OPENVINO_OPTION_VALUES[key][0]})")
        checked[group] = dict(values)
    return checked


def openvino_options(graph: "GraphEntry") -> dict:
    """The OpenVINO compile properties a graph's manifest entry sets, re-checked against the allow-list."""
    return check_runtime_options(graph.runtime_options, f"graph {graph.name!r} runtime_options").get("openvino", {})


def onnxruntime_options(graph: "GraphEntry") -> dict:
    """The onnxruntime session settings a graph's manifest entry sets, re-checked against the allow-list."""
    return check_runtime_options(graph.runtime_options, f"graph {graph.name!r} runtime_options").get("onnxruntime", {})


@dataclass(frozen=True)
class TensorSpec:
    name: str
    dtype: str  # numpy dtype name: "float32", "int64"
    shape: list  # ints for fixed axes, strings for named dynamic axes

    def to_json(self) -> dict:
        return {"name": self.name, "dtype": self.dtype, "shape": list(self.shape)}

    @classmethod
    def from_json(cls, data: dict, what: str = "tensor") -> "TensorSpec":
        _expect(data, dict, what, "an object")
        for key in ("name", "dtype", "shape"):
            if key not in data:
                raise BundleError(f"{what} has no {key!r}")
        name = _expect(data["name"], str, f"{what} name", "a string")
        what = f"{what} {_short(name)}"
        dtype = _expect(data["dtype"], str, f"{what} dtype", "a string")
        shape = _expect(data["shape"], list, f"{what} shape", "a list")
        for axis in shape:
            _expect(axis, (int, str), f"{what} shape axis", "an integer or a name")
            if isinstance(axis, int) and axis < 0:
                raise BundleError(f"{what} shape has a negative axis {axis}")
        return cls(name, dtype, list(shape))


@dataclass
class GraphEntry:
    name: str
    files: dict[str, str]  # backend format ("openvino", "onnx") -> file name inside the bundle
    precision: str  # "fp32", "int8", "bf16", ...
    inputs: list[TensorSpec]
    outputs: list[TensorSpec]
    runtime_options: dict = field(default_factory=dict)  # OpenVINO compile properties for this graph
    accuracy: dict = field(default_factory=dict)  # measured error vs the FP32 reference, when quantised
    # OpenVINO state variable -> the `gpt_prefill` output that seeds it (stateful KV-cache graphs only)
    states: dict[str, str] = field(default_factory=dict)
    # "onnxruntime": every CPU backend runs this graph's ONNX file through onnxruntime, because the quantiser
    # measured OpenVINO slower for it on this CPU (the reason is in the manifest's quantization record)
    engine: str = ""

    def to_json(self) -> dict:
        data = {
            "files": self.files, "precision": self.precision,
            "inputs": [t.to_json() for t in self.inputs], "outputs": [t.to_json() for t in self.outputs],
            "runtime_options": self.runtime_options, "accuracy": self.accuracy,
        }
        if self.states:
            data["states"] = self.states
        if self.engine:
            data["engine"] = self.engine
        return data

    @classmethod
    def from_json(cls, name: str, data: dict) -> "GraphEntry":
        """Read and validate one graph entry; any problem is a one-line BundleError naming the graph."""
        what = f"graph {_short(name)}"
        _expect(name, str, "graph name", "a string")
        _expect(data, dict, what, "an object")
        for key in ("files", "precision", "inputs", "outputs"):
            if key not in data:
                raise BundleError(f"{what} has no {key!r}")
        files = _expect_str_dict(data["files"], f"{what} files")
        for fmt, rel in files.items():
            if not re.fullmatch(r"[A-Za-z0-9_.-]{1,64}", fmt):
                raise BundleError(f"{what} files: {_short(fmt)} is not a file format name")
            _check_rel(rel, f"{what} {fmt} file")
        precision = _expect(data["precision"], str, f"{what} precision", "a string")
        specs = {}
        for key in ("inputs", "outputs"):
            items = _expect(data[key], list, f"{what} {key}", "a list")
            specs[key] = [TensorSpec.from_json(t, f"{what} {key[:-1]}") for t in items]
        options = check_runtime_options(data.get("runtime_options", {}), f"{what} runtime_options")
        accuracy = _expect(data.get("accuracy", {}), dict, f"{what} accuracy", "an object")
        states = _expect_str_dict(data.get("states", {}), f"{what} states")
        engine = _expect(data.get("engine", ""), str, f"{what} engine", "a string")
        if engine not in GRAPH_ENGINES:
            raise BundleError(f"{what} engine {_short(engine)} is not one of: onnxruntime (or none)")
        if engine and "onnx" not in files:
            raise BundleError(f"{what} runs on {engine} but has no ONNX file")
        if engine and states:
            raise BundleError(f"{what} is stateful (an OpenVINO state graph) and cannot run on {engine}")
        return cls(name, files, precision, specs["inputs"], specs["outputs"], options, dict(accuracy), states, engine)


def _model_files(model: dict) -> list[tuple[str, Any]]:
    """(where, value) of every `*_file` entry in the manifest's `model` facts (e.g. bert.vocab_file)."""
    found, stack = [], [("model", model, 0)]
    while stack:
        where, node, depth = stack.pop()
        if depth > _MAX_NESTING:
            raise BundleError(f"{where} is nested more than {_MAX_NESTING} levels deep")
        items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
        for key, value in items:
            label = key if isinstance(key, str) and re.fullmatch(r"[\w-]{1,64}", key) else _short(key, 40)
            here = f"{where}.{label}" if isinstance(node, dict) else f"{where}[{key}]"
            if isinstance(key, str) and key.endswith("_file"):
                found.append((here, value))
            elif isinstance(value, (dict, list)):
                stack.append((here, value, depth + 1))
    return found


@dataclass
class Manifest:
    family: str
    upstream_version: str
    sample_rate: int
    symbols: list[str]
    model: dict  # architecture facts the host code needs (layer count, EOS id, hop, ...)
    graphs: dict[str, GraphEntry]
    defaults: dict  # default synthesis options
    sources: dict  # name -> {"file": ..., "sha256": ...} of the checkpoints the bundle was made from
    files: dict[str, str] = field(default_factory=dict)  # relative path -> sha256
    extra: dict = field(default_factory=dict)  # e.g. quantisation report, source bundle hash

    @property
    def model_fingerprint(self) -> str:
        """Identifies the trained weights, shared by every precision variant of the same checkpoints."""
        text = json.dumps({k: v["sha256"] for k, v in sorted(self.sources.items())}, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()

    def named_files(self) -> list[tuple[str, Any]]:
        """(what, path) of every file the manifest names: `files`, each graph's files, `model.*_file`."""
        named = [("file", rel) for rel in self.files]
        for name, graph in self.graphs.items():
            named += [(f"graph {name!r} {fmt} file", rel) for fmt, rel in graph.files.items()]
        return named + _model_files(self.model)

    def to_json(self) -> dict:
        return {
            "format": FORMAT, "format_version": FORMAT_VERSION, "family": self.family,
            "upstream_version": self.upstream_version, "sample_rate": self.sample_rate,
            "model_fingerprint": self.model_fingerprint, "model": self.model, "defaults": self.defaults,
            "sources": self.sources, "graphs": {n: g.to_json() for n, g in self.graphs.items()},
            "symbols": self.symbols, "files": self.files, "extra": self.extra,
        }

    @classmethod
    def from_json(cls, data: dict, source: Path) -> "Manifest":
        if not isinstance(data, dict):
            raise BundleError(f"{source}: corrupt manifest (expected a JSON object, found {_kind(data)})")
        if data.get("format") != FORMAT:
            raise BundleError(f"{source}: not an edgevoice bundle manifest")
        if data.get("format_version") != FORMAT_VERSION or isinstance(data.get("format_version"), bool):
            raise BundleError(f"{source}: bundle format version {_short(data.get('format_version'))} is not "
                              f"supported (this edgevoice reads version {FORMAT_VERSION}); re-export the model")
        try:
            return cls._from_json(data)
        except BundleError as exc:
            raise BundleError(f"{source}: corrupt manifest ({exc})") from None
        except (KeyError, TypeError, ValueError, AttributeError, RecursionError) as exc:  # belt and braces
            raise BundleError(f"{source}: corrupt manifest ({type(exc).__name__}: {_short(str(exc), 200)})") from None

    @classmethod
    def _from_json(cls, data: dict) -> "Manifest":
        for key in ("family", "upstream_version", "sample_rate", "symbols", "model", "graphs", "defaults",
                    "sources"):
            if key not in data:
                raise BundleError(f"no {key!r}")
        family = _expect(data["family"], str, "family", "a string")
        upstream_version = _expect(data["upstream_version"], str, "upstream_version", "a string")
        sample_rate = _expect(data["sample_rate"], int, "sample_rate", "an integer")
        if not 0 < sample_rate <= MAX_SAMPLE_RATE:
            raise BundleError(f"sample_rate must be 1…{MAX_SAMPLE_RATE} Hz, found {sample_rate}")
        symbols = _expect(data["symbols"], list, "symbols", "a list")
        for symbol in symbols:
            _expect(symbol, str, "each symbol", "a string")
        model = _expect(data["model"], dict, "model", "an object")
        defaults = _expect(data["defaults"], dict, "defaults", "an object")
        extra = _expect(data.get("extra", {}), dict, "extra", "an object")
        sources = _expect(data["sources"], dict, "sources", "an object")
        for name, info in sources.items():
            _expect(info, dict, f"source {_short(name)}", "an object")
            _expect(info.get("sha256"), str, f"source {_short(name)} sha256", "a string")
            if "file" in info and (path_problem(info["file"]) or "/" in info["file"]):
                # a checkpoint's name, looked up beside the user's checkpoints (torch reference backend)
                raise BundleError(f"source {_short(name)} file {_short(info['file'])} is not a plain file name")
        files = _expect_str_dict(data.get("files", {}), "files")
        for rel, digest in files.items():
            _check_rel(rel, "file")
            if not _SHA256.fullmatch(digest):
                raise BundleError(f"file {rel} has sha256 {_short(digest)}, not 64 lowercase hex digits")
        graphs = _expect(data["graphs"], dict, "graphs", "an object")
        manifest = cls(family, upstream_version, sample_rate, list(symbols), dict(model),
                       {n: GraphEntry.from_json(n, g) for n, g in graphs.items()}, dict(defaults), dict(sources),
                       files, dict(extra))
        for what, rel in _model_files(manifest.model):
            _check_rel(rel, what)
        return manifest


@dataclass
class Bundle:
    path: Path
    manifest: Manifest
    # files whose sha256 is checked when `file()` first hands them out (lazy verification); already checked ones
    unverified: set = field(default_factory=set)

    @classmethod
    def load(cls, path: str | Path, verify: bool = True, lazy: bool = False) -> "Bundle":
        """Read and validate the manifest, check every file it names (paths, then sha256 when `verify`). With
        `lazy`, each file's sha256 is checked when it is first read through `file()` instead: a runtime then
        hashes only what its backend opens (an OpenVINO run never reads the ONNX files)."""
        path = Path(path)
        manifest_path = path / MANIFEST
        if not path.is_dir():
            raise BundleError(f"{path}: not a folder; a bundle is the folder `export` wrote" if path.exists()
                              else f"{path}: bundle folder not found")
        if not _is_regular(manifest_path):
            raise BundleError(f"{path}: no {MANIFEST}; not an edgevoice bundle")
        try:
            raw = manifest_path.read_bytes()
        except OSError as exc:
            raise BundleError(f"{manifest_path}: cannot read ({exc.strerror or exc})") from None
        if verify:
            _verify_manifest_hash(path, raw)
        try:
            data = json.loads(raw.decode("utf-8"))
        except (ValueError, UnicodeDecodeError, RecursionError) as exc:
            raise BundleError(f"{manifest_path}: corrupt manifest ({_short(str(exc), 200)})") from None
        bundle = cls(path, Manifest.from_json(data, manifest_path))
        bundle.check_files(verify_hashes=verify and not lazy)
        if verify and lazy:
            bundle.unverified = set(bundle.manifest.files)
        return bundle

    def check_files(self, verify_hashes: bool = True) -> None:
        """Every named file: a plain path, listed in `files`, a regular file reached without symlinks; all of that
        is checked before any file is opened, then (with `verify_hashes`) each listed file's sha256."""
        files = self.manifest.files
        named = self.manifest.named_files()
        for what, rel in named:
            try:
                _check_rel(rel, what)
            except BundleError as exc:
                raise BundleError(f"{self.path}: {exc}") from None
        for what, rel in named:
            if rel not in files:
                raise BundleError(f"{self.path}: {what} {rel} is not listed in the manifest")
        paths = {rel: self._checked_path(rel) for rel in files}
        if verify_hashes:
            for rel in files:
                self._verify(rel, paths[rel])

    def _verify(self, rel: str, path: Path) -> None:
        if sha256_file(path) != self.manifest.files[rel]:
            raise BundleError(f"{self.path}: {rel} does not match its sha256 in the manifest (corrupt bundle)")
        self.unverified.discard(rel)

    def _checked_path(self, rel: str) -> Path:
        """The path of listed file `rel`, after checking that no step of it is a symlink and it is a regular
        file inside the bundle folder."""
        _check_rel(rel, "file")
        current = self.path
        parts = rel.split("/")
        for index, part in enumerate(parts):
            current = current / part
            try:
                mode = os.lstat(current).st_mode
            except (FileNotFoundError, NotADirectoryError):
                raise BundleError(f"{self.path}: missing file {rel} (bundle incomplete or corrupt)") from None
            except OSError as exc:
                raise BundleError(f"{self.path}: cannot read {rel} ({exc.strerror or exc})") from None
            if stat.S_ISLNK(mode):
                raise BundleError(f"{self.path}: file {rel} goes through the symlink {'/'.join(parts[:index + 1])}; "
                                  "a bundle may not contain links")
            if index < len(parts) - 1 and not stat.S_ISDIR(mode):
                raise BundleError(f"{self.path}: missing file {rel} (bundle incomplete or corrupt)")
        if not stat.S_ISREG(mode):
            raise BundleError(f"{self.path}: file {rel} is not a regular file")
        try:
            current.resolve(strict=True).relative_to(self.path.resolve(strict=True))
        except (OSError, ValueError):
            raise BundleError(f"{self.path}: file {rel} lies outside the bundle folder") from None
        return current

    def graph(self, name: str) -> GraphEntry:
        try:
            return self.manifest.graphs[name]
        except (KeyError, TypeError):
            raise BundleError(f"{self.path}: bundle has no {name!r} graph") from None

    def unhashed(self, rel: str) -> Path:
        """A listed file's path (no links, inside the folder) to read a fact from without hashing it first: a
        lazily verified bundle hashes a graph when an engine opens it, and a fact read here is only compared."""
        if not isinstance(rel, str) or rel not in self.manifest.files:
            raise BundleError(f"{self.path}: {_short(rel)} is not a file listed in the bundle manifest")
        return self._checked_path(rel)

    def ir(self, xml: str) -> Path:
        """The OpenVINO IR `xml` (a listed file), its weights beside it checked first where they are listed or
        present: OpenVINO opens them itself, by name, so an unlisted or linked `.bin` would be read from wherever it
        points."""
        path = self.file(xml)
        weights = ir_weights(xml)
        if weights and (weights in self.manifest.files or os.path.lexists(self.path / weights)):
            self.file(weights)
        return path

    def file(self, rel: str) -> Path:
        """The path of a file the manifest lists in `files` (re-checked: no symlinks, inside the folder)."""
        if isinstance(rel, os.PathLike):
            rel = os.fspath(rel)
        if not isinstance(rel, str) or rel not in self.manifest.files:
            raise BundleError(f"{self.path}: {_short(rel)} is not a file listed in the bundle manifest")
        path = self._checked_path(rel)
        if rel in self.unverified:
            self._verify(rel, path)
        return path

    @property
    def bundle_hash(self) -> str:
        """sha256 of the manifest: identifies this exact bundle (precision variant included)."""
        return sha256_file(self.path / MANIFEST)


def _is_regular(path: Path) -> bool:
    """A regular file that is not a symlink."""
    try:
        return stat.S_ISREG(os.lstat(path).st_mode)
    except OSError:
        return False


def ir_weights(xml: str) -> str | None:
    """The weights file OpenVINO reads beside the IR `xml` (same name, `.bin`)."""
    return xml[: -len(".xml")] + ".bin" if xml.endswith(".xml") else None


def _verify_manifest_hash(folder: Path, raw: bytes) -> None:
    hash_path = folder / MANIFEST_HASH
    try:
        mode = os.lstat(hash_path).st_mode
    except FileNotFoundError:
        return  # written before manifest.sha256 existed
    except OSError as exc:
        raise BundleError(f"{hash_path}: cannot read ({exc.strerror or exc})") from None
    if not stat.S_ISREG(mode):
        raise BundleError(f"{hash_path}: not a regular file (a bundle may not contain links)")
    try:
        text = hash_path.read_bytes()[:4096].decode("ascii")
    except (OSError, UnicodeDecodeError):
        text = ""
    fields = text.split()
    if not fields or not _SHA256.fullmatch(fields[0]):
        raise BundleError(f"{hash_path}: malformed (expected the sha256 of {MANIFEST} in sha256sum format)")
    if hashlib.sha256(raw).hexdigest() != fields[0]:
        raise BundleError(f"{folder / MANIFEST}: corrupt manifest (it does not match {MANIFEST_HASH}: edited or "
                          "damaged after export)")


def accuracy_summary(accuracy: dict, method: str = "") -> str:
    """One line of a graph's measured error against FP32 (worst held-out figures); with none recorded, whether it
    was left in FP32 (`method` "float") or not measured (no held-out call reached it)."""
    if not accuracy:
        return "unchanged (FP32)" if method == "float" else "not measured (no held-out call reached it)"
    parts = []
    for output, stats in accuracy.items():
        if not isinstance(stats, dict):
            continue
        if "cosine" in stats:
            parts.append(f"{output} cos {stats['cosine']['worst']:.5f} rel-L2 {stats['rel_l2']['worst']:.4f}")
        if "top1_agreement" in stats:
            parts.append(f"top-1 {stats['top1_agreement']:.3f} top-5 {stats['top5_overlap']:.3f}")
        if "snr_db" in stats:
            parts.append(f"SNR {stats['snr_db']['worst']:.1f} dB mel-L1 {stats['log_mel_l1']['worst']:.4f}")
        if "agreement" in stats:
            parts.append(f"{output} agree {stats['agreement']['worst']:.3f}")
    return "; ".join(parts) + f" (worst of {accuracy.get('items', '?')} held-out items)"


def write_manifest(folder: Path, manifest: Manifest) -> None:
    """Hash every file in `folder` (recursively) into the manifest and write it, with `manifest.sha256`.
    A symlink or a file name a bundle may not carry is refused here rather than by every later load."""
    folder = Path(folder)
    files = {}
    for root, dirs, names in os.walk(folder):
        for name in dirs + names:
            entry = Path(root) / name
            rel = entry.relative_to(folder).as_posix()
            if entry.is_symlink():
                raise BundleError(f"{folder}: {rel} is a symlink; a bundle may not contain links")
            if name in names and rel not in (MANIFEST, MANIFEST_HASH):
                _check_rel(rel, f"{folder}: file")
                files[rel] = entry
    manifest.files = {rel: sha256_file(files[rel]) for rel in sorted(files, key=lambda r: PurePosixPath(r).parts)}
    raw = json.dumps(manifest.to_json(), indent=1, ensure_ascii=False).encode("utf-8")
    (folder / MANIFEST).write_bytes(raw)
    (folder / MANIFEST_HASH).write_text(f"{hashlib.sha256(raw).hexdigest()}  {MANIFEST}\n", encoding="ascii")


@contextmanager
def _writer_lock(target: Path) -> Iterator[None]:
    """Hold `.<name>.lock` beside `target` for the whole write: a second writer of the same folder fails at once."""
    import fcntl

    lock_path = target.with_name(f".{target.name}.lock")
    try:
        handle = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise BundleError(f"{target}: cannot write ({exc.strerror or exc})") from None
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise BundleError(f"{target}: another edgevoice process is writing it; wait for it to finish") from None
        if os.fstat(handle).st_ino != os.stat(lock_path).st_ino:  # the lock file was replaced under us
            raise BundleError(f"{target}: another edgevoice process is writing it; wait for it to finish")
        try:
            yield
        finally:
            os.unlink(lock_path)  # still holding the lock: nobody else can be using this file
    finally:
        os.close(handle)


def _check_replaceable(target: Path, keep: Iterable[str | Path]) -> None:
    """`--overwrite` replaces a bundle and nothing else: a probe pointed --out at the folder holding the checkpoints
    (and at the folder above the source bundle) and lost them."""
    manifest = target / MANIFEST
    try:
        is_bundle = (not target.is_symlink() and target.is_dir() and _is_regular(manifest)
                     and json.loads(manifest.read_bytes()).get("format") == FORMAT)
    except (OSError, ValueError, UnicodeDecodeError, AttributeError, RecursionError):
        is_bundle = False  # unreadable, not JSON, or JSON that is not an object: not one of ours
    if not is_bundle:
        raise BundleError(f"{target}: exists and is not an edgevoice bundle; --overwrite replaces only bundles "
                          "(move it away or choose another --out)")
    inside = target.resolve()
    for path in keep:
        resolved = Path(path).resolve()
        if resolved == inside or inside in resolved.parents:
            raise BundleError(f"{target}: holds the input {path}; choose another --out")


def _remove_stale_partials(target: Path) -> None:
    """Leftovers of writers that died (killed exports); only the lock holder may write, so none is live."""
    # the name escaped: `--out 'x[ab]'` must not match (and delete) another writer's `.xa.*.partial`
    for stale in target.parent.glob(f".{glob.escape(target.name)}.*.partial"):
        if stale.is_dir() and not stale.is_symlink():
            shutil.rmtree(stale, ignore_errors=True)


@contextmanager
def atomic_folder(target: str | Path, overwrite: bool = False, keep: Iterable[str | Path] = ()) -> Iterator[Path]:
    """Yield a temporary sibling folder; on success it replaces `target`, on error it is removed. A lock beside
    `target` makes concurrent writers of one folder fail cleanly, and partial folders of dead writers are removed.
    With `overwrite` only an existing bundle is replaced, and never one that holds a path in `keep` (the inputs)."""
    target = Path(target)
    if not target.name or target.name in (".", ".."):  # "", "." and "/" name no folder that could be replaced
        raise BundleError(f"--out {str(target) or '(empty)'}: give the name of a new folder for the bundle")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise BundleError(f"{target}: cannot write ({exc.strerror or exc})") from None
    with _writer_lock(target):
        if target.exists() or target.is_symlink():
            if not overwrite:
                raise BundleError(f"{target}: already exists (pass --overwrite to replace it)")
            _check_replaceable(target, keep)
        _remove_stale_partials(target)
        temp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".partial", dir=target.parent))
        try:
            yield temp
            os.chmod(temp, 0o777 & ~current_umask())  # mkdtemp makes 0700: a bundle should read like any folder
            if target.exists():
                old = target.with_name(f".{target.name}.old")
                shutil.rmtree(old, ignore_errors=True)
                os.replace(target, old)
                os.replace(temp, target)
                shutil.rmtree(old, ignore_errors=True)
            else:
                os.replace(temp, target)
        finally:
            if temp.exists():
                shutil.rmtree(temp, ignore_errors=True)
