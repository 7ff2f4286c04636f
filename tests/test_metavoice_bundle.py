"""MetaVoice-1B bundles: the runtime's stage entry points on OpenVINO and onnxruntime against the stages recorded
from upstream (`shared/fixtures/metavoice`), greedy synthesis end to end, voices and the command line."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

import edgevoice
from edgevoice.errors import EdgevoiceError

BACKENDS = ("openvino", "onnxruntime")


@pytest.fixture(scope="module")
def fixtures(metavoice_set):
    return metavoice_set / "fixtures"


@pytest.fixture(scope="module", params=BACKENDS)
def synth(request, metavoice_bundle):
    return edgevoice.load(metavoice_bundle[0], backend=request.param, threads=2)


def _snr_db(reference, got) -> float:
    reference, got = np.asarray(reference, np.float64).ravel(), np.asarray(got, np.float64).ravel()
    assert reference.shape == got.shape
    noise = np.sum((reference - got) ** 2)
    return float("inf") if noise == 0 else 10 * np.log10(np.sum(reference ** 2) / noise)


def _rel(reference, got) -> float:
    reference, got = np.asarray(reference, np.float64), np.asarray(got, np.float64)
    assert reference.shape == got.shape
    return float(np.abs(reference - got).max() / np.abs(reference).max())


def test_export_checks_every_graph_at_several_lengths(metavoice_bundle):
    bundle, report = metavoice_bundle
    graphs = {r.graph for r in report.parity}
    assert graphs == {"speaker_encoder", "stage1", "stage1_step", "stage2", "encodec_decode"}
    assert all(len(set(r.shapes)) >= 2 and r.max_rel < 1e-4 for r in report.parity)
    manifest = json.loads((bundle / "manifest.json").read_text())
    assert manifest["family"] == "metavoice"
    assert manifest["model"]["stage1"]["end_of_audio"] == 2048 and manifest["model"]["encodec"]["n_q"] == 8


def test_text_tokens_match_upstream(synth, fixtures):
    data = np.load(fixtures / "text_tiny.npz")
    offsets = data["s1_offsets"]
    for i, text in enumerate(data["text"]):
        if data["status"][i] == 0:
            assert synth.text_tokens(str(text)).tolist() == data["s1_ids"][offsets[i]:offsets[i + 1]].tolist()
        else:
            with pytest.raises(EdgevoiceError):
                synth.text_tokens(str(text))
    assert synth.text_tokens("").tolist() == [2561]


def test_speaker_embedding_matches_upstream(synth, metavoice_set, fixtures):
    audio, rate = sf.read(metavoice_set / "audio" / "ref.wav", dtype="float32")
    embedding = synth.speaker_embedding(audio, rate)
    expected = np.load(fixtures / "speaker_tiny.npz")["embed"]
    assert embedding.shape == (256,)
    assert np.abs(embedding - expected).max() <= 1e-4


def test_short_reference_is_refused(synth, metavoice_set):
    audio, rate = sf.read(metavoice_set / "audio" / "ref.wav", dtype="float32")
    with pytest.raises(EdgevoiceError, match="at least 30 s"):
        synth.speaker_embedding(audio[: 29 * rate], rate)


@pytest.mark.parametrize("case", ["s0", "s1"])
def test_first_stage_logits_match_upstream(synth, fixtures, case):
    data = np.load(fixtures / f"stage1_tf_{case}_tiny.npz")
    cond, uncond, guided = synth.first_stage_logits(data["text_ids"], data["spk_emb"], data["forced_tokens"],
                                                    guidance=(3.0, 1.0))
    assert guided.shape == (1 + len(data["forced_tokens"]), 2562)
    assert _rel(data["logits_cond"], cond) <= 1e-4 and _rel(data["logits_uncond"], uncond) <= 1e-4
    assert _rel(data["logits_cfg"], guided) <= 1e-4
    assert np.array_equal(guided.argmax(-1), data["logits_cfg"].argmax(-1))


def test_greedy_first_stage_tokens_match_upstream(synth, fixtures):
    data = np.load(fixtures / "stage1_greedy_tiny.npz")
    options = synth.default_options.with_overrides(greedy=True)
    tokens = synth.generate_first_stage(data["text_ids"], data["spk_emb"].reshape(1, -1), options, None,
                                        len(data["gen_tokens"]))
    assert tokens.tolist() == data["gen_tokens"].tolist()


@pytest.mark.parametrize("case", ["pad", "cut"])
def test_second_stage_logits_match_upstream(synth, fixtures, case):
    data = np.load(fixtures / f"stage2_{case}_tiny.npz")
    logits = synth.second_stage_logits(data["in_x"], data["spk_emb"][0])
    assert logits.shape == (6, 256, 1025)
    assert _rel(data["logits_sel"], logits[:, data["sel_positions"]]) <= 1e-4
    assert np.array_equal(logits.argmax(-1), data["argmax"])


def test_encodec_waveform_matches_upstream(synth, fixtures):
    data = np.load(fixtures / "encodec_tiny.npz")
    wav = synth.decode_codes(data["codes"])
    assert _snr_db(data["wav"], wav) >= 60


class _CodesRecorder:
    """A session that notes the code frames it is fed and passes them on."""

    def __init__(self, session):
        self.session, self.frames = session, set()
        self.prepares_each_shape = getattr(session, "prepares_each_shape", True)

    def run(self, feeds):
        self.frames.add(feeds["codes"].shape[-1])
        return self.session.run(feeds)


def test_causal_encodec_runs_at_padded_lengths_on_openvino(synth, fixtures):
    """EnCodec's decoder is causal: on OpenVINO (which keeps kernels for every new length) the codes are padded at the
    end to a few lengths and the extra samples cut; the real samples are the unpadded decode's. onnxruntime decodes
    the codes as they are."""
    from edgevoice.fixed_shapes import padded_length
    from edgevoice.metavoice.synthesizer import CODES_SMALLEST_LENGTH

    start = synth.model["encodec"]["pad_exact_from_frames"]
    assert start == 7  # upstream's 24 kHz decoder: kernels of 7
    recorder = _CodesRecorder(synth.backend.session(synth.bundle, "encodec_decode"))
    synth._sessions["encodec_decode"] = recorder
    rng = np.random.default_rng(4)
    n_q, bins, hop = (synth.model["encodec"][k] for k in ("n_q", "bins", "hop"))
    lengths = (5, 7, 64, 70, 150)  # 5: shorter than exact padding allows, so at its own length
    for frames in lengths:
        codes = rng.integers(0, bins, (n_q, frames))
        own = recorder.session.run({"codes": codes[None]})["wav"][0]
        wav = synth.decode_codes(codes)
        assert wav.shape == own.shape == (frames * hop,)
        np.testing.assert_allclose(wav, own, atol=1e-5 * np.abs(own).max())
    from edgevoice.backends import OnnxRuntimeBackend

    expected = set(lengths) if isinstance(synth.backend, OnnxRuntimeBackend) else {
        padded_length(n, CODES_SMALLEST_LENGTH) if n >= start else n for n in lengths}
    assert recorder.frames == expected
    data = np.load(fixtures / "encodec_tiny.npz")  # still upstream's waveform
    assert _snr_db(data["wav"], synth.decode_codes(data["codes"])) >= 60


def test_greedy_end_to_end_matches_upstream(synth, fixtures):
    data = np.load(fixtures / "e2e_tiny.npz")
    text = "This is a demo of text to speech by MetaVoice-1B, an open-source foundational audio model."
    raw = synth.synthesize(text, data["spk_emb"].reshape(-1), greedy=True, max_new_tokens=96,
                           normalize_loudness=False)
    assert _snr_db(data["wav"], raw) >= 60
    loud = synth.synthesize(text, data["spk_emb"].reshape(-1), greedy=True, max_new_tokens=96)
    gain = float(np.dot(loud, raw) / np.dot(raw, raw))
    assert gain > 0 and np.allclose(loud, gain * raw, atol=1e-6)  # loudness normalisation is a pure gain


def test_same_seed_same_audio_and_threads_agree(metavoice_bundle, fixtures):
    synth = edgevoice.load(metavoice_bundle[0], threads=1)
    embedding = np.load(fixtures / "e2e_tiny.npz")["spk_emb"].reshape(-1)
    one = synth.synthesize("A short test.", embedding, seed=7, max_new_tokens=24)
    two = synth.synthesize("A short test.", embedding, seed=7, max_new_tokens=24)
    assert one.size > 0 and np.array_equal(one, two)


def test_long_text_is_spoken_in_pieces_that_fit_the_contexts(metavoice_bundle):
    synth = edgevoice.load(metavoice_bundle[0])
    sentence = "This is a demo of text to speech by MetaVoice-1B, an open-source foundational audio model."
    options = synth.default_options.with_overrides(max_new_tokens=96)
    assert synth.split_text(sentence, options=options) == [sentence]  # fits: spoken whole, as upstream
    text = ("Printing, in the only sense with which we are at present concerned, differs from most if not from all "
            "the arts and crafts represented in the Exhibition. It is the art of arts. ") * 3
    pieces = synth.split_text(text)
    assert len(pieces) > 3 and " ".join(pieces).split() == text.split()
    assert all(synth._fits(p, synth.default_options) for p in pieces if len(p.split()) > 1)


@pytest.mark.parametrize("text, message", [("Price: 5 €", "U\\+20AC"), ("   ", "empty"),
                                           ("<|endoftext|>", "endoftext")])
def test_bad_text_is_one_line_error(metavoice_bundle, fixtures, text, message):
    synth = edgevoice.load(metavoice_bundle[0])
    embedding = np.load(fixtures / "e2e_tiny.npz")["spk_emb"].reshape(-1)
    with pytest.raises(EdgevoiceError, match=message) as info:
        synth.synthesize(text, embedding, max_new_tokens=4)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("embedding, message", [(np.full(256, np.nan, np.float32), "NaN"),
                                                (np.ones(255, np.float32), "256"),
                                                (np.ones(256, np.int16), "floating")])
def test_bad_speaker_embeddings_are_refused(metavoice_bundle, embedding, message):
    synth = edgevoice.load(metavoice_bundle[0])
    with pytest.raises(EdgevoiceError, match=message):
        synth.synthesize("Hello.", embedding, max_new_tokens=4)


def test_cli_voice_create_and_say(metavoice_bundle, metavoice_set, tmp_path):
    bundle = str(metavoice_bundle[0])
    voice, out = tmp_path / "ljs.npz", tmp_path / "out.wav"
    run = [sys.executable, "-m", "edgevoice.cli"]
    created = subprocess.run(run + ["voice", "create", "--bundle", bundle, "--audio",
                                    str(metavoice_set / "audio" / "ref.wav"), "--out", str(voice)],
                             capture_output=True, text=True)
    assert created.returncode == 0 and "Warning" not in created.stderr, created.stderr
    said = subprocess.run(run + ["say", "--bundle", bundle, "--voice", str(voice), "--text", "Hello there.",
                                 "--out", str(out), "--greedy", "--max-new-tokens", "40", "--guidance", "2.5"],
                          capture_output=True, text=True)
    assert said.returncode == 0, said.stderr
    wav, rate = sf.read(out)
    assert rate == 24000 and wav.size > 0 and np.isfinite(wav).all()


def test_cli_refuses_a_short_reference(metavoice_bundle, metavoice_set, tmp_path):
    audio, rate = sf.read(metavoice_set / "audio" / "ref.wav", dtype="float32")
    short = tmp_path / "short.wav"
    sf.write(short, audio[: 10 * rate], rate)
    result = subprocess.run([sys.executable, "-m", "edgevoice.cli", "voice", "create", "--bundle",
                             str(metavoice_bundle[0]), "--audio", str(short), "--out", str(tmp_path / "v.npz")],
                            capture_output=True, text=True)
    assert result.returncode == 1 and "30 s" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "v.npz").exists()


def test_cli_warns_of_a_reference_that_is_mostly_silence(metavoice_bundle, metavoice_set, tmp_path):
    """Upstream checks the duration only: 28 s of silence and 3 s of speech make a voice from the 3 s. So do we, but
    say so in one line."""
    audio, rate = sf.read(metavoice_set / "audio" / "ref.wav", dtype="float32")
    padded = tmp_path / "padded.wav"
    sf.write(padded, np.concatenate([np.zeros(28 * rate, np.float32), audio[: 3 * rate]]), rate)
    result = subprocess.run([sys.executable, "-m", "edgevoice.cli", "voice", "create", "--bundle",
                             str(metavoice_bundle[0]), "--audio", str(padded), "--out", str(tmp_path / "v.npz")],
                            capture_output=True, text=True)
    assert result.returncode == 0 and (tmp_path / "v.npz").exists(), result.stderr
    warning = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(warning) == 1 and warning[0].startswith("Warning: ") and "of the 31.0 s reference is sound" in warning[0]
    assert float(warning[0].split("only ")[1].split(" s")[0]) <= 3.2


def test_parity_across_backends_saves_and_replays(metavoice_bundle, fixtures, tmp_path):
    from edgevoice.metavoice.voice import SpeakerVoice

    bundle = str(metavoice_bundle[0])
    voice = SpeakerVoice(np.load(fixtures / "speaker_tiny.npz")["embed"], "").save(tmp_path / "v.npz")
    run = [sys.executable, "-m", "edgevoice.cli", "parity", "--bundle", bundle, "--voice", str(voice),
           "--tokens", "30", "--json"]
    saved = subprocess.run(run + ["--backend", "openvino", "--backend", "onnxruntime", "--save",
                                  str(tmp_path / "case.npz")], capture_output=True, text=True)
    assert saved.returncode == 0, saved.stderr[-2000:]
    result = json.loads(saved.stdout)
    assert result["passed"] and result["runs"][0]["top1_agreement"] == 1.0
    assert result["runs"][0]["stage2_agreement"] == 1.0 and result["runs"][0]["audio_snr_db"] >= 60
    replay = [r for r in run if r not in ("--voice", str(voice))]  # the case brings its voice
    replayed = subprocess.run(replay + ["--backend", "onnxruntime", "--against", str(tmp_path / "case.npz")],
                              capture_output=True, text=True)
    assert replayed.returncode == 0 and json.loads(replayed.stdout)["passed"], replayed.stderr[-2000:]


def test_parity_gates_benchmark_measures_metavoice(metavoice_bundle, tmp_path):
    """`benchmarks/parity_gates.py` (the basis of the gate defaults) has MetaVoice cases: three texts, two seeds."""
    from pathlib import Path

    script = Path(__file__).resolve().parents[1] / "benchmarks" / "parity_gates.py"
    bundle = str(metavoice_bundle[0])
    done = subprocess.run([sys.executable, str(script), "--reference", bundle, "--variant", f"{bundle}:onnxruntime",
                           "--seeds", "1", "--tokens", "20", "--threads", "1", "--json", str(tmp_path / "g.json")],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    (rows,) = json.loads((tmp_path / "g.json").read_text()).values()
    assert len(rows) == 6 and all(r["precision"] == "fp32" for r in rows)
    assert max(r["logits_max_rel"] for r in rows) < 1e-4 and min(r["audio_snr_db"] for r in rows) > 60


def test_cli_phonemize_shows_the_stage_one_ids(metavoice_bundle, fixtures):
    data = np.load(fixtures / "text_tiny.npz")
    index = int(np.flatnonzero(data["status"] == 0)[0])
    text, offsets = str(data["text"][index]), data["s1_offsets"]
    result = subprocess.run([sys.executable, "-m", "edgevoice.cli", "phonemize", "--bundle", str(metavoice_bundle[0]),
                             "--json", text], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["ids"] == data["s1_ids"][offsets[index]:offsets[index + 1]].tolist()
    assert len(report["pieces"]) == len(report["ids"]) - 1 and "".join(report["pieces"]) == report["norm_text"]
