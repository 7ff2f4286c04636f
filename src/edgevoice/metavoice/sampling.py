"""MetaVoice-1B token sampling in numpy: classifier-free guidance, temperature, top-k / top-p and
the exponential-race sampler.

Upstream has two samplers that agree on kept sets for ordinary logits:

* ``fam/llm/fast_inference_utils.py`` (``fast_inference.py``, the production path):
  ``logits / max(T, 1e-5)`` -> top-k (everything below the k-th largest logit to -inf) -> top-p
  on logits (ascending sort, drop the tokens whose cumulative probability is <= 1 - p, always
  keep the most likely) -> softmax -> ``argmax(probs / Exp(1) noise)``. `logits_to_probs`.
* ``fam/llm/mixins/causal.py`` (``inference.py``): top-p on probabilities (descending cumulative
  sum > p dropped, shifted by one, renormalised by the sum). `reference_top_p`.

The exponential race ``argmax(p_i / q_i)`` with ``q_i ~ Exp(1)`` draws index i with probability
p_i; upstream uses it on the fast path and it lets tests inject torch's recorded noise.
"""

from __future__ import annotations

import math
from numbers import Real

import numpy as np

from edgevoice.errors import OptionsError, abbreviated

from .options import MAX_GUIDANCE

__all__ = ["guided_logits", "guidance_scales", "logits_to_probs", "reference_top_p",
           "sample_probs", "sample_logits", "greedy"]

MIN_TEMPERATURE = 1e-5  # upstream's clamp in logits_to_probs
_TINY = np.finfo(np.float32).tiny


def guided_logits(cond: np.ndarray, uncond: np.ndarray, guidance: tuple[float, float] = (3.0, 1.0),
                  uncond_prompt: np.ndarray | None = None) -> np.ndarray:
    """Stage-1 classifier-free guidance as upstream's ``_sample_next_token`` combines the rows.

    ``(g_spk + g_prompt - 1)·cond + (1 - g_spk)·uncond + (1 - g_prompt)·uncond_prompt``, float32,
    in that order (bit-exact with upstream); without a prompt row the last term is ``+ 0.0``.
    """
    spk, prompt = guidance_scales(guidance)
    if prompt > 1 and uncond_prompt is None:
        raise OptionsError(f"prompt guidance {prompt} needs the prompt-unconditioned logits")
    cond = np.asarray(cond, dtype=np.float32)
    uncond = np.asarray(uncond, dtype=np.float32)
    with np.errstate(over="ignore", invalid="ignore"):  # overflow is refused below, in one line
        out = np.float32(spk + prompt - 1) * cond + np.float32(1 - spk) * uncond
        if prompt > 1:
            out = out + np.float32(1 - prompt) * np.asarray(uncond_prompt, dtype=np.float32)
        else:
            out = out + np.float32(0.0)
    # NaN or inf would make every draw the first token (argmax of NaN) or end-of-audio: silent garbage
    if not np.isfinite(out).all():
        raise OptionsError("the guided logits are not finite: the logits given hold NaN, infinite or huge values")
    return out


def guidance_scales(guidance) -> tuple[float, float]:
    """(speaker, prompt) guidance as two finite floats in 1…`MAX_GUIDANCE`; anything else is an `OptionsError`."""
    try:
        scales = tuple(guidance)
    except TypeError:  # a number or a 0-d array: not a pair
        scales = ()
    if len(scales) != 2 or not all(isinstance(g, Real) and not isinstance(g, (bool, np.bool_)) for g in scales):
        raise OptionsError(f"guidance must be two numbers (speaker, prompt), not {abbreviated(repr(guidance))}")
    spk, prompt = (float(g) for g in scales)
    if not (math.isfinite(spk) and math.isfinite(prompt)) or spk < 1 or prompt < 1:
        raise OptionsError(f"guidance scales must be finite and >= 1, got ({spk}, {prompt})")
    if spk > MAX_GUIDANCE or prompt > MAX_GUIDANCE:  # far beyond, the guided logits overflow float32
        raise OptionsError(f"guidance scales must be at most {MAX_GUIDANCE:g}, got ({spk}, {prompt})")
    return spk, prompt


def _softmax(logits: np.ndarray) -> np.ndarray:
    shifted = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return shifted / shifted.sum(axis=-1, keepdims=True)


def _check(temperature: float, top_k: int | None, top_p: float | None) -> None:
    if not temperature >= 0:  # also refuses NaN
        raise OptionsError(f"temperature must be >= 0, got {temperature}")
    if top_k is not None and (isinstance(top_k, bool) or int(top_k) != top_k or top_k < 1):
        raise OptionsError(f"top_k must be a positive integer, got {top_k}")
    if top_p is not None and not 0 < top_p <= 1:
        raise OptionsError(f"top_p must be in (0, 1], got {top_p}")


def _mask_top_k(logits: np.ndarray, top_k: int) -> np.ndarray:
    k = min(int(top_k), logits.shape[-1])
    pivot = np.partition(logits, -k, axis=-1)[..., -k][..., None]  # the k-th largest
    return np.where(logits < pivot, np.float32(-np.inf), logits)  # ties with the k-th are all kept


def _mask_top_p(logits: np.ndarray, top_p: float) -> np.ndarray:
    order = np.argsort(logits, axis=-1, kind="stable")
    ascending = np.take_along_axis(logits, order, axis=-1).astype(np.float64)
    # float64 cumulative sum: torch accumulates float32 cumsums in double on CPU
    cumulative = np.cumsum(_softmax(ascending), axis=-1)
    remove_sorted = cumulative <= 1 - top_p
    remove_sorted[..., -1] = False  # the most likely token always stays
    remove = np.empty_like(remove_sorted)
    np.put_along_axis(remove, order, remove_sorted, axis=-1)
    return np.where(remove, np.float32(-np.inf), logits)


def logits_to_probs(logits: np.ndarray, temperature: float = 1.0, top_k: int | None = None,
                    top_p: float | None = None) -> np.ndarray:
    """float32 probabilities over the last axis, as upstream's fast-path ``logits_to_probs``."""
    _check(temperature, top_k, top_p)
    logits = np.asarray(logits, dtype=np.float32) / np.float32(max(temperature, MIN_TEMPERATURE))
    if top_k is not None:
        logits = _mask_top_k(logits, top_k)
    if top_p is not None:
        logits = _mask_top_p(logits, top_p)
    return _softmax(logits)


def reference_top_p(probs: np.ndarray, top_p: float) -> np.ndarray:
    """``mixins.causal.top_p_sample``: keep the most likely tokens up to and including the one
    whose cumulative probability first exceeds `top_p`, renormalised by their sum."""
    _check(1.0, None, top_p)
    probs = np.asarray(probs, dtype=np.float32)
    order = np.argsort(-probs, axis=-1, kind="stable")
    descending = np.take_along_axis(probs, order, axis=-1)
    remove_sorted = np.zeros(descending.shape, dtype=bool)
    remove_sorted[..., 1:] = np.cumsum(descending.astype(np.float64), axis=-1)[..., :-1] > top_p
    kept = np.where(remove_sorted, np.float32(0), descending)
    out = np.empty_like(kept)
    np.put_along_axis(out, order, kept, axis=-1)
    return out / out.sum(axis=-1, keepdims=True)


def sample_probs(probs: np.ndarray, rng: np.random.Generator | None = None,
                 noise: np.ndarray | None = None) -> np.ndarray:
    """One index per row of the last axis: ``argmax(probs / q)``, ``q ~ Exp(1)`` (float32).

    Pass either `rng` (noise drawn from it) or `noise` (same shape as `probs`, e.g. torch's
    recorded draws). Returns int64 of shape ``probs.shape[:-1]``.
    """
    probs = np.asarray(probs, dtype=np.float32)
    if (rng is None) == (noise is None):
        raise OptionsError("sample_probs needs exactly one of rng and noise")
    if noise is None:
        noise = rng.standard_exponential(probs.shape, dtype=np.float32)
    noise = np.asarray(noise, dtype=np.float32)
    if noise.shape != probs.shape:
        raise OptionsError(f"noise shape {noise.shape} differs from probs shape {probs.shape}")
    # a zero draw would give 0/0 = NaN on a masked token, which argmax would pick
    return np.argmax(probs / np.maximum(noise, _TINY), axis=-1).astype(np.int64)


def greedy(logits: np.ndarray) -> np.ndarray:
    """Argmax over the last axis (int64): upstream's ``top_k=1``, whose only kept token is the
    maximum (with exact ties upstream draws among them at random; here the first wins)."""
    return np.argmax(np.asarray(logits), axis=-1).astype(np.int64)


def sample_logits(logits: np.ndarray, *, temperature: float = 1.0, top_k: int | None = None,
                  top_p: float | None = None, rng: np.random.Generator | None = None,
                  noise: np.ndarray | None = None) -> np.ndarray:
    """`logits_to_probs` then `sample_probs`; ``top_k=1`` is greedy and needs no randomness."""
    if top_k == 1:
        _check(temperature, top_k, top_p)
        return greedy(logits)
    return sample_probs(logits_to_probs(logits, temperature, top_k, top_p), rng=rng, noise=noise)
