"""The runtime works with torch made unimportable: voice creation and synthesis in a subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"

SCRIPT = textwrap.dedent("""
    import json, sys
    sys.modules["torch"] = None          # any `import torch` now raises ImportError
    sys.modules["edgevoice_export"] = None
    import numpy as np
    import edgevoice
    bundle, audio_path, text, out = sys.argv[1:5]
    synth = edgevoice.load(bundle)
    voice = synth.create_voice(audio_path, text, "en")
    voice.save(out + "/voice.npz")
    voice = edgevoice.Voice.load(out + "/voice.npz")
    options = edgevoice.SynthesisOptions(seed=3, max_tokens=40)
    chunks = list(synth.stream("Every evening after work, my sister walks her dog.", voice, "en", options))
    again = synth.synthesize("Every evening after work, my sister walks her dog.", voice, "en", options)
    print(json.dumps({"torch_loaded": "torch" in sys.modules and sys.modules["torch"] is not None,
                      "chunks": len(chunks), "tokens": [int(c.tokens.size) for c in chunks],
                      "samples": [int(c.audio.size) for c in chunks],
                      "same_seed_same_audio": bool(np.array_equal(np.concatenate([c.audio for c in chunks]), again)),
                      "prompt_tokens": int(voice.prompt_tokens.size)}))
""")


def _bare_env() -> dict[str, str]:
    """No PATH and no site packages beyond the runtime's; the test session's own compile cache (conftest), never the
    user's ~/.cache."""
    return {"PYTHONPATH": str(SRC), "PATH": "", "EDGEVOICE_CACHE_DIR": os.environ["EDGEVOICE_CACHE_DIR"]}


def test_runtime_end_to_end_without_torch(fixture_bundle, gpt_sovits_set, tmp_path):
    bundle, _ = fixture_bundle
    audio = gpt_sovits_set / "audio" / "ref_en.wav"
    text = (gpt_sovits_set / "audio" / "ref_en.txt").read_text().strip()
    result = subprocess.run([sys.executable, "-c", SCRIPT, str(bundle), str(audio), text, str(tmp_path)],
                            capture_output=True, text=True, timeout=300, env=_bare_env())
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["torch_loaded"] is False
    assert report["prompt_tokens"] == 139  # 5 s reference + 0.6 s padding → 279 HuBERT frames → 139 tokens
    assert report["chunks"] >= 1
    for tokens, samples in zip(report["tokens"], report["samples"]):
        assert 1 <= tokens <= 40
        assert samples == tokens * 1280 + int(0.3 * 32000)  # 1280 samples per token, 0.3 s pause
    assert report["same_seed_same_audio"]


CLI = textwrap.dedent("""
    import sys
    for name in ("torch", "edgevoice_export", "edgevoice_calibration", "transformers"):
        sys.modules[name] = None          # importing any of them now raises ImportError
    from edgevoice.cli import main
    try:
        main(sys.argv[1:], prog_name="edgevoice")
    finally:
        leaked = [m for m in ("torch", "edgevoice_export", "edgevoice_calibration") if sys.modules.get(m) is not None]
        print("LEAKED:" + ",".join(leaked), file=sys.stderr)
""")


def _cli(*args, cwd=None):
    result = subprocess.run([sys.executable, "-c", CLI, *map(str, args)], capture_output=True, text=True, timeout=300,
                            env=_bare_env(), cwd=cwd)
    assert "LEAKED:\n" in result.stderr or result.stderr.rstrip().endswith("LEAKED:"), result.stderr[-2000:]
    return result


def test_runtime_cli_without_torch(fixture_bundle, gpt_sovits_set, tmp_path):
    bundle, _ = fixture_bundle
    result = _cli("--help")
    assert result.returncode == 0 and "say" in result.stdout and "export" in result.stdout, result.stderr[-2000:]
    result = _cli("export", "gpt-sovits", "--help")
    assert result.returncode == 1 and "needs the export extra" in result.stderr  # one line, no traceback
    assert "Traceback" not in result.stderr
    result = _cli("info", bundle)
    assert result.returncode == 0 and "gpt-sovits v2" in result.stdout, result.stderr[-2000:]
    text = (gpt_sovits_set / "audio" / "ref_en.txt").read_text().strip()
    voice = tmp_path / "me.npz"
    result = _cli("voice", "create", "--bundle", bundle, "--audio", gpt_sovits_set / "audio" / "ref_en.wav",
                  "--text", text, "--out", voice)
    assert result.returncode == 0 and voice.is_file(), result.stderr[-2000:]
    wav = tmp_path / "out.wav"
    result = _cli("say", "--bundle", bundle, "--voice", voice, "--text", "Hello there.", "--out", wav, "--seed", 1)
    assert result.returncode == 0 and wav.stat().st_size > 44, result.stderr[-2000:]


def test_emotivoice_cli_without_torch(emotivoice_bundle, tmp_path):
    bundle, _ = emotivoice_bundle
    result = _cli("phonemize", "--bundle", bundle, "--json", "你好，world!")
    assert result.returncode == 0, result.stderr[-2000:]
    assert json.loads(result.stdout)["phonemes"].startswith("<sos/eos>")
    wav = tmp_path / "out.wav"
    result = _cli("say", "--bundle", bundle, "--speaker", "0", "--prompt", "Happy", "--text", "今天天气很好。Nice day.",
                  "--out", wav)
    assert result.returncode == 0 and wav.stat().st_size > 44, result.stderr[-2000:]
    result = _cli("info", bundle)
    assert result.returncode == 0 and "emotivoice" in result.stdout


def test_metavoice_cli_without_torch(metavoice_bundle, metavoice_set, tmp_path):
    bundle, _ = metavoice_bundle
    voice, wav = tmp_path / "ljs.npz", tmp_path / "out.wav"
    result = _cli("voice", "create", "--bundle", bundle, "--audio", metavoice_set / "audio" / "ref.wav", "--out", voice)
    assert result.returncode == 0 and voice.is_file(), result.stderr[-2000:]
    result = _cli("say", "--bundle", bundle, "--voice", voice, "--text", "Hello there.", "--out", wav, "--seed", 1,
                  "--max-new-tokens", "30")
    assert result.returncode == 0 and wav.stat().st_size > 44, result.stderr[-2000:]
    result = _cli("info", bundle)
    assert result.returncode == 0 and "metavoice" in result.stdout
