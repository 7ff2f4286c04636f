"""Our PyTorch reference behind the runtime's backend interface, so `Synthesizer` (and `edgevoice parity`) can run
the very graph modules that were exported, eagerly in torch, on the same host code as OpenVINO and onnxruntime."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from edgevoice.bundle import Bundle
from edgevoice.errors import BundleError

from .exporter import ModelSet


class TorchBackend:
    name = "pytorch"
    file_format = "torch"  # no bundle file: the Synthesizer then decodes through gpt_step's explicit caches

    def __init__(self, models: ModelSet, threads: int | None = None):
        if threads:
            torch.set_num_threads(threads)
        self._specs = {spec.name: spec for spec in models.graph_specs()}

    @classmethod
    def from_folder(cls, bundle: Bundle, folder: str | Path, threads: int | None = None) -> "TorchBackend":
        """Load the checkpoints `bundle` was exported from, found in `folder` by the names the manifest records,
        and refuse them unless their hashes are the recorded ones."""
        folder = Path(folder)
        sources = bundle.manifest.sources
        paths = {name: folder / info["file"] for name, info in sources.items()}
        missing = [str(p) for p in paths.values() if not p.exists()]
        if missing:
            raise BundleError(f"checkpoints of this bundle not found: {', '.join(missing)}")
        models = ModelSet.load(paths["gpt"], paths["sovits"], paths["hubert"], paths.get("bert"), paths.get("sv"))
        changed = [n for n, info in models.sources.items() if info["sha256"] != sources[n]["sha256"]]
        if changed:
            raise BundleError(f"{folder}: {', '.join(changed)} differ from the checkpoints this bundle was made from")
        return cls(models, threads)

    def session(self, bundle: Bundle, graph_name: str) -> "TorchSession":
        if graph_name not in self._specs:
            raise BundleError(f"the PyTorch reference has no graph {graph_name!r}")
        return TorchSession(self._specs[graph_name])


class TorchSession:
    def __init__(self, spec):
        self._spec = spec
        self.input_names = [t.name for t in spec.inputs]
        self.output_names = [t.name for t in spec.outputs]

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        inputs = [torch.from_numpy(np.ascontiguousarray(feeds[name])) for name in self.input_names]
        with torch.no_grad():
            outputs = self._spec.module(*inputs)
        outputs = outputs if isinstance(outputs, (tuple, list)) else (outputs,)
        return {name: out.numpy() for name, out in zip(self.output_names, outputs)}
