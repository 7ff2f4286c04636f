"""MetaVoice-1B token layouts between the stages (upstream ``fam/llm/adapters/*`` and
``inference.Model.non_causal_sample``), in numpy.

* Stage 1 emits one flattened stream: text ids, then EnCodec codebooks 0 and 1 interleaved as
  ``c0`` (0..1023) and ``c1 + 1024`` (1024..2047), ended by 2048. `flattened_decode` splits it.
* Stage 2 reads two rows (`stage2_input`) and predicts six more; `tilted_decode` turns the eight
  rows into 8 codebooks for EnCodec.

Both decoders sort tokens **by value**, not by position, exactly as upstream does: a stage-2
head that predicts a code (not 1024) at a text position shifts that hierarchy against the others.
"""

from __future__ import annotations

import numpy as np

from edgevoice.errors import EdgevoiceError

__all__ = ["flattened_decode", "tilted_decode", "stage2_input", "CODEBOOK_SIZE"]

CODEBOOK_SIZE = 1024  # EnCodec bins; also stage 2's pad / end-of-audio token


def _ids(tokens, ndim: int, what: str) -> np.ndarray:
    array = np.asarray(tokens)
    if array.size and not np.issubdtype(array.dtype, np.integer):
        raise EdgevoiceError(f"{what} must be integer token ids, got {array.dtype}")
    array = array.astype(np.int64)
    while array.ndim > ndim and array.shape[0] == 1:  # (1, 1, N) from a batch of one
        array = array[0]
    if array.ndim != ndim:
        raise EdgevoiceError(f"{what} must have {ndim} dimension(s), got shape {np.shape(tokens)}")
    return array


def _truncate(hierarchies: list[np.ndarray]) -> np.ndarray:
    # upstream truncates every hierarchy to the shortest (with a printed warning)
    length = min(len(h) for h in hierarchies)
    return np.stack([h[:length] for h in hierarchies])


def flattened_decode(tokens, codebook_size: int = CODEBOOK_SIZE) -> tuple[np.ndarray, np.ndarray]:
    """``FlattenedInterleavedEncodec2Codebook(end_of_audio_token=codebook_size).decode([tokens])``.

    `tokens`: one stage-1 stream (N,) (or (1, N), (1, 1, N)). Returns ``(text_ids, codes)``:
    ``t < C`` -> codebook 0, ``C <= t < 2C`` -> codebook 1 as ``t - C``, ``t == 2C`` (end of audio)
    skipped, ``t > 2C`` -> text (its last id, the EOT, dropped); codes (2, T) int64, both rows
    truncated to the shorter.
    """
    stream = _ids(tokens, 1, "stage-1 tokens")
    c = int(codebook_size)
    first = stream[stream < c]
    second = stream[(stream >= c) & (stream < 2 * c)] - c
    text = stream[stream > 2 * c]
    return text[:-1], _truncate([first, second])


def tilted_decode(rows, end_of_audio: int = CODEBOOK_SIZE) -> tuple[np.ndarray, np.ndarray]:
    """``TiltedEncodec(end_of_audio_token=end_of_audio).decode(rows)``.

    `rows`: (n > 1, N) stage-2 tokens (input rows then predicted rows). Row 0: ``t > E`` -> text
    (last id dropped), ``t < E`` -> codebook 0; rows >= 1: every ``t < E`` wherever it stands.
    Returns ``(text_ids, codes)`` with codes (n, T) int64, all rows truncated to the shortest.
    """
    tokens = _ids(rows, 2, "stage-2 rows")
    if tokens.shape[0] < 2:
        raise EdgevoiceError(f"stage-2 rows: need at least 2 hierarchies, got {tokens.shape[0]}")
    e = int(end_of_audio)
    head = tokens[0]
    text = head[head > e]
    codes = _truncate([row[row < e] for row in tokens])
    return text[:-1], codes


def stage2_input(text_ids, codes2, block_size: int, pad: int = CODEBOOK_SIZE) -> np.ndarray:
    """Stage-2 GPT input ``(2, block_size)`` int64, as ``Model.non_causal_sample`` builds it.

    Row 0 = ``text_ids + c0 + [pad]``, row 1 = ``[pad]·len(text_ids) + c1 + [pad]``; both padded
    with `pad` to `block_size`, or cut to it (the closing pad is then lost too).
    """
    text = _ids(text_ids, 1, "stage-2 text ids")
    codes = _ids(codes2, 2, "stage-2 codes")
    if codes.shape[0] != 2:
        raise EdgevoiceError(f"stage-2 codes must be 2 codebooks (2, T), got shape {codes.shape}")
    if block_size < 1:
        raise EdgevoiceError(f"stage-2 block_size must be positive, got {block_size}")
    end = np.array([pad], dtype=np.int64)
    rows = np.stack([np.concatenate([text, codes[0], end]),
                     np.concatenate([np.full(text.shape, pad, dtype=np.int64), codes[1], end])])
    if rows.shape[1] >= block_size:
        return np.ascontiguousarray(rows[:, :block_size])
    out = np.full((2, block_size), pad, dtype=np.int64)
    out[:, :rows.shape[1]] = rows
    return out
