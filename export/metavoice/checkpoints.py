"""Read upstream MetaVoice-1B's checkpoints without trusting their pickles.

Upstream (metavoiceio/metavoice-src) ships four files, all `torch.save` archives:

* `first_stage.pt`, `second_stage.pt`: `{"model": state_dict, "model_args": GPTConfig kwargs, "config": training
  globals (inference reads only "causal"), "meta": {"speaker_cond", "speaker_emb_size", "tokenizer": {"name",
  "pat_str", "mergeable_ranks": {bytes: int}, "special_tokens", "offset"}}}`. A model saved from `torch.compile`
  prefixes every key with `_orig_mod.`; upstream's loaders strip it, so do we. Stage 1's head is tied to its token
  embedding (both keys are stored, one storage).
* `speaker_encoder.pt`: `{"step", "model_state", "optimizer_state"}`; upstream reads `model_state` with
  `strict=False` (the GE2E `similarity_*` scalars are ignored).
* EnCodec 24 kHz: the `encodec` package's plain state dict (read in `encodec.py`).

Every size comes from the files (`model_args`, tensor shapes), never from constants; each tensor is checked against
the shape the configuration implies, and unknown or missing keys are one-line `CheckpointError`s.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..checkpoints import MAX_CONFIG_COUNT, CheckpointError, read_torch_archive

COMPILED_PREFIX = "_orig_mod."
SPEAKER_IGNORED = ("similarity_weight", "similarity_bias")
_NORMS = ("rmsnorm", "layernorm")
_NONLINEARITIES = ("swiglu", "gelu")


@dataclass(frozen=True)
class MetaVoiceFiles:
    """Every file the export reads (upstream's names: first_stage.pt, second_stage.pt, speaker_encoder.pt and the
    encodec package's `encodec_24khz-d7cc33bc.th`)."""

    first_stage: Path
    second_stage: Path
    speaker_encoder: Path
    encodec: Path
    encodec_config: Path | None = None  # constructor arguments; None = the released 24 kHz model's

    @classmethod
    def from_dir(cls, folder: str | Path) -> "MetaVoiceFiles":
        """A folder holding upstream's files under upstream's names (the encodec file is found by its prefix)."""
        folder = Path(folder)
        encodec = sorted(folder.glob("encodec_24khz*"))
        encodec = [p for p in encodec if p.suffix in (".th", ".pt", ".pth")]
        if len(encodec) != 1:
            raise CheckpointError(f"{folder}: expected one encodec_24khz*.th/.pt file, found {len(encodec)}")
        config = folder / "encodec_config.json"
        return cls(folder / "first_stage.pt", folder / "second_stage.pt", folder / "speaker_encoder.pt", encodec[0],
                   config if config.is_file() else None)


@dataclass(frozen=True)
class GPTArgs:
    """Upstream's `GPTConfig` fields that inference reads, checked."""

    n_layer: int
    n_head: int
    n_embd: int
    block_size: int
    vocab_sizes: tuple[int, ...]
    target_vocab_sizes: tuple[int, ...] | None
    bias: bool
    causal: bool
    norm_type: str
    rmsnorm_eps: float | None
    nonlinearity_type: str
    swiglu_multiple_of: int | None
    spk_emb_on_text: bool

    @classmethod
    def from_model_args(cls, args: Any, path: Path) -> "GPTArgs":
        if not isinstance(args, dict):
            raise CheckpointError(f"{path}: model_args is a {type(args).__name__}, not a dict")

        def get(key, kind, default=None, required=True):
            value = args.get(key, default)
            if value is None and not required:
                return None
            if kind is int and (isinstance(value, bool) or not isinstance(value, int) or not 0 < value < 1 << 20):
                raise CheckpointError(f"{path}: model_args[{key!r}] = {value!r} is not a positive integer")
            if kind is bool and not isinstance(value, bool):
                raise CheckpointError(f"{path}: model_args[{key!r}] = {value!r} is not true/false")
            if kind is float and (not isinstance(value, (int, float)) or not 0 < value < 1):
                raise CheckpointError(f"{path}: model_args[{key!r}] = {value!r} is not a small positive number")
            return value

        def sizes(key):
            value = args.get(key)
            if value is None:
                return None
            if not isinstance(value, (list, tuple)) or not value or not all(
                    isinstance(v, int) and not isinstance(v, bool) and 0 < v < 1 << 20 for v in value):
                raise CheckpointError(f"{path}: model_args[{key!r}] = {value!r} is not a list of sizes")
            return tuple(value)

        parsed = cls(
            n_layer=get("n_layer", int), n_head=get("n_head", int), n_embd=get("n_embd", int),
            block_size=get("block_size", int), vocab_sizes=sizes("vocab_sizes"),
            target_vocab_sizes=sizes("target_vocab_sizes"), bias=get("bias", bool, True),
            causal=get("causal", bool, True), norm_type=args.get("norm_type", "layernorm"),
            rmsnorm_eps=get("rmsnorm_eps", float, required=False),
            nonlinearity_type=args.get("nonlinearity_type", "gelu"),
            swiglu_multiple_of=get("swiglu_multiple_of", int, required=False),
            spk_emb_on_text=get("spk_emb_on_text", bool, True),
        )
        parsed._check(args, path)
        return parsed

    def _check(self, args: dict, path: Path) -> None:
        if self.vocab_sizes is None:
            raise CheckpointError(f"{path}: model_args has no vocab_sizes")
        if max(self.n_layer, self.n_head) > MAX_CONFIG_COUNT:  # each layer's shapes are listed before any load
            raise CheckpointError(f"{path}: model_args n_layer {self.n_layer} / n_head {self.n_head}: at most "
                                  f"{MAX_CONFIG_COUNT}")
        if self.n_embd % self.n_head:
            raise CheckpointError(f"{path}: n_embd {self.n_embd} is not a multiple of n_head {self.n_head}")
        if self.norm_type not in _NORMS or self.nonlinearity_type not in _NONLINEARITIES:
            raise CheckpointError(f"{path}: unsupported norm_type {self.norm_type!r} or nonlinearity_type "
                                  f"{self.nonlinearity_type!r} (upstream has {_NORMS} and {_NONLINEARITIES})")
        if self.norm_type == "rmsnorm" and self.rmsnorm_eps is None:
            raise CheckpointError(f"{path}: rmsnorm needs rmsnorm_eps")
        if self.nonlinearity_type == "swiglu" and self.swiglu_multiple_of is None:
            raise CheckpointError(f"{path}: swiglu needs swiglu_multiple_of")
        if args.get("attn_kernel_type", "torch_attn") != "torch_attn":
            raise CheckpointError(f"{path}: attn_kernel_type {args.get('attn_kernel_type')!r} is not upstream's "
                                  "torch_attn")
        if not self.spk_emb_on_text:
            # Upstream then masks the speaker term by a hard-coded token id (1537) per forward call; the released
            # models never use it and its cached-decoding behaviour is ill-defined, so it is refused, not guessed.
            raise CheckpointError(f"{path}: spk_emb_on_text=False is not supported (the released models use True)")

    @property
    def mlp_width(self) -> int:
        """Upstream `MLP`: 4·n_embd for GELU; for SwiGLU ⅔ of it rounded up to `swiglu_multiple_of`."""
        hidden = 4 * self.n_embd
        if self.nonlinearity_type == "gelu":
            return hidden
        return self.swiglu_multiple_of * math.ceil(int(2 * hidden / 3) / self.swiglu_multiple_of)

    @property
    def head_vocab_sizes(self) -> tuple[int, ...]:
        return self.target_vocab_sizes or self.vocab_sizes

    def expected_shapes(self, speaker_dim: int) -> dict[str, tuple[int, ...]]:
        """Every key upstream's `GPT` has, with its shape."""
        d, w = self.n_embd, self.mlp_width
        shapes = {f"transformer.wtes.{i}.weight": (v, d) for i, v in enumerate(self.vocab_sizes)}
        shapes["transformer.wpe.weight"] = (self.block_size, d)
        norm = {"weight": (d,), **({"bias": (d,)} if self.bias and self.norm_type == "layernorm" else {})}

        def linear(name, out_dim, in_dim):
            shapes[name + ".weight"] = (out_dim, in_dim)
            if self.bias:
                shapes[name + ".bias"] = (out_dim,)

        for i in range(self.n_layer):
            p = f"transformer.h.{i}."
            for ln in ("ln_1", "ln_2"):
                shapes.update({f"{p}{ln}.{k}": s for k, s in norm.items()})
            linear(p + "attn.c_attn", 3 * d, d)
            linear(p + "attn.c_proj", d, d)
            if self.nonlinearity_type == "swiglu":
                linear(p + "mlp.swiglu.w1", w, d)
                linear(p + "mlp.swiglu.w3", w, d)
            else:
                linear(p + "mlp.c_fc", w, d)
            linear(p + "mlp.c_proj", d, w)
        shapes.update({f"transformer.ln_f.{k}": s for k, s in norm.items()})
        shapes["speaker_cond_pos.weight"] = (d, speaker_dim)
        for i, v in enumerate(self.head_vocab_sizes):
            shapes[f"lm_heads.{i}.weight"] = (v, d)
        return shapes


@dataclass
class StageCheckpoint:
    """One GPT stage: checked weights (float32 numpy), its arguments and tokenizer table."""

    path: Path
    args: GPTArgs
    weights: dict[str, np.ndarray]
    tokenizer: dict  # upstream's meta["tokenizer"]: name, pat_str, mergeable_ranks {bytes: int}, special_tokens, offset
    speaker_dim: int


def _strip_prefix(state: dict, path: Path) -> dict[str, np.ndarray]:
    out = {}
    for key, value in state.items():
        if not isinstance(key, str):
            raise CheckpointError(f"{path}: state dict key {key!r} is not a string")
        name = key[len(COMPILED_PREFIX):] if key.startswith(COMPILED_PREFIX) else key
        if name in out:
            raise CheckpointError(f"{path}: key {name!r} appears with and without the {COMPILED_PREFIX} prefix")
        out[name] = value
    return out


def check_weights(weights: dict, expected: dict[str, tuple[int, ...]], path: Path,
                  ignored: tuple[str, ...] = ()) -> dict[str, np.ndarray]:
    """Exactly the expected keys (plus `ignored` ones, dropped), each a float tensor of the expected shape."""
    missing = sorted(set(expected) - set(weights))
    unknown = sorted(set(weights) - set(expected) - set(ignored))
    if missing or unknown:
        what = f"missing {missing[:3]}" if missing else f"unexpected {unknown[:3]}"
        raise CheckpointError(f"{path}: weights do not match the configuration ({what}"
                              f"{' …' if len(missing or unknown) > 3 else ''})")
    out = {}
    for key, shape in expected.items():
        value = weights[key]
        if not isinstance(value, np.ndarray) or value.dtype.kind != "f":
            raise CheckpointError(f"{path}: {key} is not a floating-point tensor")
        if tuple(value.shape) != shape:
            raise CheckpointError(f"{path}: {key} has shape {tuple(value.shape)}, the configuration implies {shape}")
        value = np.asarray(value, dtype=np.float32)
        if not np.isfinite(value).all():
            raise CheckpointError(f"{path}: {key} holds NaN or infinite values")
        out[key] = value
    return out


def _check_tokenizer(table: Any, path: Path) -> dict:
    if not isinstance(table, dict) or not {"pat_str", "mergeable_ranks", "special_tokens", "offset"} <= set(table):
        raise CheckpointError(f"{path}: meta['tokenizer'] is missing or lacks pat_str/mergeable_ranks/"
                              "special_tokens/offset")
    ranks = table["mergeable_ranks"]
    if not isinstance(ranks, dict) or not all(isinstance(k, bytes) and isinstance(v, int) for k, v in ranks.items()):
        raise CheckpointError(f"{path}: tokenizer mergeable_ranks is not a {{bytes: int}} table")
    offset = table["offset"]
    if isinstance(offset, bool) or not isinstance(offset, int) or offset < 0:
        raise CheckpointError(f"{path}: tokenizer offset {offset!r} is not a non-negative integer")
    return table


def load_stage(path: str | Path, stage: int) -> StageCheckpoint:
    """Stage 1 (causal, tied head) or stage 2 (non-causal, `target_vocab_sizes` heads)."""
    path = Path(path)
    container = read_torch_archive(path)
    if not isinstance(container, dict) or not {"model", "model_args", "meta"} <= set(container):
        raise CheckpointError(f"{path}: not a MetaVoice stage checkpoint (expected model, model_args, meta)")
    args = GPTArgs.from_model_args(container["model_args"], path)
    causal = container.get("config", {}).get("causal", args.causal) if isinstance(container.get("config"),
                                                                                    dict) else args.causal
    if causal is not (stage == 1) or args.causal is not (stage == 1):
        raise CheckpointError(f"{path}: this is a {'causal' if causal else 'non-causal'} GPT; stage {stage} "
                              f"must be {'causal' if stage == 1 else 'non-causal'} (were the stages swapped?)")
    if (args.target_vocab_sizes is None) is not (stage == 1):
        raise CheckpointError(f"{path}: stage {stage} {'has' if stage == 1 else 'lacks'} target_vocab_sizes")
    meta = container["meta"]
    if not isinstance(meta, dict):
        raise CheckpointError(f"{path}: meta is not a dict")
    speaker_dim = meta.get("speaker_emb_size", 256)
    if meta.get("speaker_cond", True) is not True or isinstance(speaker_dim, bool) or not isinstance(speaker_dim, int) \
            or not 0 < speaker_dim < 1 << 16:
        raise CheckpointError(f"{path}: meta must describe a speaker-conditioned model (speaker_emb_size "
                              f"{speaker_dim!r})")
    state = container["model"]
    if not isinstance(state, dict):
        raise CheckpointError(f"{path}: 'model' is not a state dict")
    weights = check_weights(_strip_prefix(state, path), args.expected_shapes(speaker_dim), path)
    return StageCheckpoint(path, args, weights, _check_tokenizer(meta.get("tokenizer"), path), speaker_dim)


@dataclass
class SpeakerEncoderCheckpoint:
    path: Path
    weights: dict[str, np.ndarray]
    layers: int
    mel_bands: int
    hidden: int
    embedding: int


def load_speaker_encoder(path: str | Path) -> SpeakerEncoderCheckpoint:
    """Upstream `SpeakerEncoder`: `nn.LSTM(mel_bands, hidden, layers)` → `Linear(hidden, embedding)`; sizes read
    from the tensors."""
    path = Path(path)
    container = read_torch_archive(path)
    if not isinstance(container, dict) or not isinstance(container.get("model_state"), dict):
        raise CheckpointError(f"{path}: not a speaker encoder checkpoint (expected a 'model_state' dict)")
    state = _strip_prefix(container["model_state"], path)
    first, linear = state.get("lstm.weight_ih_l0"), state.get("linear.weight")
    if not isinstance(first, np.ndarray) or first.ndim != 2 or not isinstance(linear, np.ndarray) or linear.ndim != 2:
        raise CheckpointError(f"{path}: model_state lacks lstm.weight_ih_l0 / linear.weight matrices")
    hidden, mel_bands = first.shape[0] // 4, first.shape[1]
    layers = sum(1 for key in state if key.startswith("lstm.weight_ih_l"))
    if min(hidden, mel_bands, linear.shape[0]) < 1:  # zero-element tensors agree with any size, even none
        raise CheckpointError(f"{path}: a speaker encoder of {hidden} hidden units, {mel_bands} mel bands and "
                              f"{linear.shape[0]} outputs is no model (every size must be at least 1)")
    expected = {"linear.weight": (linear.shape[0], hidden), "linear.bias": (linear.shape[0],)}
    for i in range(layers):
        expected[f"lstm.weight_ih_l{i}"] = (4 * hidden, mel_bands if i == 0 else hidden)
        expected[f"lstm.weight_hh_l{i}"] = (4 * hidden, hidden)
        expected[f"lstm.bias_ih_l{i}"] = (4 * hidden,)
        expected[f"lstm.bias_hh_l{i}"] = (4 * hidden,)
    weights = check_weights(state, expected, path, ignored=SPEAKER_IGNORED)
    return SpeakerEncoderCheckpoint(path, weights, layers, mel_bands, hidden, linear.shape[0])
