"""GPT-SoVITS batched synthesis: several fragments or requests through one decode step give each the audio it gets
alone (same per-fragment seeds), on both runtimes; the batch step graph itself is checked at export."""

import numpy as np
import pytest

import edgevoice
from edgevoice.errors import OptionsError
from edgevoice.gpt_sovits.options import SynthesisOptions
from edgevoice.gpt_sovits.synthesizer import BatchRequest, TokenRequest

TEXT = "Hello there. The quick brown fox jumps over the lazy dog. It was a bright cold day. We went home."


@pytest.fixture(scope="module", params=["openvino", "onnxruntime"])
def synth_and_voices(request, fixture_bundle, gpt_sovits_set):
    synth = edgevoice.load(fixture_bundle[0], backend=request.param, threads=2)
    audio = gpt_sovits_set / "audio"
    voices = {lang: synth.create_voice(audio / f"ref_{lang}.wav", (audio / f"ref_{lang}.txt").read_text().strip(),
                                       lang) for lang in ("en", "zh")}
    return synth, voices


def test_the_bundle_decodes_batches(synth_and_voices):
    synth, _ = synth_and_voices
    assert synth.batches_tokens


def test_rows_of_a_batch_sample_what_they_sample_alone(synth_and_voices):
    synth, voices = synth_and_voices
    rows = []
    for seed, (text, lang) in enumerate([("Hello there.", "en"), ("A much longer sentence, to make the rows "
                                                                   "differ in length.", "en"), ("你好。", "zh")]):
        phones, bert = synth.phonemize(text, lang)
        voice = voices[lang]
        rows.append(dict(phone_ids=np.concatenate([voice.prompt_phone_ids, phones.phone_ids]),
                         bert_features=np.concatenate([voice.prompt_bert, bert], axis=1),
                         prompt_tokens=voice.prompt_tokens,
                         options=SynthesisOptions(max_tokens=20 + 9 * seed).sampling(), seed=seed))
    alone = [synth.generate_tokens(r["phone_ids"], r["bert_features"], r["prompt_tokens"], r["options"],
                                   np.random.default_rng(r["seed"])) for r in rows]
    together = synth.generate_rows([TokenRequest(r["phone_ids"], r["bert_features"], r["prompt_tokens"],
                                                 r["options"], np.random.default_rng(r["seed"])) for r in rows])
    assert [t.size for t in together] == [20, 29, 38]  # rows leave the batch at their own step
    for a, b in zip(alone, together):
        np.testing.assert_array_equal(a, b)


def test_batched_stream_gives_the_same_audio(synth_and_voices):
    synth, voices = synth_and_voices
    options = SynthesisOptions(seed=11, split_method="cut5", max_tokens=30)
    one = list(synth.stream(TEXT, voices["en"], "en", options))
    four = list(synth.stream(TEXT, voices["en"], "en", SynthesisOptions(seed=11, split_method="cut5", max_tokens=30,
                                                                       batch_size=4)))
    assert len(one) == len(four) == 4
    for a, b in zip(one, four):
        np.testing.assert_array_equal(a.tokens, b.tokens)
        np.testing.assert_allclose(a.audio, b.audio, atol=1e-5)


def test_independent_requests_in_one_batch(synth_and_voices):
    synth, voices = synth_and_voices
    requests = [BatchRequest("Good morning. See you soon.", voices["en"], "en", SynthesisOptions(seed=1, max_tokens=25,
                                                                                                split_method="cut5")),
                BatchRequest("今天天气很好。", voices["zh"], "zh", SynthesisOptions(seed=2, max_tokens=20)),
                BatchRequest("Goodbye.", voices["en"], "en", SynthesisOptions(seed=3, max_tokens=35, noise_scale=0.0))]
    together = synth.synthesize_batch(requests, batch_size=8)
    for request, audio in zip(requests, together):
        alone = synth.synthesize(request.text, request.voice, request.language, request.options)
        assert audio.shape == alone.shape
        np.testing.assert_allclose(audio, alone, atol=1e-5)


def test_batch_options_are_checked(synth_and_voices):
    synth, voices = synth_and_voices
    with pytest.raises(OptionsError, match="batch_size"):
        SynthesisOptions(batch_size=0)
    with pytest.raises(OptionsError, match="batch_size"):
        synth.synthesize_batch([BatchRequest("Hi.", voices["en"])], batch_size=1000)
    with pytest.raises(OptionsError, match="BatchRequest"):
        synth.synthesize_batch(["Hi."])
    for nothing in ([], None, "Hi."):  # an IndexError / TypeError before (a probe's)
        with pytest.raises(OptionsError, match="non-empty list of BatchRequest"):
            synth.synthesize_batch(nothing)
    with pytest.raises(OptionsError, match="batch_size 1"):
        next(synth.stream("Hi.", voices["en"], "en", SynthesisOptions(batch_size=2), chunk_tokens=10))


def test_token_loops_run_with_the_cyclic_collector_paused(synth_and_voices, monkeypatch):
    """Both token loops (one sequence, a batch) sample with Python's cyclic collector off, and leave it as they
    found it (edgevoice.memory.cyclic_gc_paused)."""
    import gc

    import edgevoice.gpt_sovits.synthesizer as module

    synth, voices = synth_and_voices
    seen = []
    sample = module.sample_token

    def recording(*args, **kwargs):
        seen.append(gc.isenabled())
        return sample(*args, **kwargs)

    monkeypatch.setattr(module, "sample_token", recording)
    phones, bert = synth.phonemize("Hello there.", "en")
    voice = voices["en"]
    row = dict(phone_ids=np.concatenate([voice.prompt_phone_ids, phones.phone_ids]),
               bert_features=np.concatenate([voice.prompt_bert, bert], axis=1), prompt_tokens=voice.prompt_tokens,
               options=SynthesisOptions(max_tokens=12).sampling())
    assert gc.isenabled()
    synth.generate_tokens(**row, rng=np.random.default_rng(0))
    synth.generate_rows([TokenRequest(**row, rng=np.random.default_rng(seed)) for seed in (1, 2)])
    assert len(seen) >= 12 + 2 * 12 and not any(seen)
    assert gc.isenabled()


def test_cyclic_gc_paused_restores_what_it_found():
    import gc

    from edgevoice.memory import cyclic_gc_paused

    assert gc.isenabled()
    with pytest.raises(ValueError), cyclic_gc_paused():
        assert not gc.isenabled()
        raise ValueError("inside")
    assert gc.isenabled()  # enabled again after an error too
    gc.disable()
    try:
        with cyclic_gc_paused():
            pass
        assert not gc.isenabled()  # a caller that had it off keeps it off
    finally:
        gc.enable()
