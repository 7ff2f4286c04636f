"""Export MetaVoice-1B, from upstream's own checkpoint files, to a bundle.

Steps: the four files (`checkpoints.MetaVoiceFiles`) → restricted loading into our PyTorch reference
(`reference.MetaVoiceModel`) → six graphs (`graphs.py`, `encodec.py`) → ONNX / OpenVINO IR, each checked against
PyTorch at several input lengths (`edgevoice_export.graph_export`) → the tokenizer table as JSON, so the bundle
alone speaks. Nothing is ever fetched from a hub.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import torch

from edgevoice.bundle import Manifest, atomic_folder, sha256_file
from edgevoice.metavoice.options import FAMILY, SynthesisOptions

from ..graph_export import (ExportOptions, ExportReport, check_formats, export_graphs,
                            input_paths, write_checked_manifest)
from .checkpoints import MetaVoiceFiles
from .reference import MetaVoiceModel

UPSTREAM_VERSION = "metavoice-1b-v0.1"
TOKENIZER_FILE = "tokenizer.json"


def source_hashes(files: MetaVoiceFiles) -> dict:
    named = {"first_stage": files.first_stage, "second_stage": files.second_stage,
             "speaker_encoder": files.speaker_encoder, "encodec": files.encodec}
    if files.encodec_config is not None:
        named["encodec_config"] = files.encodec_config
    return {name: {"file": path.name, "sha256": sha256_file(path)} for name, path in named.items()}


def export_metavoice(files: MetaVoiceFiles, options: ExportOptions) -> ExportReport:
    """Export one MetaVoice model set into a bundle; nothing is written unless every graph passes its check."""
    start = time.perf_counter()
    check_formats(options.formats)
    torch.set_num_threads(options.threads)
    model = MetaVoiceModel.load(files)
    facts = model.facts()
    with atomic_folder(options.out, overwrite=options.overwrite, keep=input_paths(files)) as folder:
        graphs, parity = export_graphs(model.graph_specs(), folder, options.formats, options.threads,
                                       options.progress)
        (folder / TOKENIZER_FILE).write_text(json.dumps(model.tokenizer_json()), encoding="utf-8")
        manifest = Manifest(
            family=FAMILY, upstream_version=UPSTREAM_VERSION, sample_rate=int(facts["encodec"]["sample_rate"]),
            symbols=[], model={**facts, "tokenizer_file": TOKENIZER_FILE}, graphs=graphs,
            defaults=SynthesisOptions().to_manifest(), sources=source_hashes(files),
        )
        write_checked_manifest(folder, manifest)
    return ExportReport(Path(options.out), time.perf_counter() - start, parity)
