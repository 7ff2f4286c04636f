"""Upstream GPT-SoVITS token sampling in numpy, in upstream's order of operations (spec §3.4–3.5).

Per step: drop the EOS column for the first `min_tokens` steps; repetition penalty on every id already in the
history (prompt tokens included, each id once); top-p; temperature; top-k (ties kept); softmax; draw with the
exponential race `argmax(p / q)`, `q ~ Exp(1)`. Generation stops when the draw **or** the argmax of the penalised
logits is EOS.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import OptionsError


# Tokens one fragment may be given (25 a second: over an hour of audio); the token history is allocated up front.
MAX_TOKENS = 100_000
UPSTREAM_MIN_TOKENS = 11  # upstream bans EOS while idx < 11


@dataclass(frozen=True)
class SamplingOptions:
    top_k: int = 15
    top_p: float = 1.0
    temperature: float = 1.0
    repetition_penalty: float = 1.35
    min_tokens: int = UPSTREAM_MIN_TOKENS  # EOS is banned before this many tokens were generated
    max_tokens: int | None = None  # None: the model's own limit, `upstream_token_limit(max_sec)`

    def __post_init__(self):
        if self.top_k < 1:
            raise OptionsError("top_k must be at least 1")
        if not 0.0 < self.top_p <= 1.0:
            raise OptionsError("top_p must be in (0, 1]")
        if self.temperature <= 0:
            raise OptionsError("temperature must be positive")
        if self.repetition_penalty <= 0:
            raise OptionsError("repetition_penalty must be positive")
        if self.min_tokens < 0:  # any size is fine: a huge value holds EOS back for good
            raise OptionsError(f"min_tokens must not be negative, not {self.min_tokens}")
        if self.max_tokens is not None and not 1 <= self.max_tokens <= MAX_TOKENS:
            raise OptionsError(f"max_tokens must be 1…{MAX_TOKENS:,}, not {self.max_tokens}")


UPSTREAM_STEPS = 1500  # upstream's decode loop runs at most 1500 steps (idx 0..1499)
UPSTREAM_TOKEN_HZ = 50  # upstream's early_stop_num = hz · max_sec with hz hard-coded to 50 (tokens are 25 Hz)


def upstream_token_limit(max_sec: float | None, reference_free: bool = False) -> int:
    """How many tokens upstream's `TTS.run` keeps when the GPT never stops. It stops sampling once more than
    `early_stop_num = 50 · max_sec` tokens were drawn, or at step 1499. With a prompt (the batched decoder) it
    drops the token drawn at that step: min(50 · max_sec, 1499) tokens, 1499 for the released configs (max_sec
    54). Reference-free (the naive decoder) keeps it: min(50 · max_sec + 1, 1500)."""
    keep_last = 1 if reference_free else 0
    cap = UPSTREAM_STEPS - 1 + keep_last
    if max_sec is None:
        return cap
    return max(1, min(int(UPSTREAM_TOKEN_HZ * max_sec) + keep_last, cap))


def _softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max())
    return e / e.sum()


def penalise(logits: np.ndarray, history: np.ndarray, penalty: float) -> np.ndarray:
    """Repetition penalty in place: negative logits × penalty, others ÷ penalty, once per distinct id."""
    if penalty != 1.0 and history.size:
        seen = np.zeros(logits.shape[0], bool)  # a set by marking: no sort of the history every token
        seen[history[history < logits.shape[0]]] = True
        scores = logits[seen]
        logits[seen] = np.where(scores < 0, scores * penalty, scores / penalty)
    return logits


def sample_token(logits: np.ndarray, history: np.ndarray, step: int, eos: int, options: SamplingOptions,
                 rng: np.random.Generator) -> tuple[int, bool]:
    """One upstream sampling step on raw logits `[V]`; returns (token, stop)."""
    logits = np.array(logits, dtype=np.float32)
    if step < options.min_tokens:
        logits = logits[:eos]
    penalise(logits, history, options.repetition_penalty)
    greedy = int(np.argmax(logits))
    if options.top_p < 1.0:
        order = np.argsort(-logits, kind="stable")
        cumulative = np.cumsum(_softmax(logits[order]))
        remove = cumulative > options.top_p
        remove[0] = False
        logits[order[remove]] = -np.inf
    logits = logits / max(options.temperature, 1e-5)
    k = min(options.top_k, logits.shape[0])
    pivot = np.partition(logits, -k)[-k]
    logits = np.where(logits < pivot, -np.inf, logits)
    probs = _softmax(logits)
    token = int(np.argmax(probs / rng.exponential(size=probs.shape)))
    return token, token == eos or greedy == eos
