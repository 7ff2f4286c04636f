"""SoVITS on windows of tokens: audio for the start of a fragment while the GPT is still writing the rest.

SoVITS is not causal: its encoders attend over every token and its convolutions see both sides. A chunk of tokens
is therefore decoded inside a window that adds `context` tokens on each side, and only the chunk's own samples are
kept. Against decoding the whole fragment at once (chunks of 25 tokens, same tokens and noise), measured with
/tmp-style probes on random weights: full-size v2 41.8 dB without context, 111.6 dB with 10 tokens, 114.7 dB with
25; the tiny test model 43 / 78 / 81 dB. A window that reaches the fragment's start or end stops there, exactly
as the whole decode does: feeding extra tokens past the true end instead costs ~35 dB over the last 0.2 s (the
vocoder's convolutions then see signal where the whole decode sees its zero padding).

Shapes repeat on purpose. OpenVINO keeps memory for every input length a graph has run at (measured on the
full-size INT8 vocoder: ~100–300 MB more per new token count, kept even after the compiled model is deleted:
benchmarks/sovits_shape_memory.py), so every `sovits_latent` call (the encoder and flow) is padded up to one of
`SOVITS_TOKEN_BUCKETS` tokens, or a multiple of the largest for a long fragment, and a power-of-two phone count (it
takes the real lengths, `valid_tokens` and `valid_phones`: every layer masks the padding, so the real frames equal
an unpadded decode's to float rounding). The vocoder, which holds most of SoVITS's activations, runs on the same
frame counts (`VOCODER_FRAME_BUCKETS`, also masked past `valid_frames`), and a longer `z` in windows of the largest:
it only sees a few frames to each side, so a window with the frames it reaches on each side as context (the
manifest's `vocoder_context_frames`, which the exporter works out from the kernels) gives the whole call's samples
(`vocoder_windows`). A text of any length thus runs SoVITS at a handful of shapes, and a long fragment is still
decoded exactly.

Flow noise is drawn frame by frame from the fragment's own generator (`FrameNoise`), so a streamed fragment gets
exactly the noise its whole decode would.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import OptionsError

# What `say --stream` and the server ask for: 1 s of audio per chunk. The first chunk is shorter (10 tokens + 6 of
# right context, a 16-token window: `STREAM_FIRST_CHUNK_TOKENS`); later chunks grow to fill their shape.
STREAM_CHUNK_TOKENS = 25
STREAM_CONTEXT_TOKENS = 12  # context per side while streaming: ≥ 78 dB against the whole decode (tiny model)
# The first window's right context: the first audio waits for chunk + this many tokens. 6 tokens cover the vocoder's
# receptive field (8 frames = 4 tokens give 131 dB, 8 frames of context per side 150 dB, full-size v2); what is
# left beyond is SoVITS's encoder attention, which no finite context covers. Measured against the whole decode
# (150 tokens, chunks of 12 / 25, whole stream with this context on every window): tiny model 79.7-80.0 / 81.2-82.0
# dB (12 tokens: 82.3-83.4 / 82.7-82.9), full size 115.4 / 117.5 dB (12: 119.7 / 119.0). Only the first join uses it.
STREAM_FIRST_CONTEXT_TOKENS = 6
# Streamed chunks grow (c, c, 2c, 4c, 4c, ...): the first audio still waits for only c + context tokens, while the
# context's share of the vocoder's work falls from 2·12/c to 2·12/4c; four window lengths in all.
STREAM_CHUNK_GROWTH = 4
# Token counts SoVITS is padded to (bundles with `valid_tokens`): 2.6 / 5.1 / 10.2 s of audio. Fewer buckets mean
# less memory (one set of buffers each) but more padding computed for short sentences: measured on a 5,000-character
# text (benchmarks/long_text_memory.py --long-text, full size), peak RSS 1.17x one sentence's with these three,
# 1.22x with a 32-token bucket added (power-of-two phone counts from 32 or from 128: no difference).
SOVITS_TOKEN_BUCKETS = (64, 128, 256)
# The first window of a stream (chunk + right context, no left context) decides when the first audio leaves, so it
# is padded to a multiple of 16 tokens instead of to 64: at most three more shapes (small ones: ~1 MB of buffers
# per token each), used by streaming only, so a long text's memory is as above.
STREAM_FIRST_BUCKETS = (16, 32, 48) + SOVITS_TOKEN_BUCKETS
# The first chunk keeps at most this many tokens (0.4 s of audio), whatever the chunk size: its window (+ 6 tokens
# of right context) is then the smallest shape above, so the first audio waits for the fewest tokens and the
# cheapest vocoder call. Later chunks are `chunk_tokens` and grow as above; the player has 0.4 s of audio while the
# GPT writes the next chunk, several times faster than real time.
STREAM_FIRST_CHUNK_TOKENS = STREAM_FIRST_BUCKETS[0] - STREAM_FIRST_CONTEXT_TOKENS
MIN_PHONE_BUCKET = 32  # phones are padded to a power of two from here (they only feed the cheap text encoder)
# BERT's ids ([CLS] + a Chinese segment + [SEP]) are padded to one of these lengths (bundles whose BERT takes an
# attention mask): OpenVINO keeps ~7.6 MiB of kernels for good for every new length it meets, so a long-running
# process would grow with each new segment length (benchmarks/long_running_memory.py); these eleven bound it at
# ~85 MiB. Steps of at most half a bucket, because BERT's time grows with the padded length (full-size FP32, Zen 4:
# 12 ids 0.054 s, padded to 32 0.105 s; 38 ids 0.128 s, padded to 64 0.196 s).
BERT_TOKEN_BUCKETS = (16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512)
# The longest fragment whose encoder reads it whole (20.5 s). Its attention grows with the square of the length:
# full-size INT8, one fragment, peak RSS 1261 MiB at 700 tokens but 1930 MiB at 1300 (1264 through windows). Longer
# fragments go through SoVITS in windows of this many tokens with `LONG_FRAGMENT_CONTEXT` tokens of context per side.
LONG_FRAGMENT_TOKENS = 512
LONG_FRAGMENT_CONTEXT = 12  # ≥ 78 dB tiny, ≥ 111 dB full size against the whole-fragment decode (256-token windows)
# Frame counts the vocoder runs at: the token shapes' frames, so a fragment of up to 256 tokens (10.2 s) is one
# call at its encoder's shape, with nothing computed twice. Longer `z` goes through windows of the largest (512
# frames, the vocoder's reach on each side as context: ~5 % more frames). Smaller windows would bound memory further but
# cost time: full-size v2 FP32, 500 frames, windows with 13 frames of context per side: 2.07 s as one call, 2.29 s
# in windows of 272, 2.58 s in windows of 144 (the work grows with the frames computed; no cache effect).
VOCODER_FRAME_BUCKETS = tuple(2 * tokens for tokens in STREAM_FIRST_BUCKETS)
MAX_CHUNK_TOKENS = 1500  # a fragment never has more tokens than upstream's step limit


@dataclass(frozen=True)
class Window:
    """Tokens (frames, for the vocoder) `[start, stop)` go through SoVITS; the audio of `[keep_start, keep_stop)`
    is kept."""

    start: int
    stop: int
    keep_start: int
    keep_stop: int


def bucketed_length(count: int, buckets: tuple[int, ...] = SOVITS_TOKEN_BUCKETS) -> int:
    """The smallest bucket that holds `count`; past the largest, the next multiple of it (a long fragment's
    encoder runs whole, at one of a few long shapes); `count` itself without buckets."""
    if not buckets:
        return count
    return next((bucket for bucket in buckets if bucket >= count), -(-count // buckets[-1]) * buckets[-1])


def padded_phones(count: int) -> int:
    """`count` phones padded to a power of two, at least `MIN_PHONE_BUCKET`."""
    return max(MIN_PHONE_BUCKET, 1 << max(count - 1, 0).bit_length())


def check_chunk_tokens(chunk_tokens) -> int:
    if isinstance(chunk_tokens, bool) or not isinstance(chunk_tokens, (int, np.integer)):
        raise OptionsError(f"chunk_tokens must be a whole number of tokens, not {chunk_tokens!r}")
    if not 1 <= chunk_tokens <= MAX_CHUNK_TOKENS:
        raise OptionsError(f"chunk_tokens must be 1…{MAX_CHUNK_TOKENS} (25 tokens = 1 s of audio), "
                           f"not {chunk_tokens}")
    return int(chunk_tokens)


def next_window(kept: int, available: int, final: bool, chunk: int, context: int, growth: int = 1,
                buckets: tuple[int, ...] = ()) -> Window | None:
    """The window that yields the next audio after the first `kept` tokens, with `available` tokens generated
    (`final`: no more will come); None when it must wait for more tokens or everything was yielded.

    Every window but the fragment's last feeds `context` tokens on each side of its kept tokens (fewer at the
    start: the fragment's start is a true edge). A chunk keeps `chunk` tokens, or with `growth` > 1 as many as
    were kept before it, up to `growth · chunk`; with `buckets` (the lengths SoVITS is padded to) every chunk but
    the first keeps more, so that its window fills its bucket instead of being padded. The last window ends at the
    fragment's end and, when the fragment is long enough, has the same length as the one before, reaching further
    back."""
    chunk = min(max(kept, chunk), growth * chunk)
    if buckets and kept:  # not the first: filling it would make the first audio wait for more tokens
        span = min(kept, context) + chunk + context
        chunk += bucketed_length(span, buckets) - span
    remaining = available - kept
    if remaining <= 0:
        return None
    if final and remaining <= chunk + context:
        start = max(0, min(kept - context, available - chunk - 2 * context))
        return Window(start, available, kept, available)
    if kept + chunk + context > available:
        return None  # not final: the chunk's right context is not generated yet
    return Window(max(0, kept - context), kept + chunk + context, kept, kept + chunk)


def windows(tokens: int, chunk: int, context: int, growth: int = 1, buckets: tuple[int, ...] = ()) -> list[Window]:
    """All windows of a finished fragment of `tokens` tokens."""
    result, kept = [], 0
    while (window := next_window(kept, tokens, True, chunk, context, growth, buckets)) is not None:
        result.append(window)
        kept = window.keep_stop
    return result


def vocoder_windows(frames: int, context: int, window: int = VOCODER_FRAME_BUCKETS[-1]) -> list[Window]:
    """Windows of at most `window` frames that cover `frames`, each keeping the frames it sees `context` frames
    around (the fragment's ends are true edges: the vocoder pads them with zeros either way). `context`: the
    vocoder's reach, which the exporter works out from its kernels and strides (`vocoder_context_frames`)."""
    result, kept = [], 0
    while kept < frames:
        start = max(0, kept - context)
        stop = min(frames, start + window)
        keep_stop = stop if stop == frames else stop - context
        result.append(Window(start, stop, kept, keep_stop))
        kept = keep_stop
    return result


class FrameNoise:
    """SoVITS flow noise `[1, channels, frames]` (already × `scale`), drawn frame-major on demand, so the first
    frames are the same however many are drawn later."""

    def __init__(self, rng: np.random.Generator, channels: int, scale: float):
        self._rng = rng
        self._scale = np.float32(scale)
        self._frames = np.zeros((0, channels), np.float32)

    def take(self, start: int, stop: int) -> np.ndarray:
        if stop > self._frames.shape[0]:
            more = self._rng.standard_normal((stop - self._frames.shape[0], self._frames.shape[1]), np.float32)
            self._frames = np.concatenate([self._frames, more * self._scale])
        return np.ascontiguousarray(self._frames[start:stop].T[None])
