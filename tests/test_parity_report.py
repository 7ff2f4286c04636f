"""`edgevoice parity --report/--gate/--seeds`: gates per precision, free-running statistics, the report files (opened
in headless Chromium), every family through the same command, and the CUDA leg where a GPU is present."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from edgevoice import parity_report as pr
from edgevoice.cli import main
from edgevoice.errors import EdgevoiceError

CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
REPORT_KEYS = {"format", "format_version", "created", "family", "passed", "case", "gates", "reference", "runs",
               "machines"}
RUN_KEYS = {"label", "precision", "passed", "meta", "machine", "figures", "gates", "steps", "free_running"}


def _run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


@pytest.fixture(scope="module")
def reference(gpt_sovits_set):
    audio = gpt_sovits_set / "audio"
    return audio / "ref_en.wav", (audio / "ref_en.txt").read_text().strip()


# ------------------------------------------------------------------------------------------------ without models


def test_gate_settings_and_their_errors():
    gates = {"audio_snr_db": pr.Gate(True, 60, 30, 25), "log_mel_l1": pr.Gate(False, 1e-3, 0.5, 0.5)}
    changed = pr.with_overrides(gates, ["audio_snr_db=40", "int8:log_mel_l1=0.9", "bf16:log_mel_l1=off"])
    assert changed["audio_snr_db"] == pr.Gate(True, 40, 40, 40)
    assert changed["log_mel_l1"] == pr.Gate(False, 1e-3, None, 0.9)
    assert gates["audio_snr_db"].fp32 == 60  # the defaults are not touched
    for bad, message in [("top1=0.9", "no gate 'top1'"), ("audio_snr_db", "expected NAME=LIMIT"),
                         ("fp64:audio_snr_db=3", "precision must be one of"), ("audio_snr_db=loud", "a number"),
                         ("audio_snr_db=inf", "finite")]:
        with pytest.raises(EdgevoiceError, match=message):
            pr.with_overrides(gates, [bad])


def test_run_precision_follows_what_the_backend_computes_in():
    assert pr.run_precision({"backend": "openvino", "precisions": ["bf16", "int8"]}) == "int8"
    assert pr.run_precision({"backend": "openvino", "precisions": ["fp32", "bf16"]}) == "bf16"
    assert pr.run_precision({"backend": "openvino", "precisions": ["fp16"]}) == "bf16"
    assert pr.run_precision({"backend": "openvino", "precisions": ["int4"]}) == "int8"  # unknown: the loosest
    assert pr.run_precision({"backend": "pytorch", "precisions": ["int8"]}) == "fp32"
    # quantised bundles keep FP32 ONNX files, except graphs quantised for onnxruntime (its decode step, vocoder)
    from types import SimpleNamespace

    from edgevoice.parity import run_precisions

    graphs = [SimpleNamespace(precision="int8", engine=""), SimpleNamespace(precision="fp32", engine="")]
    assert run_precisions("onnxruntime", graphs) == ["fp32"] and run_precisions("openvino", graphs) == ["fp32", "int8"]
    graphs.append(SimpleNamespace(precision="int8", engine="onnxruntime"))
    assert run_precisions("onnxruntime", graphs) == ["fp32", "int8"]
    assert pr.run_precision({"backend": "onnxruntime", "precisions": run_precisions("onnxruntime", graphs)}) == "int8"


def test_free_running_statistics():
    rate, rng = 16000, np.random.default_rng(0)
    audio = rng.standard_normal(8000).astype(np.float32)
    same = pr.compare_free(pr.FreeRun(0, np.arange(10), audio), pr.FreeRun(0, np.arange(10), audio), rate)
    assert same == {"seed": 0, "token_agreement": 1.0, "first_divergence": None, "length_difference": 0,
                    "seconds_difference": 0.0, "log_mel_l1": 0.0}
    parted = np.r_[np.arange(3), np.arange(3, 12) + 100]  # parts at step 3 and runs two steps longer
    other = pr.FreeRun(0, parted, rng.standard_normal(8800).astype(np.float32))
    pair = pr.compare_free(pr.FreeRun(0, np.arange(10), audio), other, rate)
    assert pair["token_agreement"] == pytest.approx(3 / 12) and pair["first_divergence"] == 3
    assert pair["length_difference"] == 2 and pair["seconds_difference"] == pytest.approx(0.05)
    assert pair["log_mel_l1"] > 0.1
    prefix = pr.compare_free(pr.FreeRun(1, np.arange(10), audio), pr.FreeRun(1, np.arange(8), audio), rate)
    assert prefix["first_divergence"] == 8 and prefix["length_difference"] == -2

    stats = pr.free_running([pr.FreeRun(0, np.arange(10), audio), pr.FreeRun(1, np.arange(10), audio)],
                            [pr.FreeRun(1, np.arange(10), audio), other], rate)
    assert stats["seeds"] == 2 and stats["identical"] == 1
    assert stats["token_agreement"] == {"mean": pytest.approx((1 + 3 / 12) / 2), "worst": pytest.approx(3 / 12)}
    assert stats["first_divergence"] == {"median": 3.0, "earliest": 3} and stats["length_difference"]["worst"] == 2
    with pytest.raises(EdgevoiceError, match="no free run for seed"):
        pr.free_running([pr.FreeRun(5, np.arange(3), audio)], [], rate)


def test_judge_applies_the_limits_of_the_looser_precision():
    audio = np.sin(np.arange(4000) / 7).astype(np.float32)
    reference = pr.ReportRun("ref", audio, {"backend": "openvino", "precisions": ["fp32"]}, np.zeros((4, 9)))
    logits = np.zeros((4, 9))
    logits[2, 3] = 1.0  # step 2 moves and its top-1 changes
    test = pr.ReportRun("int8", audio, {"backend": "openvino", "precisions": ["int8"]}, logits)
    gates = {"audio_snr_db": pr.Gate(True, 60, 30, 25), "top1_agreement": pr.Gate(True, 0.99, 0.9, 0.7),
             "free_token_agreement": pr.Gate(True, None, None, 0.5)}
    verdict = pr.judge(reference, test, {"label": "int8", "meta": {}, "audio_snr_db": None, "top1_agreement": 0.75},
                       gates, 16000)
    assert verdict.precision == "int8" and verdict.steps["max_abs"] == [0.0, 0.0, 1.0, 0.0]
    assert verdict.steps["top1_agreement"] == [1.0, 1.0, 0.0, 1.0]
    assert verdict.figures["log_mel_l1"] == 0.0
    # SNR None (identical audio) passes, top-1 0.75 ≥ 0.7 passes, a set free-running gate without free runs fails
    assert [(c["figure"], c["passed"]) for c in verdict.checks] == [
        ("audio_snr_db", True), ("top1_agreement", True), ("free_token_agreement", False)]
    assert verdict.failures() == ["free_token_agreement not measured < 0.5"]
    nan = pr.judge(reference, test, {"audio_snr_db": float("nan")}, {"audio_snr_db": gates["audio_snr_db"]}, 16000)
    assert not nan.passed  # a broken run's NaN never passes


# ------------------------------------------------------------------------------------------------ GPT-SoVITS


def _open_in_chromium(html: Path) -> tuple[list, list]:
    """(naturalWidth of every <img>, SEVERE console entries) of `html` in headless Chromium."""
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium (dev extra) drives the browser test")
    if not (CHROMIUM.is_file() and CHROMEDRIVER.is_file()):
        pytest.skip("Debian's chromium and chromium-driver are not installed (.ci/run installs them)")
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--window-size=1200,900"):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    try:
        driver.get(html.resolve().as_uri())
        widths = driver.execute_script(
            "return Array.from(document.images).map(i => i.complete ? i.naturalWidth : -1)")
        severe = [entry for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]
    finally:
        driver.quit()
    return widths, severe


def test_two_cpu_backends_pass_and_the_report_opens(fixture_bundle, reference, tmp_path):
    """OpenVINO and onnxruntime FP32 pass the FP32 gates; report.json has its keys; report.html loads every plot
    in headless Chromium without a console error; the saved case (with its free runs) replays on the other
    backend."""
    report, case = tmp_path / "report", tmp_path / "case.npz"
    result = _run("parity", "--bundle", fixture_bundle[0], "--reference", reference[0], "--reference-text",
                  reference[1], "--tokens", "16", "--seeds", "2", "--report", report, "--save", case, "--json",
                  "--threads", "1")
    assert result.exit_code == 0, result.output
    printed = json.loads(result.stdout)  # the "report written" line goes to stderr with --json
    assert printed["passed"] and [r["passed"] for r in printed["runs"]] == [True]

    doc = json.loads((report / "report.json").read_text())
    assert set(doc) == REPORT_KEYS and doc["format"] == pr.REPORT_FORMAT and doc["family"] == "gpt-sovits"
    assert doc["passed"] and doc["case"]["free_running_seeds"] == [0, 1]
    [run] = doc["runs"]
    assert set(run) == RUN_KEYS and run["precision"] == "fp32" and run["meta"]["backend"] == "onnxruntime"
    assert {c["figure"] for c in run["gates"]} == {"logits_max_rel", "top1_agreement", "audio_snr_db", "log_mel_l1"}
    assert len(run["steps"]["max_abs"]) == doc["case"]["forced_steps"] and max(run["steps"]["max_abs"]) < 1e-3
    assert run["free_running"]["seeds"] == 2 and run["free_running"]["token_agreement"]["worst"] == 1.0
    machine = doc["machines"][run["machine"]]
    assert machine["cpu"]["model"] and machine["libraries"]["onnxruntime"] and isinstance(machine["gpus"], list)

    html = (report / "report.html").read_text()
    assert "http://" not in html and "https://" not in html  # self-contained: nothing to fetch
    # reference and run audio, the per-step logit plot and the free-running plot
    widths, severe = _open_in_chromium(report / "report.html")
    assert len(widths) == 4 and all(w > 0 for w in widths), widths
    assert severe == []

    replay = _run("parity", "--bundle", fixture_bundle[0], "--backend", "onnxruntime", "--against", case,
                  "--report", tmp_path / "replay", "--threads", "1")
    assert replay.exit_code == 0, replay.output
    again = json.loads((tmp_path / "replay" / "report.json").read_text())
    assert again["case"]["replayed_from"] == str(case) and again["case"]["free_running_seeds"] == [0, 1]
    assert again["reference"]["meta"]["backend"] == "openvino" and again["runs"][0]["free_running"]["seeds"] == 2


def _perturbed_copy(bundle: Path, folder: Path) -> Path:
    """The bundle with the GPT step's output layer scaled by 1 %, its hashes written again: a bundle that loads
    and verifies cleanly but computes something else."""
    onnx = pytest.importorskip("onnx", reason="editing an ONNX weight needs the export extra")
    from onnx import numpy_helper

    from edgevoice.bundle import Bundle, write_manifest

    shutil.copytree(bundle, folder)
    model = onnx.load(str(folder / "gpt_step.onnx"))
    weight = next(w for w in model.graph.initializer if w.name == "gpt.ar_predict_layer.weight")
    weight.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(weight) * np.float32(1.01), weight.name))
    onnx.save(model, str(folder / "gpt_step.onnx"))
    write_manifest(folder, Bundle.load(folder, verify=False).manifest)
    return folder


def test_a_perturbed_bundle_fails_its_gates(fixture_bundle, reference, tmp_path):
    perturbed = _perturbed_copy(fixture_bundle[0], tmp_path / "perturbed")
    args = ["parity", "--bundle", fixture_bundle[0], "--bundle", perturbed, "--backend", "onnxruntime",
            "--reference", reference[0], "--reference-text", reference[1], "--tokens", "12", "--threads", "1"]
    result = _run(*args, "--report", tmp_path / "report")
    assert result.exit_code == 1, result.output
    assert "parity gates failed: onnxruntime perturbed (fp32: logits_max_rel 0.01" in result.output
    doc = json.loads((tmp_path / "report" / "report.json").read_text())
    assert not doc["passed"] and not doc["runs"][0]["passed"]
    assert "A GATE FAILED" in (tmp_path / "report" / "report.html").read_text()
    # a user who accepts a 1 % logit change says so, and the same runs pass
    assert _run(*args, "--gate", "logits_max_rel=0.02").exit_code == 0


# ------------------------------------------------------------------------------------------------ EmotiVoice


def test_emotivoice_goes_through_the_same_command(emotivoice_bundle, tmp_path):
    result = _run("parity", "--bundle", emotivoice_bundle[0], "--seeds", "3", "--report", tmp_path, "--threads", "1")
    assert result.exit_code == 0, result.output
    doc = json.loads((tmp_path / "report.json").read_text())
    assert doc["family"] == "emotivoice" and doc["passed"]
    [run] = doc["runs"]
    assert run["steps"] is None  # no tokens are sampled: no per-step logits
    assert {c["figure"] for c in run["gates"]} >= {"durations_agreement", "mel_max_rel", "audio_snr_db"}
    assert run["free_running"]["seeds"] == 1  # deterministic: one free run stands for every seed
    assert "A GATE FAILED" not in (tmp_path / "report.html").read_text()


# ------------------------------------------------------------------------------------------------ CUDA


def _cuda_in_use() -> str | None:
    """Why the CUDA leg cannot run here, or None: a session on a one-node model must really use the CUDA provider
    (onnxruntime-gpu without a driver lists it yet falls back to the CPU)."""
    import onnxruntime as ort

    if "CUDAExecutionProvider" not in ort.get_available_providers():
        return f"onnxruntime {ort.__version__} has no CUDA provider (install onnxruntime-gpu on a machine with a GPU)"
    pytest.importorskip("onnx", reason="the CUDA probe builds a one-node ONNX model")
    from onnx import TensorProto, helper

    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "probe",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    session = ort.InferenceSession(model.SerializeToString(), providers=["CUDAExecutionProvider"])
    used = session.get_providers()
    return None if used and used[0] == "CUDAExecutionProvider" else f"no CUDA device: the session ran on {used}"


@pytest.fixture(scope="session")
def cuda():
    """Skips before any bundle is exported when CUDA is not really there."""
    reason = _cuda_in_use()
    if reason:
        pytest.skip(reason)


def test_cuda_passes_the_fp32_gates(cuda, fixture_bundle, reference, tmp_path):
    case = tmp_path / "cpu.npz"
    cpu = _run("parity", "--bundle", fixture_bundle[0], "--backend", "onnxruntime", "--backend", "onnxruntime-cuda",
               "--reference", reference[0], "--reference-text", reference[1], "--tokens", "16", "--seeds", "2",
               "--save", case, "--report", tmp_path / "report")
    assert cpu.exit_code == 0, cpu.output
    [run] = json.loads((tmp_path / "report" / "report.json").read_text())["runs"]
    assert run["meta"]["device"] == "cuda" and run["precision"] == "fp32" and run["passed"]
    replay = _run("parity", "--bundle", fixture_bundle[0], "--backend", "onnxruntime-cuda", "--against", case)
    assert replay.exit_code == 0, replay.output


def test_parity_table_rows_follow_the_family_columns():
    from edgevoice.parity import AUDIO_SNR, Column, table_lines

    columns = (Column("top-1", "top1_agreement", "6.3f"), AUDIO_SNR)
    lines = table_lines(columns, [{"label": "a" * 40, "top1_agreement": 0.98765, "audio_snr_db": 85.04},
                                  {"label": "same", "top1_agreement": 1.0, "audio_snr_db": None}])
    assert lines[0].split() == ["run", "top-1", "audio", "SNR"]
    assert lines[1].startswith("  " + "a" * 34 + " ") and lines[1].endswith(" 0.988    85.0 dB")
    assert lines[2].endswith(" 1.000  identical")
    assert len({len(line) for line in lines}) == 1  # the columns line up
