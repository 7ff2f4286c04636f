"""benchmarks/peers_speed.py without the peers (they live in environments of their own): the torchaudio stand-in
that lets upstream run on torch's CPU wheel reads and resamples as torchaudio would, the ratios in the table are
peer ÷ engine for each peer, and a run that names no peer is refused."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))

import peers_speed  # noqa: E402


def test_torchaudio_standin_loads_channels_first_and_resamples(tmp_path):
    torch = pytest.importorskip("torch")
    from importlib import util

    # loaded under another name: a real torchaudio elsewhere on the path must not be the one tested
    spec = util.spec_from_file_location("standin_torchaudio", BENCHMARKS / "standins" / "torchaudio" / "__init__.py",
                                        submodule_search_locations=[str(BENCHMARKS / "standins" / "torchaudio")])
    torchaudio = util.module_from_spec(spec)
    sys.modules["standin_torchaudio"] = torchaudio
    spec.loader.exec_module(torchaudio)
    from edgevoice.audio import write_wav

    rate = 32000
    t = np.arange(rate) / rate
    tone = (0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    write_wav(tmp_path / "tone.wav", tone, rate)
    audio, read_rate = torchaudio.load(tmp_path / "tone.wav")
    assert read_rate == rate and tuple(audio.shape) == (1, rate) and audio.dtype == torch.float32
    assert np.abs(audio[0].numpy() - tone).max() < 1e-3  # 16-bit PCM
    half = torchaudio.transforms.Resample(rate, 16000)(audio)
    assert tuple(half.shape) == (1, 16000)
    expected = 0.5 * np.sin(2 * np.pi * 440 * np.arange(16000) / 16000)
    assert np.abs(half[0, 200:-200].numpy() - expected[200:-200]).max() < 1e-2  # edges: the filter's ramp


def _row(engine: str, ready: float, cold: float) -> dict:
    return {"engine": engine, "ready_s": ready, "cold_voice_s": cold, "speech_s": 10.0, "prefill_ms": float("nan"),
            "ms_per_token": 20.0, "vocoder_rtf": 0.1, "peak_rss_mb": 500.0, "load_s": 1.0}


def test_table_gives_each_engine_its_speedup_over_each_peer():
    class Args:
        threads, rounds = 2, 3

    rows = [_row("upstream", 12.0, 13.0), _row("genie", 8.0, 8.5), _row("edgevoice-int8", 2.0, 2.6)]
    table = peers_speed.markdown(rows, Args, {"convert_s": 0.5})
    line = next(line for line in table.splitlines() if line.startswith("| edgevoice-int8"))
    assert "6.00× / 5.00×" in line and "4.00× / 3.27×" in line
    header = next(line for line in table.splitlines() if line.startswith("| engine"))
    assert header.index("vs upstream") < header.index("vs genie")


def test_summary_counts_decode_calls_after_the_first_token():
    runs = [{"ready_s": r, "cold_voice_s": r + 1, "speech_s": 10.0, "decode_s": 2.49, "vocoder_s": 1.0,
             "peak_rss_mb": 800.0, "load_s": 0.1} for r in (3.0, 2.0, 4.0)]
    row = peers_speed.summary("edgevoice-int8", runs, 250)
    assert row["ready_s"] == 3.0 and row["cold_voice_s"] == 4.0
    assert row["ms_per_token"] == pytest.approx(10.0) and row["vocoder_rtf"] == pytest.approx(0.1)


def test_a_run_without_a_peer_is_refused(monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", ["peers_speed.py", "--models", "m", "--int8-bundle", "b"])
    with pytest.raises(SystemExit):
        peers_speed.parse_args()
    assert "name at least one peer" in capsys.readouterr().err
