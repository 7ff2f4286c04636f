"""Export EmotiVoice, exactly as a user has it after cloning upstream and downloading its checkpoints, to a bundle.

Steps: resolve upstream's layout (`checkpoints.EmotiVoiceFiles`) → load every file with the restricted loader into
our PyTorch reference (`reference.EmotiVoiceModel`) → cut it into four graphs (`graphs.py`) → ONNX / OpenVINO IR,
each checked against PyTorch on every example (`edgevoice_export.graph_export`) → the text assets the runtime needs
(symbol table, speaker list, English lexicon, SimBERT vocabulary) copied in, so the bundle alone speaks.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import torch

from edgevoice.bundle import Manifest, atomic_folder, sha256_file
from edgevoice.emotivoice.options import FAMILY, SynthesisOptions

from ..graph_export import (ExportOptions, ExportReport, check_formats, export_graphs,
                            folder_hash, input_paths, write_checked_manifest)
from .checkpoints import EmotiVoiceFiles
from .reference import EmotiVoiceModel

UPSTREAM_VERSION = "joint"  # the released am+vocoder joint model (prompt_tts_open_source_joint)
# bundle file names of the text assets the runtime reads
SPEAKERS_FILE, LEXICON_FILE, BERT_VOCAB_FILE = "speakers.txt", "lexicon.txt", "bert_vocab.txt"
# CLI names of the files that can be given one by one → `EmotiVoiceFiles.from_root` keywords
_NAMED = {"am": "am_checkpoint", "style": "style_checkpoint", "bert": "bert_dir", "text": "text_dir",
          "lexicon": "lexicon", "config": "config_yaml"}


def resolve_files(root: str | Path | None, named: dict[str, Path]) -> EmotiVoiceFiles:
    """Upstream's layout under `root`, with any file named explicitly (`named`: am, style, bert, text, lexicon,
    config) taking precedence."""
    return EmotiVoiceFiles.from_root(root, **{_NAMED[k]: v for k, v in named.items()})


def source_hashes(files: EmotiVoiceFiles) -> dict:
    def entry(path: Path) -> dict:
        return {"file": path.name, "sha256": folder_hash(path) if path.is_dir() else sha256_file(path)}

    return {"am": entry(files.am_checkpoint), "style": entry(files.style_checkpoint), "bert": entry(files.bert_dir),
            "config": entry(files.config_yaml), "tokenlist": entry(files.tokenlist),
            "speakers": entry(files.speaker2), "lexicon": entry(files.lexicon)}


def export_emotivoice(files: EmotiVoiceFiles, options: ExportOptions) -> ExportReport:
    """Export one EmotiVoice model set into a bundle; nothing is written unless every graph passes its check."""
    start = time.perf_counter()
    check_formats(options.formats)
    torch.set_num_threads(options.threads)
    model = EmotiVoiceModel.load(files)
    model.vocoder.check_reach()  # the context the manifest gives the runtime's windows (`vocoder_context_frames`)
    with atomic_folder(options.out, overwrite=options.overwrite, keep=input_paths(files)) as folder:
        graphs, parity = export_graphs(model.graph_specs(), folder, options.formats, options.threads,
                                       options.progress)
        shutil.copyfile(files.speaker2, folder / SPEAKERS_FILE)
        shutil.copyfile(files.lexicon, folder / LEXICON_FILE)
        shutil.copyfile(files.bert_dir / "vocab.txt", folder / BERT_VOCAB_FILE)
        facts = {**model.facts(), "speakers_file": SPEAKERS_FILE, "lexicon_file": LEXICON_FILE,
                 "bert_vocab_file": BERT_VOCAB_FILE}
        manifest = Manifest(
            family=FAMILY, upstream_version=UPSTREAM_VERSION, sample_rate=int(facts["sample_rate"]),
            symbols=list(model.tokens), model=facts, graphs=graphs,
            defaults=SynthesisOptions().to_manifest(), sources=source_hashes(files),
        )
        write_checked_manifest(folder, manifest)
    return ExportReport(Path(options.out), time.perf_counter() - start, parity)
