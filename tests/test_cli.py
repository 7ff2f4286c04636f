"""The command line: happy path on the tiny bundle, and one-line errors for bad input."""

from __future__ import annotations

import soundfile
import pytest
from click.testing import CliRunner

from edgevoice.cli import main


def _run(*args):
    result = CliRunner().invoke(main, [str(a) for a in args])
    return result


def _assert_one_line_error(result, fragment):
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    lines = [line for line in result.output.strip().splitlines() if line]
    assert len(lines) == 1 and lines[0].startswith("Error:") and fragment in lines[0], result.output


def test_info_voice_say(fixture_bundle, gpt_sovits_set, tmp_path):
    bundle, _ = fixture_bundle
    result = _run("info", bundle)
    assert result.exit_code == 0 and "gpt-sovits v2" in result.output and "gpt_step" in result.output
    voice = tmp_path / "me.npz"
    result = _run("voice", "create", "--bundle", bundle, "--audio", gpt_sovits_set / "audio" / "ref_en.wav",
                  "--text", (gpt_sovits_set / "audio" / "ref_en.txt").read_text().strip(), "--out", voice)
    assert result.exit_code == 0, result.output
    assert "averaged" not in result.output
    result = _run("voice", "create", "--bundle", bundle, "--audio", gpt_sovits_set / "audio" / "ref_en.wav",
                  "--aux-audio", gpt_sovits_set / "audio" / "ref_zh.wav", "--out", tmp_path / "mixed.npz")
    assert result.exit_code == 0 and "timbre averaged over 2 clips" in result.output, result.output
    wav = tmp_path / "out.wav"
    result = _run("say", "--bundle", bundle, "--voice", voice, "--text", "Hello there, how are you today?",
                  "--out", wav, "--seed", 1, "--backend", "onnxruntime")
    assert result.exit_code == 0, result.output
    data, rate = soundfile.read(wav)
    assert rate == 32000 and data.size > 0.3 * 32000


def test_say_errors(fixture_bundle, tmp_path):
    bundle, _ = fixture_bundle
    _assert_one_line_error(_run("say", "--bundle", tmp_path / "nope", "--voice", tmp_path / "v.npz", "--text", "hi",
                                "--out", tmp_path / "o.wav"), "bundle folder not found")
    _assert_one_line_error(_run("say", "--bundle", bundle, "--voice", tmp_path / "v.npz", "--text", "hi",
                                "--out", tmp_path / "o.wav"), "voice file not found")
    junk = tmp_path / "junk.npz"
    junk.write_text("junk")
    _assert_one_line_error(_run("say", "--bundle", bundle, "--voice", junk, "--text", "hi",
                                "--out", tmp_path / "o.wav"), "not an edgevoice voice file")
    assert not (tmp_path / "o.wav").exists()
    too_long = tmp_path / ("x" * 300)  # a name the file system refuses, wherever it is first touched
    _assert_one_line_error(_run("say", "--bundle", bundle, "--voice", too_long, "--text", "hi",
                                "--out", tmp_path / "o.wav"), "File name too long")
    _assert_one_line_error(_run("info", too_long), "File name too long")


def test_voice_create_rejects_bad_audio(fixture_bundle, tmp_path):
    import numpy as np

    bundle, _ = fixture_bundle
    short = tmp_path / "short.wav"
    soundfile.write(short, np.zeros(16000, np.float32) + 0.1, 16000)
    _assert_one_line_error(_run("voice", "create", "--bundle", bundle, "--audio", short, "--text", "Hello.",
                                "--out", tmp_path / "v.npz"), "needs 3–10 s")
    _assert_one_line_error(_run("voice", "create", "--bundle", bundle, "--audio", tmp_path / "missing.wav",
                                "--text", "Hello.", "--out", tmp_path / "v.npz"), "audio file not found")


def test_a_voice_written_to_standard_output_is_the_npz_alone(fixture_bundle, gpt_sovits_set):
    import io

    import numpy as np

    audio = gpt_sovits_set / "audio" / "ref_en.wav"
    text = (gpt_sovits_set / "audio" / "ref_en.txt").read_text().strip()
    result = CliRunner().invoke(main, ["voice", "create", "--bundle", str(fixture_bundle[0]), "--audio", str(audio),
                                       "--text", text, "--out", "-"])
    assert result.exit_code == 0, result.output
    assert "voice written to standard output" in result.stderr and result.stdout_bytes.endswith(b"\x00\x00")
    with np.load(io.BytesIO(result.stdout_bytes)) as arrays:  # the zip's end record is the stream's last bytes
        assert "prompt_tokens" in arrays.files


@pytest.mark.parametrize("case", ["missing", "not_checkpoint", "unsupported_version"])
def test_export_errors(gpt_sovits_set, tmp_path, case):
    pytest.importorskip("torch")
    models = gpt_sovits_set / "models"
    sovits = models / "s2_v2_tiny.pth"
    expected = {"missing": "file not found", "not_checkpoint": "not a GPT-SoVITS SoVITS checkpoint",
                "unsupported_version": "v4 SoVITS checkpoints are not supported"}[case]
    if case == "missing":
        sovits = tmp_path / "absent.pth"
    elif case == "not_checkpoint":
        sovits = tmp_path / "readme.pth"
        sovits.write_text("this is not a model")
    else:
        data = (models / "s2_v2_tiny.pth").read_bytes()
        sovits = tmp_path / "v4.pth"
        sovits.write_bytes(b"04" + data[2:])
    result = _run("export", "gpt-sovits", "--gpt", models / "s1_v2_tiny.ckpt", "--sovits", sovits,
                  "--hubert", models / "chinese-hubert-base", "--out", tmp_path / "bundle")
    _assert_one_line_error(result, expected)
    assert not (tmp_path / "bundle").exists()


def test_demo_runs_end_to_end(tmp_path):
    pytest.importorskip("torch")
    result = _run("demo", "--out", tmp_path)
    assert result.exit_code == 0, result.output
    assert "random" in result.output and "edgevoice export gpt-sovits" in result.output
    data, rate = soundfile.read(tmp_path / "demo.wav")
    assert rate == 32000 and data.size > 32000
    # into a folder that holds anything (real checkpoints under upstream's names, say): refused, nothing replaced
    _assert_one_line_error(_run("demo", "--out", tmp_path), "exists and is not an empty folder")
    assert soundfile.read(tmp_path / "demo.wav")[0].size == data.size


def test_voice_from_another_model_is_refused(fixture_bundle, gpt_sovits_set, tmp_path):
    from edgevoice import Voice

    bundle, _ = fixture_bundle
    voice = tmp_path / "me.npz"
    result = _run("voice", "create", "--bundle", bundle, "--audio", gpt_sovits_set / "audio" / "ref_zh.wav",
                  "--text", (gpt_sovits_set / "audio" / "ref_zh.txt").read_text().strip(), "--language", "zh",
                  "--out", voice)
    assert result.exit_code == 0, result.output
    profile = Voice.load(voice)
    assert profile.prompt_bert.any()  # Chinese transcript: real BERT features, not zeros
    profile.model_fingerprint = "0" * 64
    profile.save(voice)
    _assert_one_line_error(_run("say", "--bundle", bundle, "--voice", voice, "--text", "你好，世界。", "--language", "zh",
                                "--out", tmp_path / "o.wav"), "made with a different model")


def test_export_int8_needs_a_calibration_reference(gpt_sovits_set, tmp_path):
    models = gpt_sovits_set / "models"
    result = _run("export", "gpt-sovits", "--gpt", models / "s1_v2_tiny.ckpt", "--sovits", models / "s2_v2_tiny.pth",
                  "--hubert", models / "chinese-hubert-base", "--out", tmp_path / "b", "--int8")
    _assert_one_line_error(result, "give --reference WAV and --reference-text TEXT")
    assert not (tmp_path / "b").exists()


def test_reference_free_voice_and_speed(fixture_bundle, gpt_sovits_set, tmp_path):
    bundle, _ = fixture_bundle
    voice = tmp_path / "free.npz"
    result = _run("voice", "create", "--bundle", bundle, "--audio", gpt_sovits_set / "audio" / "ref_en.wav",
                  "--out", voice)
    assert result.exit_code == 0 and "reference-free voice written" in result.output, result.output
    wav = tmp_path / "out.wav"
    result = _run("say", "--bundle", bundle, "--voice", voice, "--text", "Hello there.", "--out", wav,
                  "--seed", 1, "--speed", 1.5)
    assert result.exit_code == 0, result.output
    assert soundfile.read(wav)[0].size > 0
    _assert_one_line_error(_run("say", "--bundle", bundle, "--voice", voice, "--text", "Hello.", "--out", wav,
                                "--speed", 0), "speed 0.0 is outside")


def test_failed_parity_check_is_one_line_and_writes_nothing(gpt_sovits_set, tmp_path, monkeypatch):
    graph_export = pytest.importorskip("edgevoice_export.graph_export")
    monkeypatch.setattr(graph_export, "FP32_PARITY_LIMIT", 0.0)  # no float graph can pass
    models = gpt_sovits_set / "models"
    result = _run("export", "gpt-sovits", "--gpt", models / "s1_v2_tiny.ckpt", "--sovits", models / "s2_v2_tiny.pth",
                  "--hubert", models / "chinese-hubert-base", "--out", tmp_path / "bundle", "--format", "onnx")
    assert result.exit_code == 1 and "Traceback" not in result.output
    lines = [line for line in result.output.replace("\r", "\n").splitlines() if line and "exporting" not in line]
    assert len(lines) == 1 and lines[0].startswith("Error: parity check failed, nothing written: gpt_prefill")
    assert not (tmp_path / "bundle").exists() and not list(tmp_path.iterdir())


def test_int8_export_needs_both_formats(gpt_sovits_set, tmp_path):
    models = gpt_sovits_set / "models"
    result = _run("export", "gpt-sovits", "--gpt", models / "s1_v2_tiny.ckpt", "--sovits", models / "s2_v2_tiny.pth",
                  "--hubert", models / "chinese-hubert-base", "--out", tmp_path / "bundle", "--format", "openvino",
                  "--int8", "--reference", gpt_sovits_set / "audio" / "ref_en.wav", "--reference-text", "Hello.")
    _assert_one_line_error(result, "--int8 quantises the OpenVINO IR")
    assert not (tmp_path / "bundle").exists()


def test_a_command_that_cannot_load_says_why_in_one_line():
    """A missing package of the export extra is named as such; an ImportError inside edgevoice's own packages is a
    broken installation, not a missing extra."""
    from edgevoice.cli import _missing_extra

    missing = CliRunner().invoke(_missing_extra("export", ModuleNotFoundError("no nncf", name="nncf")), [])
    assert missing.exit_code == 1 and "needs the export extra (nncf is missing)" in missing.output
    broken = ImportError("cannot import name 'X' from 'edgevoice_calibration.collect'",
                         name="edgevoice_calibration.collect")
    result = CliRunner().invoke(_missing_extra("export", broken), [])
    assert result.exit_code == 1 and "installation broken" in result.output and "extra" not in result.output


def test_errors_escape_what_a_terminal_would_obey():
    """Names in errors come from untrusted files: a right-to-left override or a carriage return is shown escaped."""
    import click

    from edgevoice.cli import fail

    with pytest.raises(click.ClickException) as error:
        fail("graph 'a\u202egnp.exe' is missing\r; ü and 你好 stay")
    assert error.value.message == "graph 'a\\u202egnp.exe' is missing\\r; ü and 你好 stay"
