"""Read upstream EmotiVoice's files without trusting their pickles.

Upstream (netease-youdao/EmotiVoice) resolves everything relative to its working directory:

* `outputs/prompt_tts_open_source_joint/ckpt/g_XXXXXXXX`: acoustic model + HiFi-GAN, `{'generator': state_dict}`
  with keys `am.*` and `generator.*`; the vocoder's convolutions are weight-normed, stored either with the legacy
  keys `weight_g`/`weight_v` (the released file) or as `parametrizations.weight.original0/1` (torch >= 2.1).
* `outputs/style_encoder/ckpt/checkpoint_XXXXXX`: the prompt/style encoder, `{'model': {'module.' + key: tensor}}`
  (saved from a DistributedDataParallel wrapper): `bert.*` (a whole `BertModel` with pooler) plus classifier heads
  and a projection that inference never uses.
* `WangZeJun/simbert-base-chinese/`: the BERT `config.json` (sizes) and `vocab.txt` (tokenizer); its weights file
  is ignored here: upstream overwrites every BERT tensor with the style checkpoint's.
* `config/joint/config.yaml` (the AM/vocoder sizes), `data/youdao/text/{tokenlist,speaker2,emotion,pitch,speed,
  energy}` (n_vocab, n_speaker and the label counts are their line counts), `lexicon/librispeech-lexicon.txt`.

Everything is read with `read_torch_archive` (no code execution, tensors become numpy arrays), weight norm is folded
into plain weights here (`w = g * v / ||v||`, the norm over every axis but 0), and the keys are checked against what
the model needs with an explicit allow-list of keys inference does not use. Nothing here imports torch.
"""

from __future__ import annotations

import fnmatch
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping

import numpy as np

from ..checkpoints import CheckpointError, config_ints, read_torch_archive

# Relative paths of upstream's layout (from its `config/joint/config.py` and `inference_am_vocoder_joint.py`).
AM_CKPT_DIR = "outputs/prompt_tts_open_source_joint/ckpt"
STYLE_CKPT_DIR = "outputs/style_encoder/ckpt"
BERT_DIR = "WangZeJun/simbert-base-chinese"
CONFIG_YAML = "config/joint/config.yaml"
TEXT_DIR = "data/youdao/text"
LEXICON = "lexicon/librispeech-lexicon.txt"
TEXT_ASSETS = ("tokenlist", "speaker2", "emotion", "pitch", "speed", "energy")

# Upstream `config/joint/config.py`: the rate inference writes its wav files at, and the prompt projection width.
SAMPLE_RATE = 16000
STYLE_DIM = 128

# Keys present in the files that inference never reads (upstream loads the style checkpoint with strict=False and
# builds the training-only alignment module into the generator). Anything else unexpected is an error.
AM_IGNORED = ("am.alignment_module.*",)
STYLE_IGNORED = (
    "bert.embeddings.position_ids",  # a buffer transformers <= 4.30 saved
    "bert.embeddings.token_type_ids",  # a buffer some transformers versions save
    "pitch_clf.classifier.*", "speed_clf.classifier.*", "energy_clf.classifier.*", "emotion_clf.classifier.*",
    "style_embed_proj.*",
)

_LEGACY_G, _LEGACY_V = ".weight_g", ".weight_v"
_PARAM_G, _PARAM_V = ".parametrizations.weight.original0", ".parametrizations.weight.original1"


# ---------------------------------------------------------------------------------------------------------------
# Where the files are


@dataclass(frozen=True)
class EmotiVoiceFiles:
    """Every file the export reads. `from_root` resolves upstream's layout; each path can be given explicitly."""

    am_checkpoint: Path  # g_XXXXXXXX
    style_checkpoint: Path  # checkpoint_XXXXXX
    bert_dir: Path  # SimBERT folder (config.json, vocab.txt)
    config_yaml: Path
    tokenlist: Path
    speaker2: Path
    emotion: Path
    pitch: Path
    speed: Path
    energy: Path
    lexicon: Path

    @classmethod
    def from_root(cls, root: str | Path | None = None, *, am_checkpoint=None, style_checkpoint=None, bert_dir=None,
                  config_yaml=None, text_dir=None, lexicon=None, **text_files) -> "EmotiVoiceFiles":
        """Resolve upstream's layout under `root` (its working directory); explicit paths win over `root`.

        `text_dir` replaces `data/youdao/text/`; single text assets can be given as `tokenlist=`, `speaker2=`, ...
        """
        unknown = sorted(set(text_files) - set(TEXT_ASSETS))
        if unknown:
            raise TypeError(f"unknown EmotiVoice file option(s): {', '.join(unknown)}")
        base = Path(root) if root is not None else None
        if base is not None and not base.is_dir():
            raise CheckpointError(f"{base}: EmotiVoice root is not a directory")

        def where(explicit, relative: str, option: str, directory: bool = False) -> Path:
            """`option` names what to pass, e.g. "lexicon" (`_how` words it for Python and the CLI)."""
            if explicit is not None:
                path = Path(explicit)
            elif base is not None:
                path = base / relative
            else:
                raise CheckpointError(f"EmotiVoice: no upstream root given (pass {_how(option)}, or {_how('root')})")
            if not (path.is_dir() if directory else path.is_file()):
                kind = "folder" if directory else "file"
                raise CheckpointError(f"{path}: EmotiVoice {kind} not found (pass {_how(option)} to point at it)")
            return path

        am = Path(am_checkpoint) if am_checkpoint is not None else _newest(base, AM_CKPT_DIR, "g_", "am_checkpoint")
        style = (Path(style_checkpoint) if style_checkpoint is not None
                 else _newest(base, STYLE_CKPT_DIR, "checkpoint_", "style_checkpoint"))
        texts = {}
        for name in TEXT_ASSETS:
            hint = "text_dir"
            if text_files.get(name) is not None:
                texts[name] = where(text_files[name], "", name)
            elif text_dir is not None:
                texts[name] = where(Path(text_dir) / name, "", hint)
            else:
                texts[name] = where(None, f"{TEXT_DIR}/{name}", hint)
        return cls(
            am_checkpoint=where(am, "", "am_checkpoint"),
            style_checkpoint=where(style, "", "style_checkpoint"),
            bert_dir=where(bert_dir, BERT_DIR, "bert_dir", directory=True),
            config_yaml=where(config_yaml, CONFIG_YAML, "config_yaml"),
            lexicon=where(lexicon, LEXICON, "lexicon"),
            **texts,
        )


# How each file is named where it is given: `from_root`'s keyword and `edgevoice export emotivoice`'s option.
_CLI_OPTIONS = {"root": "--root", "am_checkpoint": "--am", "style_checkpoint": "--style", "bert_dir": "--bert",
                "config_yaml": "--config", "lexicon": "--lexicon", "text_dir": "--text-assets"}


def _how(option: str) -> str:
    flag = _CLI_OPTIONS.get(option)
    return f"{option}=... or {flag}" if flag else f"{option}=..."


def _newest(root: Path | None, relative: str, prefix: str, option: str) -> Path:
    """The checkpoint with the highest step number among `root/relative/<prefix>NNN` (upstream's naming)."""
    if root is None:
        raise CheckpointError(f"EmotiVoice: no {option} given (pass {_how(option)}, or {_how('root')})")
    folder = root / relative
    if not folder.is_dir():
        raise CheckpointError(f"{folder}: folder not found (pass {_how(option)} to point at the checkpoint)")
    found = []
    for path in folder.iterdir():
        step = path.name[len(prefix):]
        if path.is_file() and path.name.startswith(prefix) and step.isascii() and step.isdigit():
            found.append((int(step), path.name, path))
    if not found:
        raise CheckpointError(f"{folder}: no {prefix}* checkpoint (pass {_how(option)} to point at it)")
    return max(found)[2]


# ---------------------------------------------------------------------------------------------------------------
# Text assets and configuration


def read_lines(path: str | Path) -> list[str]:
    """Lines as upstream's `f.readlines()` gives them, stripped: a last line without newline still counts."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise CheckpointError(f"{path}: file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"{path}: cannot read as UTF-8 text ({exc})") from None
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return [line.strip() for line in lines]


def load_yaml(path: str | Path) -> dict:
    import yaml

    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
        # aliases share one node under many keys: nine levels of twenty made a config of ~5e11 leaves to check (the
        # export spun for minutes); upstream's config has none
        if any(isinstance(event, yaml.AliasEvent) for event in yaml.parse(text)):
            raise CheckpointError(f"{path}: a model config may not use YAML aliases (*name); write the values out")
        config = yaml.safe_load(text)
    except FileNotFoundError:
        raise CheckpointError(f"{path}: file not found") from None
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise CheckpointError(f"{path}: not a readable YAML file ({' '.join(str(exc).split())})") from None
    if not isinstance(config, dict) or not isinstance(config.get("model"), dict):
        raise CheckpointError(f"{path}: not an EmotiVoice config.yaml (no 'model' section)")
    return config


def load_bert_config(directory: str | Path) -> dict:
    path = Path(directory) / "config.json"
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CheckpointError(f"{path}: file not found (the SimBERT folder needs its config.json)") from None
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise CheckpointError(f"{path}: invalid JSON ({exc})") from None
    if not isinstance(config, dict) or config.get("model_type", "bert") != "bert":
        raise CheckpointError(f"{path}: expected a BERT config.json (model_type 'bert')")
    missing = [k for k in ("hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size",
                           "vocab_size") if k not in config]
    if missing:
        raise CheckpointError(f"{path}: BERT config has no {', '.join(missing)}")
    config_ints(config, ("hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size", "vocab_size",
                         "max_position_embeddings", "type_vocab_size"), path, "BERT",
                counts=("num_hidden_layers", "num_attention_heads"))
    return config


_MODEL_KEYS = ("encoder_n_layers", "encoder_n_heads", "encoder_n_hidden", "encoder_kernel_size_conv_mod",
               "decoder_n_layers", "decoder_n_heads", "decoder_n_hidden", "decoder_kernel_size_conv_mod",
               "variance_n_hidden", "variance_n_layers", "variance_kernel_size", "variance_embed_kernel_size",
               "duration_n_layers", "duration_kernel_size", "bert_embedding", "initial_channel",
               "upsample_initial_channel", "upsample_rates", "upsample_kernel_sizes", "resblock",
               "resblock_kernel_sizes", "resblock_dilation_sizes")


def load_config(files: EmotiVoiceFiles) -> dict:
    """config.yaml plus what upstream sets in code: `n_vocab`, `n_speaker` (text assets), the label counts."""
    config = load_yaml(files.config_yaml)
    model = config["model"]
    missing = [key for key in _MODEL_KEYS if key not in model]
    if "n_mels" not in config:
        missing.insert(0, "n_mels")
    if missing:
        raise CheckpointError(f"{files.config_yaml}: config.yaml lacks model keys {missing[:5]}")
    # sizes before anything is built from them (a crafted config could ask for terabytes or a billion layers)
    config_ints(model, tuple(k for k in _MODEL_KEYS if k != "resblock"), files.config_yaml, "EmotiVoice",
                counts=tuple(k for k in _MODEL_KEYS if k.endswith(("_layers", "_heads"))))
    config_ints(config, ("n_mels",), files.config_yaml, "EmotiVoice")
    if len(model["upsample_rates"]) != len(model["upsample_kernel_sizes"]):
        raise CheckpointError(f"{files.config_yaml}: upsample_rates and upsample_kernel_sizes differ in length")
    config = dict(config)
    config["n_vocab"] = len(read_lines(files.tokenlist))
    config["n_speaker"] = len(read_lines(files.speaker2))
    for name in ("emotion", "pitch", "speed", "energy"):
        config[f"{name}_n_labels"] = len(read_lines(getattr(files, name)))
    return config


# ---------------------------------------------------------------------------------------------------------------
# State dicts


def _require_state(obj: Any, path: Path, container: str, what: str) -> dict[str, np.ndarray]:
    if not isinstance(obj, dict) or container not in obj:
        raise CheckpointError(f"{path}: not an EmotiVoice {what} checkpoint (expected a dict with key '{container}')")
    state = obj[container]
    if not isinstance(state, dict):
        raise CheckpointError(f"{path}: not an EmotiVoice {what} checkpoint ('{container}' is not a state dict)")
    for key, value in state.items():
        if not isinstance(key, str) or not isinstance(value, np.ndarray):
            raise CheckpointError(f"{path}: corrupt {what} checkpoint (entry {str(key)[:60]!r} is not a named tensor)")
    return dict(state)


def strip_module_prefix(state: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Drop DistributedDataParallel's `module.` prefix (from every key, if every key has it)."""
    if state and all(key.startswith("module.") for key in state):
        return {key[len("module."):]: value for key, value in state.items()}
    return dict(state)


def fold_weight_norm(state: Mapping[str, np.ndarray], path: Path | str = "") -> dict[str, np.ndarray]:
    """Replace every weight-norm pair (legacy `weight_g`/`weight_v` or `parametrizations.weight.original0/1`) by
    the plain `weight = g * v / ||v||`, the norm over every axis except 0 (per output channel of a Conv1d, per
    input channel of a ConvTranspose1d, whose weight is laid out (in, out, k)). Computed in float64."""
    out: dict[str, np.ndarray] = {}
    pairs: dict[str, dict[str, np.ndarray]] = {}
    for key, value in state.items():
        for g_suffix, v_suffix in ((_LEGACY_G, _LEGACY_V), (_PARAM_G, _PARAM_V)):
            if key.endswith(g_suffix):
                pairs.setdefault(key[: -len(g_suffix)], {})["g"] = value
                break
            if key.endswith(v_suffix):
                pairs.setdefault(key[: -len(v_suffix)], {})["v"] = value
                break
        else:
            out[key] = value
    for prefix, pair in pairs.items():
        if set(pair) != {"g", "v"}:
            half = "weight_v / original1" if "g" in pair else "weight_g / original0"
            raise CheckpointError(f"{path}: weight norm of {prefix} is incomplete (no {half})")
        weight = prefix + ".weight"
        if weight in out:
            raise CheckpointError(f"{path}: {prefix} has both a plain weight and a weight-norm pair")
        g, v = pair["g"], pair["v"]
        if v.ndim < 2 or g.size != v.shape[0]:
            raise CheckpointError(f"{path}: weight norm of {prefix}: g {tuple(g.shape)} does not match v "
                                  f"{tuple(v.shape)} (expected one value per slice of axis 0)")
        v64 = v.astype(np.float64)
        norm = np.sqrt((v64 * v64).reshape(v.shape[0], -1).sum(axis=1))
        if not (np.isfinite(norm).all() and np.isfinite(g).all()) or (norm == 0).any():
            # g / 0 made inf weights, and the export then blamed the config ("the vocoder reaches further ...")
            raise CheckpointError(f"{path}: weight norm of {prefix} is undefined (its v has a slice of zeros or "
                                  "non-finite values, or g is not finite): a damaged checkpoint")
        scale = g.astype(np.float64).reshape(-1) / norm
        out[weight] = (v64 * scale.reshape((-1,) + (1,) * (v.ndim - 1))).astype(np.float32)
    return out


def _matches(key: str, patterns: Iterable[str]) -> bool:
    return any(fnmatch.fnmatchcase(key, pattern) for pattern in patterns)


def _listing(keys: list[str]) -> str:
    return ", ".join(keys[:4]) + (f" … ({len(keys)} in all)" if len(keys) > 4 else "")


def check_state(state: Mapping[str, np.ndarray], expected: Mapping[str, tuple[int, ...]], path: Path | str,
                ignored: Iterable[str] = ()) -> dict[str, np.ndarray]:
    """The entries of `state` the model needs, checked: every expected key present with its exact shape, every
    other key on the `ignored` allow-list (fnmatch patterns). Float tensors come back as float32."""
    ignored = tuple(ignored)
    unexpected = sorted(k for k in state if k not in expected and not _matches(k, ignored))
    if unexpected:
        raise CheckpointError(f"{path}: unexpected weights {_listing(unexpected)} (another model or configuration?)")
    missing = sorted(k for k in expected if k not in state)
    if missing:
        raise CheckpointError(f"{path}: missing weights {_listing(missing)} (another model or configuration?)")
    out = {}
    for key, shape in expected.items():
        value = state[key]
        if tuple(value.shape) != tuple(shape):
            raise CheckpointError(f"{path}: {key} has shape {tuple(value.shape)}, the configuration needs "
                                  f"{tuple(shape)} (config.yaml / config.json / text assets do not match the weights)")
        if value.dtype.kind != "f":
            raise CheckpointError(f"{path}: {key} is {value.dtype}, expected a float tensor")
        out[key] = np.array(value, dtype=np.float32, order="C")
    return out


def read_am_checkpoint(path: str | Path) -> dict[str, np.ndarray]:
    """`g_XXXXXXXX` → `{key: array}` with `module.` stripped and weight norm folded (all keys, unchecked)."""
    path = Path(path)
    state = _require_state(read_torch_archive(path), path, "generator", "acoustic model + vocoder (g_*)")
    state = strip_module_prefix(state)
    if not any(k.startswith("am.") for k in state) or not any(k.startswith("generator.") for k in state):
        raise CheckpointError(f"{path}: not an EmotiVoice g_* checkpoint (expected am.* and generator.* weights)")
    return fold_weight_norm(state, path)


def read_style_checkpoint(path: str | Path) -> dict[str, np.ndarray]:
    """`checkpoint_XXXXXX` → `{key: array}` with the DDP `module.` prefix stripped (all keys, unchecked)."""
    path = Path(path)
    state = strip_module_prefix(_require_state(read_torch_archive(path), path, "model", "style encoder"))
    if not any(k.startswith("bert.") for k in state):
        raise CheckpointError(f"{path}: not an EmotiVoice style encoder checkpoint (no bert.* weights)")
    return state
