"""INT8/BF16 variants of the tiny bundle: they load, carry their accuracy, and stay close to FP32.

Thresholds are for the tiny random-weight fixture model (measured: step logits rel-L2 0.8 %, forced-token top-1
0.96, audio SNR 52 dB); trained checkpoints need their own measurement.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from edgevoice.bundle import Bundle
from edgevoice.cli import main
from edgevoice.gpt_sovits.synthesizer import Synthesizer
from edgevoice.gpt_sovits.voice import Voice

pytest.importorskip("nncf", reason="quantisation needs the export extra (nncf)")

FAST = ["--sentences", "6", "--max-tokens", "16", "--subset-size", "32", "--threads", "1"]


def _run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def _one_line_error(result, fragment):
    assert result.exit_code == 1, result.output
    lines = [line for line in result.output.strip().splitlines() if line]
    assert "Traceback" not in result.output and lines[-1].startswith("Error:") and fragment in lines[-1], result.output


def _forced_tokens(fp32, test, voice):
    """20 tokens the FP32 bundle samples for one sentence, and both bundles' logits with those tokens forced."""
    from types import SimpleNamespace

    from edgevoice.gpt_sovits.sampler import SamplingOptions

    target, bert = fp32.phonemize("The little boat drifted past the old stone bridge.", "en")
    phones = np.concatenate([voice.prompt_phone_ids, target.phone_ids])
    bert = np.concatenate([voice.prompt_bert, bert], axis=1)
    tokens = fp32.generate_tokens(phones, bert, voice.prompt_tokens, SamplingOptions(max_tokens=20),
                                  np.random.default_rng(3))
    ref_logits = fp32.teacher_forced_logits(phones, bert, voice.prompt_tokens, tokens)
    test_logits = test.teacher_forced_logits(phones, bert, voice.prompt_tokens, tokens)
    return SimpleNamespace(phones=phones, bert=bert, target_phones=target.phone_ids, tokens=tokens,
                           ref_logits=ref_logits, test_logits=test_logits,
                           logits_rel_l2=np.linalg.norm(test_logits - ref_logits) / np.linalg.norm(ref_logits))


def _quantize_forced(fixture_bundle, reference, out, floats, *engine_flags, extra=()):
    """`quantize` with each of `engine_flags` set to onnxruntime (the decode on OpenVINO, `floats` left in float):
    its result where the CPU has 8-bit dot products; None after checking the one-line refusal where it has not."""
    from edgevoice.cpu import detect

    engines = [arg for flag in engine_flags for arg in (flag, "onnxruntime")]
    result = _run("quantize", "--bundle", fixture_bundle[0], "--out", out, "--reference", reference[0],
                  "--reference-text", reference[1], "--decode-engine", "openvino", *engines,
                  *[f"--method={g}=float" for g in floats], *extra, *FAST)
    if not detect().int8_dot:
        _one_line_error(result, "needs a CPU with 8-bit dot products")
        assert not out.exists()
        return None
    assert result.exit_code == 0, result.output
    return result


@pytest.fixture(scope="module")
def reference(gpt_sovits_set):
    audio = gpt_sovits_set / "audio" / "ref_en.wav"
    return audio, (gpt_sovits_set / "audio" / "ref_en.txt").read_text().strip()


@pytest.fixture(scope="module")
def int8_bundle(fixture_bundle, reference, tmp_path_factory):
    out = tmp_path_factory.mktemp("int8") / "tiny-int8"
    result = _run("quantize", "--bundle", fixture_bundle[0], "--out", out, "--reference", reference[0],
                  "--reference-text", reference[1], "--decode-engine", "openvino", *FAST)
    assert result.exit_code == 0, result.output
    assert "end to end" in result.output and "gpt_decode" in result.output
    return out


@pytest.fixture(scope="module")
def step_bundle(fixture_bundle, reference, tmp_path_factory):
    """INT8 with onnxruntime's block-INT8 decode step (the other graphs float: only the decode is under test; the
    vocoder the FP32 graph with a bf16 hint, `--method sovits_vocoder=bf16`)."""
    out = tmp_path_factory.mktemp("int8") / "tiny-int8-step"
    floats = [f"--method={g}=float" for g in ("gpt_prefill", "bert", "hubert_codes")] + ["--method=sovits_vocoder=bf16"]
    result = _run("quantize", "--bundle", fixture_bundle[0], "--out", out, "--reference", reference[0],
                  "--reference-text", reference[1], "--decode-engine", "onnxruntime", *floats, *FAST)
    assert result.exit_code == 0, result.output
    assert "decode: onnxruntime (chosen by the caller" in result.output
    return out


def test_int8_manifest(fixture_bundle, int8_bundle):
    source, quantised = Bundle.load(fixture_bundle[0]), Bundle.load(int8_bundle)  # verifies every sha256
    graphs = quantised.manifest.graphs
    expected = {"gpt_decode": "int8", "gpt_batch_decode": "int8", "gpt_prefill": "int8", "bert": "int8",
                "hubert_codes": "int8", "sovits_vocoder": "int8", "sovits_latent": "int8", "ref_encoder": "fp32",
                "gpt_step": "fp32"}  # gpt_step: onnxruntime's, unchanged
    for stand_in in ("sovits_vocoder_vnni", "gpt_prefill_vnni", "sovits_latent_vnni"):  # on a CPU with VNNI (below)
        if stand_in in graphs:
            expected[stand_in] = "int8"
    info = quantised.manifest.extra["quantization"]
    # every static graph OpenVINO runs here was timed against FP32; one clearly slower went back to the FP32 IR
    speed = info["int8_speed"]
    stand_ins = {info[k]["replaces"] for k in ("vocoder_engine", "prefill_engine", "latent_engine") if info[k]["taken"]}
    candidates = {n for n, policy in info["policy"].items() if policy["method"] == "static"} - stand_ins
    assert set(speed) <= candidates and (speed or not candidates)
    for name, record in speed.items():
        seconds = record["seconds_on_held_out"]
        assert seconds["fp32"] > 0 and seconds["int8"] > 0 and record["calls"] > 0 and record["reason"]
        assert record["kept"] == (seconds["int8"] <= 1.25 * seconds["fp32"]), record
        if not record["kept"]:
            expected[name] = "fp32"
            assert graphs[name].files == source.manifest.graphs[name].files
    assert {n: g.precision for n, g in graphs.items()} == expected
    assert info["source_bundle_hash"] == source.bundle_hash
    assert info["policy"]["gpt_decode"]["method"] == "weights" and info["policy"]["sovits_vocoder"]["mixed_preset"]
    assert info["calibration"]["items"]["gpt_prefill"] > 0 and info["calibration"]["collect_seconds"] > 0
    assert "gpt_decode" not in info["calibration"]["items"]  # stateful: nothing recorded, W8 is data-free
    assert graphs["gpt_step"].files == source.manifest.graphs["gpt_step"].files
    assert quantised.manifest.model_fingerprint == source.manifest.model_fingerprint
    for name in [n for n in ("gpt_decode", "gpt_prefill", "sovits_vocoder") if expected[n] == "int8"]:
        entry = graphs[name]
        # the float parts' precision is the CPU's choice (bf16 only with native bf16 and within the gate)
        chosen = info["compute"]["graphs"][name]
        assert entry.runtime_options["openvino"]["INFERENCE_PRECISION_HINT"] == chosen["precision"]
        assert chosen["reason"] and (chosen["precision"] == "f32"
                                     or info["compute"]["cpu_class"] in ("avx512_bf16", "amx"))
        assert entry.files["openvino"] == f"{name}.int8.xml"
        if "onnx" in entry.files:  # the ONNX file is the FP32 one, byte for byte
            assert quantised.manifest.files[entry.files["onnx"]] == source.manifest.files[entry.files["onnx"]]
        assert entry.accuracy["int8_vs_fp32"]["items"] > 0
    # the decode options are the CPU's choice (u8 KV with AVX-512, and no dynamic activation quantisation for the
    # one-row step; f32 KV and OpenVINO's defaults without), and the accuracy below holds with them
    from edgevoice_export.gpt_sovits.quantize import decode_runtime_options

    for name in ("gpt_decode", "gpt_batch_decode"):
        options = graphs[name].runtime_options["openvino"]
        assert {k: options.get(k) for k in decode_runtime_options(name)} == decode_runtime_options(name)
        assert info["policy"][name]["weight_mode"] == "INT8_SYM"
    assert graphs["gpt_decode"].states == source.manifest.graphs["gpt_decode"].states
    step = graphs["gpt_decode"].accuracy["int8_vs_fp32"]["logits"]
    assert step["rel_l2"]["worst"] < 0.05 and step["top1_agreement"] >= 0.9
    if expected["sovits_vocoder"] == "int8":
        assert graphs["sovits_vocoder"].accuracy["int8_vs_fp32"]["audio"]["snr_db"]["worst"] > 30
    assert info["decode_engine"] == {"engine": "openvino", "reason": "chosen by the caller"}
    # the onnxruntime vocoder was measured (on a CPU with VNNI) and, where not taken, left nothing behind
    vocoder = info["vocoder_engine"]
    assert vocoder["reason"] and (vocoder["taken"] == ("sovits_vocoder_vnni" in graphs))
    if not vocoder["taken"]:
        assert not any(f.startswith("sovits_vocoder_vnni") for f in quantised.manifest.files)
    else:  # the gate: as accurate as the OpenVINO INT8 vocoder, stages put back into float until it holds
        attempts = vocoder["attempts"]
        assert attempts[-1]["accurate"] and not any(a["accurate"] for a in attempts[:-1])
        assert attempts[-1]["worst_snr_db"] >= vocoder["openvino_worst"]["snr_db"] - 1
        assert vocoder["seconds_on_held_out"]["onnxruntime"] <= vocoder["seconds_on_held_out"]["openvino"]
    # so were the onnxruntime prefill and encoder + flow: taken only as accurate as OpenVINO's and at most
    # ONNXRUNTIME_MARGIN slower
    from edgevoice_export.gpt_sovits.stand_ins import ONNXRUNTIME_MARGIN

    for option, graph, outputs in (("prefill_engine", "gpt_prefill_vnni", ("logits", "caches")),
                                   ("latent_engine", "sovits_latent_vnni", ("z",))):
        record = info[option]
        assert record["reason"] and (record["taken"] == (graph in graphs))
        if record["taken"]:
            worst, seconds = record["worst_rel_l2"], record["seconds_on_held_out"]
            assert all(worst["onnxruntime"][k] <= 1.1 * worst["openvino"][k] for k in outputs)
            assert seconds["onnxruntime"] <= ONNXRUNTIME_MARGIN * seconds["openvino"]
        else:
            assert not any(f.startswith(graph) for f in quantised.manifest.files)
    json.dumps(quantised.manifest.to_json(), allow_nan=False)  # strict JSON: no inf/nan figures


def test_step_bundle_decodes_on_onnxruntime(fixture_bundle, step_bundle):
    import onnx

    source, quantised = Bundle.load(fixture_bundle[0]), Bundle.load(step_bundle)
    graphs = quantised.manifest.graphs
    assert "gpt_decode" not in graphs and "gpt_batch_decode" not in graphs  # one decode: the measured one
    gone = ("gpt_decode", "gpt_batch_decode", "gpt_step.onnx")  # and their files; the FP32 step too
    assert not any(rel.startswith(gone) for rel in quantised.manifest.files)
    step = graphs["gpt_step"]
    record = quantised.manifest.extra["quantization"]["decode_engine"]
    # 4-bit weights were tried behind their gate and taken only where they pass it and step faster
    four = record["four_bits"]
    assert [(g["metric"], g["passed"]) for g in four["gate"]] == [
        ("rel_l2", four["accuracy"]["logits"]["rel_l2"]["worst"] <= 0.05),
        ("top1_agreement", four["accuracy"]["logits"]["top1_agreement"] >= 0.95)]
    assert four["taken"] == (all(g["passed"] for g in four["gate"])
                             and four["ms_per_step"] < 0.95 * record["ms_per_step"]["onnxruntime"])
    bits, other = ("int4", "int8") if four["taken"] else ("int8", "int4")
    assert (step.files, step.precision, step.engine) == ({"onnx": f"gpt_step.{bits}.onnx"}, bits, "onnxruntime")
    assert not any(rel.startswith(f"gpt_step.{other}") for rel in quantised.manifest.files)
    assert step.runtime_options == {"onnxruntime": {"session.intra_op.allow_spinning": "1"}}
    n_layer = source.manifest.model["gpt"]["n_layer"]
    assert record["engine"] == "onnxruntime" and record["matmuls"] == 4 * n_layer  # qkv, out, two FFN per layer
    assert set(record["ms_per_step"]) == {"openvino", "onnxruntime"} and min(record["ms_per_step"].values()) > 0
    ops = [node.op_type for node in onnx.load(str(quantised.file(step.files["onnx"]))).graph.node]
    assert ops.count("MatMulNBits") == 4 * n_layer
    # the attention fused into one node per layer writing the cache in place, checked against the plain FP32 step
    attention = record["attention"]
    assert attention["fused"] and attention["difference"] <= 1e-4, attention
    assert ops.count("GroupQueryAttention") == n_layer and "Softmax" not in ops
    names = {t.name for t in step.inputs}
    assert "past_mask" not in names and {"seqlens_k", "total_sequence_length"} <= names
    assert {t.name for t in step.outputs} >= {f"present_key.{i}" for i in range(n_layer)}
    assert not (Path(step_bundle) / "gpt_step.fused.onnx").exists()  # the fused FP32 step was only a stage
    accuracy = step.accuracy["int8_vs_fp32"]["logits"]
    assert accuracy["rel_l2"]["worst"] < 0.05 and accuracy["top1_agreement"] >= 0.9
    # --method sovits_vocoder=bf16: the FP32 IR as exported with a bf16 hint, its error against FP32 measured, and no
    # 8-bit vocoder tried in its place
    vocoder = graphs["sovits_vocoder"]
    assert (vocoder.files, vocoder.precision) == (source.manifest.graphs["sovits_vocoder"].files, "bf16")
    assert vocoder.runtime_options["openvino"]["INFERENCE_PRECISION_HINT"] == "bf16"
    assert vocoder.accuracy["bf16_vs_fp32"]["audio"]["snr_db"]["worst"] > 20 and "sovits_vocoder_vnni" not in graphs
    info = _run("info", step_bundle, "--no-verify", "--why")
    assert info.exit_code == 0, info.output
    line = next(line for line in info.output.splitlines() if line.strip().startswith("gpt_step") and "runs it" in line)
    assert f"onnxruntime, {bits} block weights" in line and "chosen by the caller" in line
    assert "attention fused" in line


def test_step_bundle_synthesis(fixture_bundle, step_bundle, reference):
    """The OpenVINO backend runs the step through onnxruntime: close to FP32, and batched rows equal lone rows."""
    from edgevoice.backends import OnnxRuntimeSession
    from edgevoice.gpt_sovits.sampler import SamplingOptions
    from edgevoice.gpt_sovits.synthesizer import TokenRequest

    fp32 = Synthesizer.load(fixture_bundle[0], threads=1)
    int8 = Synthesizer.load(step_bundle, threads=1)
    assert not int8._stateful_decode and int8.batches_tokens
    assert isinstance(int8._session("gpt_step"), OnnxRuntimeSession)
    voice = fp32.create_voice(reference[0], reference[1], "en")
    forced = _forced_tokens(fp32, int8, voice)
    assert np.mean(forced.ref_logits.argmax(-1) == forced.test_logits.argmax(-1)) >= 0.8
    assert forced.logits_rel_l2 < 0.05
    rows = [TokenRequest(forced.phones, forced.bert, voice.prompt_tokens, SamplingOptions(max_tokens=n),
                         np.random.default_rng(seed)) for n, seed in ((12, 5), (20, 6))]
    alone = [int8.generate_tokens(r.phone_ids, r.bert_features, r.prompt_tokens, r.options, np.random.default_rng(s))
             for r, s in zip(rows, (5, 6))]
    together = int8.generate_rows(rows)
    assert [t.tolist() for t in together] == [t.tolist() for t in alone]


def test_vocoder_engine_onnxruntime(fixture_bundle, reference, tmp_path):
    """`--vocoder-engine onnxruntime`: the vocoder as onnxruntime's 8-bit operators without masks, beside the
    OpenVINO one; refused on CPUs without 8-bit dot products (its s8 products saturate there)."""
    import onnx

    from edgevoice.gpt_sovits.synthesizer import EXACT_VOCODER

    out = tmp_path / "tiny-int8-vocoder"
    result = _quantize_forced(fixture_bundle, reference, out, ("gpt_prefill", "bert", "hubert_codes", "sovits_latent"),
                              "--vocoder-engine")  # the default --vocoder-tail auto: a split beside the one graph
    if result is None:
        return
    assert "vocoder: onnxruntime on CPUs with VNNI" in result.output
    bundle = Bundle.load(out)
    entry = bundle.manifest.graphs[EXACT_VOCODER]
    assert (entry.engine, entry.precision, [t.name for t in entry.inputs]) == ("onnxruntime", "int8", ["z", "ge"])
    assert "sovits_vocoder" in bundle.manifest.graphs  # the OpenVINO one stays, for CPUs without VNNI
    record = bundle.manifest.extra["quantization"]["vocoder_engine"]
    assert record["taken"] and record["reason"].startswith("chosen by the caller") and record["masks_dropped"] > 10
    assert [a["float_stages"] for a in record["attempts"]] == list(range(len(record["attempts"])))
    # shipped as onnxruntime optimised it, its element-wise 8-bit operators channels-last like its convolutions
    # (edgevoice_export.onnx_layout), only where that gave the same samples
    model = onnx.load(str(bundle.file(entry.files["onnx"])))
    assert ("com.microsoft", "QLinearConv") in {(n.domain, n.op_type) for n in model.graph.node}
    layout = record["layout"]
    assert EXACT_VOCODER in layout and set(layout) <= {EXACT_VOCODER, "sovits_vocoder_vnni_head"}
    for graph in layout.values():
        assert graph["taken"] and graph["difference"] <= 1e-6
        assert graph["transposes_after"] < graph["transposes_before"]
    assert entry.accuracy["int8_vs_fp32"]["audio"]["snr_db"]["worst"] > 30
    _check_float_tail(bundle, record)
    # the synthesizer runs it here, close to the FP32 vocoder on the same tokens
    fp32, int8 = Synthesizer.load(fixture_bundle[0], threads=1), Synthesizer.load(out, threads=1)
    assert int8.vocoder_graph == EXACT_VOCODER
    rng = np.random.default_rng(0)
    tokens, phones = rng.integers(0, 500, 90), rng.integers(1, 300, 40)
    ge = (0.3 * rng.standard_normal((1, 512, 1))).astype(np.float32)
    reference_audio = fp32.decode_tokens(tokens, phones, ge=ge)
    audio = int8.decode_tokens(tokens, phones, ge=ge)
    snr = 10 * np.log10(np.sum(reference_audio ** 2) / np.sum((audio - reference_audio) ** 2))
    assert audio.shape == reference_audio.shape and snr > 30


def _check_float_tail(bundle, record):
    """Where the ladder kept float stages, `quantize` tried them as their own graph (`vocoder_tail`): a bundle that
    took the split has head (→ `hidden`) and tail beside the one graph (`--vocoder-tail auto`); one that did not,
    no trace of the attempt."""
    from edgevoice.gpt_sovits.split_vocoder import VOCODER_HEAD, VOCODER_TAIL
    from edgevoice.gpt_sovits.synthesizer import EXACT_VOCODER

    graphs, files = bundle.manifest.graphs, set(bundle.manifest.files)
    assert ("float_tail" in record) == (record["float_stages"] > 0)
    tail = record.get("float_tail", {"taken": False})
    assert (VOCODER_TAIL in graphs) == (VOCODER_HEAD in graphs) == tail["taken"]
    assert tail["taken"] == any(f.startswith(VOCODER_TAIL) for f in files)
    if "float_tail" in record:  # tried
        assert tail["worst_snr_vs_one_graph_db"] >= 90 and tail["context_frames"] >= 1 and tail["beside"]
        assert {k: set(v) for k, v in tail["seconds"].items()} == {
            "held_out": {"one graph", "split"}, "long_window": {"one graph", "split"}} and tail["reason"]
    if tail["taken"]:
        assert [t.name for t in graphs[VOCODER_HEAD].outputs] == ["hidden"]
        sovits = bundle.manifest.model["sovits"]
        assert sovits["vocoder_tail_context_frames"] == tail["context_frames"]
        assert sovits["vocoder_tail_windows"] == tail["windows"] == sorted(tail["windows"])
    assert [t.name for t in graphs[EXACT_VOCODER].outputs] == ["audio"]  # the one graph stays either way
    assert sum(f.startswith(EXACT_VOCODER) and f.endswith(".onnx") for f in files) == 1 + tail["taken"]


def test_prefill_and_latent_engines_onnxruntime(fixture_bundle, reference, tmp_path, monkeypatch):
    """`--prefill-engine onnxruntime --latent-engine onnxruntime`: the prefill as onnxruntime's dynamic INT8 and
    SoVITS's encoder + flow as its static INT8, beside the OpenVINO graphs, run only on CPUs with 8-bit dot
    products; refused at quantise time on CPUs without (their s8 products saturate there)."""
    import onnx

    from edgevoice.cpu import CpuInfo
    from edgevoice.gpt_sovits import synthesizer as synthesizer_module
    from edgevoice.gpt_sovits.synthesizer import LATENT_VNNI, PREFILL_VNNI

    out = tmp_path / "tiny-int8-stand-ins"
    result = _quantize_forced(fixture_bundle, reference, out, ("bert", "hubert_codes", "sovits_vocoder"),
                              "--prefill-engine", "--latent-engine")
    if result is None:
        return
    assert "gpt_prefill: onnxruntime on CPUs with VNNI" in result.output
    assert "sovits_latent: onnxruntime on CPUs with VNNI" in result.output
    bundle = Bundle.load(out)
    entry, openvino = bundle.manifest.graphs[PREFILL_VNNI], bundle.manifest.graphs["gpt_prefill"]
    assert (entry.engine, entry.precision) == ("onnxruntime", "int8")
    assert [t.name for t in entry.inputs] == [t.name for t in openvino.inputs]
    assert openvino.files["openvino"] == "gpt_prefill.int8.xml"  # the OpenVINO one stays, for CPUs without VNNI
    record = bundle.manifest.extra["quantization"]["prefill_engine"]
    n_layer = bundle.manifest.model["gpt"]["n_layer"]
    assert record["taken"] and record["reason"].startswith("chosen by the caller")
    assert record["quantised_ops"] >= 4 * n_layer  # every layer's four, plus the BERT projection and the head
    ops = [n.op_type for n in onnx.load(str(bundle.file(entry.files["onnx"]))).graph.node]
    assert ops.count("MatMulInteger") == record["quantised_ops"] and "DynamicQuantizeLinear" in ops
    assert entry.accuracy["int8_vs_fp32"]["logits"]["rel_l2"]["worst"] < 0.05
    latent = bundle.manifest.graphs[LATENT_VNNI]
    assert (latent.engine, latent.precision) == ("onnxruntime", "int8") and "sovits_latent" in bundle.manifest.graphs
    ops = {n.op_type for n in onnx.load(str(bundle.file(latent.files["onnx"]))).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear", "Conv", "MatMul"} <= ops
    assert bundle.manifest.extra["quantization"]["latent_engine"]["quantised_ops"] > 10
    assert latent.accuracy["int8_vs_fp32"]["z"]["rel_l2"]["worst"] < 0.1
    # run here (VNNI), close to FP32; a CPU without VNNI runs the OpenVINO graphs
    fp32, int8 = Synthesizer.load(fixture_bundle[0], threads=1), Synthesizer.load(out, threads=1)
    assert (int8.prefill_graph, int8.latent_graph) == (PREFILL_VNNI, LATENT_VNNI)
    voice = fp32.create_voice(reference[0], reference[1], "en")
    forced = _forced_tokens(fp32, int8, voice)
    assert forced.logits_rel_l2 < 0.05 and np.mean(forced.ref_logits.argmax(-1) == forced.test_logits.argmax(-1)) >= 0.9
    rng = np.random.default_rng(0)
    tokens, phones = rng.integers(0, 500, 90), rng.integers(1, 300, 40)
    ge = (0.3 * rng.standard_normal((1, 512, 1))).astype(np.float32)
    reference_audio, audio = fp32.decode_tokens(tokens, phones, ge=ge), int8.decode_tokens(tokens, phones, ge=ge)
    snr = 10 * np.log10(np.sum(reference_audio ** 2) / np.sum((audio - reference_audio) ** 2))
    assert audio.shape == reference_audio.shape and snr > 20
    monkeypatch.setattr(synthesizer_module, "detect", lambda: CpuInfo("test CPU", frozenset({"avx2"})))
    without_vnni = Synthesizer.load(out, threads=1)
    assert (without_vnni.prefill_graph, without_vnni.latent_graph) == ("gpt_prefill", "sovits_latent")
    info = _run("info", out, "--no-verify", "--why")
    assert info.exit_code == 0, info.output
    line = next(line for line in info.output.splitlines()
                if line.strip().startswith(PREFILL_VNNI) and "runs it" in line)
    assert "onnxruntime, int8 weights + activations" in line and "chosen by the caller" in line


def test_parity_holds_onnxruntime_on_a_step_bundle_to_int8_gates(fixture_bundle, step_bundle, reference):
    """onnxruntime runs the bundle's block-INT8 step: its run is judged as INT8, not as FP32."""
    result = _run("parity", "--bundle", fixture_bundle[0], "--bundle", step_bundle, "--backend", "onnxruntime",
                  "--reference", reference[0], "--reference-text", reference[1], "--tokens", "16", "--json",
                  "--threads", "1")
    assert result.exit_code == 0, result.output
    runs = {(run["meta"]["bundle"], run["meta"]["backend"]): run for run in json.loads(result.output)["runs"]}
    assert runs[(str(step_bundle), "onnxruntime")]["meta"]["precisions"] == ["fp32", "int8"], list(runs)


def test_decode_engine_choice():
    from edgevoice_export.gpt_sovits.quantize import choose_decode_engine

    assert choose_decode_engine("auto", {"openvino": 8.0, "onnxruntime": 4.6})[0] == "onnxruntime"
    assert choose_decode_engine("auto", {"openvino": 5.0, "onnxruntime": 4.6})[0] == "openvino"  # within 10 %
    assert choose_decode_engine("auto", {"openvino": 3.0, "onnxruntime": 4.6})[0] == "openvino"
    engine, reason = choose_decode_engine("onnxruntime", {"openvino": 3.0, "onnxruntime": 4.6})
    assert engine == "onnxruntime" and "caller" in reason and "openvino 3.00 ms" in reason


def test_int8_synthesis_close_to_fp32(fixture_bundle, int8_bundle, reference):
    fp32 = Synthesizer.load(fixture_bundle[0], threads=1)
    int8 = Synthesizer.load(int8_bundle, threads=1)
    voice = fp32.create_voice(reference[0], reference[1], "en")
    int8.check_voice(voice)  # same weights, other precision: the FP32 voice is accepted
    forced = _forced_tokens(fp32, int8, voice)
    assert np.mean(forced.ref_logits.argmax(-1) == forced.test_logits.argmax(-1)) >= 0.8
    assert forced.logits_rel_l2 < 0.15
    tokens, phones = forced.tokens, forced.target_phones
    noise = np.random.default_rng(4).standard_normal((1, 192, 2 * tokens.size)).astype(np.float32) * 0.5
    ref_audio = fp32.decode_tokens(tokens, phones, noise=noise, ge=voice.ge)
    test_audio = int8.decode_tokens(tokens, phones, noise=noise, ge=voice.ge)
    snr = 10 * np.log10(np.sum(ref_audio.astype(np.float64) ** 2) / np.sum((ref_audio - test_audio) ** 2))
    assert snr > 30
    # onnxruntime on an INT8 bundle runs the unchanged FP32 ONNX, except the vocoder where the bundle has
    # onnxruntime's own INT8 one and the CPU has VNNI
    ort = Synthesizer.load(int8_bundle, backend="onnxruntime", threads=1)
    ort_audio = ort.decode_tokens(tokens, phones, noise=noise, ge=voice.ge)
    if ort.vocoder_graph == "sovits_vocoder":
        assert np.abs(ort_audio - ref_audio).max() < 1e-3 * max(np.abs(ref_audio).max(), 1e-6)
    else:
        noise_power = np.sum((ref_audio - ort_audio) ** 2)
        assert 10 * np.log10(np.sum(ref_audio.astype(np.float64) ** 2) / noise_power) > 30


def test_bf16_writes_hint(fixture_bundle, reference, tmp_path):
    out = tmp_path / "tiny-bf16"
    result = _run("quantize", "--bundle", fixture_bundle[0], "--out", out, "--precision", "bf16",
                  "--reference", reference[0], "--reference-text", reference[1], "--sentences", "2", *FAST[2:])
    assert result.exit_code == 0, result.output
    bundle = Bundle.load(out)
    for entry in bundle.manifest.graphs.values():
        if "openvino" not in entry.files:
            assert entry.precision == "fp32"  # onnxruntime's gpt_step is left as it is
            continue
        assert entry.precision == "bf16"
        assert entry.runtime_options["openvino"]["INFERENCE_PRECISION_HINT"] == "bf16"
        assert "bf16_vs_fp32" in entry.accuracy
    assert bundle.manifest.extra["quantization"]["precision"] == "bf16"


def test_a_graph_the_calibration_never_ran_is_quantised_weight_only(fixture_bundle, reference, tmp_path):
    """English-only calibration texts never run BERT (Chinese only): its static INT8 used to fail the whole run
    ("static INT8 needs recorded calibration inputs"); it is now weight-only INT8, said and recorded."""
    texts = tmp_path / "en.txt"
    texts.write_text("The cat sat on the mat.\nA quick brown fox jumps.\n", encoding="utf-8")
    out = tmp_path / "tiny-en"
    floats = [f"--method={g}=float" for g in ("gpt_prefill", "hubert_codes", "sovits_vocoder", "sovits_latent")]
    result = _run("quantize", "--bundle", fixture_bundle[0], "--out", out, "--reference", reference[0],
                  "--reference-text", reference[1], "--calibration-texts", texts, "--decode-engine", "openvino",
                  *floats, "--sentences", "2", *FAST[2:])
    assert result.exit_code == 0, result.output
    assert "bert: the calibration sentences never ran it; weight-only INT8 instead of static" in result.output
    policy = Bundle.load(out).manifest.extra["quantization"]["policy"]["bert"]
    assert policy["method"] == "weights" and "never ran bert" in policy["reason"]


def test_quantize_errors(fixture_bundle, int8_bundle, reference, tmp_path):
    bundle = fixture_bundle[0]
    _one_line_error(_run("quantize", "--bundle", tmp_path / "nothing", "--out", tmp_path / "o", "--reference",
                         reference[0], "--reference-text", reference[1]), "bundle folder not found")
    _one_line_error(_run("quantize", "--bundle", int8_bundle, "--out", tmp_path / "o", "--reference",
                         reference[0], "--reference-text", reference[1]), "not FP32")
    _one_line_error(_run("quantize", "--bundle", bundle, "--out", tmp_path / "o"), "--voice or --reference")
    _one_line_error(_run("quantize", "--bundle", bundle, "--out", tmp_path / "o", "--reference", reference[0],
                         "--reference-text", reference[1], "--method", "gpt_decode=int3"), "unknown method")
    _one_line_error(_run("quantize", "--bundle", bundle, "--out", tmp_path / "o", "--reference", reference[0],
                         "--reference-text", reference[1], "--method", "gpt_step=weights"), "no OpenVINO IR")
    _one_line_error(_run("quantize", "--bundle", bundle, "--out", tmp_path / "o", "--reference", reference[0],
                         "--reference-text", reference[1], "--method", "gpt_decode=static"), "is stateful")
    # a voice made with other weights
    synth = Synthesizer.load(bundle, threads=1)
    voice = synth.create_voice(reference[0], reference[1], "en")
    voice.model_fingerprint = "0" * 64
    path = voice.save(tmp_path / "other.npz")
    _one_line_error(_run("quantize", "--bundle", bundle, "--out", tmp_path / "o", "--voice", path, *FAST),
                    "different model")
    assert not (tmp_path / "o").exists()
    # a calibration file inside the output (an --overwrite would delete it with the old bundle)
    _one_line_error(_run("quantize", "--bundle", bundle, "--out", tmp_path, "--voice", path, "--overwrite", *FAST),
                    "holds the input")
    assert isinstance(Voice.load(path), Voice)


def test_quantize_refuses_another_familys_flags(emotivoice_bundle, metavoice_bundle, reference, tmp_path):
    """Each family-specific flag is refused by name for a bundle of a family that does not take it, before any
    calibration starts (`FAMILY_FLAGS`, and each family's own calibration sources)."""
    out = tmp_path / "o"
    emotivoice, metavoice = emotivoice_bundle[0], metavoice_bundle[0]
    _one_line_error(_run("quantize", "--bundle", emotivoice, "--out", out, "--compute", "f32"),
                    "--compute is for GPT-SoVITS bundles")
    _one_line_error(_run("quantize", "--bundle", emotivoice, "--out", out, "--decode-engine", "openvino"),
                    "--decode-engine is for GPT-SoVITS and MetaVoice bundles")
    _one_line_error(_run("quantize", "--bundle", metavoice, "--out", out, "--vocoder-tail", "split"),
                    "--vocoder-tail is for GPT-SoVITS bundles")
    _one_line_error(_run("quantize", "--bundle", emotivoice, "--out", out, "--reference", reference[0],
                         "--reference-text", reference[1]), "built-in speakers")
    _one_line_error(_run("quantize", "--bundle", emotivoice, "--out", out, "--precision", "int4"),
                    "int4 is for MetaVoice")
    _one_line_error(_run("quantize", "--bundle", metavoice, "--out", out, "--sentences", "5"),
                    "leave out --voice, --reference, --calibration-texts, --sentences")
    assert not out.exists()


def test_static_int8_needs_int8_dot_product_instructions(tmp_path):
    from edgevoice_export.gpt_sovits.quantize import default_policies
    from edgevoice_export.quantize import cpu_has_int8_dot

    assert default_policies(has_int8_dot=True)["gpt_prefill"].method == "static"
    assert default_policies(has_int8_dot=False)["gpt_prefill"].method == "weights"
    assert default_policies(has_int8_dot=False)["sovits_vocoder"].method == "static"
    info = tmp_path / "cpuinfo"
    info.write_text("flags : fpu avx2 avx512f avx512_vnni\n")
    assert cpu_has_int8_dot(info)
    info.write_text("flags : fpu avx2\n")
    assert not cpu_has_int8_dot(info)


def test_accuracy_control_puts_parts_back_into_float(fixture_bundle, reference, tmp_path):
    out = tmp_path / "tiny-ac"
    budget = 0.08  # the policy alone measured ~0.14 log-mel L1 on the tiny model, the vocoder glue in float ~0.05
    only_vocoder = [f"--method={g}=float" for g in ("gpt_decode", "gpt_prefill", "bert", "hubert_codes")]
    result = _run("quantize", "--bundle", fixture_bundle[0], "--out", out, "--reference", reference[0],
                  "--reference-text", reference[1], "--accuracy-drop", budget, *only_vocoder, *FAST)
    assert result.exit_code == 0, result.output
    assert "accuracy control" in result.output
    control = Bundle.load(out).manifest.extra["quantization"]["accuracy_control"]
    attempts = control["attempts"]
    assert control["max_log_mel_l1"] == budget and attempts[0]["also_float"] == "policy"
    assert control["met"] == (attempts[-1]["log_mel_l1"] <= budget)
    # it stops at the first attempt within budget, and only goes on while over it
    assert all(a["log_mel_l1"] > budget for a in attempts[:-1])


def test_decode_kv_precision_follows_the_cpu(tmp_path):
    from edgevoice_export.gpt_sovits.quantize import decode_kv_precision

    avx512, avx2 = tmp_path / "avx512", tmp_path / "avx2"
    avx512.write_text("flags\t\t: fpu sse2 avx2 avx512f avx512_vnni\n")
    avx2.write_text("flags\t\t: fpu sse2 avx2 fma\n")
    assert decode_kv_precision(avx512) == "u8" and decode_kv_precision(avx2) == "f32"
    assert decode_kv_precision(tmp_path / "missing") == "f32"


def test_decode_runtime_options_follow_the_cpu(tmp_path):
    from edgevoice_export.gpt_sovits.quantize import decode_runtime_options

    avx512, avx2 = tmp_path / "avx512", tmp_path / "avx2"
    avx512.write_text("flags\t\t: fpu sse2 avx2 avx512f avx512_vnni\n")
    avx2.write_text("flags\t\t: fpu sse2 avx2 fma\n")
    assert decode_runtime_options("gpt_decode", avx512) == {"KV_CACHE_PRECISION": "u8",
                                                            "DYNAMIC_QUANTIZATION_GROUP_SIZE": "0"}
    assert decode_runtime_options("gpt_batch_decode", avx512) == {"KV_CACHE_PRECISION": "u8"}
    for graph in ("gpt_decode", "gpt_batch_decode"):
        assert decode_runtime_options(graph, avx2) == {"KV_CACHE_PRECISION": "f32"}


def test_audio_warnings_name_the_graphs_over_the_audible_level():
    from edgevoice_export.gpt_sovits.quantize import AUDIBLE_LOG_MEL_L1, audio_warnings
    from edgevoice_export.quantize import QuantizationReport

    def audio(worst):
        return {"audio": {"log_mel_l1": {"mean": worst / 2, "worst": worst}}}

    report = QuantizationReport(Path("out"), "int8", 0.0, graphs={
        "sovits_vocoder": {"method": "static", "accuracy": audio(AUDIBLE_LOG_MEL_L1 + 0.22)},
        "sovits_latent": {"method": "static", "accuracy": {"z": {"rel_l2": {"worst": 0.9}}}},
        "gpt_step": {"method": "nbits"}}, end_to_end=audio(AUDIBLE_LOG_MEL_L1 - 0.25))
    notes = audio_warnings(report)
    assert len(notes) == 1 and "sovits_vocoder" in notes[0] and "0.52" in notes[0] and "x1.7" in notes[0]
    report.end_to_end = audio(AUDIBLE_LOG_MEL_L1 + 0.01)
    assert [n.split("'")[0] for n in audio_warnings(report)] == ["note: sovits_vocoder", "note: end to end"]


def test_int8_slower_than_fp32_is_not_kept():
    """The speed check behind `int8_speed`: an INT8 graph clearly slower than FP32 on this CPU is not kept (OpenVINO's
    AMX INT8 convolutions ran a vocoder at 0.39x FP32), a faster one or one within box noise is."""
    import time

    from edgevoice_export.quantize import INT8_SLOWDOWN_LIMIT, int8_speed

    class Sleeper:
        def __init__(self, seconds):
            self.seconds = seconds

        def run(self, item):
            time.sleep(self.seconds)
            return {}

    items = [{}] * 3
    slow = int8_speed(Sleeper(0.002), Sleeper(0.02), items, rounds=1)
    assert not slow["kept"] and "FP32 graph kept instead" in slow["reason"] and slow["calls"] == 3
    assert slow["seconds_on_held_out"]["int8"] > INT8_SLOWDOWN_LIMIT * slow["seconds_on_held_out"]["fp32"]
    fast = int8_speed(Sleeper(0.02), Sleeper(0.002), items, rounds=1)
    assert fast["kept"] and fast["reason"].endswith("kept")
