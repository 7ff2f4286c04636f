"""SoVITS at padded shapes: the real samples equal an unpadded decode's, and a long text runs at few shapes.

OpenVINO keeps memory for every input shape a graph has run at, so the runtime pads every `sovits_latent` call to
a bucket (`chunking.SOVITS_TOKEN_BUCKETS`, power-of-two phone counts) and feeds the real lengths, which every layer
masks; the vocoder runs on windows of `z` of a few lengths (`VOCODER_FRAME_BUCKETS`).
"""

import numpy as np
import pytest

import edgevoice
from edgevoice.backends import OnnxRuntimeBackend, OpenVINOBackend
from edgevoice.gpt_sovits.chunking import (MIN_PHONE_BUCKET, SOVITS_TOKEN_BUCKETS, VOCODER_FRAME_BUCKETS,
                                           bucketed_length, padded_phones, vocoder_windows)
from edgevoice.gpt_sovits.options import SynthesisOptions
from edgevoice_calibration.collect import Recorder, RecordingBackend


def _snr_db(reference: np.ndarray, other: np.ndarray) -> float:
    return float(10 * np.log10(np.sum(reference ** 2) / max(np.sum((reference - other) ** 2), 1e-30)))


def test_bucket_sizes():
    assert [bucketed_length(n) for n in (1, 64, 65, 128, 200, 256, 300, 600)] == [64, 64, 128, 128, 256, 256, 512, 768]
    assert bucketed_length(300, ()) == 300
    assert [padded_phones(n) for n in (1, 32, 33, 64, 65, 700)] == [32, 32, 64, 64, 128, 1024]


@pytest.fixture(scope="module", params=["openvino", "onnxruntime"])
def synth(request, fixture_bundle):
    backend = OpenVINOBackend(threads=2) if request.param == "openvino" else OnnxRuntimeBackend(threads=2)
    return edgevoice.load(fixture_bundle[0], backend=backend)


@pytest.mark.parametrize("tokens, phones", [(23, 19), (100, 45)])
def test_padded_decode_equals_the_decode_at_its_own_length(synth, tokens, phones):
    """Encoder and flow padded to a bucket, the vocoder in windows (100 tokens = 200 frames: two of them) → the
    same samples as both graphs at the fragment's own length, nothing padded."""
    rng = np.random.default_rng(tokens)
    codes = rng.integers(0, 1024, (1, 1, tokens))
    phone_ids = rng.integers(0, 300, (1, phones))
    ge = (0.3 * rng.standard_normal((1, 512, 1))).astype(np.float32)
    noise = (0.5 * rng.standard_normal((1, 192, 2 * tokens))).astype(np.float32)
    z = synth._run("sovits_latent", codes=codes, phone_ids=phone_ids, ge=ge, noise=noise,
                   valid_tokens=np.array([tokens]), valid_phones=np.array([phones]))["z"]
    own = synth._run("sovits_vocoder", z=z, ge=ge, valid_frames=np.array([2 * tokens]))["audio"].reshape(-1)
    padded = synth.decode_tokens(codes.reshape(-1), phone_ids.reshape(-1), noise=noise, ge=ge)
    assert padded.shape == own.shape == (tokens * synth.sample_rate // 25,)
    assert _snr_db(own, padded) >= 90  # float rounding only (the PyTorch reference: 143 dB)
    # the padding is really masked: without the real lengths the same padded input gives another z
    size, width = bucketed_length(tokens), padded_phones(phones)
    unmasked = synth._run("sovits_latent", codes=np.pad(codes, ((0, 0), (0, 0), (0, size - tokens))),
                          phone_ids=np.pad(phone_ids, ((0, 0), (0, width - phones))), ge=ge,
                          noise=np.pad(noise, ((0, 0), (0, 0), (0, 2 * (size - tokens)))),
                          valid_tokens=np.array([size]), valid_phones=np.array([width]))["z"]
    assert _snr_db(z[..., -10:], unmasked[..., 2 * tokens - 10: 2 * tokens]) < 40  # the last 10 frames


@pytest.mark.parametrize("frames", [5, 144, 300])
def test_vocoder_windows_cover_every_frame_once(frames):
    parts = vocoder_windows(frames, context=13)
    assert parts[0].keep_start == 0 and parts[-1].keep_stop == frames
    assert all(a.keep_stop == b.keep_start for a, b in zip(parts, parts[1:]))
    for window in parts:
        assert window.stop - window.start <= VOCODER_FRAME_BUCKETS[-1]
        # every kept frame has the context on both sides, or the fragment's true edge
        assert window.keep_start - window.start >= 13 or window.start == 0
        assert window.stop - window.keep_stop >= 13 or window.stop == frames


def test_the_vocoder_in_windows_equals_the_whole_vocoder(synth):
    rng = np.random.default_rng(5)
    z = (0.7 * rng.standard_normal((1, 192, 330))).astype(np.float32)
    ge = (0.3 * rng.standard_normal((1, 512, 1))).astype(np.float32)
    whole = synth._run("sovits_vocoder", z=z, ge=ge, valid_frames=np.array([330]))["audio"].reshape(-1)
    windowed = synth._vocode(z, ge)
    assert windowed.shape == whole.shape
    assert _snr_db(whole, windowed) >= 90


def test_a_long_text_runs_sovits_at_few_shapes(fixture_bundle, gpt_sovits_set):
    recorder = Recorder(max_items=10_000)
    synth = edgevoice.load(fixture_bundle[0], backend=RecordingBackend(OpenVINOBackend(threads=2), recorder))
    audio = gpt_sovits_set / "audio"
    voice = synth.create_voice(audio / "ref_en.wav", (audio / "ref_en.txt").read_text().strip(), "en")
    sentences = ["It rained.", "The small boat drifted slowly past the old stone bridge at dawn.",
                 "We walked home.", "A cold wind came down from the hills and the lamps went out one by one, "
                 "so the travellers stopped at the inn and waited for the morning to come."]
    shapes = set()
    for index, tokens in enumerate([9, 41, 70, 133, 290]):  # one fragment each, a new length each time
        options = SynthesisOptions(seed=index, min_tokens=tokens, max_tokens=tokens, split_method="cut0")
        synth.synthesize(sentences[index % len(sentences)], voice, "en", options)
    for feeds in recorder.items["sovits_latent"]:
        shapes.add((feeds["codes"].shape[-1], feeds["phone_ids"].shape[-1]))
        assert feeds["valid_tokens"][0] <= feeds["codes"].shape[-1]
    assert {tokens for tokens, _ in shapes} <= {*SOVITS_TOKEN_BUCKETS, 512}  # 290 tokens: whole, at 512
    assert all(phones >= MIN_PHONE_BUCKET and phones & (phones - 1) == 0 for _, phones in shapes)  # powers of 2
    assert len(recorder.items["sovits_latent"]) == 5  # one per fragment, the long one too
    vocoder = {(feeds["z"].shape[-1], int(feeds["valid_frames"][0])) for feeds in recorder.items["sovits_vocoder"]}
    assert {size for size, _ in vocoder} <= set(VOCODER_FRAME_BUCKETS)
    assert all(0 < real <= size for size, real in vocoder)
    assert len(recorder.items["sovits_vocoder"]) == 6  # 580 frames: two windows


def test_a_stream_pads_its_first_window_less(fixture_bundle, gpt_sovits_set):
    """The first window decides when the first audio leaves: its 10 tokens + 6 of right context run as 16, not 64;
    later ones fill the usual buckets, and the joined audio is still the whole decode's."""
    recorder = Recorder(max_items=10_000)
    synth = edgevoice.load(fixture_bundle[0], backend=RecordingBackend(OpenVINOBackend(threads=2), recorder))
    audio = gpt_sovits_set / "audio"
    voice = synth.create_voice(audio / "ref_en.wav", (audio / "ref_en.txt").read_text().strip(), "en")
    options = SynthesisOptions(seed=3, min_tokens=150, max_tokens=150, split_method="cut0")
    text = "The small boat drifted slowly past the old stone bridge at dawn."
    streamed = np.concatenate([c.audio for c in synth.stream(text, voice, "en", options, chunk_tokens=12)])
    calls = [(f["codes"].shape[-1], int(f["valid_tokens"][0])) for f in recorder.items["sovits_latent"]]
    assert calls[0] == (16, 16)
    first = recorder.items["sovits_vocoder"][0]
    assert first["z"].shape[-1] == 32 and first["valid_frames"][0] == 32  # the smallest vocoder shape
    assert all(size in SOVITS_TOKEN_BUCKETS for size, _ in calls[1:]) and len(calls) > 2
    whole = synth.synthesize(text, voice, "en", options)
    assert streamed.shape == whole.shape
    noise = np.sum((streamed - whole) ** 2) + 1e-20
    assert 10 * np.log10(np.sum(whole ** 2) / noise) >= 60


@pytest.mark.parametrize("speed_frames", [None, 37])  # speed 1, and a slower rate (frames from the noise)
def test_the_pytorch_reference_masks_every_layer(gpt_sovits_set, speed_frames):
    torch = pytest.importorskip("torch", reason="the PyTorch reference needs the export extra")
    from edgevoice_export.gpt_sovits.checkpoints import load_sovits_checkpoint
    from edgevoice_export.gpt_sovits.models.sovits import SoVITS

    model = SoVITS.from_checkpoint(load_sovits_checkpoint(gpt_sovits_set / "models" / "s2_v2_tiny.pth"))
    model.fold_weight_norm()
    generator = torch.Generator().manual_seed(0)
    tokens, phones = 17, 11
    # at other speeds the frames stretch over the whole input, so only the phones are padded (as the runtime does)
    size = tokens if speed_frames else 40
    frames = speed_frames or 2 * tokens
    codes = torch.randint(0, 1024, (1, 1, size), generator=generator)
    text = torch.randint(0, model.phone_vocab_size, (1, 32), generator=generator)
    ge = torch.randn(1, model.gin_channels, 1, generator=generator)
    noise = 0.5 * torch.randn(1, model.inter_channels, frames, generator=generator)
    padded_noise = torch.cat([noise, torch.zeros(1, model.inter_channels, 2 * (size - tokens))], -1)
    with torch.no_grad():
        own = model.decode(codes[..., :tokens], text[:, :phones], ge, noise).numpy().reshape(-1)
        padded = model.decode(codes, text, ge, padded_noise, (torch.tensor([tokens]), torch.tensor([phones])))
    assert _snr_db(own, padded.numpy().reshape(-1)[: own.size]) >= 120


def test_the_vocoder_reach_bounds_what_a_frame_changes(gpt_sovits_set):
    """`vocoder_context_frames` (worked out from the kernels and strides) against the PyTorch vocoder: a change to
    one frame of `z` moves no sample further away than that, and windows with that context equal the whole."""
    torch = pytest.importorskip("torch", reason="the PyTorch reference needs the export extra")
    from edgevoice_export.gpt_sovits.checkpoints import load_sovits_checkpoint
    from edgevoice_export.gpt_sovits.models.sovits import SoVITS

    model = SoVITS.from_checkpoint(load_sovits_checkpoint(gpt_sovits_set / "models" / "s2_v2_tiny.pth"))
    model.fold_weight_norm()
    reach, hop, frames = model.vocoder_context_frames, model.hop_length, 80
    generator = torch.Generator().manual_seed(1)
    z = torch.randn(1, model.inter_channels, frames, generator=generator)
    ge = torch.randn(1, model.gin_channels, 1, generator=generator)
    moved = z.clone()
    moved[..., 40] += 1.0
    with torch.no_grad():
        changed = (model.vocode(moved, ge) - model.vocode(z, ge)).abs().reshape(-1) > 0
        samples = changed.nonzero().reshape(-1)
        assert (40 - reach) * hop <= int(samples.min()) and int(samples.max()) < (41 + reach) * hop
        assert int(samples.max()) >= (41 + reach - 8) * hop  # not far above what it really reaches
        whole = model.vocode(z, ge).numpy().reshape(-1)
        parts = [model.vocode(z[..., w.start:w.stop], ge).numpy().reshape(-1)[
                 (w.keep_start - w.start) * hop:(w.keep_stop - w.start) * hop]
                 for w in vocoder_windows(frames, reach, window=40)]
    assert _snr_db(whole, np.concatenate(parts)) >= 120
