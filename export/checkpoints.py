"""Read upstream GPT-SoVITS checkpoints without trusting their pickles.

Upstream writes three kinds of weight files, all `torch.save` zip archives:

* GPT `.ckpt`:   {"weight": {"model.<key>": fp16 tensor}, "config": dict, "info": str}
* SoVITS `.pth`: {"weight": {key: fp16 tensor}, "config": utils.HParams, "info": str}; the first two bytes
  of the file may be a version marker ("00".."06") written over the zip magic "PK".
* Hugging Face `pytorch_model.bin` (a plain state dict) or `model.safetensors`.

The pickles are read by `RestrictedUnpickler`, which admits only the handful of globals these files need and
rebuilds tensors as numpy arrays straight from the archive's storages; any other global is refused with an
error naming the file. Nothing here imports torch.
"""

from __future__ import annotations

import collections
import hashlib
import io
import json
import pickle
import struct
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np


class CheckpointError(ValueError):
    """A weight file that is missing, corrupt, unsafe or of an unsupported kind."""


_STORAGE_DTYPES = {
    "HalfStorage": np.float16,
    "FloatStorage": np.float32,
    "DoubleStorage": np.float64,
    "BFloat16Storage": np.uint16,  # widened to float32 after reading
    "LongStorage": np.int64,
    "IntStorage": np.int32,
    "ShortStorage": np.int16,
    "CharStorage": np.int8,
    "ByteStorage": np.uint8,
    "BoolStorage": np.bool_,
    "UntypedStorage": np.uint8,
}


class HParams:
    """Stand-in for upstream's `utils.HParams` attribute bag; unpickling only fills `__dict__`."""

    def __getitem__(self, key: str) -> Any:
        return self.__dict__[key]


@dataclass(frozen=True)
class _StorageType:
    name: str


def _to_plain(value: Any) -> Any:
    """HParams and OrderedDicts → plain dicts, recursively (configs end up JSON-serialisable)."""
    if isinstance(value, HParams):
        value = value.__dict__
    if isinstance(value, dict):
        return {str(k): _to_plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_to_plain(v) for v in value]
    return value


def _rebuild_tensor(storage: np.ndarray, offset: int, size, stride, *_unused) -> np.ndarray:
    size, stride = tuple(size), tuple(stride)
    if not size:
        return storage[offset].copy()
    itemsize = storage.itemsize
    view = np.lib.stride_tricks.as_strided(
        storage[offset:], shape=size, strides=tuple(s * itemsize for s in stride), writeable=False
    )
    return np.ascontiguousarray(view)


def _rebuild_parameter(data: np.ndarray, *_unused) -> np.ndarray:
    return data


def _reconstructor(cls, base, state):
    if cls is not HParams or base is not object:
        raise pickle.UnpicklingError(f"refusing to reconstruct {cls!r}")
    return HParams.__new__(HParams)


class RestrictedUnpickler(pickle.Unpickler):
    """Unpickler for torch zip archives that admits only tensors, dicts and upstream's HParams."""

    _ALLOWED = {
        ("collections", "OrderedDict"): collections.OrderedDict,
        ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
        ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
        ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
        ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter,
        ("utils", "HParams"): HParams,
        ("copyreg", "_reconstructor"): _reconstructor,
        ("builtins", "object"): object,
    }

    def __init__(self, file, archive: zipfile.ZipFile, prefix: str, source: Path):
        super().__init__(file)
        self._archive = archive
        self._prefix = prefix
        self._source = source
        self._storages: dict[str, np.ndarray] = {}

    def find_class(self, module: str, name: str):
        if module == "torch" and name in _STORAGE_DTYPES:
            return _StorageType(name)
        try:
            return self._ALLOWED[(module, name)]
        except KeyError:
            raise CheckpointError(
                f"{self._source}: refusing to load: the pickle asks for '{module}.{name}', which a GPT-SoVITS "
                "checkpoint never contains"
            ) from None

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and len(pid) >= 5 and pid[0] == "storage"):
            raise CheckpointError(f"{self._source}: unexpected persistent id {pid!r}")
        storage_type, key = pid[1], str(pid[2])
        if not isinstance(storage_type, _StorageType):
            raise CheckpointError(f"{self._source}: unexpected storage type {storage_type!r}")
        if key not in self._storages:
            raw = self._archive.read(f"{self._prefix}data/{key}")
            array = np.frombuffer(raw, dtype=_STORAGE_DTYPES[storage_type.name])
            if storage_type.name == "BFloat16Storage":
                array = (array.astype(np.uint32) << 16).view(np.float32)
            self._storages[key] = array
        return self._storages[key]


def _open_zip(data: bytes, source: Path) -> tuple[zipfile.ZipFile, str]:
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile:
        raise CheckpointError(f"{source}: not a PyTorch checkpoint (no zip archive inside)") from None
    pickles = [n for n in archive.namelist() if n.endswith("data.pkl")]
    if len(pickles) != 1:
        raise CheckpointError(f"{source}: not a PyTorch checkpoint (expected one data.pkl, found {len(pickles)})")
    return archive, pickles[0][: -len("data.pkl")]


def read_torch_archive(path: Path, data: bytes | None = None) -> Any:
    """Unpickle a `torch.save` zip archive with `RestrictedUnpickler`; tensors become numpy arrays."""
    path = Path(path)
    if data is None:
        data = _read_bytes(path)
    archive, prefix = _open_zip(data, path)
    with archive:
        byteorder = prefix + "byteorder"
        if byteorder in archive.namelist() and archive.read(byteorder).strip() != b"little":
            raise CheckpointError(f"{path}: big-endian checkpoints are not supported")
        try:
            with archive.open(prefix + "data.pkl") as handle:
                return RestrictedUnpickler(handle, archive, prefix, path).load()
        except (pickle.UnpicklingError, zipfile.BadZipFile, EOFError, KeyError, struct.error) as exc:
            raise CheckpointError(f"{path}: corrupt checkpoint ({exc})") from None


def read_safetensors(path: Path) -> dict[str, np.ndarray]:
    """Parse a `.safetensors` file (8-byte header length, JSON header, raw little-endian data)."""
    dtypes = {"F16": np.float16, "F32": np.float32, "F64": np.float64, "I64": np.int64, "I32": np.int32,
              "I16": np.int16, "I8": np.int8, "U8": np.uint8, "BOOL": np.bool_, "BF16": np.uint16}
    data = _read_bytes(path)
    try:
        (header_len,) = struct.unpack("<Q", data[:8])
        header = json.loads(data[8 : 8 + header_len])
    except (struct.error, ValueError):
        raise CheckpointError(f"{path}: not a safetensors file") from None
    body = memoryview(data)[8 + header_len :]
    tensors = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        start, end = info["data_offsets"]
        array = np.frombuffer(body[start:end], dtype=dtypes[info["dtype"]]).reshape(info["shape"])
        if info["dtype"] == "BF16":
            array = (array.astype(np.uint32) << 16).view(np.float32)
        tensors[name] = array
    return tensors


def _read_bytes(path: Path) -> bytes:
    try:
        return Path(path).read_bytes()
    except FileNotFoundError:
        raise CheckpointError(f"{path}: file not found") from None
    except IsADirectoryError:
        raise CheckpointError(f"{path}: is a directory, expected a checkpoint file") from None


# ---------------------------------------------------------------------------------------------------------------
# GPT-SoVITS files

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


def _check_supported(path: Path, version: str, what: str) -> None:
    if version not in SUPPORTED_VERSIONS:
        raise UnsupportedVersionError(
            f"{path}: GPT-SoVITS {version} {what} checkpoints are not supported yet "
            f"(supported: {', '.join(SUPPORTED_VERSIONS)})"
        )


def load_gpt_checkpoint(path: str | Path) -> Checkpoint:
    """Load a GPT (s1) `.ckpt`: strip the `model.` prefix, read the config, decide v1/v2 by phone rows."""
    path = Path(path)
    data = _read_bytes(path)
    obj = _require_dict(read_torch_archive(path, data), path, ("weight", "config"), "GPT-SoVITS GPT (s1)")
    config = _to_plain(obj["config"])
    raw = obj["weight"]
    if not any(k.startswith("model.") for k in raw):
        raise CheckpointError(f"{path}: not a GPT-SoVITS GPT checkpoint (no 'model.*' weights)")
    weights = {k[len("model."):]: v for k, v in raw.items() if k.startswith("model.")}
    if "ar_text_embedding.word_embeddings.weight" not in weights or "model" not in config:
        raise CheckpointError(f"{path}: not a GPT-SoVITS GPT checkpoint (no text embedding or model config)")
    rows = weights["ar_text_embedding.word_embeddings.weight"].shape[0]
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
    return "v1" if weights["enc_p.text_embedding.weight"].shape[0] == 322 else "v2"


def load_sovits_checkpoint(path: str | Path) -> Checkpoint:
    """Load a SoVITS (s2) `.pth`, restoring the zip magic when a version marker replaced it."""
    path = Path(path)
    data = _read_bytes(path)
    if len(data) < 4:
        raise CheckpointError(f"{path}: not a GPT-SoVITS SoVITS checkpoint (file too short)")
    if data[:2] != b"PK" and data[:2] not in SOVITS_HEADER_VERSIONS:
        raise CheckpointError(f"{path}: not a GPT-SoVITS SoVITS checkpoint (starts with {data[:2]!r}, expected a "
                              "zip archive or a known version marker)")
    archive_bytes = b"PK" + data[2:] if data[:2] in SOVITS_HEADER_VERSIONS else data
    obj = _require_dict(read_torch_archive(path, archive_bytes), path, ("weight", "config"), "GPT-SoVITS SoVITS (s2)")
    weights = dict(obj["weight"])
    if not any(k.startswith(("enc_p.", "dec.")) for k in weights):
        raise CheckpointError(f"{path}: not a GPT-SoVITS SoVITS checkpoint (no enc_p/dec weights)")
    config = _to_plain(obj["config"])
    version = sovits_version(path, data, weights)
    _check_supported(path, version, "SoVITS")
    config.setdefault("model", {})["version"] = version
    return Checkpoint(path, weights, config, version, hashlib.sha256(data).hexdigest())


def load_sv_checkpoint(path: str | Path) -> Checkpoint:
    """The v2Pro speaker-verification model (`pretrained_eres2netv2w24s4ep4.ckpt`): a bare state dict."""
    path = Path(path)
    data = _read_bytes(path)
    weights = read_torch_archive(path, data)
    if not isinstance(weights, dict) or "conv1.weight" not in weights:
        raise CheckpointError(f"{path}: not a speaker-verification (ERes2NetV2) checkpoint: expected a state dict "
                              "with conv1.weight")
    return Checkpoint(path, dict(weights), {}, "sv", hashlib.sha256(data).hexdigest())


def load_hf_weights(directory: str | Path) -> tuple[dict[str, np.ndarray], dict]:
    """Weights and config.json of a Hugging Face model folder (safetensors preferred, else pytorch_model.bin)."""
    directory = Path(directory)
    if not directory.is_dir():
        raise CheckpointError(f"{directory}: not a directory (expected a Hugging Face model folder)")
    config_path = directory / "config.json"
    if not config_path.is_file():
        raise CheckpointError(f"{directory}: no config.json (expected a Hugging Face model folder)")
    try:
        config = json.loads(config_path.read_text())
    except ValueError as exc:
        raise CheckpointError(f"{config_path}: invalid JSON ({exc})") from None
    if (directory / "model.safetensors").is_file():
        weights = read_safetensors(directory / "model.safetensors")
    elif (directory / "pytorch_model.bin").is_file():
        weights = read_torch_archive(directory / "pytorch_model.bin")
        if not isinstance(weights, dict):
            raise CheckpointError(f"{directory / 'pytorch_model.bin'}: expected a state dict")
    else:
        raise CheckpointError(f"{directory}: no model.safetensors or pytorch_model.bin")
    return dict(weights), config
