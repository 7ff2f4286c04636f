"""benchmarks/trained_vocoder_proxy.py: the checkpoint it writes loads as upstream's, with only the vocoder changed."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")

from edgevoice_export.gpt_sovits.checkpoints import load_sovits_checkpoint  # noqa: E402

from conftest import SHARED_DIR  # noqa: E402

_SPEC = importlib.util.spec_from_file_location(
    "trained_vocoder_proxy", Path(__file__).resolve().parents[1] / "benchmarks" / "trained_vocoder_proxy.py")
proxy = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(proxy)


def test_a_few_steps_change_the_vocoder_and_nothing_else(gpt_sovits_set, tmp_path):
    speech = SHARED_DIR / "data" / "speech"
    if not speech.is_dir():
        pytest.skip(f"no licensed speech at {speech}")
    source = gpt_sovits_set / "models" / "s2_v2_tiny.pth"
    out = tmp_path / "sovits.pth"
    assert proxy.main(["--sovits", str(source), "--out", str(out), "--steps", "3", "--clips", "3",
                       "--speech", str(speech)]) == 0
    before, after = load_sovits_checkpoint(source), load_sovits_checkpoint(out)
    assert after.version == before.version and after.config["model"] == before.config["model"]
    assert set(after.weights) == set(before.weights)
    changed = {k for k in before.weights if not np.array_equal(before.weights[k], after.weights[k])}
    assert changed and all(k.startswith("dec.") for k in changed)
    assert all(after.weights[k].dtype == before.weights[k].dtype for k in before.weights)
