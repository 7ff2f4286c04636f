"""Accuracy gate for quantised bundles: error of each graph and of the whole pipeline against FP32 (numpy only).

* per graph, on held-out recorded inputs: cosine and relative L2 of every float output; for the GPT graphs also
  top-1 agreement and top-5 overlap of the logits; token agreement for integer outputs; SNR and log-mel L1 for
  the waveform;
* end to end, forced-token protocol: the FP32 bundle's tokens are forced through both bundles
  (`teacher_forced_logits`), and the same tokens and the same injected noise go through `decode_tokens`.
"""

from __future__ import annotations

import numpy as np

from edgevoice.gpt_sovits.spectrogram import linear_spectrogram

MEL_BINS = 128
SAMPLE_RATE = 32000
N_FFT = 2048
LOG_FLOOR = 1e-5
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


def mel_filterbank(n_mels: int = MEL_BINS, n_fft: int = N_FFT, rate: int = SAMPLE_RATE) -> np.ndarray:
    """Triangular HTK-mel filters `[n_mels, n_fft//2+1]` (unnormalised; only relative comparisons use them)."""
    def to_mel(hz):
        return 2595.0 * np.log10(1.0 + np.asarray(hz) / 700.0)

    def to_hz(mel):
        return 700.0 * (10.0 ** (np.asarray(mel) / 2595.0) - 1.0)

    edges = to_hz(np.linspace(to_mel(0.0), to_mel(rate / 2), n_mels + 2))
    bins = np.linspace(0, rate / 2, n_fft // 2 + 1)
    lower = (bins[None] - edges[:-2, None]) / (edges[1:-1, None] - edges[:-2, None])
    upper = (edges[2:, None] - bins[None]) / (edges[2:, None] - edges[1:-1, None])
    return np.maximum(0.0, np.minimum(lower, upper))


_MEL = mel_filterbank()


def log_mel(audio: np.ndarray) -> np.ndarray:
    return np.log(np.maximum(_MEL @ linear_spectrogram(audio.reshape(-1))[0].astype(np.float64), LOG_FLOOR))


def log_mel_l1(reference: np.ndarray, test: np.ndarray) -> float:
    return float(np.mean(np.abs(log_mel(reference) - log_mel(test))))


def log_mel_l1_at(reference: np.ndarray, test: np.ndarray, rate: int, n_fft: int = 1024, hop: int = 256,
                  n_mels: int = 80) -> float:
    """Mean |Δ log-mel| of two waveforms at `rate` (`log_mel_l1` is GPT-SoVITS' 32 kHz one)."""
    reference, test = np.asarray(reference).reshape(-1), np.asarray(test).reshape(-1)
    if reference.size <= n_fft:
        return 0.0 if np.array_equal(reference, test) else float(np.mean(np.abs(reference - test)))
    bank = mel_filterbank(n_mels, n_fft, rate)

    def log_mel(audio):
        spectrum = linear_spectrogram(audio, n_fft=n_fft, hop_length=hop, win_length=n_fft)[0].astype(np.float64)
        return np.log(np.maximum(bank @ spectrum, 1e-5))

    return float(np.mean(np.abs(log_mel(reference) - log_mel(test))))


def logits_agreement(reference: np.ndarray, test: np.ndarray) -> dict[str, float]:
    """Rows are steps: share of rows with the same argmax, mean share of the FP32 top-5 kept in the test top-5."""
    reference, test = reference.reshape(-1, reference.shape[-1]), test.reshape(-1, test.shape[-1])
    top1 = float(np.mean(reference.argmax(-1) == test.argmax(-1)))
    ref5, test5 = np.argsort(-reference, -1)[:, :5], np.argsort(-test, -1)[:, :5]
    top5 = float(np.mean([len(set(r) & set(t)) / 5 for r, t in zip(ref5, test5)]))
    return {"top1_agreement": top1, "top5_overlap": top5}


def _summary(values: list[float], worst) -> dict[str, float]:
    return {"mean": float(np.mean(values)), "worst": float(worst(values))}


def graph_errors(graph: str, reference_outputs: list[dict], test_outputs: list[dict]) -> dict:
    """Aggregate errors over items; outputs named like the GPT caches are pooled into one `caches` entry."""
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
            if name == "audio":
                stats.setdefault("snr_db", []).append(snr_db(ref, test))
                stats.setdefault("log_mel_l1", []).append(log_mel_l1(ref, test))
            if name == "logits":
                logits_ref.append(ref)
                logits_test.append(test)
    worst_of = {"cosine": min, "rel_l2": max, "agreement": min, "snr_db": min, "log_mel_l1": max}
    result = {"items": len(reference_outputs)}
    for key, stats in groups.items():
        result[key] = {metric: _summary(values, worst_of[metric]) for metric, values in stats.items()}
    if logits_ref:
        result["logits"].update(logits_agreement(np.concatenate(logits_ref), np.concatenate(logits_test)))
    return result


def decode_errors(prefill, reference_cache, test_cache, utterances) -> dict:
    """Errors of a decode graph: both caches (`(prefill outputs, prompt length) -> cache with .step(token)`:
    a `StatefulCache` or `HostKVCache` over the graph's session) are seeded by the same FP32 prefill and fed the
    FP32 tokens, so only the decode graph differs (a stateful graph's inputs live in the request state and can't
    be recorded)."""
    reference_rows, test_rows = [], []
    for utt in utterances:
        out, prompt_len = prefill_utterance(prefill, utt)
        for make_cache, rows in ((reference_cache, reference_rows), (test_cache, test_rows)):
            cache = make_cache(out, prompt_len)
            rows.extend({"logits": cache.step(int(token))[None]} for token in utt.tokens[:-1])
    return graph_errors("gpt_decode", reference_rows, test_rows)


def prefill_utterance(prefill, utt) -> tuple[dict, int]:
    """A recorded utterance's prefill outputs (the session `prefill`) and its prompt's length."""
    prompt = utt.prompt_tokens.reshape(1, -1).astype(np.int64)
    out = prefill.run({"phone_ids": utt.phone_ids.reshape(1, -1).astype(np.int64),
                       "bert_features": utt.bert[None].astype(np.float32), "prompt_tokens": prompt})
    return out, prompt.shape[1]


def end_to_end(reference_synth, test_synth, utterances) -> dict:
    """Forced-token protocol over `utterances` (collected on the FP32 bundle): GPT logits with the FP32 tokens
    forced (BERT features recomputed by each bundle for Chinese), and SoVITS audio from the same tokens and noise."""
    ref_logits, test_logits, snrs, mels, rels = [], [], [], [], []
    for utt in utterances:
        n_prompt = utt.phone_ids.size - utt.target_phone_ids.size
        outputs = []
        for synth in (reference_synth, test_synth):
            _, target_bert = synth.phonemize(utt.text, utt.language)
            bert = np.concatenate([utt.bert[:, :n_prompt], target_bert], axis=1)
            logits = synth.teacher_forced_logits(utt.phone_ids, bert, utt.prompt_tokens, utt.tokens)
            audio = synth.decode_tokens(utt.tokens, utt.target_phone_ids, noise=utt.noise, ge=utt.ge)
            outputs.append((logits, audio))
        (ref_l, ref_a), (test_l, test_a) = outputs
        ref_logits.append(ref_l)
        test_logits.append(test_l)
        rels.append(relative_l2(ref_l, test_l))
        snrs.append(snr_db(ref_a, test_a))
        mels.append(log_mel_l1(ref_a, test_a))
    return {
        "utterances": len(utterances),
        "logits": {"rel_l2": _summary(rels, max),
                   **logits_agreement(np.concatenate(ref_logits), np.concatenate(test_logits))},
        "audio": {"snr_db": _summary(snrs, min), "log_mel_l1": _summary(mels, max)},
    }
