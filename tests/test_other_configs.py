"""Nothing depends on one set of model sizes: an unusual but valid config exports, passes parity and speaks."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("torch")

from edgevoice import SynthesisOptions, Synthesizer  # noqa: E402
from edgevoice.audio import write_wav  # noqa: E402
from edgevoice_export.checkpoints import CheckpointError  # noqa: E402
from edgevoice_export.gpt_sovits import export_gpt_sovits  # noqa: E402
from edgevoice_export.test_model import make_test_model, write_sovits  # noqa: E402

ODD_SIZES = {
    "gpt": {"n_layer": 3, "head": 8, "embedding_dim": 256, "hidden_dim": 256},
    "sovits": {"n_layers": 3, "filter_channels": 192, "upsample_initial_channel": 48, "hidden_channels": 160,
               "inter_channels": 128, "upsample_kernel_sizes": [20, 16, 8, 2, 2]},
    "hubert": {"num_hidden_layers": 2, "intermediate_size": 512, "num_attention_heads": 6},
    "bert": {"num_hidden_layers": 4, "num_attention_heads": 8, "intermediate_size": 512, "vocab_size": 3000},
}


def test_odd_sizes_export_and_synthesise(tmp_path):
    parts = make_test_model(tmp_path / "models", "tiny", seed=9, overrides=ODD_SIZES)
    report = export_gpt_sovits(parts["gpt"], parts["sovits"], parts["hubert"], tmp_path / "bundle",
                               bert=parts["bert"], progress=False)
    for result in report.parity:
        assert result.max_rel < 1e-4, result.line()
    synth = Synthesizer.load(tmp_path / "bundle")
    assert synth.bundle.manifest.model["gpt"]["n_layer"] == 3
    assert synth.bundle.manifest.model["sovits"]["inter_channels"] == 128
    t = np.arange(5 * 32000) / 32000
    write_wav(tmp_path / "ref.wav", (0.3 * np.sin(2 * np.pi * 180 * t) * (1 + np.sin(2 * np.pi * 3 * t))).astype(
        np.float32), 32000)
    options = SynthesisOptions(seed=0, max_tokens=20)
    for language, transcript, text in [("en", "A quiet morning by the lake.", "See you tomorrow at noon."),
                                       ("zh", "我们一起去公园散步。", "今天天气很好。")]:
        voice = synth.create_voice(tmp_path / "ref.wav", transcript, language)
        chunks = list(synth.stream(text, voice, language, options))
        assert chunks and all(c.audio.size == c.tokens.size * 1280 + 9600 for c in chunks)
        assert np.isfinite(np.concatenate([c.audio for c in chunks])).all()


def test_invalid_global_embedding_width_is_a_clear_error(tmp_path):
    with pytest.raises(CheckpointError, match="gin_channels 256"):
        write_sovits(tmp_path / "s.pth", "tiny", 0, {"gin_channels": 256})
