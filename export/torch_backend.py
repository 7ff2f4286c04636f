"""Our PyTorch reference behind the runtime's backend interface, so a family's `Synthesizer` (and `edgevoice
parity`) can run the very graph modules that were exported, eagerly in torch, on the same host code as OpenVINO and
onnxruntime. Each family adds `from_folder` (find and verify its upstream files) in `<family>/torch_backend.py`."""

from __future__ import annotations

import numpy as np
import torch

from edgevoice.bundle import Bundle
from edgevoice.errors import BundleError


class GraphSpecBackend:
    name = "pytorch"
    file_format = "torch"  # no bundle file

    def __init__(self, specs: list, threads: int | None = None):
        if threads:
            torch.set_num_threads(threads)
        self._specs = {spec.name: spec for spec in specs}

    def runs(self, graph) -> bool:
        """Every graph it has a module for, except stateful ones (their cache lives in an OpenVINO request):
        GPT-SoVITS then decodes through gpt_step's explicit caches."""
        return graph.name in self._specs and not graph.states

    def session(self, bundle: Bundle, graph_name: str) -> "TorchSession":
        if graph_name not in self._specs:
            raise BundleError(f"the PyTorch reference has no graph {graph_name!r}")
        return TorchSession(self._specs[graph_name])


def check_sources(bundle: Bundle, loaded: dict, folder) -> None:
    """Refuse reference files whose hashes differ from those the bundle records."""
    recorded = bundle.manifest.sources
    changed = [n for n, info in loaded.items() if n in recorded and info["sha256"] != recorded[n]["sha256"]]
    if changed:
        raise BundleError(f"{folder}: {', '.join(changed)} differ from the files this bundle was made from")


class TorchSession:
    def __init__(self, spec):
        self._spec = spec
        spec.checked_against.eval()
        self.input_names = [t.name for t in spec.inputs]
        self.output_names = [t.name for t in spec.outputs]

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        # an input the caller does not feed is left to the module's default (e.g. BERT's mask, for bundles from
        # before it); inputs are positional, so only trailing ones may be missing
        inputs = [torch.from_numpy(np.ascontiguousarray(feeds[name])) for name in self.input_names if name in feeds]
        with torch.no_grad():
            outputs = self._spec.checked_against(*inputs)
        outputs = outputs if isinstance(outputs, (tuple, list)) else (outputs,)
        return {name: out.numpy() for name, out in zip(self.output_names, outputs)}
