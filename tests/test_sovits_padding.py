"""SoVITS at padded shapes: the real samples equal an unpadded decode's, and a long text runs at few shapes.

OpenVINO keeps memory for every input shape a graph has run at, so the runtime pads every SoVITS call to a bucket
(`chunking.SOVITS_TOKEN_BUCKETS`, power-of-two phone counts) and feeds the real lengths, which every layer masks.
"""

import numpy as np
import pytest

import edgevoice
from edgevoice.backends import OnnxRuntimeBackend, OpenVINOBackend
from edgevoice.gpt_sovits.chunking import MIN_PHONE_BUCKET, SOVITS_TOKEN_BUCKETS, padded_length, padded_phones
from edgevoice.gpt_sovits.options import SynthesisOptions
from edgevoice_calibration.collect import Recorder, RecordingBackend


def _snr_db(reference: np.ndarray, other: np.ndarray) -> float:
    return float(10 * np.log10(np.sum(reference ** 2) / max(np.sum((reference - other) ** 2), 1e-30)))


def test_bucket_sizes():
    assert [padded_length(n) for n in (1, 64, 65, 128, 200, 256, 300)] == [64, 64, 128, 128, 256, 256, 300]
    assert [padded_phones(n) for n in (1, 32, 33, 64, 65, 700)] == [32, 32, 64, 64, 128, 1024]


@pytest.fixture(scope="module", params=["openvino", "onnxruntime"])
def synth(request, fixture_bundle):
    backend = OpenVINOBackend(threads=2) if request.param == "openvino" else OnnxRuntimeBackend(threads=2)
    return edgevoice.load(fixture_bundle[0], backend=backend)


@pytest.mark.parametrize("tokens, phones", [(23, 19), (100, 45)])
def test_padded_decode_equals_the_decode_at_its_own_length(synth, tokens, phones):
    assert synth.pads_sovits
    rng = np.random.default_rng(tokens)
    codes = rng.integers(0, 1024, (1, 1, tokens))
    phone_ids = rng.integers(0, 300, (1, phones))
    ge = (0.3 * rng.standard_normal((1, 512, 1))).astype(np.float32)
    noise = (0.5 * rng.standard_normal((1, 192, 2 * tokens))).astype(np.float32)
    # the graph at the fragment's own length: nothing padded
    own = synth._run("sovits_decode", codes=codes, phone_ids=phone_ids, ge=ge, noise=noise,
                     valid_tokens=np.array([tokens]), valid_phones=np.array([phones]))["audio"].reshape(-1)
    padded = synth.decode_tokens(codes.reshape(-1), phone_ids.reshape(-1), noise=noise, ge=ge)
    assert padded.shape == own.shape == (tokens * synth.sample_rate // 25,)
    assert _snr_db(own, padded) >= 90  # float rounding only (the PyTorch reference: 143 dB)
    # the padding is really masked: without the real lengths the same padded input gives other audio
    size, width = padded_length(tokens), padded_phones(phones)
    unmasked = synth._run("sovits_decode", codes=np.pad(codes, ((0, 0), (0, 0), (0, size - tokens))),
                          phone_ids=np.pad(phone_ids, ((0, 0), (0, width - phones))), ge=ge,
                          noise=np.pad(noise, ((0, 0), (0, 0), (0, 2 * (size - tokens)))),
                          valid_tokens=np.array([size]), valid_phones=np.array([width]))["audio"].reshape(-1)
    tail = synth.sample_rate // 5  # the padding reaches back through the convolutions: the last 0.2 s differ
    assert _snr_db(own[-tail:], unmasked[own.size - tail: own.size]) < 40


def test_a_long_text_runs_sovits_at_few_shapes(fixture_bundle, gpt_sovits_set):
    recorder = Recorder(step_stride=1, max_items=10_000)
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
    for feeds in recorder.items["sovits_decode"]:
        shapes.add((feeds["codes"].shape[-1], feeds["phone_ids"].shape[-1]))
        assert feeds["valid_tokens"][0] <= feeds["codes"].shape[-1]
    assert {tokens for tokens, _ in shapes} <= set(SOVITS_TOKEN_BUCKETS)  # 290 tokens: windows of the largest
    assert all(phones >= MIN_PHONE_BUCKET and phones & (phones - 1) == 0 for _, phones in shapes)  # powers of 2
    assert len(recorder.items["sovits_decode"]) > 5


def test_a_stream_pads_its_first_window_less(fixture_bundle, gpt_sovits_set):
    """The first window decides when the first audio leaves: its 10 tokens + 6 of right context run as 16, not 64;
    later ones fill the usual buckets, and the joined audio is still the whole decode's."""
    recorder = Recorder(step_stride=1, max_items=10_000)
    synth = edgevoice.load(fixture_bundle[0], backend=RecordingBackend(OpenVINOBackend(threads=2), recorder))
    audio = gpt_sovits_set / "audio"
    voice = synth.create_voice(audio / "ref_en.wav", (audio / "ref_en.txt").read_text().strip(), "en")
    options = SynthesisOptions(seed=3, min_tokens=150, max_tokens=150, split_method="cut0")
    text = "The small boat drifted slowly past the old stone bridge at dawn."
    streamed = np.concatenate([c.audio for c in synth.stream(text, voice, "en", options, chunk_tokens=12)])
    calls = [(f["codes"].shape[-1], int(f["valid_tokens"][0])) for f in recorder.items["sovits_decode"]]
    assert calls[0] == (16, 16)
    assert all(size in SOVITS_TOKEN_BUCKETS for size, _ in calls[1:]) and len(calls) > 2
    whole = synth.synthesize(text, voice, "en", options)
    assert streamed.shape == whole.shape
    noise = np.sum((streamed - whole) ** 2) + 1e-20
    assert 10 * np.log10(np.sum(whole ** 2) / noise) >= 60


@pytest.mark.parametrize("speed_frames", [None, 37])  # speed 1, and a slower rate (frames from the noise)
def test_the_pytorch_reference_masks_every_layer(gpt_sovits_set, speed_frames):
    torch = pytest.importorskip("torch", reason="the PyTorch reference needs the export extra")
    from edgevoice_export.checkpoints import load_sovits_checkpoint
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
