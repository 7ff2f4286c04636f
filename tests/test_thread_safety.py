"""A synthesizer shared between threads gives, in every thread, the audio a sequential run gives (each backend
session has one infer request, and GPT-SoVITS keeps its KV cache in a request: stage calls take turns)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

import edgevoice

BACKENDS = ["openvino", "onnxruntime"]


@pytest.mark.parametrize("backend", BACKENDS)
def test_gpt_sovits_synthesizer_shared_by_threads(fixture_bundle, gpt_sovits_set, backend):
    synth = edgevoice.load(fixture_bundle[0], backend=backend, threads=1)
    audio = gpt_sovits_set / "audio"
    voice = synth.create_voice(audio / "ref_en.wav", (audio / "ref_en.txt").read_text().strip(), "en")
    texts = ["The little boat drifted past the old stone bridge.", "Every evening my sister walks her dog.",
             "We met at the station before noon.", "Rain fell softly on the quiet town."]
    options = [edgevoice.SynthesisOptions(seed=i, max_tokens=24) for i in range(len(texts))]
    sequential = [synth.synthesize(t, voice, "en", o) for t, o in zip(texts, options)]
    with ThreadPoolExecutor(max_workers=4) as pool:
        concurrent = list(pool.map(lambda args: synth.synthesize(args[0], voice, "en", args[1]), zip(texts, options)))
    for one, other in zip(sequential, concurrent):
        np.testing.assert_array_equal(one, other)


@pytest.mark.parametrize("backend", BACKENDS)
def test_emotivoice_synthesizer_shared_by_threads(emotivoice_bundle, backend):
    synth = edgevoice.load(emotivoice_bundle[0], backend=backend, threads=1)
    jobs = [("今天天气很好。", "Happy", 3), ("The weather is lovely today.", "Sad", 40),
            ("我们一起去 park 吧。", "生气", 200), ("See you tomorrow morning.", "", 1000)]

    def speak(job):
        text, prompt, speaker = job
        return synth.synthesize(text, synth.voice_for(speaker=speaker, prompt=prompt))

    sequential = [speak(job) for job in jobs]
    with ThreadPoolExecutor(max_workers=4) as pool:
        concurrent = list(pool.map(speak, jobs * 2))
    for index, audio in enumerate(concurrent):
        np.testing.assert_array_equal(audio, sequential[index % len(jobs)])


def test_graphs_released_while_another_thread_streams(fixture_bundle, gpt_sovits_set):
    """A probe's find: a chunked stream opened its decode graph outside the lock while `release_graphs` walked the
    open graphs ("dictionary changed size during iteration"). Both now take turns; the audio stays the same."""
    import threading
    import time

    synth = edgevoice.load(fixture_bundle[0], backend="onnxruntime", threads=1)
    audio = gpt_sovits_set / "audio"
    voice = synth.create_voice(audio / "ref_en.wav", (audio / "ref_en.txt").read_text().strip(), "en")
    options = edgevoice.SynthesisOptions(seed=5, min_tokens=3, max_tokens=3)
    expected = synth.synthesize("Hi there.", voice, "en", options)
    stop, errors, streamed = time.monotonic() + 4, [], []

    def stream():
        while time.monotonic() < stop:
            streamed.append(np.concatenate([c.audio for c in synth.stream("Hi there.", voice, "en", options,
                                                                           chunk_tokens=1)]))

    def release():
        while time.monotonic() < stop:
            try:
                synth.release_graphs(["gpt_step", "gpt_decode"])
            except Exception as exc:  # noqa: BLE001 - any failure is what this test looks for
                errors.append(repr(exc))

    threads = [threading.Thread(target=stream), threading.Thread(target=release)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors, errors[:3]
    assert streamed and all(np.array_equal(a, streamed[0]) for a in streamed)
    assert np.allclose(streamed[0], expected, atol=1e-4)  # chunked decoding equals the whole one to rounding
