"""GPT-SoVITS' accuracy protocol for quantised bundles, on the family-neutral measures of `quant_accuracy`:

* per graph, `graph_errors` with the vocoder's `audio` compared in `VOCODER_LOG_MEL`;
* the decode step, with both caches seeded by the same FP32 prefill and fed the FP32 tokens (`decode_errors`);
* end to end, forced-token protocol: the FP32 bundle's tokens are forced through both bundles
  (`teacher_forced_logits`), and the same tokens and the same injected noise go through `decode_tokens`.
"""

from __future__ import annotations

import numpy as np

from .. import quant_accuracy
from ..quant_accuracy import LogMel, logits_agreement, relative_l2, snr_db, summary

# Every GPT-SoVITS version edgevoice reads (v1–v2ProPlus) vocodes at 32 kHz; 2048-point frames every 640 samples
# (its own spectrogram's sizes) and 128 bands. The audible-difference threshold (`AUDIBLE_LOG_MEL_L1`) and every
# log-mel figure in benchmarks/RESULTS.md are in this view.
VOCODER_LOG_MEL = LogMel(rate=32000, n_fft=2048, hop=640, bands=128)


def graph_errors(graph: str, reference_outputs: list[dict], test_outputs: list[dict]) -> dict:
    return quant_accuracy.graph_errors(graph, reference_outputs, test_outputs, {"audio": VOCODER_LOG_MEL})


def log_mel_l1(reference: np.ndarray, test: np.ndarray) -> float:
    return VOCODER_LOG_MEL.l1(reference, test)


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
        "logits": {"rel_l2": summary(rels, max),
                   **logits_agreement(np.concatenate(ref_logits), np.concatenate(test_logits))},
        "audio": {"snr_db": summary(snrs, min), "log_mel_l1": summary(mels, max)},
    }
