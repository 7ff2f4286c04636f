"""The EmotiVoice PyTorch reference as a backend (see `edgevoice_export.torch_backend`): `edgevoice parity
--pytorch-models ROOT` runs it first, from upstream's folder, as the reference."""

from __future__ import annotations

from pathlib import Path

from edgevoice.bundle import Bundle

from ..torch_backend import GraphSpecBackend, check_sources
from .exporter import resolve_files, source_hashes
from .reference import EmotiVoiceModel


class TorchBackend(GraphSpecBackend):
    @classmethod
    def from_folder(cls, bundle: Bundle, folder: str | Path, threads: int | None = None) -> "TorchBackend":
        """Upstream's root the bundle was exported from; files whose hashes differ from the recorded ones are
        refused."""
        files = resolve_files(folder, {})
        check_sources(bundle, source_hashes(files), folder)
        return cls(EmotiVoiceModel.load(files).graph_specs(), threads)
