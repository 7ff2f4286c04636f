"""MetaVoice parity across backends, precisions and machines: one case (text, speaker embedding) through several
(bundle, backend) pairs, each compared with a reference run.

The reference run samples the case's stage-1 tokens (seeded) and its stage-2 codes once; every run then forces
them: stage 1 teacher-forced (guided logits per step), stage 2 on the case's assembled rows (logits and arg-max
agreement per head and position), and EnCodec on the case's codes (the waveform). A free run speaks the text with
nothing forced. Cases save to an `.npz` (plain arrays) and replay on another machine.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import EdgevoiceError
from ..npzfile import atomic_savez, read_npz
from ..parity import AUDIO_SNR, Column, audio_difference, describe, table_lines
from ..parity_report import FreeRun, Gate, free_run_arrays, free_runs_from
from . import adapters
from .synthesizer import Synthesizer
from .text import normalize_text

CASE_FORMAT = "edgevoice-metavoice-parity-case"
CASE_FORMAT_VERSION = 1
SAMPLED = True

# Gate defaults per precision (`--gate` changes them). Basis: `benchmarks/parity_gates.py` (six cases: three English
# texts x two case seeds, 60 tokens; worst case; AMX Xeon, session 26; docs/parity.md). onnxruntime FP32 against
# OpenVINO FP32: stage-1 logits 1.1e-6 (tiny) / 4.3e-6 (full) relative, top-1 1.000, stage 2 6.3e-7 / 1.4e-6, audio
# 121 / 131 dB. INT8 stage 1 (the others stay FP32 in every variant, so stage 2 and the audio are unchanged): logits
# 0.018 / 0.092, top-1 0.967 / 0.817 (INT4, tiny: 0.105, 0.85); their logits gate in `edgevoice quantize` is the
# tighter check.
GATES = {
    "logits_max_rel": Gate(at_least=False, fp32=1e-3, bf16=0.5, int8=0.5),
    "top1_agreement": Gate(at_least=True, fp32=0.98, bf16=0.6, int8=0.6),
    "stage2_max_rel": Gate(at_least=False, fp32=1e-3, bf16=1e-3, int8=1e-3),
    "stage2_agreement": Gate(at_least=True, fp32=0.999, bf16=0.999, int8=0.999),
    "audio_snr_db": Gate(at_least=True, fp32=60.0, bf16=60.0, int8=60.0),
    "log_mel_l1": Gate(at_least=False, fp32=1e-3, bf16=1e-3, int8=1e-3),
}


@dataclass
class ParityCase:
    text: str
    embedding: np.ndarray  # [dim]
    tokens: np.ndarray  # [T] stage-1 tokens sampled by the reference run (forced in every run)
    stage2_rows: np.ndarray  # [2, block] the assembled stage-2 input
    codes: np.ndarray  # [n_q, frames] the reference's final codes (EnCodec's input in every run)
    max_tokens: int


@dataclass
class ParityRun:
    label: str
    logits: np.ndarray  # [T, V] teacher-forced guided stage-1 logits
    stage2_logits: np.ndarray  # [heads, block, V]
    audio: np.ndarray
    meta: dict = field(default_factory=dict)
    free_runs: list[FreeRun] = field(default_factory=list)


def make_case(synth: Synthesizer, voice, text: str, language: str = "", max_tokens: int = 60,
              seed: int = 0) -> ParityCase:
    """Sample the case with `synth` (seeded): `max_tokens` stage-1 tokens, then stage 2's codes."""
    voice = synth.voice_for(voice)
    options = synth.default_options.with_overrides(seed=seed, max_new_tokens=max_tokens)
    rng = np.random.default_rng(seed)
    ids = synth.text_tokens(text)
    tokens = synth.generate_first_stage(ids, voice.embedding, options, rng, min(max_tokens, synth.max_new_tokens(
        ids, len(synth.stage2_text_tokens(text)), options)))
    bins = int(synth.model["encodec"]["bins"])
    _, codes2 = adapters.flattened_decode(np.concatenate([ids, tokens]), bins)
    if codes2.shape[1] == 0:
        raise EdgevoiceError("the reference run produced no audio frames for this text; raise --tokens")
    norm = normalize_text(text)
    rows = adapters.stage2_input(synth.stage2_text_tokens(norm), codes2, int(synth.model["stage2"]["block_size"]),
                                 bins)
    codes = synth.second_stage_codes(norm, codes2, voice.embedding, options, rng)
    return ParityCase(text, voice.embedding, tokens, rows, codes, max_tokens)


def run_case(synth: Synthesizer, case: ParityCase, label: str | None = None) -> ParityRun:
    ids = synth.text_tokens(case.text)
    _, _, guided = synth.first_stage_logits(ids, case.embedding, case.tokens[:-1])
    stage2 = synth.second_stage_logits(case.stage2_rows, case.embedding)
    meta = describe(synth)
    return ParityRun(label or f"{meta['backend']} {'/'.join(meta['precisions'])}", guided, stage2,
                     synth.decode_codes(case.codes), meta)


def free_run(synth: Synthesizer, case: ParityCase, seed: int) -> FreeRun:
    """The case's text and speaker with nothing forced (sampling seeded), without loudness normalisation."""
    chunks = list(synth.stream(case.text, case.embedding, seed=seed, max_new_tokens=case.max_tokens,
                               normalize_loudness=False))
    tokens = np.concatenate([c.tokens for c in chunks])
    return FreeRun(seed, tokens, np.concatenate([c.audio for c in chunks]))


def compare_runs(reference: ParityRun, test: ParityRun) -> dict:
    if reference.logits.shape != test.logits.shape or reference.audio.shape != test.audio.shape or \
            reference.stage2_logits.shape != test.stage2_logits.shape:
        raise EdgevoiceError(f"{test.label}: output shapes differ from the reference run; was it the same case?")

    def rel(a, b):
        return float(np.abs(a.astype(np.float64) - b).max() / max(float(np.abs(a).max()), 1e-30))

    return {
        "label": test.label,
        "logits_max_abs": float(np.abs(reference.logits.astype(np.float64) - test.logits).max()),
        "logits_max_rel": rel(reference.logits, test.logits),
        "top1_agreement": float(np.mean(reference.logits.argmax(-1) == test.logits.argmax(-1))),
        "stage2_max_rel": rel(reference.stage2_logits, test.stage2_logits),
        "stage2_agreement": float(np.mean(reference.stage2_logits.argmax(-1) == test.stage2_logits.argmax(-1))),
        **audio_difference(reference.audio, test.audio),
        "meta": test.meta,
    }


COLUMNS = (Column("logits rel", "logits_max_rel", "10.1e"), Column("top-1", "top1_agreement", "6.3f"),
           Column("stage-2 rel", "stage2_max_rel", "11.1e"), Column("agree", "stage2_agreement", "6.3f"), AUDIO_SNR)


def report_lines(reference: ParityRun, results: list[dict]) -> list[str]:
    return [f"reference: {reference.label} ({reference.meta.get('machine', '?')}), {reference.logits.shape[0]} "
            f"forced stage-1 tokens, {reference.audio.size} samples", *table_lines(COLUMNS, results)]


def save_case(path: str | Path, case: ParityCase, reference: ParityRun) -> Path:
    header = {"format": CASE_FORMAT, "format_version": CASE_FORMAT_VERSION, "text": case.text,
              "max_tokens": case.max_tokens, "reference": {"label": reference.label, **reference.meta}}
    return atomic_savez(path, header, embedding=case.embedding.astype(np.float32),
                        tokens=case.tokens.astype(np.int64), stage2_rows=case.stage2_rows.astype(np.int64),
                        codes=case.codes.astype(np.int64), logits=reference.logits.astype(np.float32),
                        stage2_logits=reference.stage2_logits.astype(np.float32),
                        audio=reference.audio.astype(np.float32), **free_run_arrays(reference.free_runs))


def load_case(path: str | Path) -> tuple[ParityCase, ParityRun]:
    header, arrays = read_npz(path, "parity case file", EdgevoiceError)
    if header.get("format") != CASE_FORMAT or header.get("format_version") != CASE_FORMAT_VERSION:
        raise EdgevoiceError(f"{path}: not a MetaVoice parity case of format version {CASE_FORMAT_VERSION}")
    try:
        case = ParityCase(header["text"], arrays["embedding"], arrays["tokens"], arrays["stage2_rows"],
                          arrays["codes"], int(header["max_tokens"]))
        meta = dict(header["reference"])
        reference = ParityRun(meta.pop("label"), arrays["logits"], arrays["stage2_logits"], arrays["audio"], meta,
                              free_runs_from(arrays))
    except (KeyError, TypeError, ValueError) as exc:
        raise EdgevoiceError(f"{path}: incomplete parity case ({exc})") from None
    return case, reference
