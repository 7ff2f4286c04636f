"""benchmarks/run.py end to end on the tiny GPT-SoVITS bundle (`--quick`): the machine's limits are measured, every
decode position gets a time and a bound, and the markdown block lands between its markers in the file given by
--results, leaving the rest of that file (and the real RESULTS.md) untouched."""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("openvino")
pytest.importorskip("onnxruntime")

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
PIPELINES = ("openvino-fp32", "onnxruntime-fp32")


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def quick_run(fixture_bundle, gpt_sovits_set, tmp_path_factory):
    """One `run.py --quick` on the tiny bundle, writing its block into a copy of RESULTS.md."""
    work = tmp_path_factory.mktemp("run")
    results = work / "RESULTS.md"
    original = (BENCHMARKS / "RESULTS.md").read_text()
    results.write_text(original)
    real_before = _digest(BENCHMARKS / "RESULTS.md")
    command = [sys.executable, str(BENCHMARKS / "run.py"), "--quick", "--bundle", str(fixture_bundle[0]),
               "--models", str(gpt_sovits_set / "models"), "--pipelines", ",".join(PIPELINES), "--threads", "1",
               "--json", str(work / "run.json"), "--write-results", "--results", str(results)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    return {"json": json.loads((work / "run.json").read_text()), "results": results.read_text(),
            "original": original, "real_unchanged": _digest(BENCHMARKS / "RESULTS.md") == real_before}


def test_machine_limits_are_measured(quick_run):
    limits = quick_run["json"]["limits"]
    assert limits["bandwidth_gbs"] > 0
    assert limits["gemm"]["f32"]["gflops"] > 0 and limits["gemm"]["int8"]["gflops"] > 0
    assert quick_run["json"]["cpu"]["model"]


def test_every_position_has_a_step_time_and_a_bound(quick_run):
    rows = {row["pipeline"]: row for row in quick_run["json"]["rows"]}
    assert set(rows) == set(PIPELINES)
    for row in rows.values():
        steps = row["steps"]
        assert sorted(int(p) for p in steps) == [50, 400, 1000]
        for figure in steps.values():
            assert figure["ms"] > 0 and figure["bound_ms"] > 0
            assert figure["ratio"] == pytest.approx(figure["ms"] / figure["bound_ms"])
        # the bound grows with the cache it has to read
        assert steps["50"]["bound_ms"] < steps["400"]["bound_ms"] < steps["1000"]["bound_ms"]
        assert row["e2e_ready_rtf"] > 0 and row["e2e_cold_voice_rtf"] > row["e2e_ready_rtf"]
        assert row["vocoder_bound_rtf"] > 0 and row["peak_rss_mb"] > 0
    assert "gpt_decode" in rows["openvino-fp32"]["nodes"]  # OpenVINO's per-node counters


def test_results_block_written_between_markers_only(quick_run):
    text, original = quick_run["results"], quick_run["original"]
    assert quick_run["real_unchanged"]
    begin, end = text.index("<!-- run.py:begin -->"), text.index("<!-- run.py:end -->")
    block = text[begin:end]
    from edgevoice.cpu import detect

    # one block per model version and CPU class: a sitting on another CPU keeps this one's figures
    assert f"<!-- run.py:model=v2/{detect().cpu_class} -->" in block
    assert "| openvino-fp32 |" in block and "batch 1 / 2 / 4 / 8" in block
    for marker in re.findall(r"<!-- run\.py:model=[^ ]+ -->", original):  # other sittings' blocks stay
        assert marker in block
    if "<!-- run.py:begin -->" not in original:  # appended: everything before it is the original file
        assert text[:begin].rstrip("\n") == original.rstrip("\n")


def test_streamed_first_audio_and_batch_throughput_are_measured(quick_run):
    for row in quick_run["json"]["rows"]:
        assert 0 < row["first_chunk_s"], row["pipeline"]
        assert set(row["batch"]) == {"1", "2", "4", "8"} and all(v > 0 for v in row["batch"].values())
