"""The model bundle: a folder of graphs plus `manifest.json`, which says everything a runtime needs.

```
bundle/
  manifest.json          format version, model family/version, sample rate, symbols, graphs, hashes, options
  <graph>.xml/.bin       OpenVINO IR of each graph
  <graph>.onnx           the ONNX each IR was converted from (onnxruntime CPU/GPU backends)
  bert_vocab.txt         tokenizer vocabulary when the bundle has a `bert` graph
```

Bundles are written into a temporary sibling folder and renamed into place, so a reader never sees half a
bundle; `Bundle.load` checks the format version and (optionally) every file's sha256.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from .errors import BundleError

FORMAT = "edgevoice-bundle"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"


def sha256_file(path: Path, chunk: int = 1 << 22) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


@dataclass(frozen=True)
class TensorSpec:
    name: str
    dtype: str  # numpy dtype name: "float32", "int64"
    shape: list  # ints for fixed axes, strings for named dynamic axes

    def to_json(self) -> dict:
        return {"name": self.name, "dtype": self.dtype, "shape": list(self.shape)}

    @classmethod
    def from_json(cls, data: dict) -> "TensorSpec":
        return cls(data["name"], data["dtype"], list(data["shape"]))


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

    def to_json(self) -> dict:
        data = {
            "files": self.files, "precision": self.precision,
            "inputs": [t.to_json() for t in self.inputs], "outputs": [t.to_json() for t in self.outputs],
            "runtime_options": self.runtime_options, "accuracy": self.accuracy,
        }
        if self.states:
            data["states"] = self.states
        return data

    @classmethod
    def from_json(cls, name: str, data: dict) -> "GraphEntry":
        return cls(name, dict(data["files"]), data["precision"],
                   [TensorSpec.from_json(t) for t in data["inputs"]],
                   [TensorSpec.from_json(t) for t in data["outputs"]],
                   dict(data.get("runtime_options", {})), dict(data.get("accuracy", {})),
                   dict(data.get("states", {})))


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
        if data.get("format") != FORMAT:
            raise BundleError(f"{source}: not an edgevoice bundle manifest")
        if data.get("format_version") != FORMAT_VERSION:
            raise BundleError(f"{source}: bundle format version {data.get('format_version')} is not supported "
                              f"(this edgevoice reads version {FORMAT_VERSION}); re-export the model")
        try:
            return cls(data["family"], data["upstream_version"], int(data["sample_rate"]), list(data["symbols"]),
                       dict(data["model"]), {n: GraphEntry.from_json(n, g) for n, g in data["graphs"].items()},
                       dict(data["defaults"]), dict(data["sources"]), dict(data.get("files", {})),
                       dict(data.get("extra", {})))
        except (KeyError, TypeError, ValueError) as exc:
            raise BundleError(f"{source}: corrupt manifest ({type(exc).__name__}: {exc})") from None


@dataclass
class Bundle:
    path: Path
    manifest: Manifest

    @classmethod
    def load(cls, path: str | Path, verify: bool = True) -> "Bundle":
        path = Path(path)
        manifest_path = path / MANIFEST
        if not path.is_dir():
            raise BundleError(f"{path}: bundle folder not found")
        if not manifest_path.is_file():
            raise BundleError(f"{path}: no {MANIFEST}; not an edgevoice bundle")
        try:
            data = json.loads(manifest_path.read_text(encoding="utf-8"))
        except (ValueError, UnicodeDecodeError) as exc:
            raise BundleError(f"{manifest_path}: corrupt manifest ({exc})") from None
        bundle = cls(path, Manifest.from_json(data, manifest_path))
        bundle.check_files(verify_hashes=verify)
        return bundle

    def check_files(self, verify_hashes: bool = True) -> None:
        for name, graph in self.manifest.graphs.items():
            for file in graph.files.values():
                if file not in self.manifest.files:
                    raise BundleError(f"{self.path}: graph {name!r} file {file} is not listed in the manifest")
        for rel, expected in self.manifest.files.items():
            file = self.path / rel
            if not file.is_file():
                raise BundleError(f"{self.path}: missing file {rel} (bundle incomplete or corrupt)")
            if verify_hashes and sha256_file(file) != expected:
                raise BundleError(f"{self.path}: {rel} does not match its sha256 in the manifest (corrupt bundle)")

    def graph(self, name: str) -> GraphEntry:
        try:
            return self.manifest.graphs[name]
        except KeyError:
            raise BundleError(f"{self.path}: bundle has no {name!r} graph") from None

    def file(self, rel: str) -> Path:
        return self.path / rel

    @property
    def bundle_hash(self) -> str:
        """sha256 of the manifest: identifies this exact bundle (precision variant included)."""
        return sha256_file(self.path / MANIFEST)


def accuracy_summary(accuracy: dict) -> str:
    """One line of a quantised graph's measured error against FP32 (worst held-out figures)."""
    if not accuracy:
        return "unchanged (FP32)"
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
    """Hash every file in `folder` (recursively) into the manifest and write it."""
    manifest.files = {
        str(p.relative_to(folder)): sha256_file(p)
        for p in sorted(folder.rglob("*")) if p.is_file() and p.name != MANIFEST
    }
    (folder / MANIFEST).write_text(json.dumps(manifest.to_json(), indent=1, ensure_ascii=False), encoding="utf-8")


@contextmanager
def atomic_folder(target: str | Path, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary sibling folder; on success it replaces `target`, on error it is removed."""
    target = Path(target)
    if target.exists() and not overwrite:
        raise BundleError(f"{target}: already exists (pass --overwrite to replace it)")
    target.parent.mkdir(parents=True, exist_ok=True)
    temp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".partial", dir=target.parent))
    try:
        yield temp
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
