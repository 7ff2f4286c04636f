"""Output loudness normalisation: ITU-R BS.1770 integrated loudness brought to -14 LUFS by a pure gain.

Upstream saves every synthesis with audiocraft's ``audio_write(strategy="loudness", loudness_compressor=True)``:
``torchaudio.functional.loudness`` (BS.1770: K-weighting, 400 ms blocks with 75 % overlap, gates at -70 LUFS
and -10 LU) measures the clip, a gain brings it to -14 LUFS (``loudness_headroom_db=14``), then ``tanh``
compresses it. Here the gain is kept and the compressor is not: the output is exactly ``gain * wav``, with the
gain lowered where needed so the peak stays at or below 0.99. Like audiocraft, clips with an RMS below 2e-3 are
left alone; so are clips shorter than one 400 ms block and clips with no block above the absolute gate, for which
upstream's measurement is undefined (NaN).

K-weighting uses the biquads torchaudio and pyloudnorm design for any sample rate (RBJ cookbook forms of a +4 dB
high shelf at 1500 Hz, Q 1/√2, and a 38 Hz high-pass, Q 0.5), applied in float64 without torchaudio's clamping of
each filter's output to [-1, 1] (which only lowers the reading of near-full-scale audio).
"""

from __future__ import annotations

import math

import numpy as np

from ..errors import AudioError

TARGET_LUFS = -14.0
ENERGY_FLOOR = 2e-3  # audiocraft's normalize_loudness: quieter clips (RMS) are returned unchanged
PEAK_LIMIT = 0.99
BLOCK_S = 0.4
BLOCK_OVERLAP = 0.75
ABSOLUTE_GATE_LUFS = -70.0
RELATIVE_GATE_LU = -10.0
_LOUDNESS_OFFSET = -0.691  # BS.1770's constant: a 997 Hz sine at 0 dBFS reads -3.01 LUFS
_FILTER_BLOCK = 64  # samples per block of the vectorised IIR: sets only its speed (and last-digit rounding)


def k_weighting(sample_rate: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """The two K-weighting biquads ``(b, a)`` (``a[0] = 1``) for `sample_rate`: high shelf, then high-pass."""
    shelf_w0 = 2 * math.pi * 1500.0 / sample_rate
    amp = 10 ** (4.0 / 40)  # the cookbook's A: square root of the +4 dB shelf gain
    alpha = math.sin(shelf_w0) / 2 * math.sqrt(2)  # sin(w0) / (2Q), Q = 1/√2
    cos = math.cos(shelf_w0)
    root = 2 * math.sqrt(amp) * alpha
    shelf_b = amp * np.array([(amp + 1) + (amp - 1) * cos + root, -2 * ((amp - 1) + (amp + 1) * cos),
                              (amp + 1) + (amp - 1) * cos - root])
    shelf_a = np.array([(amp + 1) - (amp - 1) * cos + root, 2 * ((amp - 1) - (amp + 1) * cos),
                        (amp + 1) - (amp - 1) * cos - root])
    pass_w0 = 2 * math.pi * 38.0 / sample_rate
    alpha = math.sin(pass_w0) / 2 / 0.5
    cos = math.cos(pass_w0)
    pass_b = np.array([(1 + cos) / 2, -(1 + cos), (1 + cos) / 2])
    pass_a = np.array([1 + alpha, -2 * cos, 1 - alpha])
    return [(shelf_b / shelf_a[0], shelf_a / shelf_a[0]), (pass_b / pass_a[0], pass_a / pass_a[0])]


def _block_responses(a: np.ndarray, length: int) -> tuple[np.ndarray, np.ndarray]:
    """For the recursion y[n] = w[n] - a[1]·y[n-1] - … - a[p]·y[n-p] over `length` samples: the impulse
    response [length], and the responses to a unit y[-1-i] with no input [p, length]."""
    order = len(a) - 1
    feedback = -np.asarray(a[1:], dtype=np.float64)
    # row 0: impulse response; row 1 + i: free response to y[-1-i] = 1; the first `order` columns are n < 0
    rows = np.zeros((order + 1, order + length))
    rows[0, order] = 1.0
    for i in range(order):
        rows[1 + i, order - 1 - i] = 1.0
    for n in range(order, order + length):
        recent = rows[:, n - order:n][:, ::-1]  # y[n-1], ..., y[n-p]
        rows[:, n] += recent @ feedback
    return rows[0, order:], rows[1:, order:]


def _all_pole(w: np.ndarray, a: np.ndarray) -> np.ndarray:
    """The recursion y[n] = w[n] - a[1]·y[n-1] - … (zero initial state), exactly, without a per-sample loop.

    The signal is cut into blocks. Within a block the output is its zero-state response (a product with the
    impulse response's Toeplitz matrix) plus the free response to the last `p` outputs of the block before. Those
    carried states obey s[k+1] = M·s[k] + e[k], a linear recurrence over blocks that a prefix scan by doubling
    solves in log2(blocks) vectorised steps."""
    order, size = len(a) - 1, _FILTER_BLOCK
    count = -(-len(w) // size)
    blocks = np.zeros(count * size)
    blocks[: len(w)] = w
    blocks = blocks.reshape(count, size)
    impulse, free = _block_responses(a, size)
    lag = np.arange(size)[None, :] - np.arange(size)[:, None]
    zero_state = blocks @ np.where(lag >= 0, impulse[np.clip(lag, 0, None)], 0.0)
    ends = np.arange(size - 1, size - 1 - order, -1)  # a block's last outputs, newest first: the next state
    transition = free[:, ends].T
    scan = zero_state[:, ends]  # fancy indexing: a copy
    power, step = transition, 1
    while step < count:
        scan[step:] = scan[step:] + scan[:-step] @ power.T
        power, step = power @ power, step * 2
    states = np.zeros((count, order))
    states[1:] = scan[:-1]
    return (zero_state + states @ free).reshape(-1)[: len(w)]


def _biquad(x: np.ndarray, b: np.ndarray, a: np.ndarray) -> np.ndarray:
    """``lfilter(b, a, x)`` with ``a[0] = 1``: the FIR part, then the recursion. (Cascading the two K-weighting
    biquads into one 4th-order recursion would be faster but loses ~4 digits to its clustered poles.)"""
    return _all_pole(np.convolve(x, b)[: len(x)], a)


def k_weighted(wav: np.ndarray, sample_rate: int) -> np.ndarray:
    """The K-weighted signal (float64), as scipy's ``lfilter`` would give through both biquads."""
    out = np.asarray(wav, dtype=np.float64)
    for b, a in k_weighting(sample_rate):
        out = _biquad(out, b, a)
    return out


def integrated_loudness(wav: np.ndarray, sample_rate: int) -> float:
    """BS.1770 gated loudness in LUFS (mono); NaN for a clip shorter than one block or with no block above -70."""
    wav, sample_rate = _checked(wav, sample_rate)
    block = int(BLOCK_S * sample_rate)
    step = int(block * (1 - BLOCK_OVERLAP))
    if len(wav) < block:
        return math.nan
    filtered = k_weighted(wav, sample_rate)
    energy = np.concatenate([[0.0], np.cumsum(filtered * filtered)])
    starts = np.arange(0, len(wav) - block + 1, step)  # whole blocks only, as torch's unfold
    power = (energy[starts + block] - energy[starts]) / block
    with np.errstate(divide="ignore"):
        loudness = _LOUDNESS_OFFSET + 10 * np.log10(power)
    gated = loudness > ABSOLUTE_GATE_LUFS
    if not gated.any():
        return math.nan
    relative_gate = _LOUDNESS_OFFSET + 10 * math.log10(power[gated].mean()) + RELATIVE_GATE_LU
    gated &= loudness > relative_gate
    return _LOUDNESS_OFFSET + 10 * math.log10(power[gated].mean())


def loudness_gain(wav: np.ndarray, sample_rate: int) -> float:
    """The factor that brings `wav` to -14 LUFS, capped so the peak stays ≤ 0.99; 1.0 for quiet, short or
    unmeasurable clips (see the module docstring)."""
    wav, sample_rate = _checked(wav, sample_rate)
    if wav.size == 0 or np.sqrt(np.mean(np.square(wav, dtype=np.float64))) < ENERGY_FLOOR:
        return 1.0
    loudness = integrated_loudness(wav, sample_rate)
    if math.isnan(loudness):
        return 1.0
    gain = 10 ** ((TARGET_LUFS - loudness) / 20)
    return min(gain, PEAK_LIMIT / float(np.max(np.abs(wav))))


def normalize_loudness(wav: np.ndarray, sample_rate: int) -> np.ndarray:
    """`wav` times `loudness_gain` (same dtype for float input)."""
    wav = np.asarray(wav)
    return wav * loudness_gain(wav, sample_rate)


def _checked(wav: np.ndarray, sample_rate: int) -> tuple[np.ndarray, int]:
    wav = np.asarray(wav)
    if wav.ndim != 1 or not np.issubdtype(wav.dtype, np.floating):
        raise AudioError(f"loudness needs one channel of float samples (shape (n,)), got {wav.dtype} {wav.shape}")
    if isinstance(sample_rate, bool) or int(sample_rate) != sample_rate or sample_rate <= 0:
        raise AudioError(f"sample rate must be a positive integer, got {sample_rate!r}")
    if not np.isfinite(wav).all():
        raise AudioError("audio has NaN or infinite samples")
    return wav, int(sample_rate)
