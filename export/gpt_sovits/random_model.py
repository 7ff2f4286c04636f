"""Random-weight GPT-SoVITS v1/v2/v2Pro/v2ProPlus model sets written in upstream's exact file formats.

For trying the pipeline without real weights, for tests and for benchmarks. `full` has the released models'
geometry (24-layer GPT, 6-layer text encoder, 512-channel vocoder, HuBERT-base, 24-layer BERT-large); `tiny` is
small enough for unit tests. Files written:

* `gpt.ckpt`    torch.save({"weight": {"model.*": fp16}, "config": dict, "info": str}) as upstream's s1 trainer
* `sovits.pth`  torch.save({"weight": {...fp16, no enc_q}, "config": utils.HParams, "info": str}) as `savee`
* `chinese-hubert-base/`, `chinese-roberta-wwm-ext-large/`  Hugging Face folders with fp16 `pytorch_model.bin`
"""

from __future__ import annotations

import copy
import io
import json
import sys
import types
from collections import OrderedDict
from pathlib import Path

import torch
from transformers import BertConfig, BertForMaskedLM, HubertConfig, HubertModel

from .checkpoints import SUPPORTED_VERSIONS
from .models.gpt import Text2SemanticDecoder
from .models.sovits import SoVITS
from .models.sv import ERes2NetV2Trunk, sv_embedding_dim

GPT_CONFIG = {
    "train": {"seed": 1234, "epochs": 20, "batch_size": 8, "save_every_n_epoch": 1, "precision": "16-mixed"},
    "optimizer": {"lr": 0.01, "lr_init": 1e-05, "lr_end": 0.0001, "warmup_steps": 2000, "decay_steps": 40000},
    "data": {"max_eval_sample": 8, "max_sec": 54, "num_workers": 4, "pad_val": 1024},
    "model": {"vocab_size": 1025, "phoneme_vocab_size": 732, "embedding_dim": 512, "hidden_dim": 512, "head": 16,
              "linear_units": 2048, "n_layer": 24, "dropout": 0, "EOS": 1024, "random_bert": 0},
    "inference": {"top_k": 15},
}
SOVITS_CONFIG = {
    "train": {"log_interval": 100, "eval_interval": 500, "seed": 1234, "epochs": 100, "learning_rate": 0.0001,
              "betas": [0.8, 0.99], "eps": 1e-09, "batch_size": 32, "fp16_run": True, "lr_decay": 0.999875,
              "segment_size": 20480, "init_lr_ratio": 1, "warmup_epochs": 0, "c_mel": 45, "c_kl": 1.0,
              "text_low_lr_rate": 0.4},
    "data": {"max_wav_value": 32768.0, "sampling_rate": 32000, "filter_length": 2048, "hop_length": 640,
             "win_length": 2048, "n_mel_channels": 128, "mel_fmin": 0.0, "mel_fmax": None, "add_blank": True,
             "n_speakers": 300, "cleaned_text": True},
    "model": {"inter_channels": 192, "hidden_channels": 192, "filter_channels": 768, "n_heads": 2, "n_layers": 6,
              "kernel_size": 3, "p_dropout": 0.1, "resblock": "1", "resblock_kernel_sizes": [3, 7, 11],
              "resblock_dilation_sizes": [[1, 3, 5], [1, 3, 5], [1, 3, 5]], "upsample_rates": [10, 8, 2, 2, 2],
              "upsample_initial_channel": 512, "upsample_kernel_sizes": [16, 16, 8, 2, 2], "n_layers_q": 3,
              "use_spectral_norm": False, "gin_channels": 512, "semantic_frame_rate": "25hz",
              "freeze_quantizer": True, "version": "v2"},
    "s2_ckpt_dir": "logs/s2/edgevoice", "content_module": "cnhubert", "save_weight_dir": "SoVITS_weights_v2",
    "name": "edgevoice_random", "version": "v2",
}
HUBERT_FULL = {"hidden_size": 768, "num_hidden_layers": 12, "num_attention_heads": 12, "intermediate_size": 3072,
               "conv_bias": False, "feat_extract_norm": "group", "do_stable_layer_norm": False,
               "feat_proj_layer_norm": True, "layer_norm_eps": 1e-5, "hidden_act": "gelu"}
BERT_FULL = {"hidden_size": 1024, "num_hidden_layers": 24, "num_attention_heads": 16, "intermediate_size": 4096,
             "vocab_size": 21128, "max_position_embeddings": 512, "type_vocab_size": 2, "layer_norm_eps": 1e-12,
             "hidden_act": "gelu"}
TINY = {
    "gpt": {"n_layer": 2},
    "sovits": {"n_layers": 2, "filter_channels": 256, "upsample_initial_channel": 64},
    "hubert": {"num_hidden_layers": 1, "intermediate_size": 1024},
    "bert": {"num_hidden_layers": 3, "num_attention_heads": 4, "intermediate_size": 1024, "vocab_size": 4000},
}
SIZES = ("tiny", "full")
VERSIONS = SUPPORTED_VERSIONS
# v2Pro / v2ProPlus (upstream's s2v2Pro.json / s2v2ProPlus.json): 1024-wide ge, no dropout; Plus has a wider
# vocoder. Their files carry the version marker "05" / "06" over the zip magic (process_ckpt.my_save2).
PRO_SOVITS = {"v2Pro": {"gin_channels": 1024, "p_dropout": 0.0},
              "v2ProPlus": {"gin_channels": 1024, "p_dropout": 0.0, "upsample_initial_channel": 768,
                            "upsample_kernel_sizes": [20, 16, 8, 2, 2]}}
PRO_HEADERS = {"v2Pro": b"05", "v2ProPlus": b"06"}
# ERes2NetV2 speaker model: upstream's geometry (stem 64, blocks 3-4-6-3) at full size, a small one for tests.
SV_SIZES = {"full": (64, [3, 4, 6, 3]), "tiny": (8, [1, 1, 1, 1])}
# v1 (upstream's s1longer.yaml / s2.json of that release): 512 GPT phone rows, top_k 5, no version key in the
# SoVITS config (upstream tells v1 by its 322-row phone embedding).
V1_GPT = {"model": {"phoneme_vocab_size": 512}, "inference": {"top_k": 5}}


def _fp16(state: dict) -> OrderedDict:
    return OrderedDict((k, v.detach().to(torch.float16) if v.is_floating_point() else v.detach().clone())
                       for k, v in state.items())


def _hparams_class() -> type:
    """A class that pickles as upstream's `utils.HParams` (the name upstream's loader expects)."""
    return type("HParams", (), {"__module__": "utils", "__getitem__": lambda self, k: self.__dict__[k]})


def _to_hparams(cls: type, value):
    if isinstance(value, dict):
        obj = cls()
        for key, item in value.items():
            setattr(obj, key, _to_hparams(cls, item))
        return obj
    return value


def write_gpt(path: Path, size: str, seed: int, overrides: dict | None = None, version: str = "v2") -> None:
    config = copy.deepcopy(GPT_CONFIG)
    if version == "v1":
        for section, values in V1_GPT.items():
            config[section].update(values)
    if size == "tiny":
        config["model"].update(TINY["gpt"])
    config["model"].update(overrides or {})
    torch.manual_seed(seed)
    model = Text2SemanticDecoder(config)
    weights = OrderedDict((f"model.{k}", v) for k, v in _fp16(model.state_dict()).items())
    torch.save({"weight": weights, "config": config, "info": "GPT-e1"}, path)


def write_sovits(path: Path, size: str, seed: int, overrides: dict | None = None, version: str = "v2") -> None:
    config = copy.deepcopy(SOVITS_CONFIG)
    if version == "v1":
        del config["model"]["version"], config["version"]
        config["save_weight_dir"] = "SoVITS_weights"
    elif version in PRO_SOVITS:
        config["model"].update(PRO_SOVITS[version], version=version)
        config.update(version=version, save_weight_dir=f"SoVITS_weights_{version}")
    if size == "tiny":
        config["model"].update(TINY["sovits"])
    config["model"].update(overrides or {})
    torch.manual_seed(seed)
    model = SoVITS({**config, "model": {**config["model"], "version": version}}, sv_embedding_dim(SV_SIZES[size][0]))
    model.randomize_for_testing()
    save_sovits(path, _fp16({k: v for k, v in model.state_dict().items() if "enc_q" not in k}), config, version)


def save_sovits(path: Path, weights: dict, config: dict, version: str) -> None:
    """Write SoVITS `weights` (torch tensors) and `config` as upstream's `savee` does: the config pickled as
    `utils.HParams`, and the v2Pro/Plus files' first two bytes replaced by their version marker."""
    hparams = _hparams_class()
    module = types.ModuleType("utils")
    module.HParams = hparams
    previous = sys.modules.get("utils")
    sys.modules["utils"] = module  # pickle looks the class up by module name while saving
    try:
        buffer = io.BytesIO()
        torch.save({"weight": weights, "config": _to_hparams(hparams, config), "info": "1epoch_1iteration"}, buffer)
        data = buffer.getvalue()
        path.write_bytes(PRO_HEADERS[version] + data[2:] if version in PRO_HEADERS else data)
    finally:
        if previous is None:
            del sys.modules["utils"]
        else:
            sys.modules["utils"] = previous


def write_sv(path: Path, size: str, seed: int) -> None:
    """The speaker-verification checkpoint as upstream ships it: a bare fp32 state dict of the whole ERes2NetV2,
    including its unused pooling head `seg_1` (Linear over mean+std statistics → 192)."""
    torch.manual_seed(seed)
    stem, blocks = SV_SIZES[size]
    model = ERes2NetV2Trunk(stem, blocks)
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):  # trained statistics, not the identity
            module.running_mean.uniform_(-0.1, 0.1)
            module.running_var.uniform_(0.5, 1.5)
            module.weight.data.uniform_(0.5, 1.5)
            module.bias.data.uniform_(-0.1, 0.1)
    state = OrderedDict((k, v.detach().clone()) for k, v in model.state_dict().items())
    head = torch.nn.Linear(2 * model.embedding_dim, 192)
    state["seg_1.weight"], state["seg_1.bias"] = head.weight.detach(), head.bias.detach()
    torch.save(state, path)


def _save_hf_folder(model, folder: Path) -> None:
    """`config.json` + fp16 `pytorch_model.bin`, the layout of the released folders."""
    folder.mkdir(parents=True, exist_ok=True)
    model.config.dtype = "float16"
    model.config.to_json_file(folder / "config.json")
    torch.save(_fp16(model.state_dict()), folder / "pytorch_model.bin")


def write_hubert(folder: Path, size: str, seed: int, overrides: dict | None = None) -> None:
    options = {**HUBERT_FULL, **(TINY["hubert"] if size == "tiny" else {}), **(overrides or {})}
    torch.manual_seed(seed)
    model = HubertModel(HubertConfig(**options)).eval()
    _save_hf_folder(model, folder)
    (folder / "preprocessor_config.json").write_text(json.dumps({
        "do_normalize": True, "feature_extractor_type": "Wav2Vec2FeatureExtractor", "feature_size": 1,
        "padding_side": "right", "padding_value": 0, "return_attention_mask": False, "sampling_rate": 16000}, indent=2))


def bert_vocabulary(size: int) -> list[str]:
    """Special tokens, printable ASCII (lower case), CJK punctuation, then CJK ideographs in code-point order."""
    tokens = ["[PAD]"] + [f"[unused{i}]" for i in range(1, 100)] + ["[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    tokens += [chr(c) for c in range(33, 127) if not chr(c).isupper()]
    tokens += list("，。！？、；：“”‘’（）《》【】—…·～")
    code = 0x4E00
    while len(tokens) < size:
        tokens.append(chr(code))
        code += 1
    return tokens[:size]


def write_bert(folder: Path, size: str, seed: int, overrides: dict | None = None) -> None:
    options = {**BERT_FULL, **(TINY["bert"] if size == "tiny" else {}), **(overrides or {})}
    torch.manual_seed(seed)
    model = BertForMaskedLM(BertConfig(**options)).eval()
    _save_hf_folder(model, folder)
    (folder / "vocab.txt").write_text("\n".join(bert_vocabulary(options["vocab_size"])) + "\n", encoding="utf-8")
    (folder / "tokenizer_config.json").write_text(json.dumps({"do_lower_case": True, "tokenize_chinese_chars": True,
                                                              "tokenizer_class": "BertTokenizer"}, indent=2))


def make_test_model(out: str | Path, size: str = "tiny", seed: int = 0,
                    overrides: dict[str, dict] | None = None, version: str = "v2") -> dict[str, Path]:
    """Write a random-weight v1/v2/v2Pro/v2ProPlus model set into `out`; returns the path of each part (v2Pro and
    v2ProPlus also get the speaker-verification checkpoint, "sv").

    `overrides` changes config fields per part ({"gpt": {"n_layer": 3}, "sovits": {...}, "hubert": {...},
    "bert": {...}}), for checking that nothing depends on one set of sizes."""
    overrides = overrides or {}
    if size not in SIZES:
        raise ValueError(f"unknown size {size!r} (choose from {', '.join(SIZES)})")
    if version not in VERSIONS:
        raise ValueError(f"unknown version {version!r} (choose from {', '.join(VERSIONS)})")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"gpt": out / "gpt.ckpt", "sovits": out / "sovits.pth",
             "hubert": out / "chinese-hubert-base", "bert": out / "chinese-roberta-wwm-ext-large"}
    write_gpt(paths["gpt"], size, seed + 1, overrides.get("gpt"), "v1" if version == "v1" else "v2")
    write_sovits(paths["sovits"], size, seed + 2, overrides.get("sovits"), version)
    if version in PRO_SOVITS:
        paths["sv"] = out / "pretrained_eres2netv2w24s4ep4.ckpt"
        write_sv(paths["sv"], size, seed + 5)
    write_hubert(paths["hubert"], size, seed + 3, overrides.get("hubert"))
    write_bert(paths["bert"], size, seed + 4, overrides.get("bert"))
    return paths
