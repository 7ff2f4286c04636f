"""`edgevoice parity`: one case through PyTorch, OpenVINO and onnxruntime, and replayed from a saved case."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from edgevoice.errors import EdgevoiceError
from edgevoice.gpt_sovits import parity
from edgevoice.cli import main
from edgevoice.gpt_sovits.synthesizer import Synthesizer


def _run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


@pytest.fixture(scope="module")
def reference(gpt_sovits_set):
    return gpt_sovits_set / "audio" / "ref_en.wav", (gpt_sovits_set / "audio" / "ref_en.txt").read_text().strip()


def test_backends_agree_and_a_saved_case_replays(fixture_bundle, reference, tmp_path):
    case_path = tmp_path / "case.npz"
    result = _run("parity", "--bundle", fixture_bundle[0], "--reference", reference[0], "--reference-text",
                  reference[1], "--tokens", "24", "--save", case_path, "--json", "--threads", "1")
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["reference"]["backend"] == "openvino" and report["tokens"] > 0
    [ort] = report["runs"]
    assert ort["meta"]["backend"] == "onnxruntime"
    assert ort["logits_max_rel"] < 1e-4 and ort["top1_agreement"] == 1.0 and ort["audio_snr_db"] > 60

    # Replaying the saved case on the same machine and backend reproduces the reference bit for bit.
    result = _run("parity", "--bundle", fixture_bundle[0], "--backend", "openvino", "--against", case_path,
                  "--json", "--threads", "1", "--min-snr-db", "1000")
    assert result.exit_code == 0, result.output
    [again] = json.loads(result.output)["runs"]
    assert again["logits_max_abs"] == 0 and again["audio_snr_db"] is None  # identical

    # A threshold the onnxruntime run cannot meet fails with one line naming it.
    result = _run("parity", "--bundle", fixture_bundle[0], "--backend", "onnxruntime", "--against", case_path,
                  "--threads", "1", "--min-snr-db", "1000")
    assert result.exit_code == 1 and "audio SNR below 1000.0 dB: onnxruntime" in result.output


def test_pytorch_reference_run(fixture_bundle, gpt_sovits_set, reference):
    pytest.importorskip("torch", reason="the PyTorch reference needs the export extra")
    from edgevoice_export.gpt_sovits.torch_backend import TorchBackend

    synth = Synthesizer.load(fixture_bundle[0], backend="openvino", threads=1)
    voice = synth.create_voice(reference[0], reference[1], "en")
    torch_synth = Synthesizer(synth.bundle, backend=TorchBackend.from_folder(synth.bundle, gpt_sovits_set / "models"))
    case = parity.make_case(torch_synth, voice, "The little boat drifted past the old stone bridge.", max_tokens=16)
    torch_run = parity.run_case(torch_synth, case)
    result = parity.compare_runs(torch_run, parity.run_case(synth, case))
    assert result["logits_max_rel"] < 1e-4 and result["audio_snr_db"] > 60
    # a perturbed run is seen as different: the comparison can fail
    worse = parity.ParityRun("perturbed", torch_run.logits + 0.5, torch_run.audio * 1.1)
    bad = parity.compare_runs(torch_run, worse)
    assert bad["logits_max_abs"] == pytest.approx(0.5, rel=1e-5) and bad["audio_snr_db"] < 25


def test_parity_errors(fixture_bundle, tmp_path):
    result = _run("parity", "--bundle", fixture_bundle[0])
    assert result.exit_code == 1 and "give --voice" in result.output
    junk = tmp_path / "junk.npz"
    junk.write_bytes(b"not a zip")
    result = _run("parity", "--bundle", fixture_bundle[0], "--against", junk)
    assert result.exit_code == 1 and "not an edgevoice parity case" in result.output
    result = _run("parity", "--bundle", fixture_bundle[0], "--against", tmp_path / "missing.npz")
    assert result.exit_code == 1 and "parity case file not found" in result.output
    result = _run("parity", "--bundle", fixture_bundle[0], "--against", tmp_path)
    assert result.exit_code == 1 and "is a folder, not a parity case file" in result.output
    result = _run("parity", "--bundle", fixture_bundle[0], "--pytorch-models", tmp_path, "--against", junk)
    assert result.exit_code == 1 and "checkpoints of this bundle not found" in result.output
    # refused before any run, in one line each
    folder = tmp_path / "adir"
    folder.mkdir()
    for args, message in [(("--save", folder), "is a folder; give a file name"),
                          (("--tokens", 0), "--tokens must be at least 1"),
                          (("--min-snr-db", "nan"), "--min-snr-db must be a finite number"),
                          (("--text", "<b></b>"), "--text is empty"),
                          (("--voice", junk, "--reference", junk), "not both"),
                          (("--reference-text", "hi"), "give the clip too"),
                          (("--json", "--save", "-"), "both write to standard output"),
                          (("--seed", -1), "--seed must be 0…2⁶³−1"), (("--seeds", 10 ** 6), "--seeds must be 0…100"),
                          (("--report", junk / "r"), "is not a folder"),
                          (("--voice", junk), "replays a saved case with its own voice")]:
        result = _run("parity", "--bundle", fixture_bundle[0], "--against", junk, *args)
        lines = result.output.strip().splitlines()
        assert result.exit_code == 1 and len(lines) == 1 and message in lines[0], result.output


def _cuda_available() -> bool:
    import onnxruntime as ort

    return "CUDAExecutionProvider" in ort.get_available_providers()


@pytest.mark.skipif(not _cuda_available(), reason="onnxruntime-gpu with a CUDA device is not available here")
def test_cuda_matches_cpu(fixture_bundle, reference):
    cpu = Synthesizer.load(fixture_bundle[0], backend="onnxruntime", threads=1)
    voice = cpu.create_voice(reference[0], reference[1], "en")
    case = parity.make_case(cpu, voice, "The little boat drifted past the old stone bridge.", max_tokens=16)
    cuda = Synthesizer.load(fixture_bundle[0], backend="onnxruntime-cuda")
    result = parity.compare_runs(parity.run_case(cpu, case), parity.run_case(cuda, case))
    assert result["logits_max_rel"] < 1e-3 and result["top1_agreement"] == 1.0
    assert np.isfinite(result["audio_max_abs"]) and (result["audio_snr_db"] is None or result["audio_snr_db"] > 40)


@pytest.mark.skipif(_cuda_available(), reason="checks the message on machines without CUDA")
def test_asking_for_cuda_without_it_is_one_clear_line(fixture_bundle, reference):
    synth = Synthesizer.load(fixture_bundle[0], backend="onnxruntime-cuda")
    with pytest.raises(EdgevoiceError, match="no CUDA provider: install onnxruntime-gpu") as caught:
        synth.create_voice(reference[0], reference[1], "en")  # the first graph it opens
    assert "\n" not in str(caught.value)


def test_a_case_from_another_model_is_named_as_such(fixture_bundle, reference):
    synth = Synthesizer.load(fixture_bundle[0], backend="onnxruntime", threads=1)
    voice = synth.create_voice(reference[0], reference[1], "en")
    case = parity.make_case(synth, voice, "Hello there.", max_tokens=4)
    case.voice.model_fingerprint = "0" * 64
    with pytest.raises(EdgevoiceError, match="parity case was recorded with a different model"):
        parity.run_case(synth, case)
