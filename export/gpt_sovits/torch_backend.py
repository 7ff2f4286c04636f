"""The GPT-SoVITS PyTorch reference as a backend (see `edgevoice_export.torch_backend`)."""

from __future__ import annotations

from pathlib import Path

from edgevoice.bundle import Bundle
from edgevoice.errors import BundleError

from ..torch_backend import GraphSpecBackend, check_sources
from .exporter import ModelSet


class TorchBackend(GraphSpecBackend):
    def __init__(self, models: ModelSet, threads: int | None = None):
        super().__init__(models.graph_specs(), threads)

    @classmethod
    def from_folder(cls, bundle: Bundle, folder: str | Path, threads: int | None = None) -> "TorchBackend":
        """Load the checkpoints `bundle` was exported from, found in `folder` by the names the manifest records,
        and refuse them unless their hashes are the recorded ones."""
        folder = Path(folder)
        paths = {name: folder / info["file"] for name, info in bundle.manifest.sources.items()}
        missing = [str(p) for p in paths.values() if not p.exists()]
        if missing:
            raise BundleError(f"checkpoints of this bundle not found: {', '.join(missing)}")
        models = ModelSet.load(paths["gpt"], paths["sovits"], paths["hubert"], paths.get("bert"), paths.get("sv"))
        check_sources(bundle, models.sources, folder)
        return cls(models, threads)
