"""Random-weight MetaVoice-1B model sets in upstream's exact containers, for tests and benchmarks.

`full` has the released geometry: stage 1 with 24 layers of width 2048, 16 heads, block 2048, SwiGLU 5632
(1,243,191,296 unique parameters), stage 2 with 6 layers of width 384, the 3-layer speaker LSTM, and EnCodec 24 kHz
(32 filters, 128-d latent, 32 codebooks); `tiny` the sizes of the project's fixture set (2 layers of width 64,
block 256, EnCodec with 4 filters, 32-d latent, 8 codebooks). Written into `out/`:

* `first_stage.pt`, `second_stage.pt`: `{"model", "model_args", "config", "meta": {"speaker_cond",
  "speaker_emb_size", "tokenizer"}}`, stage 1's head tied to its embedding (one storage);
* `speaker_encoder.pt`: `{"step", "model_state", "optimizer_state"}` with the GE2E `similarity_*` scalars;
* `encodec_24khz-random.th` + `encodec_config.json`: the encodec package's state-dict layout (weight norm as
  `weight_g`/`weight_v`, codebooks filled), with the decoder and quantizer (the encoder is never read).

The BPE table (512 ranks, as the released one) is trained here on the calibration corpus by plain byte-pair
merging. Weights follow upstream's initialisation with norm weights ≠ 1 (a dropped norm weight must show); `tiny` also scales
stage 1's block matrices ×2 and positions ×5 as the fixture set does, so that greedy decoding visits every token
range. `full` does not: 24 such layers are chaotic (any rounding, INT8 weights included, grows through the depth into
different logits, which trained models do not do), so they would say nothing about quantisation. Every layer is
drawn separately (identical layers would flatter the runtimes, which share identical constants).
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from pathlib import Path

import numpy as np

SIZES = ("tiny", "full")
RANKS = 512  # the released table: 256 bytes + 256 merges, then <|endoftext|>
CODEBOOK_BINS = 1024
PAT_STR = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
CORPUS = Path(__file__).resolve().parents[2] / "calibration" / "corpus" / "en.txt"

STAGE1 = {"tiny": dict(n_layer=2, n_head=2, n_embd=64, block_size=256),
          "full": dict(n_layer=24, n_head=16, n_embd=2048, block_size=2048)}
STAGE2 = {"tiny": dict(n_layer=2, n_head=2, n_embd=64, block_size=256),
          "full": dict(n_layer=6, n_head=6, n_embd=384, block_size=1024)}
ENCODEC = {"tiny": dict(n_filters=4, dimension=32, target_bandwidths=[1.5, 3.0, 6.0]),
           "full": dict(n_filters=32, dimension=128, target_bandwidths=[1.5, 3.0, 6.0, 12.0, 24.0])}


def train_bpe(text: str, ranks: int = RANKS) -> dict[bytes, int]:
    """Byte-pair merges learned from `text` (pre-split by upstream's pattern), most frequent pair first."""
    import regex

    words = Counter(tuple(bytes([b]) for b in piece.encode()) for piece in regex.findall(PAT_STR, text))
    table = {bytes([b]): b for b in range(256)}
    while len(table) < ranks:
        pairs = Counter()
        for word, count in words.items():
            for pair in zip(word, word[1:]):
                pairs[pair] += count
        pairs = {p: c for p, c in pairs.items() if p[0] + p[1] not in table}
        if not pairs:
            raise ValueError("the corpus is too small to learn the BPE table")
        best = max(pairs, key=lambda p: (pairs[p], p))
        merged = best[0] + best[1]
        table[merged] = len(table)
        words = Counter({_merge(word, best, merged): count for word, count in words.items()})
    return table


def _merge(word: tuple, pair: tuple, merged: bytes) -> tuple:
    out, i = [], 0
    while i < len(word):
        if i + 1 < len(word) and (word[i], word[i + 1]) == pair:
            out.append(merged)
            i += 2
        else:
            out.append(word[i])
            i += 1
    return tuple(out)


def model_args(stage: int, size: str) -> dict:
    if stage == 1:
        return {**STAGE1[size], "bias": False, "vocab_sizes": [2 * CODEBOOK_BINS + 1 + RANKS + 1], "dropout": 0.0,
                "causal": True, "norm_type": "rmsnorm", "rmsnorm_eps": 1e-5, "nonlinearity_type": "swiglu",
                "spk_emb_on_text": True, "attn_kernel_type": "torch_attn", "swiglu_multiple_of": 256}
    return {**STAGE2[size], "bias": False, "vocab_sizes": [CODEBOOK_BINS + 1 + RANKS + 1, CODEBOOK_BINS + 1],
            "target_vocab_sizes": [CODEBOOK_BINS + 1] * 6, "dropout": 0.0, "causal": False,
            "norm_type": "layernorm", "rmsnorm_eps": 1e-5, "nonlinearity_type": "gelu", "spk_emb_on_text": True,
            "attn_kernel_type": "torch_attn", "swiglu_multiple_of": 256}


def _gpt_state(args: dict, speaker_dim: int, rng: np.random.Generator, stage: int, tiny: bool) -> dict:
    import torch

    from .checkpoints import GPTArgs

    parsed = GPTArgs.from_model_args(args, Path(f"stage{stage}"))
    state = {}
    for key, shape in parsed.expected_shapes(speaker_dim).items():
        if key.endswith(("ln_1.weight", "ln_2.weight", "ln_f.weight")):
            value = 1 + 0.2 * rng.standard_normal(shape, dtype=np.float32)
        elif key.endswith("c_proj.weight"):
            value = rng.standard_normal(shape, dtype=np.float32) * np.float32(0.02 / math.sqrt(2 * parsed.n_layer))
        else:
            value = rng.standard_normal(shape, dtype=np.float32) * np.float32(0.02)
        if stage == 1 and tiny and key.startswith("transformer.h.") and len(shape) == 2:
            value *= 2
        if stage == 1 and tiny and key == "transformer.wpe.weight":
            value *= 5
        state[key] = torch.from_numpy(value)
    if parsed.target_vocab_sizes is None:
        state["lm_heads.0.weight"] = state["transformer.wtes.0.weight"]  # tied: one storage, both keys
    return state


def _tokenizer(ranks: dict[bytes, int], offset: int) -> dict:
    return {"name": "edgevoice_random_bpe512", "pat_str": PAT_STR, "mergeable_ranks": ranks,
            "special_tokens": {"<|endoftext|>": RANKS}, "offset": offset}


def _write_stage(path: Path, stage: int, size: str, ranks: dict, rng, overrides: dict | None = None) -> None:
    import torch

    args = {**model_args(stage, size), **(overrides or {})}
    offset = 2 * CODEBOOK_BINS + 1 if stage == 1 else CODEBOOK_BINS + 1
    container = {"model": _gpt_state(args, 256, rng, stage, size == "tiny"), "model_args": args,
                 "config": {"causal": args["causal"], "note": "random weights made by edgevoice make-test-model"},
                 "meta": {"speaker_cond": True, "speaker_emb_size": 256, "tokenizer": _tokenizer(ranks, offset)}}
    torch.save(container, path)


def _write_speaker_encoder(path: Path, rng) -> None:
    import torch

    hidden, bands, layers = 256, 40, 3
    bound = 1 / math.sqrt(hidden)  # PyTorch's default LSTM/Linear initialisation
    state = {"similarity_weight": torch.tensor([10.0]), "similarity_bias": torch.tensor([-5.0])}
    for i in range(layers):
        for kind, cols in (("ih", bands if i == 0 else hidden), ("hh", hidden)):
            state[f"lstm.weight_{kind}_l{i}"] = torch.from_numpy(rng.uniform(-bound, bound, (4 * hidden, cols))
                                                                 .astype(np.float32))
            state[f"lstm.bias_{kind}_l{i}"] = torch.from_numpy(rng.uniform(-bound, bound, 4 * hidden)
                                                               .astype(np.float32))
    state["linear.weight"] = torch.from_numpy(rng.uniform(-bound, bound, (256, hidden)).astype(np.float32))
    state["linear.bias"] = torch.from_numpy(rng.uniform(-bound, bound, 256).astype(np.float32))
    torch.save({"step": 1, "model_state": state, "optimizer_state": {"state": {}, "param_groups": []}}, path)


def random_encodec_state(kwargs: dict, seed: int) -> tuple[dict, dict]:
    """(config JSON, encodec-package state dict) of a random EnCodec decoder: PyTorch's default initialisation,
    codebooks filled with encodec's own uniform (Kaiming) init, weight-norm gains ≠ ‖v‖."""
    import torch

    from .encodec import EncodecDecoder, encodec_config

    config = encodec_config({"kwargs": kwargs})
    torch.manual_seed(seed)
    decoder = EncodecDecoder(config)
    for module in decoder.modules():
        if hasattr(module, "reset_parameters") and module is not decoder:
            module.reset_parameters()
    bound = math.sqrt(6 / config.dimension) / math.sqrt(2)  # kaiming_uniform_ over [bins, dimension]
    decoder.codebooks.uniform_(-bound, bound)
    state = decoder.upstream_state_dict()
    rng = np.random.default_rng(seed)
    for key in [k for k in state if k.endswith("_g")]:
        state[key] = (state[key] * rng.uniform(0.5, 1.5, state[key].shape)).astype(np.float32)
    tensors = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in state.items()}
    return {"kwargs": kwargs, "n_q": config.n_q, "hop_length": config.hop_length}, tensors


OVERRIDABLE = ("first_stage", "second_stage", "encodec")


def make_test_model(out: str | Path, size: str = "tiny", seed: int = 0, *,
                    overrides: dict[str, dict] | None = None) -> dict[str, Path]:
    """Write a random model set into `out`; returns the paths by role. `overrides` changes a stage's `model_args`
    ({"first_stage": {"n_head": 32, "swiglu_multiple_of": 100}}) or EnCodec's constructor arguments ({"encodec":
    {"n_filters": 8}}) on top of `size`, for sets of other geometries than the two sizes."""
    import torch

    if size not in SIZES:
        raise ValueError(f"size must be one of {SIZES}, got {size!r}")
    overrides = overrides or {}
    if set(overrides) - set(OVERRIDABLE):
        raise ValueError(f"overrides are for {', '.join(OVERRIDABLE)}, not {sorted(set(overrides) - set(OVERRIDABLE))}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    corpus = re.sub(r"\s+", " ", CORPUS.read_text(encoding="utf-8"))
    ranks = train_bpe(corpus)
    rng = np.random.default_rng(seed)
    paths = {"first_stage": out / "first_stage.pt", "second_stage": out / "second_stage.pt",
             "speaker_encoder": out / "speaker_encoder.pt", "encodec": out / "encodec_24khz-random.th",
             "encodec_config": out / "encodec_config.json"}
    _write_stage(paths["first_stage"], 1, size, ranks, rng, overrides.get("first_stage"))
    _write_stage(paths["second_stage"], 2, size, ranks, rng, overrides.get("second_stage"))
    _write_speaker_encoder(paths["speaker_encoder"], rng)
    config, state = random_encodec_state({**ENCODEC[size], **overrides.get("encodec", {})}, seed=seed + 1)
    torch.save(state, paths["encodec"])
    paths["encodec_config"].write_text(json.dumps(config, indent=1), encoding="utf-8")
    return paths
