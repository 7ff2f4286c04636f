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
