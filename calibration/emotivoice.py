"""EmotiVoice calibration: the FP32 bundle speaks a spread of the English and Chinese calibration corpus, each
sentence with another built-in speaker (rows spread over the speaker table) and another style prompt, behind a
`RecordingBackend` (`collect.py`), so that `style_bert` (prompts and spoken text), `am_front`, `am_back` and
`hifigan` are all recorded with the inputs the runtime really feeds them. The sentences are split with
`split_items` (every 5th held out) and the held-out ones recorded apart, for the accuracy gate only.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
from tqdm import tqdm

from edgevoice.backends import OpenVINOBackend
from edgevoice.bundle import Bundle
from edgevoice.emotivoice.numerals import tn_chinese
from edgevoice.emotivoice.synthesizer import Synthesizer
from edgevoice.errors import BundleError, EdgevoiceError, TextError

from . import load_corpus, sample_sentences, split_items
from .collect import Recorder, RecordingBackend

LANGUAGES = ("en", "zh")  # what EmotiVoice's front end reads
PROMPTS = ("Happy", "Sad", "Angry", "开心", "生气", "平静", "")  # 7: coprime with SPEAKER_ROWS, 56 pairings
SPEAKER_ROWS = 8  # speakers used for calibration, spread evenly over the speaker table
DEFAULT_SENTENCES = 40  # 32 calibration + 8 held out; ~1 min of synthesis at full size on 2 threads
MAX_ITEMS = 256  # recorded inputs kept per graph


@dataclass(frozen=True)
class Sentence:
    language: str
    text: str
    speaker: str  # a name from the speaker table
    prompt: str


@dataclass
class EmotiVoiceCalibration:
    """Recorded graph inputs: `calibration` from the calibration sentences, `held_out` from the others."""

    calibration: dict[str, list[dict[str, np.ndarray]]] = field(default_factory=dict)
    held_out: dict[str, list[dict[str, np.ndarray]]] = field(default_factory=dict)
    sentences: list[Sentence] = field(default_factory=list)
    held_out_sentences: list[Sentence] = field(default_factory=list)
    seconds: float = 0.0
    audio_seconds: float = 0.0

    def counts(self) -> dict:
        return {"calibration": {n: len(v) for n, v in self.calibration.items()},
                "held_out": {n: len(v) for n, v in self.held_out.items()}}


def calibration_sentences(bundle: Bundle, sentences: int | Sequence[tuple[str, str]] | None = None
                          ) -> list[Sentence]:
    """`sentences` (a count spread over the English and Chinese calibration corpus, or (language, text) pairs),
    each with the next speaker of `SPEAKER_ROWS` rows spread over the table and the next style prompt."""
    if sentences is None or isinstance(sentences, int):
        count = DEFAULT_SENTENCES if sentences is None else sentences
        if count < 1:
            raise EdgevoiceError(f"calibration needs at least one sentence, not {count}")
        pairs = sample_sentences(count, [(lang, text) for lang, text in load_corpus(LANGUAGES) if _readable(text)])
    else:
        pairs = [(str(lang), str(text)) for lang, text in sentences]
        if not pairs:
            raise EdgevoiceError("calibration needs at least one sentence")
    # named speakers only: upstream counts a blank line (speaker2 ending in "\n\n") as a speaker row, which the
    # synthesizer keeps as a row but no one can ask for by name
    lines = bundle.file(bundle.manifest.model["speakers_file"]).read_text(encoding="utf-8").splitlines()
    speakers = [name for name in lines if name.strip()]
    if not speakers:
        raise EdgevoiceError(f"{bundle.path}: {bundle.manifest.model['speakers_file']} names no speaker to calibrate with")
    rows = np.unique(np.linspace(0, len(speakers) - 1, min(SPEAKER_ROWS, len(speakers))).round().astype(int))
    return [Sentence(lang, text, speakers[rows[i % len(rows)]], PROMPTS[i % len(PROMPTS)])
            for i, (lang, text) in enumerate(pairs)]


def _readable(text: str) -> bool:
    """Whether EmotiVoice's number reader takes `text` (upstream's refuses e.g. a version "2.4.1", and so does ours:
    such corpus sentences, written for GPT-SoVITS, are left out of EmotiVoice's calibration)."""
    try:
        tn_chinese(text)
    except TextError:
        return False
    return True


def collect_emotivoice_calibration(bundle: str | Path | Bundle,
                                   sentences: int | Sequence[tuple[str, str]] | None = None, threads: int = 1,
                                   progress: bool = True) -> EmotiVoiceCalibration:
    """Synthesise the calibration sentences on the FP32 bundle and record every graph's inputs; the sentences
    `split_items` holds out are recorded separately (their prompts embedded afresh), for the accuracy gate."""
    bundle = bundle if isinstance(bundle, Bundle) else Bundle.load(bundle)
    if bundle.manifest.family != "emotivoice":
        raise BundleError(f"{bundle.path}: a {bundle.manifest.family!r} bundle, not EmotiVoice's")
    start = time.perf_counter()
    plan = calibration_sentences(bundle, sentences)
    calib, held = split_items(plan)
    recorder = Recorder(MAX_ITEMS)
    synth = Synthesizer(bundle, backend=RecordingBackend(OpenVINOBackend(threads=threads, precision="f32"), recorder))
    result = EmotiVoiceCalibration(sentences=calib, held_out_sentences=held)
    bar = tqdm(total=len(calib) + (len(held) if held is not calib else 0), desc="calibrating", unit="sentence",
               disable=not progress)
    passes = [(calib, result.calibration)] + ([(held, result.held_out)] if held is not calib else [])
    for group, target in passes:
        recorder.items = {}
        synth._styles.clear()  # a fresh pass embeds its prompts itself, so they are recorded in that pass
        for sentence in group:
            voice = synth.voice_for(speaker=sentence.speaker, prompt=sentence.prompt)
            audio = synth.synthesize(sentence.text, voice)
            result.audio_seconds += audio.size / synth.sample_rate
            bar.update()
        target.update(recorder.items)
    bar.close()
    if held is calib:  # fewer sentences than one hold-out period: the check is in-sample
        result.held_out = result.calibration
    result.seconds = time.perf_counter() - start
    return result
