"""INT8/BF16 variants of the tiny EmotiVoice bundle (`edgevoice_export.emotivoice.quantize`): they load and speak,
carry their policy and accuracy, and every changed graph passed its accuracy gate.

The tiny random-weight model is not the full-size one the policy was measured on: which graphs keep static INT8
here depends on the gate (and the vocoder's method on the CPU), so the tests check consistency, not a fixed plan.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

import edgevoice
from edgevoice.bundle import Bundle
from edgevoice.errors import EdgevoiceError

pytest.importorskip("nncf", reason="quantisation needs the export extra (nncf)")

from edgevoice_export.emotivoice.quantize import (GATE, GRAPHS, HIFIGAN_INT8, POLICY,  # noqa: E402
                                                  collect_emotivoice_calibration, cpu_has_native_bf16,
                                                  default_policies, quantize_emotivoice)
from edgevoice_export.quantize import QuantizeOptions  # noqa: E402

SENTENCES = 10  # 8 calibration + 2 held out
FAST = dict(subset_size=16, threads=2, progress=False)


@pytest.fixture(scope="module")
def calibration(emotivoice_bundle):
    return collect_emotivoice_calibration(emotivoice_bundle[0], SENTENCES, threads=2, progress=False)


@pytest.fixture(scope="module")
def int8(emotivoice_bundle, calibration, tmp_path_factory):
    out = tmp_path_factory.mktemp("ev-int8") / "int8"
    report = quantize_emotivoice(emotivoice_bundle[0], out, QuantizeOptions("int8", **FAST), calibration=calibration)
    return out, report


@pytest.fixture(scope="module")
def bf16(emotivoice_bundle, calibration, tmp_path_factory):
    out = tmp_path_factory.mktemp("ev-bf16") / "bf16"
    report = quantize_emotivoice(emotivoice_bundle[0], out, QuantizeOptions("bf16", **FAST), calibration=calibration)
    return out, report


def test_calibration_covers_every_graph(calibration):
    assert len(calibration.sentences) == 8 and len(calibration.held_out_sentences) == 2
    for name in GRAPHS:
        assert calibration.calibration[name] and calibration.held_out[name], name
    assert len({s.speaker for s in calibration.sentences}) > 4 and len({s.prompt for s in calibration.sentences}) > 4
    assert {s.language for s in calibration.sentences} == {"en", "zh"}


def test_calibration_speakers_skip_a_blank_row(emotivoice_bundle, tmp_path):
    """Upstream's speaker2 may end in an empty line, which upstream counts as a speaker row; calibration picked it
    (the last of its spread) and asked the synthesizer for a speaker named '' (quantize failed)."""
    import shutil

    from calibration.emotivoice import calibration_sentences
    from edgevoice.bundle import write_manifest

    folder = tmp_path / "b"
    shutil.copytree(emotivoice_bundle[0], folder)
    bundle = Bundle.load(folder)
    speakers = folder / bundle.manifest.model["speakers_file"]
    speakers.write_text(speakers.read_text(encoding="utf-8").rstrip("\n") + "\n\n", encoding="utf-8")
    write_manifest(folder, bundle.manifest)
    names = set(edgevoice.load(folder, threads=1).speakers)
    plan = calibration_sentences(Bundle.load(folder), 12)
    assert len(plan) == 12 and all(sentence.speaker in names for sentence in plan)


def test_int8_manifest(emotivoice_bundle, int8):
    source, variant = Bundle.load(emotivoice_bundle[0]), Bundle.load(int8[0])  # verifies every sha256
    report = int8[1]
    graphs = variant.manifest.graphs
    info = variant.manifest.extra["quantization"]
    assert info["source_bundle_hash"] == source.bundle_hash and info["precision"] == "int8"
    assert variant.manifest.model_fingerprint == source.manifest.model_fingerprint
    assert set(info["cpu"]) >= {"model", "flags", "int8_dot", "native_bf16"} and info["seconds"] > 0
    assert info["calibration"]["items"]["calibration"]["hifigan"] > 0 and info["calibration"]["collect_seconds"] > 0
    changed = 0
    for name in GRAPHS:
        policy, entry, src = info["policy"][name], graphs[name], source.manifest.graphs[name]
        assert policy["reason"] and policy["method"] in ("static", "weights", "bf16", "float"), policy
        assert policy["applied"] == report.graphs[name]["method"]
        assert entry.precision == {"static": "int8", "weights": "int8", "bf16": "bf16", "float": "fp32"}[
            policy["applied"]]
        # ONNX files are the FP32 ones, byte for byte
        assert variant.manifest.files[entry.files["onnx"]] == source.manifest.files[src.files["onnx"]]
        if entry.precision == "fp32":
            assert entry.files == src.files
            continue
        changed += 1
        accuracy = entry.accuracy[f"{entry.precision}_vs_fp32"]
        assert accuracy["items"] > 0
        for threshold in GATE[name]:  # what was kept passed its gate
            assert threshold.check(accuracy)[0], (name, threshold)
        hint = entry.runtime_options["openvino"]["INFERENCE_PRECISION_HINT"]
        if entry.precision == "int8":
            assert hint == "f32" and entry.files["openvino"] == f"{name}.int8.xml"
            xml = entry.files["openvino"]
            assert (int8[0] / xml.replace(".xml", ".bin")).stat().st_size < \
                (emotivoice_bundle[0] / src.files["openvino"].replace(".xml", ".bin")).stat().st_size
            assert src.files["openvino"] not in variant.manifest.files  # the FP32 IR is not carried along
        else:
            assert hint == "bf16" and entry.files == src.files
    assert changed >= 1
    # at least the BERT keeps static INT8 on the tiny model: a quantised IR is really in the bundle
    assert graphs["style_bert"].precision == "int8"
    e2e = info["end_to_end_vs_fp32"]
    assert e2e["sentences"] == 2 and e2e["phones"] > 0
    assert e2e["durations_agreement"]["mean"] >= 0.7 and e2e["wav_snr_db"]["worst"] > 5
    json.dumps(variant.manifest.to_json(), allow_nan=False)  # strict JSON


def test_int8_report_lines(int8):
    report = int8[1]
    text = "\n".join(report.lines())
    assert report.precision == "int8" and report.seconds > 0 and report.bundle == int8[0]
    assert all(name in text for name in GRAPHS) and "end to end" in text
    for name, info in report.graphs.items():
        if info["method"] != info["planned"]:
            assert f"{name} {info['planned']} missed the accuracy gate" in text


def test_int8_synthesises(int8, emotivoice_bundle):
    synth = edgevoice.load(int8[0], threads=1)
    voice = synth.voice_for(speaker=synth.speakers[5], prompt="Happy")
    audio = synth.synthesize("Good morning. 今天天气很好。", voice)
    assert audio.dtype == np.float32 and audio.size > 0 and np.isfinite(audio).all()
    assert np.max(np.abs(audio)) <= 1.0


def test_bf16_variant(emotivoice_bundle, bf16):
    source, variant = Bundle.load(emotivoice_bundle[0]), Bundle.load(bf16[0])
    assert bf16[1].precision == "bf16"
    for name in GRAPHS:
        entry = variant.manifest.graphs[name]
        if bf16[1].graphs[name]["method"] == "float":  # only where bf16 missed the gate
            continue
        assert entry.precision == "bf16"
        assert entry.runtime_options["openvino"]["INFERENCE_PRECISION_HINT"] == "bf16"
        # the same FP32 IR
        assert entry.files == source.manifest.graphs[name].files
        assert variant.manifest.files[entry.files["openvino"]] == source.manifest.files[entry.files["openvino"]]
        assert "bf16_vs_fp32" in entry.accuracy
    synth = edgevoice.load(bf16[0], threads=1)
    assert synth.synthesize("Hello.", synth.voice_for()).size > 0


@pytest.mark.parametrize("methods, fragment", [
    ({"gpt_prefill": "static"}, "no graph 'gpt_prefill'"),
    ({"hifigan": "int4"}, "unknown method 'int4'"),
])
def test_bad_methods(emotivoice_bundle, tmp_path, methods, fragment):
    with pytest.raises(EdgevoiceError) as info:
        quantize_emotivoice(emotivoice_bundle[0], tmp_path / "out", QuantizeOptions(methods=methods, **FAST))
    message = str(info.value)
    assert fragment in message and "\n" not in message
    assert not (tmp_path / "out").exists()


def test_refusals(emotivoice_bundle, int8, tmp_path):
    from edgevoice_export.gpt_sovits.choices import GptSovitsChoices

    with pytest.raises(EdgevoiceError, match="EmotiVoice takes no family choices .*GptSovitsChoices"):
        quantize_emotivoice(emotivoice_bundle[0], tmp_path / "o",
                            QuantizeOptions(family=GptSovitsChoices(max_drop=0.1), **FAST))
    with pytest.raises(EdgevoiceError, match="not FP32"):
        quantize_emotivoice(int8[0], tmp_path / "o", QuantizeOptions(**FAST))
    with pytest.raises(EdgevoiceError, match="already exists"):
        quantize_emotivoice(emotivoice_bundle[0], int8[0], QuantizeOptions(**FAST))
    with pytest.raises(EdgevoiceError, match="precision"):
        quantize_emotivoice(emotivoice_bundle[0], tmp_path / "o", QuantizeOptions("int4", **FAST))


def test_policy_per_cpu(tmp_path):
    for name, policy in POLICY.items():
        assert policy.reason and name in GATE
    plain = default_policies(has_int8_dot=True, has_native_bf16=True)
    assert plain == POLICY
    old = default_policies(has_int8_dot=False, has_native_bf16=False)
    assert old["hifigan"] == HIFIGAN_INT8 and old["hifigan"].mixed_preset
    for name in ("style_bert", "am_front", "am_back"):
        assert old[name].method in ("weights", "float") and "VNNI" in old[name].reason
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nflags\t\t: fpu avx2 avx512f avx512_vnni\n")
    assert not cpu_has_native_bf16(cpuinfo)
    cpuinfo.write_text("processor\t: 0\nflags\t\t: fpu avx2 avx512f avx512_vnni avx512_bf16\n")
    assert cpu_has_native_bf16(cpuinfo)
