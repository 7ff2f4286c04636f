"""Parity across backends, precisions and machines: one case (voice, text, tokens, noise) through several
(bundle, backend) pairs, each compared with a reference run.

The forced-token protocol makes runs comparable although sampling is random: the reference run samples the
tokens once, then every run computes the GPT's teacher-forced logits over those tokens and decodes them with the
same flow noise and voice. A case and its reference outputs can be saved to an `.npz` (plain arrays, no pickles)
and replayed on another machine, which is how CPU and GPU results are compared across two boxes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import EdgevoiceError, VoiceError
from ..npzfile import atomic_savez, read_npz
from ..parity import AUDIO_MAX_ABS, AUDIO_SNR, Column, audio_difference, describe, table_lines
from ..parity_report import FreeRun, Gate, free_run_arrays, free_runs_from
from .sampler import SamplingOptions
from .synthesizer import Synthesizer
from .voice import Voice

CASE_FORMAT = "edgevoice-parity-case"
CASE_FORMAT_VERSION = 1
SAMPLED = True  # a free run samples its tokens and noise from the seed

# Gate defaults per precision: `edgevoice parity` exits 1 when a run misses one, `--gate` changes them. Basis:
# the worst of 8 cases (3 en texts and a zh one, two voices, two seeds, 60 forced tokens) against OpenVINO FP32 on
# the random-weight models, tiny (shared fixtures) and full size (`make-test-model --size full`), on an AVX-512
# VNNI/BF16 Zen 4 (benchmarks/parity_gates.py, docs/parity.md). FP32 leaves room for other kernels (a GPU's
# reduction order); BF16 and INT8 limits sit 1.6–2.5× (or 12+ dB) beyond the worst variant measured, since
# random weights are no guide to trained ones.
GATES = {
    # onnxruntime FP32 1.3e-6 (tiny and full), PyTorch 4e-6; BF16 0.042 tiny / 0.023 full; INT8 0.019 tiny,
    # 0.016 full in English but 0.18 in Chinese (static-INT8 BERT features). GPT output layer scaled by 1 %: 0.010
    "logits_max_rel": Gate(at_least=False, fp32=1e-4, bf16=0.1, int8=0.3),
    # FP32 1.000 everywhere (0.98: one near-tie flip in 60 steps); BF16 0.933 tiny / 0.983 full; INT8 0.933 / 0.95
    "top1_agreement": Gate(at_least=True, fp32=0.98, bf16=0.85, int8=0.85),
    # FP32 134.0 dB tiny, 132.7 full; BF16 47.7 tiny, 62.1 full; INT8 51.8 tiny, 49.5 full
    "audio_snr_db": Gate(at_least=True, fp32=60.0, bf16=35.0, int8=35.0),
    # FP32 3.1e-5 tiny, 7.8e-4 full; BF16 0.45 tiny, 1.00 full; INT8 0.36 tiny, 0.85 full. The random vocoders'
    # output is quiet noise, where BF16/INT8 move every band (full size: silence scores 1.1, white noise 5.0), so
    # at reduced precision this gate catches noise and the SNR gate silence
    "log_mel_l1": Gate(at_least=False, fp32=0.01, bf16=2.0, int8=2.0),
}


@dataclass
class ParityCase:
    text: str
    language: str
    voice: Voice
    tokens: np.ndarray  # [T] int64, sampled once by the reference run
    noise: np.ndarray  # [1, C, 2T] float32, already scaled
    max_tokens: int | None = None  # the cap free runs sample up to (None: the case's length)


@dataclass
class ParityRun:
    label: str  # e.g. "openvino fp32 @ host"
    logits: np.ndarray  # [T, V] teacher-forced raw logits
    audio: np.ndarray  # [1280·T] raw waveform
    meta: dict = field(default_factory=dict)
    free_runs: list[FreeRun] = field(default_factory=list)  # the case's text sampled freely, one per seed


def make_case(synth: Synthesizer, voice: Voice, text: str, language: str = "en", max_tokens: int = 60,
              seed: int = 0) -> ParityCase:
    """Sample the case's tokens with `synth` (seeded, the bundle's sampling options) and draw its noise."""
    synth.check_voice(voice)
    rng = np.random.default_rng(seed)
    phones, bert = synth.phonemize(text, language)
    tokens = synth.generate_tokens(np.concatenate([voice.prompt_phone_ids, phones.phone_ids]),
                                   np.concatenate([voice.prompt_bert, bert], axis=1), voice.prompt_tokens,
                                   _sampling(synth, max_tokens), rng)
    if tokens.size == 0:
        raise EdgevoiceError("the reference run produced no tokens for this text")
    return ParityCase(text, language, voice, tokens, _noise(synth, rng, tokens.size), max_tokens)


def _sampling(synth: Synthesizer, max_tokens: int) -> SamplingOptions:
    return synth.default_options.with_overrides(max_tokens=max_tokens).sampling()  # the bundle's, as `say` samples


def _noise(synth: Synthesizer, rng: np.random.Generator, tokens: int) -> np.ndarray:
    """The flow's noise for `tokens` tokens at the bundle's noise scale."""
    channels = synth.bundle.manifest.model["sovits"]["inter_channels"]
    scale = synth.default_options.noise_scale
    return rng.standard_normal((1, channels, 2 * tokens)).astype(np.float32) * scale


def run_case(synth: Synthesizer, case: ParityCase, label: str | None = None) -> ParityRun:
    """The case through one synthesiser: its own front-end and BERT, the case's voice, tokens and noise."""
    if case.voice.model_fingerprint != synth.bundle.manifest.model_fingerprint:
        raise VoiceError("this parity case was recorded with a different model; record it again with this bundle "
                         "(--save) or compare it on the bundle it came from")
    synth.check_voice(case.voice)
    phones, bert = synth.phonemize(case.text, case.language)
    voice = case.voice
    logits = synth.teacher_forced_logits(np.concatenate([voice.prompt_phone_ids, phones.phone_ids]),
                                         np.concatenate([voice.prompt_bert, bert], axis=1), voice.prompt_tokens,
                                         case.tokens)
    audio = synth.decode_tokens(case.tokens, phones.phone_ids, noise=case.noise, ge=voice.ge)
    meta = describe(synth)
    return ParityRun(label or f"{meta['backend']} {'/'.join(meta['precisions'])}", logits, audio, meta)


def free_run(synth: Synthesizer, case: ParityCase, seed: int) -> FreeRun:
    """The case's text and voice with nothing forced: tokens sampled and noise drawn from `seed`, then decoded."""
    rng = np.random.default_rng(seed)
    phones, bert = synth.phonemize(case.text, case.language)
    voice = case.voice
    tokens = synth.generate_tokens(np.concatenate([voice.prompt_phone_ids, phones.phone_ids]),
                                   np.concatenate([voice.prompt_bert, bert], axis=1), voice.prompt_tokens,
                                   _sampling(synth, case.max_tokens or case.tokens.size), rng)
    if tokens.size == 0:  # EOS at once: no audio to compare, only the (empty) choice
        return FreeRun(seed, tokens, np.zeros(0, np.float32))
    noise = _noise(synth, rng, tokens.size)
    return FreeRun(seed, tokens, synth.decode_tokens(tokens, phones.phone_ids, noise=noise, ge=voice.ge))


def compare_runs(reference: ParityRun, test: ParityRun) -> dict:
    """Logit and audio differences of `test` against `reference` (JSON-safe: identical audio has SNR None)."""
    if reference.logits.shape != test.logits.shape or reference.audio.shape != test.audio.shape:
        raise EdgevoiceError(f"{test.label}: output shapes differ from the reference run "
                             f"({test.logits.shape}/{test.audio.shape} vs {reference.logits.shape}/"
                             f"{reference.audio.shape}); was it run on the same case?")
    logit_diff = float(np.abs(reference.logits.astype(np.float64) - test.logits).max())
    return {
        "label": test.label,
        "logits_max_abs": logit_diff,
        "logits_max_rel": logit_diff / max(float(np.abs(reference.logits).max()), 1e-30),
        "top1_agreement": float(np.mean(reference.logits.argmax(-1) == test.logits.argmax(-1))),
        **audio_difference(reference.audio, test.audio),
        "meta": test.meta,
    }


COLUMNS = (Column("logits max|Δ|", "logits_max_abs", "14.2e"), Column("rel", "logits_max_rel", "9.1e"),
           Column("top-1", "top1_agreement", "6.3f"), AUDIO_SNR, AUDIO_MAX_ABS)


def report_lines(reference: ParityRun, results: list[dict]) -> list[str]:
    return [f"reference: {reference.label} ({reference.meta.get('machine', '?')}), {reference.logits.shape[0]} "
            f"forced tokens, {reference.audio.size} samples", *table_lines(COLUMNS, results)]


def save_case(path: str | Path, case: ParityCase, reference: ParityRun) -> Path:
    header = {"format": CASE_FORMAT, "format_version": CASE_FORMAT_VERSION, "text": case.text,
              "language": case.language, "voice": case.voice.header(), "max_tokens": case.max_tokens,
              "reference": {"label": reference.label, **reference.meta}}
    arrays = {f"voice_{k}": v for k, v in case.voice.arrays().items()}
    return atomic_savez(path, header, tokens=case.tokens.astype(np.int64), noise=case.noise.astype(np.float32),
                        logits=reference.logits.astype(np.float32), audio=reference.audio.astype(np.float32),
                        **arrays, **free_run_arrays(reference.free_runs))


def load_case(path: str | Path) -> tuple[ParityCase, ParityRun]:
    header, arrays = read_npz(path, "parity case file", EdgevoiceError)
    if header.get("format") != CASE_FORMAT or header.get("format_version") != CASE_FORMAT_VERSION:
        raise EdgevoiceError(f"{path}: not an edgevoice parity case of format version {CASE_FORMAT_VERSION}")
    try:
        voice = Voice.from_parts(header["voice"], {k[len("voice_"):]: v for k, v in arrays.items()
                                                   if k.startswith("voice_")}, path)
        case = ParityCase(header["text"], header["language"], voice, arrays["tokens"], arrays["noise"],
                          header.get("max_tokens"))
        meta = dict(header["reference"])
        reference = ParityRun(meta.pop("label"), arrays["logits"], arrays["audio"], meta, free_runs_from(arrays))
    except KeyError as exc:
        raise EdgevoiceError(f"{path}: incomplete parity case (missing {exc})") from None
    return case, reference
