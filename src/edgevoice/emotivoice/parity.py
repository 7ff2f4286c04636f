"""EmotiVoice parity across backends, precisions and machines: one case (text, speaker, style prompt) through
several (bundle, backend) pairs, each compared with a reference run.

EmotiVoice is deterministic, but a duration rounded the other way on another backend would shift every later
frame; so the reference run fixes the durations and every run decodes its own acoustic features with them. The
comparison covers the style embedding, the duration predictor (agreement with the reference's rounding), the mel
and the waveform. Cases save to an `.npz` (plain arrays) and replay on another machine.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import EdgevoiceError
from ..npzfile import atomic_savez, read_npz
from ..parity import AUDIO_MAX_ABS, AUDIO_SNR, Column, audio_difference, describe, table_lines
from ..parity_report import FreeRun, Gate, free_run_arrays, free_runs_from
from .synthesizer import SpeakerStyle, Synthesizer

CASE_FORMAT = "edgevoice-emotivoice-parity-case"
CASE_FORMAT_VERSION = 1
SAMPLED = False  # deterministic: a free run is the same for every seed, so one is enough

# Gate defaults per precision: `edgevoice parity` exits 1 when a run misses one, `--gate` changes them. Basis:
# the worst of 15 cases (en, zh and mixed texts; three speakers and prompts) against OpenVINO FP32 on the random-
# weight models, tiny (shared fixtures) and full size (`make-test-model --family emotivoice --size full`), with
# the INT8 policy and BF16 variants of `edgevoice quantize`, on an AVX-512 VNNI/BF16 Zen 4
# (benchmarks/parity_gates.py, docs/parity.md).
GATES = {
    # FP32 4.8e-7 tiny, 3.0e-5 full; BF16 and INT8 0.015/0.020 tiny, 0.134 full (style_bert runs BF16 in both)
    "style_max_rel": Gate(at_least=False, fp32=1e-3, bf16=0.25, int8=0.25),
    # FP32 1.000 everywhere; BF16 0.83 tiny, 0.68 full; INT8 0.82 tiny, 0.73 full (median 0.91): a random model's
    # log-durations sit anywhere between two roundings, so flips are common
    "durations_agreement": Gate(at_least=True, fp32=0.95, bf16=0.5, int8=0.5),
    # with the reference's durations: FP32 9.4e-7 tiny, 5.8e-6 full; BF16 0.30 tiny, 0.040 full; INT8 0.035, 0.10
    "mel_max_rel": Gate(at_least=False, fp32=1e-4, bf16=0.5, int8=0.25),
    # FP32 118.8 dB tiny, 103.6 full; BF16 22.4 tiny, 27.7 full; INT8 29.0 tiny, 20.5 full
    "audio_snr_db": Gate(at_least=True, fp32=60.0, bf16=15.0, int8=15.0),
    # FP32 1.0e-6 tiny, 6.4e-6 full; BF16 0.052 tiny, 0.036 full; INT8 0.030 tiny, 0.082 full
    "log_mel_l1": Gate(at_least=False, fp32=1e-3, bf16=0.2, int8=0.2),
}


@dataclass
class ParityCase:
    text: str
    speaker_row: int
    prompt: str
    tokens: np.ndarray  # [phones] int64 phoneme ids (the front end's, from the reference run)
    durations: np.ndarray  # [phones] int64, the reference run's


@dataclass
class ParityRun:
    label: str
    style: np.ndarray  # [hidden] pooled prompt embedding
    durations: np.ndarray  # [phones] this run's own predicted durations
    mel: np.ndarray  # [frames, n_mels] decoded with the case's durations
    audio: np.ndarray  # waveform of that mel
    meta: dict = field(default_factory=dict)
    free_runs: list[FreeRun] = field(default_factory=list)  # the text spoken with the run's own durations


def make_case(synth: Synthesizer, voice: SpeakerStyle, text: str, language: str = "", max_tokens: int = 0,
              seed: int = 0) -> ParityCase:
    """The reference run's phonemes and durations for `text` (`max_tokens` and `seed` do not apply)."""
    _, ids = synth.phonemes(text)
    durations, _ = synth.acoustic(ids, voice.speaker_row, voice.style, synth.style_embedding(text))
    return ParityCase(text, voice.speaker_row, voice.prompt, np.asarray(ids, np.int64), durations.astype(np.int64))


def run_case(synth: Synthesizer, case: ParityCase, label: str | None = None) -> ParityRun:
    style, content = synth.style_embedding(case.prompt), synth.style_embedding(case.text)
    own_durations, _ = synth.acoustic(case.tokens, case.speaker_row, style, content)
    mel = synth.acoustic_with_durations(case.tokens, case.speaker_row, style, content, case.durations)
    meta = describe(synth)
    return ParityRun(label or f"{meta['backend']} {'/'.join(meta['precisions'])}", style, own_durations, mel,
                     synth.vocode(mel), meta)


def free_run(synth: Synthesizer, case: ParityCase, seed: int) -> FreeRun:
    """The case's text with nothing forced: the run's own durations (its discrete choices) and their audio."""
    style, content = synth.style_embedding(case.prompt), synth.style_embedding(case.text)
    durations, mel = synth.acoustic(case.tokens, case.speaker_row, style, content)
    return FreeRun(seed, durations.astype(np.int64), synth.vocode(mel))


def compare_runs(reference: ParityRun, test: ParityRun) -> dict:
    if reference.mel.shape != test.mel.shape or reference.audio.shape != test.audio.shape:
        raise EdgevoiceError(f"{test.label}: output shapes differ from the reference run; was it the same case?")

    def rel(a, b):
        return float(np.abs(a.astype(np.float64) - b).max() / max(float(np.abs(a).max()), 1e-30))

    return {
        "label": test.label,
        "style_max_rel": rel(reference.style, test.style),
        "durations_agreement": float(np.mean(reference.durations == test.durations)),
        "mel_max_rel": rel(reference.mel, test.mel),
        **audio_difference(reference.audio, test.audio),
        "meta": test.meta,
    }


COLUMNS = (Column("style rel", "style_max_rel", "10.1e"), Column("durations", "durations_agreement", "9.3f"),
           Column("mel rel", "mel_max_rel", "9.1e"), AUDIO_SNR, AUDIO_MAX_ABS)


def report_lines(reference: ParityRun, results: list[dict]) -> list[str]:
    return [f"reference: {reference.label} ({reference.meta.get('machine', '?')}), {reference.durations.size} "
            f"phonemes, {reference.mel.shape[0]} frames, {reference.audio.size} samples",
            *table_lines(COLUMNS, results)]


def save_case(path: str | Path, case: ParityCase, reference: ParityRun) -> Path:
    header = {"format": CASE_FORMAT, "format_version": CASE_FORMAT_VERSION, "text": case.text,
              "speaker_row": case.speaker_row, "prompt": case.prompt,
              "reference": {"label": reference.label, **reference.meta}}
    return atomic_savez(path, header, tokens=case.tokens, durations=case.durations, style=reference.style,
                        own_durations=reference.durations, mel=reference.mel, audio=reference.audio,
                        **free_run_arrays(reference.free_runs))


def load_case(path: str | Path) -> tuple[ParityCase, ParityRun]:
    header, arrays = read_npz(path, "parity case file", EdgevoiceError)
    if header.get("format") != CASE_FORMAT or header.get("format_version") != CASE_FORMAT_VERSION:
        raise EdgevoiceError(f"{path}: not an EmotiVoice parity case of format version {CASE_FORMAT_VERSION}")
    try:
        case = ParityCase(header["text"], int(header["speaker_row"]), header["prompt"], arrays["tokens"],
                          arrays["durations"])
        meta = dict(header["reference"])
        reference = ParityRun(meta.pop("label"), arrays["style"], arrays["own_durations"], arrays["mel"],
                              arrays["audio"], meta, free_runs_from(arrays))
    except (KeyError, TypeError, ValueError) as exc:
        raise EdgevoiceError(f"{path}: incomplete parity case ({exc})") from None
    return case, reference
