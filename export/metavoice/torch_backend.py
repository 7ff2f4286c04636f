"""The MetaVoice PyTorch reference as a backend (see `edgevoice_export.torch_backend`): `edgevoice parity
--pytorch-models DIR` runs it first, from the folder of upstream's files, as the reference."""

from __future__ import annotations

from pathlib import Path

from edgevoice.bundle import Bundle

from ..torch_backend import GraphSpecBackend, check_sources
from .checkpoints import MetaVoiceFiles
from .exporter import source_hashes
from .reference import MetaVoiceModel


class TorchBackend(GraphSpecBackend):
    @classmethod
    def from_folder(cls, bundle: Bundle, folder: str | Path, threads: int | None = None) -> "TorchBackend":
        """A folder with upstream's files under their names (first_stage.pt, second_stage.pt, speaker_encoder.pt,
        encodec_24khz*.th/.pt, encodec_config.json if not the released model); files whose hashes differ from the
        ones the bundle records are refused."""
        files = MetaVoiceFiles.from_dir(folder)
        check_sources(bundle, source_hashes(files), folder)
        return cls(MetaVoiceModel.load(files).graph_specs(), threads)
