"""Export a GPT-SoVITS model set (GPT .ckpt, SoVITS .pth, HuBERT and BERT folders) to an edgevoice bundle.

Steps: load every file with the restricted loader → build our PyTorch reference → cut it into graphs →
ONNX (dynamo, opset 23) → OpenVINO IR → check both against PyTorch on every example length → manifest.
The bundle is assembled in a temporary folder and renamed into place only when everything passed.
"""

from __future__ import annotations

import hashlib
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from tqdm import tqdm

from edgevoice.bundle import GraphEntry, Manifest, atomic_folder, sha256_file, write_manifest
from edgevoice.frontend.symbols import symbol_table

from .checkpoints import CheckpointError, load_gpt_checkpoint, load_sovits_checkpoint
from .graphs import GraphSpec, bert_graph, gpt_graphs, sovits_graphs
from .models.gpt import Text2SemanticDecoder
from .models.sovits import SoVITS
from .models.ssl import BertPhoneFeatures, HubertContent
from .onnx_export import ParityResult, compare, convert_to_openvino, export_onnx

# An FP32 graph that disagrees with PyTorch by more than this (relative to the output's peak) is a bug.
FP32_PARITY_LIMIT = 1e-3
DEFAULT_SYNTHESIS = {"top_k": 15, "top_p": 1.0, "temperature": 1.0, "repetition_penalty": 1.35,
                     "noise_scale": 0.5, "split_method": "cut1", "fragment_interval": 0.3}


@dataclass
class ExportReport:
    bundle: Path
    seconds: float
    parity: list[ParityResult] = field(default_factory=list)

    def lines(self) -> list[str]:
        return [r.line() for r in self.parity]


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

    @classmethod
    def load(cls, gpt_path, sovits_path, hubert_dir, bert_dir=None) -> "ModelSet":
        gpt_ckpt = load_gpt_checkpoint(gpt_path)
        sovits_ckpt = load_sovits_checkpoint(sovits_path)
        if gpt_ckpt.version != sovits_ckpt.version:
            raise CheckpointError(f"GPT is {gpt_ckpt.version} but SoVITS is {sovits_ckpt.version}: use a matching pair")
        hubert = HubertContent.from_dir(hubert_dir)
        bert = BertPhoneFeatures.from_dir(bert_dir) if bert_dir else None
        sources = {
            "gpt": {"file": Path(gpt_path).name, "sha256": gpt_ckpt.sha256},
            "sovits": {"file": Path(sovits_path).name, "sha256": sovits_ckpt.sha256},
            "hubert": {"file": Path(hubert_dir).name, "sha256": _folder_hash(Path(hubert_dir))},
        }
        if bert_dir:
            sources["bert"] = {"file": Path(bert_dir).name, "sha256": _folder_hash(Path(bert_dir))}
        return cls(Text2SemanticDecoder.from_checkpoint(gpt_ckpt), SoVITS.from_checkpoint(sovits_ckpt), hubert, bert,
                   sources, gpt_ckpt.config, sovits_ckpt.config, Path(bert_dir) if bert_dir else None)

    @property
    def version(self) -> str:
        return self.sovits.version

    def graph_specs(self) -> list[GraphSpec]:
        self.sovits.fold_weight_norm()
        self.hubert.fold_weight_norm()
        specs = gpt_graphs(self.gpt) + sovits_graphs(self.sovits, self.hubert)
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
                       "filter_length": self.sovits_config["data"]["filter_length"],
                       "win_length": self.sovits_config["data"]["win_length"]},
            "hubert": {"sample_rate": 16000},
        }
        if self.bert is not None:
            facts["bert"] = {"vocab_file": "bert_vocab.txt"}
        return facts


def _folder_hash(folder: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.iterdir() if p.is_file()):
        digest.update(path.name.encode() + sha256_file(path).encode())
    return digest.hexdigest()


def _openvino_session_runner(xml: Path, threads: int):
    import openvino as ov

    compiled = ov.Core().compile_model(str(xml), "CPU", {"INFERENCE_PRECISION_HINT": "f32",
                                                          "KV_CACHE_PRECISION": "f32",
                                                          "INFERENCE_NUM_THREADS": threads})
    request = compiled.create_infer_request()

    def run(feeds):
        request.infer(feeds)
        return [request.get_tensor(port).data.copy() for port in compiled.outputs]

    return run


def _onnxruntime_runner(path: Path, threads: int):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    return lambda feeds: session.run(None, feeds)


def export_graph(spec: GraphSpec, folder: Path, threads: int = 2) -> tuple[GraphEntry, list[ParityResult]]:
    """Export one graph to ONNX and IR inside `folder`, check both against PyTorch, return its manifest entry."""
    onnx_path, xml_path = folder / f"{spec.name}.onnx", folder / f"{spec.name}.xml"
    export_onnx(spec, onnx_path)
    options = {"INFERENCE_PRECISION_HINT": "f32", "KV_CACHE_PRECISION": "f32"}
    convert_to_openvino(onnx_path, xml_path, options)
    results = [compare(spec, "onnxruntime", _onnxruntime_runner(onnx_path, threads)),
               compare(spec, "openvino", _openvino_session_runner(xml_path, threads))]
    for result in results:
        float_outputs = any(t.dtype.startswith("float") for t in spec.outputs)
        if float_outputs and result.max_rel > FP32_PARITY_LIMIT:
            raise RuntimeError(f"parity check failed: {result.line()}")
    entry = GraphEntry(spec.name, {"openvino": xml_path.name, "onnx": onnx_path.name}, "fp32",
                       spec.inputs, spec.outputs, {"openvino": options},
                       {"fp32_vs_torch": {r.backend: {"max_abs": r.max_abs, "max_rel": r.max_rel,
                                                       "shapes": r.shapes} for r in results}})
    return entry, results


def export_gpt_sovits(gpt: str | Path, sovits: str | Path, hubert: str | Path, out: str | Path,
                      bert: str | Path | None = None, overwrite: bool = False, threads: int = 2,
                      progress: bool = True) -> ExportReport:
    start = time.perf_counter()
    torch.set_num_threads(threads)
    models = ModelSet.load(gpt, sovits, hubert, bert)
    specs = models.graph_specs()
    report = ExportReport(Path(out), 0.0)
    graphs = {}
    with atomic_folder(out, overwrite=overwrite) as folder:
        bar = tqdm(specs, desc="exporting", unit="graph", disable=not progress)
        for spec in bar:
            bar.set_postfix_str(spec.name)
            graphs[spec.name], results = export_graph(spec, folder, threads)
            report.parity.extend(results)
        if models.bert_dir is not None:
            shutil.copyfile(models.bert_dir / "vocab.txt", folder / "bert_vocab.txt")
        manifest = Manifest(
            family="gpt-sovits", upstream_version=models.version,
            sample_rate=int(models.sovits_config["data"]["sampling_rate"]),
            symbols=list(symbol_table(models.version)), model=models.model_facts(), graphs=graphs,
            defaults=dict(DEFAULT_SYNTHESIS),
            sources=models.sources,
        )
        write_manifest(folder, manifest)
    report.seconds = time.perf_counter() - start
    return report
