"""Read untrusted checkpoint files without trusting their pickles: `torch.save` zip archives, safetensors files and
Hugging Face model folders. Each family's own files (their layouts, configs and versions) are read by its
`<family>/checkpoints.py` on top of these readers.

The pickles are read by `RestrictedUnpickler`, which admits only the handful of globals these files need and
rebuilds tensors as numpy arrays straight from the archive's storages; any other global is refused with an
error naming the file. Nothing here imports torch.

The files are untrusted input, so nothing in them is believed before it is checked: every tensor's offset,
sizes and strides are checked against its storage before a view is made (a view past the storage would read
process memory or crash), storages must hold whole elements of their dtype, safetensors headers are checked
entry by entry against the data area, and tensors that would copy far more than the file holds are refused.
Whatever goes wrong, the caller gets one `CheckpointError` (a one-line message naming the file), never a
stray IndexError/struct.error/MemoryError.
"""

from __future__ import annotations

import collections
import functools
import io
import json
import math
import pickle
import re
import struct
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgevoice.errors import EdgevoiceError


def _one_line(text: str, limit: int = 400) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _short(value: Any, limit: int = 80) -> str:
    """repr of an untrusted value, short and on one line, for error messages."""
    try:
        text = repr(value)
    except Exception:  # noqa: BLE001 - a crafted object's repr is not worth failing over
        text = f"<{type(value).__name__}>"
    return _one_line(text, limit)


class CheckpointError(EdgevoiceError):
    """A weight file that is missing, corrupt, unsafe or of an unsupported kind (the message is one line)."""

    def __init__(self, message: Any = "", *args: Any):
        super().__init__(_one_line(message), *args)


class _Corrupt(pickle.UnpicklingError):
    """Raised while unpickling; `read_torch_archive` turns it into a CheckpointError naming the file."""


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

_MAX_DIMS = 64
_STORAGE_KEY = re.compile(r"[A-Za-z0-9_]{1,64}")
# Non-contiguous tensors are copied; all copies of one file together may not exceed this many bytes more than
# twice the file's storages (a few shared, transposed views are normal; thousands over one storage are not).
_COPY_ALLOWANCE = 64 << 20
# Deflated zip members may not claim to inflate to more than this ratio of the archive's compressed bytes (plus
# a MiB), each and all together: torch.save stores its members uncompressed, and a "zip bomb" would otherwise
# fill memory.
_MAX_INFLATE_RATIO = 64
_MAX_NESTING = 200
_MAX_CONFIG_NODES = 1_000_000


class HParams:
    """Stand-in for upstream's `utils.HParams` attribute bag; unpickling only fills `__dict__`."""

    def __getitem__(self, key: str) -> Any:
        return self.__dict__[key]


class _StateDict(collections.OrderedDict):
    """What a pickle's `collections.OrderedDict` becomes. torch stores a state dict's `_metadata` as the object's
    state (pickle BUILD); anything else there, above all a name that shadows a dict method (`items`, `keys`, …: a
    crafted file could make `items()` hide every weight from the checks), is refused."""

    def __setstate__(self, state: Any) -> None:
        if not isinstance(state, dict) or any(not isinstance(k, str) or k.startswith("_") and k != "_metadata"
                                              or hasattr(collections.OrderedDict, k) for k in state):
            raise _Corrupt(f"a dict's pickled state {_short(state)} is not a state dict's metadata")
        self.__dict__.update(state)


@dataclass(frozen=True)
class _StorageType:
    name: str


def _to_plain(value: Any, _depth: int = 0, _budget: list | None = None) -> Any:
    """HParams and OrderedDicts → plain dicts, recursively (configs end up JSON-serialisable).

    A pickle can nest containers arbitrarily deep, make them refer to themselves, or share one container many
    times over (exponential work): past `_MAX_NESTING` levels or `_MAX_CONFIG_NODES` nodes this raises
    ValueError."""
    budget = [_MAX_CONFIG_NODES] if _budget is None else _budget
    budget[0] -= 1
    if _depth > _MAX_NESTING or budget[0] < 0:
        raise ValueError(f"config nested deeper than {_MAX_NESTING} levels, larger than {_MAX_CONFIG_NODES} items "
                         "or refers to itself")
    if isinstance(value, HParams):
        value = value.__dict__
    if isinstance(value, dict):
        return {str(k): _to_plain(v, _depth + 1, budget) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_to_plain(v, _depth + 1, budget) for v in value]
    return value


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _int_tuple(value: Any, what: str) -> tuple[int, ...]:
    if not isinstance(value, (tuple, list)) or len(value) > _MAX_DIMS:
        raise _Corrupt(f"tensor {what} {_short(value)} is not a list of at most {_MAX_DIMS} integers")
    if not all(_is_int(v) and v >= 0 for v in value):
        raise _Corrupt(f"tensor {what} {_short(value)} must be non-negative integers")
    return tuple(value)


def _check_view(length: int, offset: Any, size: Any, stride: Any) -> tuple[int, tuple[int, ...], tuple[int, ...]]:
    """Validate a (offset, size, stride) view of a storage of `length` elements; returns them as ints.

    The view must lie inside the storage: offset + Σ (size_i − 1)·stride_i < length unless it is empty, and it
    may not have more elements than the storage (an expanded view would be an unbounded allocation)."""
    if not _is_int(offset) or offset < 0:
        raise _Corrupt(f"tensor storage offset {_short(offset)} is not a non-negative integer")
    size, stride = _int_tuple(size, "size"), _int_tuple(stride, "stride")
    if len(size) != len(stride):
        raise _Corrupt(f"tensor has {len(size)} sizes but {len(stride)} strides")
    numel = math.prod(size)
    if numel == 0:
        return offset, size, stride
    if numel > length:
        raise _Corrupt(f"tensor of shape {size} has {numel} elements, more than its storage of {length}")
    last = offset + sum((n - 1) * s for n, s in zip(size, stride))
    if last >= length:
        raise _Corrupt(f"tensor of shape {size}, stride {stride} at offset {offset} reaches element {last} of a "
                       f"storage of {length} elements")
    return offset, size, stride


def _rebuild_tensor(storage: np.ndarray, offset: int, size, stride, *_unused) -> np.ndarray:
    """A numpy array of `size` viewing `storage` (1-D) from `offset` with element `stride`, bounds-checked."""
    if not isinstance(storage, np.ndarray) or storage.ndim != 1:
        raise _Corrupt(f"tensor storage is a {type(storage).__name__}, not a storage")
    offset, size, stride = _check_view(len(storage), offset, size, stride)
    if math.prod(size) == 0:
        return np.zeros(size, dtype=storage.dtype)
    if not size:
        return storage[offset : offset + 1].reshape(())
    itemsize = storage.itemsize
    view = np.lib.stride_tricks.as_strided(
        storage[offset:], shape=size, strides=tuple(s * itemsize for s in stride), writeable=False
    )
    return np.ascontiguousarray(view)


def _rebuild_parameter(data: Any, *_unused) -> np.ndarray:
    if not isinstance(data, np.ndarray):
        raise _Corrupt(f"parameter data is a {type(data).__name__}, not a tensor")
    return data


def _reconstructor(cls, base, state):
    # `cls` is this file's own copy of HParams (`RestrictedUnpickler.find_class`)
    if not (isinstance(cls, type) and issubclass(cls, HParams)) or base is not object:
        raise _Corrupt(f"refusing to reconstruct {_short(cls)}")
    return cls.__new__(cls)


def _latin1_bytes(text: Any, encoding: Any = "latin1") -> bytes:
    """Protocol-2 pickles (torch.save's default) spell a `bytes` object as `_codecs.encode(str, "latin1")`:
    MetaVoice's tokenizer ranks are such keys. Only that exact spelling is admitted."""
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise _Corrupt(f"refusing _codecs.encode({_short(type(text).__name__)}, {_short(encoding)})")
    return text.encode("latin1")


class RestrictedUnpickler(pickle.Unpickler):
    """Unpickler for torch zip archives that admits only tensors, dicts, bytes and upstream's HParams."""

    _ALLOWED = {
        ("collections", "OrderedDict"): _StateDict,
        ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
        ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
        ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
        ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter,
        ("utils", "HParams"): HParams,
        ("copyreg", "_reconstructor"): _reconstructor,
        ("builtins", "object"): object,
        ("_codecs", "encode"): _latin1_bytes,
    }

    def __init__(self, file, archive: zipfile.ZipFile, prefix: str, source: Path):
        super().__init__(file)
        self._archive = archive
        self._prefix = prefix
        self._source = source
        self._storages: dict[str, tuple[str, np.ndarray]] = {}
        self._storage_ids: set[int] = set()
        self._storage_bytes = 0
        self._copied_bytes = 0
        self._copies: dict[tuple[str, str], Any] = {}  # this file's own copies of the admitted objects
        self._inflate_budget = _MAX_INFLATE_RATIO * sum(i.compress_size for i in archive.infolist()) + (1 << 20)

    def find_class(self, module: str, name: str):
        if module == "torch" and name in _STORAGE_DTYPES:
            return _StorageType(name)
        target = self._ALLOWED.get((module, name))
        if target is None:
            raise CheckpointError(
                f"{self._source}: refusing to load: the pickle asks for '{_one_line(module, 60)}.{_one_line(name, 60)}'"
                ", which no supported checkpoint contains"
            )
        if target is _rebuild_tensor:
            return self._rebuild_tensor
        # pickle's BUILD sets attributes on whatever object it is given: handed the loader's own class or function,
        # one file could change how every later file in the process is read (an `HParams.__getitem__`, a
        # function's `__defaults__`). Each file gets copies of its own instead; builtins cannot be changed.
        if target is object:
            return target
        if (module, name) not in self._copies:  # one copy per file, however many times its pickle names it
            self._copies[module, name] = (type(target.__name__, (target,), {"__module__": target.__module__})
                                          if target in (HParams, _StateDict) else functools.partial(target))
        return self._copies[module, name]

    def _rebuild_tensor(self, storage: Any, *args: Any) -> np.ndarray:
        if not isinstance(storage, np.ndarray) or id(storage) not in self._storage_ids:
            raise _Corrupt(f"tensor storage is a {type(storage).__name__}, not a storage of this archive")
        if len(args) < 3:
            raise _Corrupt(f"tensor rebuilt from {len(args) + 1} arguments, expected at least 4")
        array = _rebuild_tensor(storage, *args)
        if not np.may_share_memory(array, storage):
            self._copied_bytes += array.nbytes
            if self._copied_bytes > 2 * self._storage_bytes + _COPY_ALLOWANCE:
                raise _Corrupt(f"tensors copy {self._copied_bytes} bytes out of {self._storage_bytes} bytes of "
                               "storage (implausibly many overlapping views)")
        return array

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and len(pid) >= 5 and pid[0] == "storage"):
            raise _Corrupt(f"unexpected persistent id {_short(pid)}")
        storage_type, key = pid[1], pid[2]
        if not isinstance(storage_type, _StorageType) or storage_type.name not in _STORAGE_DTYPES:
            raise _Corrupt(f"unexpected storage type {_short(storage_type)}")
        if _is_int(key) and key >= 0:
            key = str(key)
        if not isinstance(key, str) or not _STORAGE_KEY.fullmatch(key):
            raise _Corrupt(f"bad storage key {_short(key)}")
        if key in self._storages:
            name, array = self._storages[key]
            if name != storage_type.name:
                raise _Corrupt(f"storage {key} is read both as {name} and as {storage_type.name}")
            return array
        array = self._read_storage(key, storage_type.name)
        self._storages[key] = (storage_type.name, array)
        self._storage_ids.add(id(array))
        self._storage_bytes += array.nbytes
        return array

    def _read_storage(self, key: str, type_name: str) -> np.ndarray:
        entry = f"{self._prefix}data/{key}"
        try:
            info = self._archive.getinfo(entry)
        except KeyError:
            raise _Corrupt(f"storage {key} is missing from the archive") from None
        if info.compress_type != zipfile.ZIP_STORED:
            self._inflate_budget -= info.file_size
            if self._inflate_budget < 0:
                raise _Corrupt("the archive's compressed members claim to inflate to far more than the archive "
                               "holds (refusing a possible zip bomb)")
        raw = _read_entry(self._archive, info)
        dtype = np.dtype(_STORAGE_DTYPES[type_name])
        if len(raw) % dtype.itemsize:
            raise _Corrupt(f"storage {key} holds {len(raw)} bytes, not a whole number of {type_name} elements "
                           f"({dtype.itemsize} bytes each)")
        if type_name == "BoolStorage":
            return np.frombuffer(raw, dtype=np.uint8) != 0  # any byte other than 0/1 is still a valid bool
        array = np.frombuffer(raw, dtype=dtype)
        if type_name == "BFloat16Storage":
            array = (array.astype(np.uint32) << 16).view(np.float32)
        return array


def _read_entry(archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> bytes:
    """One archive member, refusing members that claim to inflate to far more than they hold."""
    if info.compress_type != zipfile.ZIP_STORED and \
            info.file_size > _MAX_INFLATE_RATIO * info.compress_size + (1 << 20):
        raise _Corrupt(f"archive member {_short(info.filename)} claims to inflate {info.compress_size} bytes to "
                       f"{info.file_size} (refusing a possible zip bomb)")
    if info.compress_type == zipfile.ZIP_STORED and info.file_size != info.compress_size:
        raise _Corrupt(f"archive member {_short(info.filename)} has inconsistent sizes")
    return archive.read(info)


def _members_overlap(archive: zipfile.ZipFile, size: int) -> bool:
    """Whether two members' data share bytes, or one runs past the file. Members that point at the same bytes
    count them again and again: both the inflate budget (a multiple of the compressed sizes) and a stored
    member's size would then no longer be bounded by the file (2.4 MB → 4.2 GB read)."""
    end = 0
    for info in sorted(archive.infolist(), key=lambda i: i.header_offset):
        if info.header_offset < end:
            return True
        end = info.header_offset + info.compress_size  # its local header only moves the end further
    return end > size


# what a legacy torch.save file starts with: protocol 2, then its magic number 0x1950a86a20f9469cfc6c as a pickled long
_LEGACY_TORCH_MAGIC = b"\x80\x02\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19"


def refuse_legacy_torch(data: bytes, source: Path) -> None:
    """torch.save's format before torch 1.6 (pickles, no zip) is named as such, with how to convert it."""
    if data[:len(_LEGACY_TORCH_MAGIC)] == _LEGACY_TORCH_MAGIC:
        raise CheckpointError(f"{source}: a PyTorch checkpoint in the old (pre-1.6, not zip) format, which is not "
                              "read: load and save it again with a current torch (torch.save)")


def _open_zip(data: bytes, source: Path) -> tuple[zipfile.ZipFile, str]:
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        names = archive.namelist()
    except zipfile.BadZipFile:
        refuse_legacy_torch(data, source)
        raise CheckpointError(f"{source}: not a PyTorch checkpoint (no zip archive inside)") from None
    except Exception as exc:  # noqa: BLE001 - a crafted central directory can raise nearly anything
        raise CheckpointError(f"{source}: not a PyTorch checkpoint (corrupt zip archive: "
                              f"{type(exc).__name__}: {exc})") from None
    if _members_overlap(archive, len(data)):
        archive.close()
        raise CheckpointError(f"{source}: corrupt or unsafe checkpoint (its zip members overlap or run past the "
                              "file: refusing a possible zip bomb)")
    pickles = [n for n in names if n.endswith("data.pkl")]
    if len(pickles) != 1:
        archive.close()
        raise CheckpointError(f"{source}: not a PyTorch checkpoint (expected one data.pkl, found {len(pickles)})")
    return archive, pickles[0][: -len("data.pkl")]


def read_torch_archive(path: Path, data: bytes | None = None) -> Any:
    """Unpickle a `torch.save` zip archive with `RestrictedUnpickler`; tensors become numpy arrays."""
    path = Path(path)
    if data is None:
        data = read_bytes(path)
    archive, prefix = _open_zip(data, path)
    with archive:
        try:
            byteorder = prefix + "byteorder"
            if byteorder in archive.namelist() and \
                    _read_entry(archive, archive.getinfo(byteorder)).strip() != b"little":
                raise CheckpointError(f"{path}: big-endian checkpoints are not supported")
            # read whole: the size checks above, and the CRC, before unpickling a byte
            pkl = _read_entry(archive, archive.getinfo(prefix + "data.pkl"))
            return RestrictedUnpickler(io.BytesIO(pkl), archive, prefix, path).load()
        except CheckpointError:
            raise
        except (_Corrupt, pickle.UnpicklingError) as exc:
            raise CheckpointError(f"{path}: corrupt or unsafe checkpoint ({exc})") from None
        except Exception as exc:  # noqa: BLE001
            # The pickle machine, zipfile and the admitted callables can raise almost any builtin exception on
            # crafted input (TypeError from a bad REDUCE, RecursionError, MemoryError, zlib.error, ...).
            raise CheckpointError(f"{path}: corrupt checkpoint ({type(exc).__name__}: {exc})") from None


_SAFETENSORS_DTYPES = {"F16": np.float16, "F32": np.float32, "F64": np.float64, "I64": np.int64,
                       "I32": np.int32, "I16": np.int16, "I8": np.int8, "U8": np.uint8, "U16": np.uint16,
                       "U32": np.uint32, "U64": np.uint64, "BOOL": np.bool_, "BF16": np.uint16}
_SAFETENSORS_MAX_HEADER = 100 << 20  # the format's own limit


def read_safetensors(path: Path, data: bytes | None = None) -> dict[str, np.ndarray]:
    """Parse a `.safetensors` file (8-byte header length, JSON header, raw little-endian data)."""
    path = Path(path)
    if data is None:
        data = read_bytes(path)
    try:
        return _parse_safetensors(data)
    except CheckpointError:
        raise
    except _Corrupt as exc:
        raise CheckpointError(f"{path}: corrupt safetensors file ({exc})") from None
    except Exception as exc:  # noqa: BLE001 - json on crafted input: RecursionError, UnicodeDecodeError, ...
        raise CheckpointError(f"{path}: corrupt safetensors file ({type(exc).__name__}: {exc})") from None


def _parse_safetensors(data: bytes) -> dict[str, np.ndarray]:
    if len(data) < 8:
        raise _Corrupt(f"{len(data)} bytes, shorter than the 8-byte header length")
    (header_len,) = struct.unpack("<Q", data[:8])
    if header_len > len(data) - 8 or header_len > _SAFETENSORS_MAX_HEADER:
        raise _Corrupt(f"header length {header_len} exceeds the file ({len(data)} bytes)")
    try:
        header = json.loads(bytes(data[8 : 8 + header_len]).decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise _Corrupt(f"header is not JSON: {exc}") from None
    if not isinstance(header, dict):
        raise _Corrupt(f"header is a JSON {type(header).__name__}, not an object")
    body = memoryview(data)[8 + header_len :]
    tensors = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        where = f"tensor {_short(name, 60)}"
        if not isinstance(info, dict):
            raise _Corrupt(f"{where}: entry is not an object")
        dtype_name = info.get("dtype")
        if not isinstance(dtype_name, str) or dtype_name not in _SAFETENSORS_DTYPES:
            raise _Corrupt(f"{where}: unknown dtype {_short(dtype_name)}")
        shape = info.get("shape")
        if not isinstance(shape, list) or len(shape) > _MAX_DIMS or \
                not all(_is_int(n) and n >= 0 for n in shape):
            raise _Corrupt(f"{where}: shape {_short(shape)} is not a list of non-negative integers")
        offsets = info.get("data_offsets")
        if not isinstance(offsets, list) or len(offsets) != 2 or not all(_is_int(n) for n in offsets):
            raise _Corrupt(f"{where}: data_offsets {_short(offsets)} is not a pair of integers")
        begin, end = offsets
        if not 0 <= begin <= end <= len(body):
            raise _Corrupt(f"{where}: data_offsets [{begin}, {end}] lie outside the data area of {len(body)} bytes "
                           "or end before they begin")
        dtype = np.dtype(_SAFETENSORS_DTYPES[dtype_name])
        expected = math.prod(shape) * dtype.itemsize
        if end - begin != expected:
            raise _Corrupt(f"{where}: holds {end - begin} bytes but shape {shape} of {dtype_name} needs {expected}")
        if dtype_name == "BOOL":
            array = (np.frombuffer(body[begin:end], dtype=np.uint8) != 0).reshape(shape)
        else:
            array = np.frombuffer(body[begin:end], dtype=dtype).reshape(shape)
        if dtype_name == "BF16":
            array = (array.astype(np.uint32) << 16).view(np.float32)
        tensors[name] = array
    return tensors


def read_bytes(path: Path) -> bytes:
    try:
        return Path(path).read_bytes()
    except FileNotFoundError:
        raise CheckpointError(f"{path}: file not found") from None
    except IsADirectoryError:
        raise CheckpointError(f"{path}: is a directory, expected a checkpoint file") from None
    except OSError as exc:
        raise CheckpointError(f"{path}: cannot read ({exc.strerror or exc})") from None


def require_weights(weights: Any, path: Path, what: str) -> dict[str, np.ndarray]:
    """A state dict: string keys, numpy array values (anything else means a corrupt or foreign file)."""
    if not isinstance(weights, dict):
        raise CheckpointError(f"{path}: not a {what} checkpoint (the weights are a {type(weights).__name__}, not a "
                              "dict)")
    for key, value in dict.items(weights):  # the dict's own items, whatever the object claims
        if not isinstance(key, str):
            raise CheckpointError(f"{path}: corrupt {what} checkpoint (weight name {_short(key)} is not a string)")
        if not isinstance(value, np.ndarray):
            raise CheckpointError(f"{path}: corrupt {what} checkpoint (weight {_short(key)} is a "
                                  f"{type(value).__name__}, not a tensor)")
    return dict(weights)


def plain_config(config: Any, path: Path, what: str) -> dict:
    try:
        config = _to_plain(config)
    except (ValueError, RecursionError) as exc:
        raise CheckpointError(f"{path}: corrupt {what} checkpoint config ({exc})") from None
    if not isinstance(config, dict):
        raise CheckpointError(f"{path}: corrupt {what} checkpoint (config is a {type(config).__name__}, not a dict)")
    return config


def load_hf_weights(directory: str | Path) -> tuple[dict[str, np.ndarray], dict]:
    """Weights and config.json of a Hugging Face model folder (safetensors preferred, else pytorch_model.bin)."""
    directory = Path(directory)
    if not directory.is_dir():
        raise CheckpointError(f"{directory}: not a directory (expected a Hugging Face model folder)")
    config_path = directory / "config.json"
    if not config_path.is_file():
        raise CheckpointError(f"{directory}: no config.json (expected a Hugging Face model folder)")
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
    except (ValueError, RecursionError) as exc:
        raise CheckpointError(f"{config_path}: invalid JSON ({exc})") from None
    except OSError as exc:
        raise CheckpointError(f"{config_path}: cannot read ({exc.strerror or exc})") from None
    if not isinstance(config, dict):
        raise CheckpointError(f"{config_path}: expected a JSON object, found a {type(config).__name__}")
    if (directory / "model.safetensors").is_file():
        weights = read_safetensors(directory / "model.safetensors")
    elif (directory / "pytorch_model.bin").is_file():
        weights = read_torch_archive(directory / "pytorch_model.bin")
        if not isinstance(weights, dict):
            raise CheckpointError(f"{directory / 'pytorch_model.bin'}: expected a state dict")
        weights = require_weights(weights, directory / "pytorch_model.bin", "Hugging Face")
    else:
        raise CheckpointError(f"{directory}: no model.safetensors or pytorch_model.bin")
    return dict(weights), config


# ------------------------------------------------------------------------------------------------ model configs

# A checkpoint's config sizes the model before any weight is compared with it, so a crafted one could ask torch for
# terabytes or for a billion layers. The largest whole number in a released config of the supported families is
# ~32768 (max_wav_value, sampling rates), the largest count (layers, heads) 48.
MAX_CONFIG_SIZE = 1 << 20
MAX_CONFIG_COUNT = 1024


def config_ints(section: Any, keys: tuple[str, ...], source: Path, what: str, counts: tuple[str, ...] = ()) -> None:
    """Refuse, in one line, a config `section` whose `keys` (those present) are not whole numbers 1…MAX_CONFIG_SIZE
    (or lists of them, nested), or whose `counts` exceed MAX_CONFIG_COUNT."""
    if not isinstance(section, dict):
        raise CheckpointError(f"{source}: corrupt {what} config (a {type(section).__name__}, not a dict)")

    def whole(value: Any, limit: int) -> bool:
        if isinstance(value, list):
            return len(value) <= MAX_CONFIG_COUNT and all(whole(v, limit) for v in value)
        return _is_int(value) and 1 <= value <= limit

    for key in keys:
        if key in section:
            limit = MAX_CONFIG_COUNT if key in counts else MAX_CONFIG_SIZE
            if not whole(section[key], limit):
                raise CheckpointError(f"{source}: {what} config {key} = {_short(section[key])} is not a whole number "
                                      f"in 1…{limit}")


def built_on_meta(build, source: Path, what: str):
    """What `build()` makes from a checkpoint's config, on torch's meta device (shapes, no memory), so a config the
    model cannot be built from is a one-line error before anything is allocated; compare its shapes with the
    file's weights before building the real model."""
    import torch

    try:
        with torch.device("meta"):
            return build()
    except CheckpointError as exc:
        raise CheckpointError(f"{source}: {exc}") from None
    except (TypeError, ValueError, KeyError, IndexError, ZeroDivisionError, OverflowError) as exc:
        # what a config of the wrong types or sizes raises inside the model's constructor
        raise CheckpointError(f"{source}: the {what} config cannot build a model ({type(exc).__name__}: "
                              f"{_one_line(str(exc), 160)})") from None


def planned_shapes(build, source: Path, what: str) -> dict[str, tuple[int, ...]]:
    """The parameter and buffer shapes of `built_on_meta(build)`, for `require_shapes`."""
    return {key: tuple(value.shape) for key, value in built_on_meta(build, source, what).state_dict().items()}


def require_shapes(planned: dict[str, tuple[int, ...]], weights: dict[str, np.ndarray], source: Path, what: str,
                   ignored: tuple[str, ...] = ()) -> None:
    """Every weight the config's model has is in the file with its shape, and the file has no other (`ignored`:
    names the model does not hold, e.g. training-only buffers)."""
    names = {k for k in weights if k not in ignored}
    missing, unexpected = sorted(set(planned) - names), sorted(names - set(planned))
    if missing or unexpected:
        raise CheckpointError(f"{source}: the {what} weights do not match its config: {len(missing)} missing "
                              f"{_short(missing[:3])}, {len(unexpected)} unexpected {_short(unexpected[:3])}")
    wrong = [f"{k} {tuple(np.shape(weights[k]))} vs {shape}" for k, shape in planned.items()
             if tuple(np.shape(weights[k])) != shape]
    if wrong:
        raise CheckpointError(f"{source}: the {what} weights have other shapes than its config gives: "
                              f"{_short(wrong[:3], 240)}")
