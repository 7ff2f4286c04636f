"""The accuracy gate's measures of a quantised graph against FP32 (numpy only, family-neutral): on held-out
recorded inputs, cosine and relative L2 of every float output, top-1 agreement and top-5 overlap of logits, token
agreement for integer outputs, SNR and log-mel L1 for the outputs a family names as waveforms (`graph_errors`).
Each family's end-to-end protocol lives beside its quantiser (GPT-SoVITS: `gpt_sovits/accuracy.py`).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from edgevoice.audio import magnitude_spectrogram
from edgevoice.parity_report import MEL_BANDS, MEL_FFT, MEL_FLOOR, MEL_HOP, mel_filterbank

LOG_FLOOR = MEL_FLOOR
SNR_CAP_DB = 200.0
# Above this worst held-out log-mel L1 against FP32 (mel bands off by a factor of 1.35 on average) audio may sound
# different: `quantize` warns, and no optional speed-up (a bf16 vocoder tail) may take the audio there. OpenVINO's
# INT8 vocoder measured 0.10-0.13 on random full-size weights but 0.52 on a vocoder trained briefly on speech, where a
# bf16 tail gave 0.38 against the f32 tail's 0.045 (`benchmarks/trained_vocoder_proxy.py`, RESULTS.md session 17):
# random weights hide what low precision costs a real vocoder, and a gate relative to another 8-bit graph follows it.
AUDIBLE_LOG_MEL_L1 = 0.3


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.astype(np.float64).ravel(), b.astype(np.float64).ravel()
    denom = np.linalg.norm(a) * np.linalg.norm(b)
    return float(a @ b / denom) if denom else float(np.array_equal(a, b))


def relative_l2(reference: np.ndarray, test: np.ndarray) -> float:
    reference, test = reference.astype(np.float64), test.astype(np.float64)
    norm = np.linalg.norm(reference)
    return float(np.linalg.norm(test - reference) / norm) if norm else float(np.linalg.norm(test))


def snr_db(reference: np.ndarray, test: np.ndarray) -> float:
    reference, test = reference.astype(np.float64).ravel(), test.astype(np.float64).ravel()
    noise = np.sum((test - reference) ** 2)
    # Capped so that identical outputs give a finite, JSON-safe figure.
    return min(SNR_CAP_DB, float(10 * np.log10(np.sum(reference ** 2) / noise))) if noise else SNR_CAP_DB


@dataclass(frozen=True)
class LogMel:
    """The log-mel view a family's waveforms are compared in: `n_fft`-point frames every `hop` samples, `bands`
    HTK mel bands up to `rate`/2, natural log floored at `LOG_FLOOR`."""

    rate: int
    n_fft: int = MEL_FFT
    hop: int = MEL_HOP
    bands: int = MEL_BANDS

    def of(self, audio: np.ndarray) -> np.ndarray:
        spectrum = magnitude_spectrogram(audio, self.n_fft, self.hop, self.n_fft)[0].astype(np.float64)
        return np.log(np.maximum(_filterbank(self) @ spectrum, LOG_FLOOR))

    def l1(self, reference: np.ndarray, test: np.ndarray) -> float:
        """Mean |Δ log-mel| of two waveforms of the same length; one too short for a frame: mean |Δ sample|."""
        reference, test = np.asarray(reference).reshape(-1), np.asarray(test).reshape(-1)
        if reference.size <= (self.n_fft - self.hop) // 2:
            return 0.0 if np.array_equal(reference, test) else float(np.mean(np.abs(reference - test)))
        return float(np.mean(np.abs(self.of(reference) - self.of(test))))


@functools.cache  # one per view: a gate compares hundreds of waveforms in the same view
def _filterbank(view: LogMel) -> np.ndarray:
    return mel_filterbank(view.rate, view.n_fft, view.bands)


def logits_agreement(reference: np.ndarray, test: np.ndarray) -> dict[str, float]:
    """Rows are steps: share of rows with the same argmax, mean share of the FP32 top-5 kept in the test top-5."""
    reference, test = reference.reshape(-1, reference.shape[-1]), test.reshape(-1, test.shape[-1])
    top1 = float(np.mean(reference.argmax(-1) == test.argmax(-1)))
    ref5, test5 = np.argsort(-reference, -1)[:, :5], np.argsort(-test, -1)[:, :5]
    top5 = float(np.mean([len(set(r) & set(t)) / 5 for r, t in zip(ref5, test5)]))
    return {"top1_agreement": top1, "top5_overlap": top5}


def summary(values: list[float], worst) -> dict[str, float]:
    return {"mean": float(np.mean(values)), "worst": float(worst(values))}


def graph_errors(graph: str, reference_outputs: list[dict], test_outputs: list[dict],
                 waveforms: dict[str, LogMel] | None = None) -> dict:
    """Aggregate errors over items; outputs named like the GPT caches are pooled into one `caches` entry, outputs
    named in `waveforms` also get SNR and log-mel L1 in their view."""
    waveforms = waveforms or {}
    groups: dict[str, dict[str, list[float]]] = {}
    logits_ref, logits_test = [], []
    for ref_item, test_item in zip(reference_outputs, test_outputs):
        for name, ref in ref_item.items():
            test = test_item[name]
            key = "caches" if name.startswith(("present_", "new_")) else name
            stats = groups.setdefault(key, {})
            if ref.dtype.kind in "iu":
                stats.setdefault("agreement", []).append(float(np.mean(ref == test)) if ref.size else 1.0)
                continue
            stats.setdefault("cosine", []).append(cosine(ref, test))
            stats.setdefault("rel_l2", []).append(relative_l2(ref, test))
            if name in waveforms:
                stats.setdefault("snr_db", []).append(snr_db(ref, test))
                stats.setdefault("log_mel_l1", []).append(waveforms[name].l1(ref, test))
            if name == "logits":
                logits_ref.append(ref)
                logits_test.append(test)
    worst_of = {"cosine": min, "rel_l2": max, "agreement": min, "snr_db": min, "log_mel_l1": max}
    result = {"items": len(reference_outputs)}
    for key, stats in groups.items():
        result[key] = {metric: summary(values, worst_of[metric]) for metric, values in stats.items()}
    if logits_ref:
        result["logits"].update(logits_agreement(np.concatenate(logits_ref), np.concatenate(logits_test)))
    return result
