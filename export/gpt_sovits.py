"""Export a GPT-SoVITS model set (GPT .ckpt, SoVITS .pth, HuBERT and BERT folders) to an edgevoice bundle.

Steps: load every file with the restricted loader → build our PyTorch reference → cut it into graphs →
ONNX (dynamo, opset 23) → OpenVINO IR → check both against PyTorch on every example length → manifest.
The bundle is assembled in a temporary folder and renamed into place only when everything passed.
"""

from __future__ import annotations

import hashlib
import shutil
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from edgevoice.bundle import GraphEntry, Manifest, TensorSpec, atomic_folder, sha256_file, write_manifest
from edgevoice.errors import EdgevoiceError
from edgevoice.frontend.symbols import symbol_table

from .checkpoints import CheckpointError, load_gpt_checkpoint, load_sovits_checkpoint, load_sv_checkpoint
from .graphs import GraphSpec, bert_graph, gpt_graphs, sovits_graphs
from .models.gpt import Text2SemanticDecoder
from .models.sovits import PRO_VERSIONS, SoVITS
from .models.sv import ERes2NetV2Trunk
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
            sv_ckpt = load_sv_checkpoint(sv_path)
            sv = ERes2NetV2Trunk.from_weights(sv_ckpt.weights, sv_path)
            expected = int(sovits_ckpt.weights["sv_emb.weight"].shape[1])
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
            "hubert": {"file": Path(hubert_dir).name, "sha256": _folder_hash(Path(hubert_dir))},
        }
        if bert_dir:
            sources["bert"] = {"file": Path(bert_dir).name, "sha256": _folder_hash(Path(bert_dir))}
        if sv is not None:
            sources["sv"] = {"file": Path(sv_path).name, "sha256": sv_ckpt.sha256}
        return cls(Text2SemanticDecoder.from_checkpoint(gpt_ckpt), SoVITS.from_checkpoint(sovits_ckpt), hubert, bert,
                   sources, gpt_ckpt.config, sovits_ckpt.config, Path(bert_dir) if bert_dir else None, sv)

    @property
    def version(self) -> str:
        return self.sovits.version

    def graph_specs(self) -> list[GraphSpec]:
        self.sovits.fold_weight_norm()
        self.hubert.fold_weight_norm()
        specs = gpt_graphs(self.gpt) + sovits_graphs(self.sovits, self.hubert, self.sv)
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
        if self.sv is not None:
            facts["sv"] = {"sample_rate": 16000, "fbank_bins": 80, "embedding_dim": self.sv.embedding_dim}
        return facts


def _folder_hash(folder: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.iterdir() if p.is_file()):
        digest.update(path.name.encode() + sha256_file(path).encode())
    return digest.hexdigest()


def _compile(model_or_path, threads: int):
    import openvino as ov

    return ov.Core().compile_model(model_or_path, "CPU", {"INFERENCE_PRECISION_HINT": "f32",
                                                          "KV_CACHE_PRECISION": "f32",
                                                          "INFERENCE_NUM_THREADS": threads})


def _openvino_session_runner(xml: Path, threads: int):
    compiled = _compile(str(xml), threads)
    request = compiled.create_infer_request()

    def run(feeds):
        request.infer(feeds)
        return [request.get_tensor(port).data.copy() for port in compiled.outputs]

    return run


def _openvino_stateful_runner(xml: Path, spec: GraphSpec, variables: dict[str, str], threads: int):
    """Runs a stateful IR like its explicit original: the cache inputs seed the state, the state after the call
    is returned in place of the cache outputs (so `compare` checks the in-place append too)."""
    from edgevoice.backends import OpenVINOSession

    from .stateful import BEAM_INPUT, fused_attention_count

    compiled = _compile(str(xml), threads)
    if fused_attention_count(compiled) == 0:
        raise RuntimeError(f"{spec.name}: OpenVINO did not fuse the stateful attention (check the IR pattern)")
    session = OpenVINOSession(compiled)
    seed_input = {variable: past for past, present in spec.stateful.items()
                  for variable, out in variables.items() if out == present}

    def run(feeds):
        session.set_states({variable: feeds[past] for variable, past in seed_input.items()})
        plain = {k: v for k, v in feeds.items() if k not in spec.stateful}
        outputs = session.run({**plain, BEAM_INPUT: np.zeros(1, np.int32)})
        outputs.update({variables[name]: value for name, value in session.states().items()})
        return [outputs[t.name] for t in spec.outputs]

    return run


def _onnxruntime_runner(path: Path, threads: int):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    return lambda feeds: session.run(None, feeds)


def _stateful_entry_specs(spec: GraphSpec) -> tuple[list[TensorSpec], list[TensorSpec]]:
    from .stateful import BEAM_INPUT

    inputs = [t for t in spec.inputs if t.name not in spec.stateful] + [TensorSpec(BEAM_INPUT, "int32", [1])]
    outputs = [t for t in spec.outputs if t.name not in spec.stateful.values()]
    return inputs, outputs


FORMATS = ("openvino", "onnx")


class ParityCheckError(EdgevoiceError):
    """An exported graph disagrees with the PyTorch reference: the bundle is not written."""


def export_graph(spec: GraphSpec, folder: Path, threads: int = 2) -> tuple[GraphEntry, list[ParityResult]]:
    """Export one graph to ONNX and/or IR inside `folder`, check each against PyTorch, return its manifest entry.
    A graph with `stateful` caches ships only as a stateful IR (its ONNX is an intermediate)."""
    import openvino as ov

    onnx_path, xml_path = folder / f"{spec.name}.onnx", folder / f"{spec.name}.xml"
    export_onnx(spec, onnx_path)
    options = {"INFERENCE_PRECISION_HINT": "f32", "KV_CACHE_PRECISION": "f32"}
    results, files = [], {}
    inputs, outputs, variables = spec.inputs, spec.outputs, {}
    if "onnx" in spec.formats:
        results.append(compare(spec, "onnxruntime", _onnxruntime_runner(onnx_path, threads)))
        files["onnx"] = onnx_path.name
    if "openvino" in spec.formats:
        model = convert_to_openvino(onnx_path, options)
        if spec.stateful:
            from .stateful import make_stateful

            variables = make_stateful(model, spec.stateful)
            inputs, outputs = _stateful_entry_specs(spec)
        ov.save_model(model, str(xml_path), compress_to_fp16=False)
        runner = (_openvino_stateful_runner(xml_path, spec, variables, threads) if spec.stateful
                  else _openvino_session_runner(xml_path, threads))
        results.append(compare(spec, "openvino", runner))
        files["openvino"] = xml_path.name
    if "onnx" not in spec.formats:
        onnx_path.unlink()
    for result in results:
        float_outputs = any(t.dtype.startswith("float") for t in spec.outputs)
        if float_outputs and result.max_rel > FP32_PARITY_LIMIT:
            raise ParityCheckError(f"parity check failed, nothing written: {result.line()} (limit "
                                   f"{FP32_PARITY_LIMIT:g} relative to the output's peak)")
    entry = GraphEntry(spec.name, files, "fp32", inputs, outputs, {"openvino": options},
                       {"fp32_vs_torch": {r.backend: {"max_abs": r.max_abs, "max_rel": r.max_rel,
                                                       "shapes": r.shapes} for r in results}},
                       states=variables)
    return entry, results


def export_gpt_sovits(gpt: str | Path, sovits: str | Path, hubert: str | Path, out: str | Path,
                      bert: str | Path | None = None, overwrite: bool = False, threads: int = 2,
                      progress: bool = True, sv: str | Path | None = None,
                      formats: tuple[str, ...] = FORMATS) -> ExportReport:
    """Export a model set (`sv`: the speaker-verification checkpoint, v2Pro/v2ProPlus only) into a bundle.
    `formats`: which runtimes' files to ship, "openvino" (IR) and/or "onnx" (onnxruntime CPU/CUDA); one alone
    roughly halves the bundle."""
    start = time.perf_counter()
    unknown = set(formats) - set(FORMATS)
    if unknown or not formats:
        raise CheckpointError(f"unknown bundle formats {sorted(unknown) or '(none)'}: choose from "
                              f"{', '.join(FORMATS)}")
    torch.set_num_threads(threads)
    models = ModelSet.load(gpt, sovits, hubert, bert, sv)
    specs = []
    for spec in models.graph_specs():
        wanted = tuple(f for f in spec.formats if f in formats)
        if wanted:  # the decode graph of a runtime that is not shipped is left out
            specs.append(replace(spec, formats=wanted))
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
