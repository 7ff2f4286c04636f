"""Upstream GPT-SoVITS's weight files, read through the shared restricted readers (`..checkpoints`).

Upstream writes three kinds, all `torch.save` zip archives:

* GPT `.ckpt`:   {"weight": {"model.<key>": fp16 tensor}, "config": dict, "info": str}
* SoVITS `.pth`: {"weight": {key: fp16 tensor}, "config": utils.HParams, "info": str}; the first two bytes
  of the file may be a version marker ("00".."06") written over the zip magic "PK".
* the v2Pro/v2ProPlus speaker-verification model: a bare state dict.

HuBERT and chinese-roberta come as Hugging Face folders (`..checkpoints.load_hf_weights`).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgevoice.gpt_sovits.model_facts import is_max_sec

from ..checkpoints import (CheckpointError, plain_config, read_bytes, read_torch_archive, refuse_legacy_torch,
                           require_weights)


# SoVITS version markers written over the zip magic by upstream `process_ckpt.my_save2`.
SOVITS_HEADER_VERSIONS = {b"00": "v1", b"01": "v2", b"02": "v3", b"03": "v3", b"04": "v4",
                          b"05": "v2Pro", b"06": "v2ProPlus"}
# md5 of the first 8192 bytes of upstream's released pretrained SoVITS files.
SOVITS_PRETRAINED_MD5 = {
    "dc3c97e17592963677a4a1681f30c653": "v1", "6642b37f3dbb1f76882b69937c95a5f3": "v2",
    "43797be674a37c1c83ee81081941ed0f": "v3", "4f26b9476d0c5033e04162c486074374": "v4",
    "c7e9fce2223f3db685cdfa1e6368728a": "v2Pro", "66b313e39455b57ab1b0bc0b239c9d0a": "v2ProPlus",
}
SUPPORTED_VERSIONS = ("v1", "v2", "v2Pro", "v2ProPlus")


class UnsupportedVersionError(CheckpointError):
    pass


@dataclass
class Checkpoint:
    """Weights as numpy arrays (stored dtype kept), the plain-dict config and the detected model version."""

    path: Path
    weights: dict[str, np.ndarray]
    config: dict
    version: str
    sha256: str

    def float32(self) -> dict[str, np.ndarray]:
        return {k: v.astype(np.float32) if v.dtype.kind == "f" else v for k, v in self.weights.items()}


def _require_dict(obj: Any, path: Path, keys: tuple[str, ...], what: str) -> dict:
    if not isinstance(obj, dict) or any(k not in obj for k in keys):
        raise CheckpointError(f"{path}: not a {what} checkpoint (expected a dict with keys {', '.join(keys)})")
    return obj


def _rows(weights: dict[str, np.ndarray], key: str, path: Path) -> int:
    array = weights[key]
    if array.ndim < 1:
        raise CheckpointError(f"{path}: corrupt checkpoint ({key} is a scalar, expected a matrix)")
    return int(array.shape[0])


def _float_weights(weights: dict[str, np.ndarray], path: Path, what: str) -> dict[str, np.ndarray]:
    """Upstream stores every weight and bias as floats (half precision); integer ones (a storage type swapped in the
    file) would be cast to huge floats without a word and pass a relative parity check."""
    wrong = [k for k, v in weights.items() if k.endswith((".weight", ".bias", "_g", "_v")) and v.dtype.kind != "f"]
    if wrong:
        more = ", …" if len(wrong) > 1 else ""
        raise CheckpointError(f"{path}: corrupt {what} checkpoint ({len(wrong)} weights are stored as "
                              f"{weights[wrong[0]].dtype}, not floating point: {wrong[0]}{more})")
    return weights


def _check_max_sec(config: dict, path: Path) -> None:
    """The GPT's `data.max_sec` (upstream's token limit, 50 per second) as the runtime will check it in the manifest,
    but before minutes of export rather than after."""
    data = config.get("data", {})
    max_sec = data.get("max_sec") if isinstance(data, dict) else None
    if not is_max_sec(max_sec):
        raise CheckpointError(f"{path}: GPT config data.max_sec must be a positive number of seconds, found "
                              f"{str(max_sec)[:40]!r}")


def _check_supported(path: Path, version: str, what: str) -> None:
    if version not in SUPPORTED_VERSIONS:
        raise UnsupportedVersionError(
            f"{path}: GPT-SoVITS {version} {what} checkpoints are not supported yet "
            f"(supported: {', '.join(SUPPORTED_VERSIONS)})"
        )


def load_gpt_checkpoint(path: str | Path) -> Checkpoint:
    """Load a GPT (s1) `.ckpt`: strip the `model.` prefix, read the config, decide v1/v2 by phone rows."""
    path = Path(path)
    data = read_bytes(path)
    obj = _require_dict(read_torch_archive(path, data), path, ("weight", "config"), "GPT-SoVITS GPT (s1)")
    raw = _float_weights(require_weights(obj["weight"], path, "GPT-SoVITS GPT (s1)"), path, "GPT-SoVITS GPT (s1)")
    config = plain_config(obj["config"], path, "GPT-SoVITS GPT (s1)")
    if not any(k.startswith("model.") for k in raw):
        raise CheckpointError(f"{path}: not a GPT-SoVITS GPT checkpoint (no 'model.*' weights)")
    weights = {k[len("model."):]: v for k, v in raw.items() if k.startswith("model.")}
    if "ar_text_embedding.word_embeddings.weight" not in weights or not isinstance(config.get("model"), dict):
        raise CheckpointError(f"{path}: not a GPT-SoVITS GPT checkpoint (no text embedding or model config)")
    _check_max_sec(config, path)
    rows = _rows(weights, "ar_text_embedding.word_embeddings.weight", path)
    version = "v1" if rows == 512 else "v2"
    _check_supported(path, version, "GPT")
    return Checkpoint(path, weights, config, version, hashlib.sha256(data).hexdigest())


def sovits_version(path: Path, data: bytes, weights: dict[str, np.ndarray]) -> str:
    """Upstream's detection: known-file hash, then header marker, then the weights themselves."""
    by_hash = SOVITS_PRETRAINED_MD5.get(hashlib.md5(data[:8192]).hexdigest())
    header = data[:2]
    if header != b"PK" and header not in SOVITS_HEADER_VERSIONS:
        raise CheckpointError(f"{path}: unknown SoVITS version marker {header!r} (not a GPT-SoVITS checkpoint?)")
    marked = by_hash or SOVITS_HEADER_VERSIONS.get(header)
    if marked in ("v2Pro", "v2ProPlus", "v3", "v4"):
        return marked
    if "enc_p.text_embedding.weight" not in weights:
        return "v3"
    if "sv_emb.weight" in weights:
        return "v2Pro"
    return "v1" if _rows(weights, "enc_p.text_embedding.weight", path) == 322 else "v2"


def load_sovits_checkpoint(path: str | Path) -> Checkpoint:
    """Load a SoVITS (s2) `.pth`, restoring the zip magic when a version marker replaced it."""
    path = Path(path)
    data = read_bytes(path)
    if len(data) < 4:
        raise CheckpointError(f"{path}: not a GPT-SoVITS SoVITS checkpoint (file too short)")
    if data[:2] != b"PK" and data[:2] not in SOVITS_HEADER_VERSIONS:
        refuse_legacy_torch(data, path)
        raise CheckpointError(f"{path}: not a GPT-SoVITS SoVITS checkpoint (starts with {data[:2]!r}, expected a "
                              "zip archive or a known version marker)")
    archive_bytes = b"PK" + data[2:] if data[:2] in SOVITS_HEADER_VERSIONS else data
    obj = _require_dict(read_torch_archive(path, archive_bytes), path, ("weight", "config"), "GPT-SoVITS SoVITS (s2)")
    weights = _float_weights(require_weights(obj["weight"], path, "GPT-SoVITS SoVITS (s2)"), path,
                             "GPT-SoVITS SoVITS (s2)")
    if not any(k.startswith(("enc_p.", "dec.")) for k in weights):
        raise CheckpointError(f"{path}: not a GPT-SoVITS SoVITS checkpoint (no enc_p/dec weights)")
    config = plain_config(obj["config"], path, "GPT-SoVITS SoVITS (s2)")
    if not isinstance(config.get("model", {}), dict):
        raise CheckpointError(f"{path}: corrupt GPT-SoVITS SoVITS checkpoint (config 'model' is not a dict)")
    version = sovits_version(path, data, weights)
    _check_supported(path, version, "SoVITS")
    config.setdefault("model", {})["version"] = version
    return Checkpoint(path, weights, config, version, hashlib.sha256(data).hexdigest())


def load_sv_checkpoint(path: str | Path) -> Checkpoint:
    """The v2Pro speaker-verification model (`pretrained_eres2netv2w24s4ep4.ckpt`): a bare state dict."""
    path = Path(path)
    data = read_bytes(path)
    weights = read_torch_archive(path, data)
    if not isinstance(weights, dict) or "conv1.weight" not in weights:
        raise CheckpointError(f"{path}: not a speaker-verification (ERes2NetV2) checkpoint: expected a state dict "
                              "with conv1.weight")
    weights = require_weights(weights, path, "speaker-verification (ERes2NetV2)")
    return Checkpoint(path, weights, {}, "sv", hashlib.sha256(data).hexdigest())
