"""Export a GPT-SoVITS model set (GPT .ckpt, SoVITS .pth, HuBERT and BERT folders) to an edgevoice bundle.

Steps: load every file with the restricted loader → build our PyTorch reference → cut it into graphs →
ONNX (dynamo, opset 23) → OpenVINO IR → check both against PyTorch on every example length → manifest.
The bundle is assembled in a temporary folder and renamed into place only when everything passed.
"""

from __future__ import annotations

import copy
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from edgevoice.bundle import Manifest, atomic_folder
from edgevoice.gpt_sovits.frontend.symbols import symbol_table
from edgevoice.gpt_sovits.options import FAMILY, SynthesisOptions
from edgevoice.gpt_sovits.reference import HUBERT_RATE
from edgevoice.gpt_sovits.spectrogram import FBANK_BINS, FBANK_RATE

from ..checkpoints import CheckpointError
from .checkpoints import load_gpt_checkpoint, load_sovits_checkpoint, load_sv_checkpoint
from ..conv_rewrite import rewrite_conv_transpose
from ..graphs import GraphSpec
from .graphs import bert_graph, gpt_graphs, sovits_graphs
from .models.gpt import Text2SemanticDecoder
from .models.sovits import PRO_VERSIONS, SoVITS
from .models.sv import ERes2NetV2Trunk
from .models.ssl import BertPhoneFeatures, HubertContent
from ..graph_export import (ExportOptions, ExportReport, check_formats, export_graphs,
                            folder_hash, input_paths, write_checked_manifest)

@dataclass
class ModelSet:
    """The reference models built from one set of upstream files."""

    gpt: Text2SemanticDecoder
    sovits: SoVITS
    hubert: HubertContent
    bert: BertPhoneFeatures | None
    sources: dict
    gpt_config: dict
    sovits_config: dict
    bert_dir: Path | None
    sv: ERes2NetV2Trunk | None = None

    @classmethod
    def load(cls, gpt_path, sovits_path, hubert_dir, bert_dir=None, sv_path=None) -> "ModelSet":
        gpt_ckpt = load_gpt_checkpoint(gpt_path)
        sovits_ckpt = load_sovits_checkpoint(sovits_path)
        # the GPT only knows its phone table: v1 (512 rows) pairs with v1, v2 with v2, v2Pro and v2ProPlus
        if gpt_ckpt.version != ("v1" if sovits_ckpt.version == "v1" else "v2"):
            raise CheckpointError(f"GPT is {gpt_ckpt.version} but SoVITS is {sovits_ckpt.version}: use a matching pair")
        sv = None
        if sovits_ckpt.version in PRO_VERSIONS:
            if sv_path is None:
                raise CheckpointError(f"SoVITS {sovits_ckpt.version} needs the speaker-verification model: pass --sv "
                                      "pretrained_eres2netv2w24s4ep4.ckpt (upstream's pretrained_models/sv/)")
            sv_emb = sovits_ckpt.weights.get("sv_emb.weight")
            if sv_emb is None or sv_emb.ndim != 2:  # a v2 file under a Pro version marker, say
                raise CheckpointError(f"{sovits_ckpt.path}: marked GPT-SoVITS {sovits_ckpt.version} but it has no "
                                      "speaker projection (sv_emb.weight): not a v2Pro/v2ProPlus SoVITS")
            sv_ckpt = load_sv_checkpoint(sv_path)
            sv = ERes2NetV2Trunk.from_weights(sv_ckpt.weights, sv_path)
            expected = int(sv_emb.shape[1])
            if sv.embedding_dim != expected:
                raise CheckpointError(f"{sv_path}: speaker embedding is {sv.embedding_dim} wide but the SoVITS "
                                      f"sv_emb takes {expected}")
        elif sv_path is not None:
            raise CheckpointError(f"--sv is only for v2Pro/v2ProPlus; {sovits_path} is SoVITS {sovits_ckpt.version}")
        hubert = HubertContent.from_dir(hubert_dir)
        bert = BertPhoneFeatures.from_dir(bert_dir) if bert_dir else None
        sources = {
            "gpt": {"file": Path(gpt_path).name, "sha256": gpt_ckpt.sha256},
            "sovits": {"file": Path(sovits_path).name, "sha256": sovits_ckpt.sha256},
            "hubert": {"file": Path(hubert_dir).name, "sha256": folder_hash(Path(hubert_dir))},
        }
        if bert_dir:
            sources["bert"] = {"file": Path(bert_dir).name, "sha256": folder_hash(Path(bert_dir))}
        if sv is not None:
            sources["sv"] = {"file": Path(sv_path).name, "sha256": sv_ckpt.sha256}
        return cls(Text2SemanticDecoder.from_checkpoint(gpt_ckpt), SoVITS.from_checkpoint(sovits_ckpt), hubert, bert,
                   sources, gpt_ckpt.config, sovits_ckpt.config, Path(bert_dir) if bert_dir else None, sv)

    @property
    def version(self) -> str:
        return self.sovits.version

    def graph_specs(self) -> list[GraphSpec]:
        self.sovits.fold_weight_norm()
        # The vocoder's upsampling layers as plain convolutions: OpenVINO runs transposed ones on a slow f32 path
        # and never in INT8 (measurements: conv_rewrite.py); the graph is checked against upstream's layers.
        upstream_vocoder = copy.deepcopy(self.sovits.dec)
        rewrite_conv_transpose(self.sovits)
        self.hubert.fold_weight_norm()
        specs = gpt_graphs(self.gpt) + sovits_graphs(self.sovits, self.hubert, self.sv, upstream_vocoder)
        if self.bert is not None:
            specs.append(bert_graph(self.bert, self.bert.model.config.vocab_size))
        return specs

    def model_facts(self) -> dict:
        gpt, sovits = self.gpt, self.sovits
        facts = {
            "gpt": {"n_layer": gpt.n_layer, "hidden": gpt.dim, "heads": gpt.heads, "vocab_size": gpt.vocab_size,
                    "eos": gpt.eos, "phone_vocab_size": gpt.ar_text_embedding.word_embeddings.num_embeddings,
                    "max_sec": self.gpt_config.get("data", {}).get("max_sec")},
            "sovits": {"inter_channels": sovits.inter_channels, "gin_channels": sovits.gin_channels,
                       "spec_channels": sovits.spec_channels, "hop_length": sovits.hop_length,
                       "samples_per_token": sovits.samples_per_token,
                       "vocoder_context_frames": sovits.vocoder_context_frames,
                       "filter_length": self.sovits_config["data"]["filter_length"],
                       "win_length": self.sovits_config["data"]["win_length"]},
            "hubert": {"sample_rate": HUBERT_RATE},
        }
        if self.bert is not None:
            facts["bert"] = {"vocab_file": "bert_vocab.txt",
                             "max_positions": self.bert.model.config.max_position_embeddings}
        if self.sv is not None:
            facts["sv"] = {"sample_rate": FBANK_RATE, "fbank_bins": FBANK_BINS, "embedding_dim": self.sv.embedding_dim}
        return facts


@dataclass(frozen=True)
class GptSovitsFiles:
    """Upstream's files for one model: `bert` only for Chinese text, `sv` only (and always) for v2Pro/v2ProPlus."""

    gpt: Path
    sovits: Path
    hubert: Path
    bert: Path | None = None
    sv: Path | None = None


def export_gpt_sovits(files: GptSovitsFiles, options: ExportOptions) -> ExportReport:
    """Export a model set into a bundle; nothing is written unless every graph passes its parity check."""
    start = time.perf_counter()
    check_formats(options.formats)
    torch.set_num_threads(options.threads)
    models = ModelSet.load(files.gpt, files.sovits, files.hubert, files.bert, files.sv)
    with atomic_folder(options.out, overwrite=options.overwrite, keep=input_paths(files)) as folder:
        graphs, parity = export_graphs(models.graph_specs(), folder, options.formats, options.threads,
                                       options.progress)
        if models.bert_dir is not None:
            shutil.copyfile(models.bert_dir / "vocab.txt", folder / "bert_vocab.txt")
        manifest = Manifest(
            family=FAMILY, upstream_version=models.version,
            sample_rate=int(models.sovits_config["data"]["sampling_rate"]),
            symbols=list(symbol_table(models.version)), model=models.model_facts(), graphs=graphs,
            defaults=SynthesisOptions().to_manifest(), sources=models.sources,
        )
        write_checked_manifest(folder, manifest)
    return ExportReport(Path(options.out), time.perf_counter() - start, parity)
