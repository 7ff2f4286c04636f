"""Checkpoint files are untrusted: crafted tensors, storages and headers get one-line CheckpointErrors.

The torch archives here are hand-assembled pickles that use only the globals `RestrictedUnpickler` admits, laid
out in a zip like torch.save's (`archive/data.pkl`, `archive/data/<key>`), so each one reaches the tensor
rebuilding code with exactly the offset/size/stride/storage under test. A bounded hypothesis fuzz then mutates
real small checkpoints and checks the loaders either return arrays or raise CheckpointError.
"""

from __future__ import annotations

import io
import json
import pickle
import struct
import zipfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edgevoice.errors import EdgevoiceError
from edgevoice_export.checkpoints import CheckpointError, load_hf_weights, read_safetensors, read_torch_archive
from edgevoice_export.gpt_sovits.checkpoints import load_gpt_checkpoint, load_sovits_checkpoint, load_sv_checkpoint

# ---------------------------------------------------------------------------------------------------------------
# a tiny pickle assembler (protocol 2), enough to write what torch.save writes


def _obj(value) -> bytes:
    """A plain value (int, str, tuple, bool, None) as pickle opcodes, without PROTO/STOP."""
    return pickle.dumps(value, protocol=2)[2:-1]


def _global(module: str, name: str) -> bytes:
    return b"c" + f"{module}\n{name}\n".encode()


def _pid(key="0", storage="HalfStorage", numel=4) -> bytes:
    """A persistent id ('storage', <torch.XStorage>, key, 'cpu', numel), as torch writes it."""
    return b"(" + _obj("storage") + _global("torch", storage) + _obj(key) + _obj("cpu") + _obj(numel) + b"tQ"


def _call(function: bytes, *args: bytes) -> bytes:
    return function + b"(" + b"".join(args) + b"tR"


def _tensor(offset=0, size=(4,), stride=(1,), key="0", storage="HalfStorage", raw_storage: bytes | None = None,
            raw_args: bytes | None = None) -> bytes:
    """torch._utils._rebuild_tensor_v2(storage, offset, size, stride, requires_grad, backward_hooks)."""
    hooks = _global("collections", "OrderedDict") + b")R"
    args = raw_args if raw_args is not None else _obj(offset) + _obj(size) + _obj(stride)
    return _call(_global("torch._utils", "_rebuild_tensor_v2"),
                 raw_storage if raw_storage is not None else _pid(key, storage), args, _obj(False), hooks)


def _dict(entries: dict[str, bytes]) -> bytes:
    """A dict pickle from already-assembled values."""
    body = b"".join(_obj(key) + value for key, value in entries.items())
    return b"}(" + body + b"u"


def _pickle(value: bytes) -> bytes:
    return b"\x80\x02" + value + b"."


def _archive(pkl: bytes, storages: dict[str, bytes] | None = None, compression=zipfile.ZIP_STORED) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("archive/data.pkl", pkl)
        archive.writestr("archive/byteorder", "little")
        for key, raw in (storages or {}).items():
            archive.writestr(f"archive/data/{key}", raw, compress_type=compression)
        archive.writestr("archive/version", "3\n")
    return buffer.getvalue()


FOUR_HALVES = np.arange(4, dtype=np.float16).tobytes()


def _write(tmp_path: Path, data: bytes, name: str = "crafted.ckpt") -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def _refused(path: Path, loader=read_torch_archive, match: str | None = None) -> CheckpointError:
    with pytest.raises(CheckpointError, match=match) as error:
        loader(path)
    message = str(error.value)
    assert "\n" not in message and "\r" not in message
    assert str(path) in message
    return error.value


# ---------------------------------------------------------------------------------------------------------------
# the assembler is right: well-formed crafted tensors load


def test_crafted_tensors_load(tmp_path):
    storage = np.arange(12, dtype=np.float32)
    pkl = _pickle(_dict({
        "full": _tensor(0, (3, 4), (4, 1), storage="FloatStorage"),
        "view": _tensor(1, (2, 2), (4, 2), storage="FloatStorage"),
        "scalar": _tensor(11, (), (), storage="FloatStorage"),
        "empty": _tensor(999, (0, 3), (3, 1), storage="FloatStorage"),  # empty tensors touch no memory
        "param": _call(_global("torch._utils", "_rebuild_parameter"),
                       _tensor(0, (12,), (1,), storage="FloatStorage"), _obj(False),
                       _global("collections", "OrderedDict") + b")R"),
    }))
    loaded = read_torch_archive(_write(tmp_path, _archive(pkl, {"0": storage.tobytes()})))
    np.testing.assert_array_equal(loaded["full"], storage.reshape(3, 4))
    np.testing.assert_array_equal(loaded["view"], storage[1:].reshape(-1)[np.array([[0, 2], [4, 6]])])
    assert loaded["scalar"].shape == () and loaded["scalar"] == 11
    assert loaded["empty"].shape == (0, 3)
    np.testing.assert_array_equal(loaded["param"], storage)


def test_checkpoint_error_is_an_edgevoice_error():
    assert issubclass(CheckpointError, EdgevoiceError) and issubclass(CheckpointError, ValueError)
    assert "\n" not in str(CheckpointError("a\nb"))


# ---------------------------------------------------------------------------------------------------------------
# tensors that reach past their storage, or are otherwise malformed


@pytest.mark.parametrize("offset, size, stride, message", [
    (10, (1,), (1,), "reaches element 10"),  # offset past the storage
    (4, (), (), "reaches element 4"),  # a scalar just past the end
    (0, (5,), (1,), "more than its storage"),  # size past the storage
    (2, (3,), (1,), "reaches element 4"),  # offset + size past the storage
    (0, (2, 2), (3, 1), "reaches element 4"),  # stride past the storage
    (0, (2,), (2**62,), "reaches element"),  # a stride that would overflow a C index
    (0, (2**40, 2**40), (0, 0), "more than its storage"),  # a huge broadcast: 2**80 elements
    (0, (2**62,), (0,), "more than its storage"),
    (0, (1,) * 65, (1,) * 65, "at most 64"),
    (0, (2,), (-1,), "non-negative"),  # negative stride
    (0, (-1,), (1,), "non-negative"),  # negative size
    (-1, (1,), (1,), "offset"),  # negative offset
    (0, (2, 2), (1,), "2 sizes but 1 strides"),  # wrong stride count
    ("0", (1,), (1,), "offset"),
    (1.0, (1,), (1,), "offset"),
    (True, (1,), (1,), "offset"),
    (0, (True,), (1,), "non-negative integers"),
    (0, (2.0,), (1,), "non-negative integers"),
    (0, 4, 1, "not a list"),
    (0, None, None, "not a list"),
])
def test_views_outside_the_storage_are_refused(tmp_path, offset, size, stride, message):
    pkl = _pickle(_dict({"w": _tensor(offset, size, stride)}))
    _refused(_write(tmp_path, _archive(pkl, {"0": FOUR_HALVES})), match=message)


def test_storage_of_odd_byte_length(tmp_path):
    pkl = _pickle(_dict({"w": _tensor(0, (3,), (1,))}))
    _refused(_write(tmp_path, _archive(pkl, {"0": b"\x00" * 7})), match="not a whole number of HalfStorage")


@pytest.mark.parametrize("storage_pickle, storages, message", [
    (_pid("9"), {"0": FOUR_HALVES}, "storage 9 is missing"),
    (_pid("../data.pkl"), {"0": FOUR_HALVES}, "bad storage key"),
    (_pid(None), {"0": FOUR_HALVES}, "bad storage key"),
    (b"(" + _obj("storage") + _obj("HalfStorage") + _obj("0") + _obj("cpu") + _obj(4) + b"tQ", {"0": FOUR_HALVES},
     "unexpected storage type"),
    (b"(" + _obj("weird") + b"tQ", {}, "unexpected persistent id"),
    (_obj(7), {}, "not a storage"),  # an int where the storage goes
    (_obj((1, 2, 3)), {}, "not a storage"),
])
def test_bad_storages_are_refused(tmp_path, storage_pickle, storages, message):
    pkl = _pickle(_dict({"w": _tensor(raw_storage=storage_pickle)}))
    _refused(_write(tmp_path, _archive(pkl, storages)), match=message)


def test_a_tensor_is_not_a_storage(tmp_path):
    """A rebuilt tensor passed back in as a storage: refused even though it is an ndarray."""
    inner = _tensor(0, (4,), (1,))
    pkl = _pickle(_dict({"w": _tensor(0, (2,), (1,), raw_storage=inner)}))
    _refused(_write(tmp_path, _archive(pkl, {"0": FOUR_HALVES})), match="not a storage")


def test_one_storage_read_as_two_dtypes(tmp_path):
    pkl = _pickle(_dict({"a": _tensor(0, (4,), (1,)), "b": _tensor(0, (2,), (1,), storage="FloatStorage")}))
    _refused(_write(tmp_path, _archive(pkl, {"0": FOUR_HALVES})), match="both as HalfStorage and as FloatStorage")


def test_parameter_of_a_non_tensor(tmp_path):
    hooks = _global("collections", "OrderedDict") + b")R"
    pkl = _pickle(_dict({"w": _call(_global("torch._utils", "_rebuild_parameter"), _obj(5), _obj(False), hooks)}))
    _refused(_write(tmp_path, _archive(pkl)), match="parameter data is a int")


@pytest.mark.parametrize("body, message", [
    (_call(_global("torch._utils", "_rebuild_tensor_v2"), _pid()), "expected at least 4"),  # too few arguments
    (_call(_global("builtins", "object"), _obj(1)), "TypeError"),  # object(1)
    (_call(_global("collections", "OrderedDict"), _obj(5)), "TypeError"),
    (b"}(" + _obj([1]) + _obj(1) + b"u", "TypeError"),  # an unhashable key
    (_call(_global("copyreg", "_reconstructor"), _global("collections", "OrderedDict"),
           _global("builtins", "object"), b"N"), "refusing to reconstruct"),
    (b"\x8a\x04\x00\x00\x00", "corrupt"),  # truncated LONG1
    (b"h\x05", "corrupt"),  # memo entry that does not exist
])
def test_malformed_pickles_are_checkpoint_errors(tmp_path, body, message):
    _refused(_write(tmp_path, _archive(_pickle(body), {"0": FOUR_HALVES})), match=message)


def test_config_that_contains_itself(tmp_path):
    """A config list that contains itself (via the memo) would recurse forever when made plain."""
    weights = _dict({"model.ar_text_embedding.word_embeddings.weight": _tensor(0, (2, 2), (2, 1))})
    cyclic = b"]q\x01h\x01a"  # l = []; memo[1] = l; l.append(l)
    pkl = _pickle(_dict({"weight": weights, "config": _dict({"model": cyclic})}))
    _refused(_write(tmp_path, _archive(pkl, {"0": FOUR_HALVES})), load_gpt_checkpoint, match="config")


def test_config_with_exponential_sharing(tmp_path):
    """[x, x] of [y, y] of ... 60 levels: 2**60 nodes when flattened; refused, not ground through."""
    body = b"N"
    for _ in range(60):
        body = body + b"q\x01h\x01\x86"  # t = (prev, prev)
    weights = _dict({"model.ar_text_embedding.word_embeddings.weight": _tensor(0, (2, 2), (2, 1))})
    pkl = _pickle(_dict({"weight": weights, "config": _dict({"model": body})}))
    _refused(_write(tmp_path, _archive(pkl, {"0": FOUR_HALVES})), load_gpt_checkpoint, match="config")


def test_many_overlapping_copies_are_capped(tmp_path):
    """Thousands of transposed views of one storage would copy it thousands of times."""
    side = 512
    views = {f"t{i}": _tensor(0, (side, side), (1, side), storage="FloatStorage") for i in range(80)}
    storage = np.zeros(side * side, np.float32).tobytes()  # 1 MiB
    _refused(_write(tmp_path, _archive(_pickle(_dict(views)), {"0": storage})), match="implausibly many")


def test_zip_bomb_storage_is_refused(tmp_path):
    pkl = _pickle(_dict({"w": _tensor(0, (4,), (1,), storage="ByteStorage")}))
    data = _archive(pkl, {"0": bytes(80 << 20)}, compression=zipfile.ZIP_DEFLATED)
    assert len(data) < 1 << 20
    _refused(_write(tmp_path, data), match="zip bomb")


def test_members_that_share_bytes_are_refused(tmp_path):
    """Central-directory entries pointing at one member's bytes would count them again and again (a 2.4 MB file read
    as 4.2 GB): storage 1's entry is moved onto storage 0's."""
    pkl = _pickle(_dict({"a": _tensor(key="0"), "b": _tensor(key="1")}))
    data = bytearray(_archive(pkl, {"0": FOUR_HALVES, "1": FOUR_HALVES}))
    with zipfile.ZipFile(io.BytesIO(bytes(data))) as archive:
        first = archive.getinfo("archive/data/0").header_offset
    entry = data.index(b"PK\x01\x02")  # the first central-directory entry; then on to storage 1's
    while not data[entry + 46:].startswith(b"archive/data/1"):
        entry = data.index(b"PK\x01\x02", entry + 4)
    data[entry + 42:entry + 46] = struct.pack("<I", first)
    _refused(_write(tmp_path, bytes(data)), match="members overlap")


def test_weights_that_are_not_tensors(tmp_path):
    pkl = _pickle(_dict({"conv1.weight": _obj("not a tensor")}))
    _refused(_write(tmp_path, _archive(pkl)), load_sv_checkpoint, match="not a tensor")
    pkl = _pickle(_dict({"weight": _obj([1, 2]), "config": b"}"}))
    _refused(_write(tmp_path, _archive(pkl)), load_gpt_checkpoint, match="not a dict")


def test_a_state_dict_cannot_hide_its_weights_behind_its_own_state(tmp_path):
    """A pickle may BUILD attributes onto a dict: `items` set to a class made `items()` return nothing, so no
    weight was checked (found by a probe). Only torch's `_metadata` may be set, and it still loads."""
    ordered = _global("collections", "OrderedDict")
    hiding = ordered + b")R" + _obj("conv1.weight") + _obj("not a tensor") + b"s" + b"}(" + _obj("items") + ordered
    _refused(_write(tmp_path, _archive(_pickle(hiding + b"ub"))), load_sv_checkpoint, match="not a state dict")
    metadata = (ordered + b")R" + _obj("w") + _tensor(0, (4,), (1,)) + b"s" + b"}(" + _obj("_metadata")
                + _dict({"": _dict({"version": _obj(1)})}) + b"ub")
    loaded = read_torch_archive(_write(tmp_path, _archive(_pickle(metadata), {"0": FOUR_HALVES}), "meta.ckpt"))
    np.testing.assert_array_equal(loaded["w"], np.arange(4, dtype=np.float16))
    assert loaded._metadata == {"": {"version": 1}}


def test_scalar_where_a_matrix_is_expected(tmp_path):
    weights = _dict({"model.ar_text_embedding.word_embeddings.weight": _tensor(0, (), ())})
    pkl = _pickle(_dict({"weight": weights, "config": _dict({"model": b"}"})}))
    _refused(_write(tmp_path, _archive(pkl, {"0": FOUR_HALVES})), load_gpt_checkpoint, match="scalar")


@pytest.mark.parametrize("marker", [b"01", b"05"])
def test_version_marker_over_a_crafted_archive(tmp_path, marker):
    weights = _dict({"enc_p.text_embedding.weight": _tensor(0, (4, 4), (4, 1))})
    pkl = _pickle(_dict({"weight": weights, "config": _dict({"model": b"}"})}))
    data = _archive(pkl, {"0": FOUR_HALVES})
    _refused(_write(tmp_path, marker + data[2:], "marked.pth"), load_sovits_checkpoint, match="more than its storage")
    _refused(_write(tmp_path, marker + data[2:40], "short.pth"), load_sovits_checkpoint)
    _refused(_write(tmp_path, marker + b"\x00\x00", "tiny.pth"), load_sovits_checkpoint)


def test_sovits_config_model_not_a_dict(tmp_path):
    weights = _dict({"enc_p.text_embedding.weight": _tensor(0, (2, 2), (2, 1))})
    pkl = _pickle(_dict({"weight": weights, "config": _dict({"model": _obj([1])})}))
    _refused(_write(tmp_path, b"01" + _archive(pkl, {"0": FOUR_HALVES})[2:], "m.pth"), load_sovits_checkpoint,
             match="not a dict")


# ---------------------------------------------------------------------------------------------------------------
# safetensors headers


def _safetensors(header, body: bytes = b"", header_len: int | None = None) -> bytes:
    text = header if isinstance(header, bytes) else json.dumps(header).encode()
    return struct.pack("<Q", len(text) if header_len is None else header_len) + text + body


EIGHT = np.arange(2, dtype=np.float32).tobytes()


def test_crafted_safetensors_loads(tmp_path):
    data = _safetensors({"__metadata__": {"format": "pt"}, "a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
                         "b": {"dtype": "BOOL", "shape": [0, 3], "data_offsets": [8, 8]}}, EIGHT)
    loaded = read_safetensors(_write(tmp_path, data, "m.safetensors"))
    np.testing.assert_array_equal(loaded["a"], [0, 1])
    assert loaded["b"].shape == (0, 3)


@pytest.mark.parametrize("data, message", [
    (b"\x05\x00", "shorter than the 8-byte"),
    (_safetensors({}, b"", header_len=1000), "header length 1000 exceeds"),
    (_safetensors({}, b"", header_len=2**64 - 1), "exceeds the file"),
    (_safetensors(b"{not json"), "not JSON"),
    (_safetensors(b"\xff\xfe{}"), "not JSON"),
    (_safetensors([]), "not an object"),
    (_safetensors("text"), "not an object"),
    (_safetensors({"a": 5}, EIGHT), "entry is not an object"),
    (_safetensors({"a": {"dtype": "Q4", "shape": [2], "data_offsets": [0, 8]}}, EIGHT), "unknown dtype"),
    (_safetensors({"a": {"dtype": ["F32"], "shape": [2], "data_offsets": [0, 8]}}, EIGHT), "unknown dtype"),
    (_safetensors({"a": {"shape": [2], "data_offsets": [0, 8]}}, EIGHT), "unknown dtype"),
    (_safetensors({"a": {"dtype": "F32", "shape": [-2], "data_offsets": [0, 8]}}, EIGHT), "non-negative"),
    (_safetensors({"a": {"dtype": "F32", "shape": [2.0], "data_offsets": [0, 8]}}, EIGHT), "non-negative"),
    (_safetensors({"a": {"dtype": "F32", "shape": [True, 2], "data_offsets": [0, 8]}}, EIGHT), "non-negative"),
    (_safetensors({"a": {"dtype": "F32", "shape": 2, "data_offsets": [0, 8]}}, EIGHT), "non-negative"),
    (_safetensors({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 1000]}}, EIGHT), "outside the data"),
    (_safetensors({"a": {"dtype": "F32", "shape": [2], "data_offsets": [-8, 0]}}, EIGHT), "outside the data"),
    (_safetensors({"a": {"dtype": "F32", "shape": [0], "data_offsets": [8, 4]}}, EIGHT), "end before"),
    (_safetensors({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0]}}, EIGHT), "pair of integers"),
    (_safetensors({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0.0, 8.0]}}, EIGHT), "pair of integers"),
    (_safetensors({"a": {"dtype": "F32", "shape": [2], "data_offsets": "0-8"}}, EIGHT), "pair of integers"),
    (_safetensors({"a": {"dtype": "F32", "shape": [3], "data_offsets": [0, 8]}}, EIGHT), "needs 12"),
    (_safetensors({"a": {"dtype": "F32", "shape": [2**40, 2**40], "data_offsets": [0, 8]}}, EIGHT), "needs"),
    (_safetensors({"a": {"dtype": "F32", "shape": [1] * 100, "data_offsets": [0, 4]}}, EIGHT), "non-negative"),
    (_safetensors(b"[" * 100000 + b"]" * 100000), "not JSON|RecursionError"),
])
def test_bad_safetensors_are_refused(tmp_path, data, message):
    _refused(_write(tmp_path, data, "model.safetensors"), read_safetensors, match=message)


def test_bad_safetensors_in_a_hf_folder(tmp_path):
    (tmp_path / "config.json").write_text('{"model_type": "hubert"}')
    path = _write(tmp_path, _safetensors({"a": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}}, EIGHT),
                  "model.safetensors")
    _refused(path, lambda _: load_hf_weights(tmp_path), match="outside the data")
    (tmp_path / "config.json").write_text("[1, 2]")
    with pytest.raises(CheckpointError, match="expected a JSON object"):
        load_hf_weights(tmp_path)


# ---------------------------------------------------------------------------------------------------------------
# fuzzing real small checkpoints (bounded; benchmarks/fuzz_loaders.py runs longer)


def _seed_files(folder: Path) -> dict[str, bytes]:
    torch = pytest.importorskip("torch")
    safetensors = pytest.importorskip("safetensors.numpy")
    generator = torch.Generator().manual_seed(0)
    base = torch.randn(6, 8, generator=generator)
    sv = {"conv1.weight": base.half(), "conv1.t": base.t(), "bn.num_batches_tracked": torch.tensor(3),
          "bn.mask": torch.rand(5, generator=generator) > 0.5, "emb": torch.arange(10, dtype=torch.int64)[2:8:2],
          "bf": torch.ones(3, dtype=torch.bfloat16)}
    torch.save(sv, folder / "sv.ckpt")
    sovits = {"weight": {"enc_p.text_embedding.weight": torch.zeros(322, 2, dtype=torch.float16),
                         "dec.conv.weight": base[:3].half()},
              "config": {"model": {"inter_channels": 4}, "data": {"sampling_rate": 32000}}, "info": "tiny"}
    torch.save(sovits, folder / "sovits.pth")
    safetensors.save_file({"a": base.numpy(), "b": np.arange(5, dtype=np.int64), "c": np.zeros((0, 2), np.float16)},
                          str(folder / "model.safetensors"))
    return {"sv": (folder / "sv.ckpt").read_bytes(), "sovits": b"01" + (folder / "sovits.pth").read_bytes()[2:],
            "safetensors": (folder / "model.safetensors").read_bytes()}


@pytest.fixture(scope="module")
def seeds(tmp_path_factory):
    folder = tmp_path_factory.mktemp("fuzz_seeds")
    return folder, _seed_files(folder)


def _rezip(data: bytes, mutate_member) -> bytes:
    """Rewrite a torch zip with one member changed by `mutate_member(name, raw) -> raw` (CRCs recomputed)."""
    source = zipfile.ZipFile(io.BytesIO(b"PK" + data[2:]))
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as out:
        for info in source.infolist():
            out.writestr(info.filename, mutate_member(info.filename, source.read(info)))
    return data[:2] + buffer.getvalue()[2:]


def _flip(raw: bytes, edits: list[tuple[float, int]]) -> bytes:
    raw = bytearray(raw)
    for where, value in edits:
        if raw:
            raw[int(where * len(raw)) % len(raw)] = value
    return bytes(raw)


def mutate(data: bytes, kind: str, mutator: str, edits: list[tuple[float, int]], cut: float) -> bytes:
    """The byte mutators shared with benchmarks/fuzz_loaders.py."""
    if mutator == "bytes":
        return _flip(data, edits)
    if mutator == "truncate":
        return data[: int(cut * len(data))]
    if kind == "safetensors":
        (length,) = struct.unpack("<Q", data[:8])
        header, body = data[8 : 8 + length], data[8 + length :]
        if mutator == "member":  # the JSON header, length prefix kept consistent
            header = _flip(header, edits)
        else:  # the data area
            body = _flip(body, edits)[: max(0, int(cut * len(body) * 2))]
        return struct.pack("<Q", len(header)) + header + body
    if mutator == "member":  # the pickle, with valid CRCs so the unpickler sees it
        return _rezip(data, lambda name, raw: _flip(raw, edits) if name.endswith("data.pkl") else raw)
    # the storages resized: shorter, longer, odd lengths
    return _rezip(data, lambda name, raw: (raw * 2)[: int(cut * len(raw) * 2)] if "/data/" in name else raw)


LOADERS = {
    "sv": lambda path: load_sv_checkpoint(path).weights,
    "sovits": lambda path: load_sovits_checkpoint(path).weights,
    "safetensors": read_safetensors,
}


def check_result(result) -> None:
    assert isinstance(result, dict)
    for key, value in result.items():
        assert isinstance(key, str) and isinstance(value, np.ndarray)
        assert all(isinstance(n, int) and n >= 0 for n in value.shape)
        value.tobytes()  # every element is readable


@pytest.mark.parametrize("kind", sorted(LOADERS))
@settings(max_examples=200, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutator=st.sampled_from(["bytes", "truncate", "member", "storage"]),
       edits=st.lists(st.tuples(st.floats(0, 1, exclude_max=True), st.integers(0, 255)), min_size=1, max_size=8),
       cut=st.floats(0, 1))
def test_fuzzed_checkpoints_load_or_raise_checkpoint_errors(seeds, kind, mutator, edits, cut):
    folder, data = seeds
    path = folder / f"fuzzed-{kind}"
    path.write_bytes(mutate(data[kind], kind, mutator, edits, cut))
    try:
        result = LOADERS[kind](path)
    except CheckpointError as exc:
        assert "\n" not in str(exc)
        return
    check_result(result)


def test_fuzz_seeds_load(seeds):
    folder, data = seeds
    for kind, loader in LOADERS.items():
        path = folder / f"seed-{kind}"
        path.write_bytes(data[kind])
        check_result(loader(path))


# ---------------------------------------------------------------------------------------------------------------
# configs and weights that would size a model before its shapes were compared (probe of session 27)


def test_integer_weights_are_not_cast_to_floats(tmp_path):
    """A storage type swapped to ShortStorage made every GPT weight a large integer that exported and passed."""
    name = "model.ar_text_embedding.word_embeddings.weight"
    weights = _dict({name: _tensor(0, (2, 2), (2, 1), storage="ShortStorage")})
    pkl = _pickle(_dict({"weight": weights, "config": _dict({"model": _dict({})})}))
    _refused(_write(tmp_path, _archive(pkl, {"0": bytes(8)})), load_gpt_checkpoint, match="stored as int16")


def _hubert_folder(gpt_sovits_set, tmp_path, **changes) -> Path:
    folder = tmp_path / "hubert"
    source = gpt_sovits_set / "models" / "chinese-hubert-base"
    folder.mkdir()
    for path in source.iterdir():
        (folder / path.name).write_bytes(path.read_bytes())
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, **changes}))
    return folder


@pytest.mark.parametrize("changes, message", [
    ({"intermediate_size": 10_000_000}, "intermediate_size = 10000000 is not a whole number"),
    ({"hidden_size": "768"}, "hidden_size = '768' is not a whole number"),
    ({"num_attention_heads": -1}, "num_attention_heads = -1"),
    ({"num_hidden_layers": 1000}, "missing weights"),  # a model the file's weights do not fill: refused unbuilt
    ({"conv_dim": [4, 4]}, "cannot build a model"),  # transformers' own validation (conv lists of one length)
])
def test_a_crafted_hubert_config_is_refused_before_building(gpt_sovits_set, tmp_path, changes, message):
    from edgevoice_export.gpt_sovits.models.ssl import HubertContent

    with pytest.raises(CheckpointError, match=message) as error:
        HubertContent.from_dir(_hubert_folder(gpt_sovits_set, tmp_path, **changes))
    assert "\n" not in str(error.value)


def test_a_zero_element_speaker_model_cannot_claim_any_width():
    """Zero-element tensors cost nothing yet claimed a stem 1000 wide: the model is sized on torch's meta device."""
    from edgevoice_export.gpt_sovits.models.sv import ERes2NetV2Trunk

    weights = {"conv1.weight": np.zeros((1000, 0, 3, 3), np.float32),
               "fuse34.local_att.0.weight": np.zeros((0,), np.float32),
               **{f"layer{stage}.0.conv1.weight": np.zeros((0,), np.float32) for stage in range(1, 5)}}
    with pytest.raises(CheckpointError, match="ERes2NetV2 weights"):
        ERes2NetV2Trunk.from_weights(weights, "sv.ckpt")


def test_a_wide_encodec_config_is_refused_before_building(metavoice_set):
    from edgevoice_export.metavoice.encodec import EncodecDecoder

    models = metavoice_set / "models"
    config = json.loads((models / "encodec_config.json").read_text())
    weights = read_torch_archive(models / "encodec_24khz_reduced.pt")
    with pytest.raises(CheckpointError, match="the configuration implies"):
        EncodecDecoder.from_state_dict(weights, {**config, "kwargs": {**config["kwargs"], "n_filters": 1024}},
                                       "encodec.pt")


def test_non_finite_outputs_fail_the_export_parity_check():
    """NaN compared as no difference at all: a NaN SoVITS weight exported with 'rel 0.0'."""
    import torch

    from edgevoice.bundle import TensorSpec
    from edgevoice_export.graphs import GraphSpec
    from edgevoice_export.onnx_export import compare

    spec = GraphSpec("g", torch.nn.Identity(), [TensorSpec("x", "float32", ["n"])], [TensorSpec("y", "float32", ["n"])],
                     examples=[(torch.ones(3),)])
    result = compare(spec, "test", lambda feeds: [np.array([1.0, np.nan, 1.0], np.float32)])
    assert result.max_rel == float("inf")


def test_yaml_aliases_are_refused(tmp_path):
    """Nine levels of twenty aliases made a config of ~5e11 leaves that the size check walked for minutes."""
    from edgevoice_export.emotivoice.checkpoints import load_yaml

    levels = ["a0: &a0 [1, 2]"] + [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 20)}]" for i in range(1, 10)]
    path = tmp_path / "config.yaml"
    path.write_text("\n".join(levels) + "\nmodel: {x: *a9}\n")
    _refused(path, load_yaml, match="may not use YAML aliases")


def test_a_speaker_encoder_of_zero_size_is_refused(tmp_path):
    from edgevoice_export.metavoice.checkpoints import load_speaker_encoder

    empty = {"lstm.weight_ih_l0": _tensor(0, (0, 40), (40, 1), storage="FloatStorage"),
             "lstm.weight_hh_l0": _tensor(0, (0, 0), (0, 1), storage="FloatStorage"),
             "lstm.bias_ih_l0": _tensor(0, (0,), (1,), storage="FloatStorage"),
             "lstm.bias_hh_l0": _tensor(0, (0,), (1,), storage="FloatStorage"),
             "linear.weight": _tensor(0, (4, 0), (0, 1), storage="FloatStorage"),
             "linear.bias": _tensor(0, (4,), (1,), storage="FloatStorage")}
    pkl = _pickle(_dict({"model_state": _dict(empty)}))
    _refused(_write(tmp_path, _archive(pkl, {"0": bytes(16)}), "se.pt"), load_speaker_encoder,
             match="every size must be at least 1")


def test_weight_norm_of_a_zero_slice_is_a_damaged_checkpoint():
    """g / ||v|| with a zero row made inf weights; the export then blamed the configuration."""
    from edgevoice_export.emotivoice.checkpoints import fold_weight_norm

    pair = {"conv.weight_g": np.ones((2, 1, 1), np.float32), "conv.weight_v": np.ones((2, 3, 3), np.float32)}
    pair["conv.weight_v"][1] = 0
    with pytest.raises(CheckpointError, match="weight norm of conv is undefined"):
        fold_weight_norm(pair, "g_0001")


@pytest.mark.parametrize("pkl", [
    b"\x80\x02cutils\nHParams\n(N}X\x08\x00\x00\x00pollutedX\x03\x00\x00\x00yesstb.",
    b"\x80\x02ctorch._utils\n_rebuild_parameter\n(N}X\x0c\x00\x00\x00__defaults__(I1\ntstb.",
])
def test_a_checkpoint_cannot_change_the_loader_for_later_files(tmp_path, pkl):
    """pickle's BUILD on the admitted class or function itself (with slot state) set attributes on the loader's own
    objects, for every later file in the process: each file now gets copies."""
    import edgevoice_export.checkpoints as loader

    try:
        read_torch_archive(_write(tmp_path, _archive(pkl)))
    except CheckpointError:
        pass  # refusing it is fine too; what matters is what is left behind
    assert not hasattr(loader.HParams, "polluted")
    assert loader._rebuild_parameter.__defaults__ is None
    assert read_torch_archive(_write(tmp_path, _archive(_pickle(_dict({"w": _tensor()})), {"0": FOUR_HALVES}),
                                     "good.ckpt"))["w"].tolist() == [0, 1, 2, 3]


def test_an_old_torch_file_is_named_as_such(tmp_path):
    """torch.save before 1.6 wrote bare pickles led by a magic number: the error says so and how to convert it."""
    legacy = b"\x80\x02\x8a\x0al\xfc\x9cF\xf9 j\xa8P\x19.\x80\x02M\xe9\x03.}q\x00."
    _refused(_write(tmp_path, legacy, "old.pth"), match=r"old \(pre-1.6, not zip\) format")
    _refused(_write(tmp_path, b"\x80\x02}q\x00.", "pickle.pth"), match="no zip archive inside")


def test_hparams_rebuilt_the_old_way_still_loads(tmp_path):
    """Protocol 0/1 pickles rebuild a config as copyreg._reconstructor(utils.HParams, object, None): with each file's
    own copy of HParams (see above) that must still be admitted."""
    from edgevoice_export.checkpoints import HParams

    config = _call(_global("copyreg", "_reconstructor"), _global("utils", "HParams"), _global("builtins", "object"),
                   b"N") + _dict({"a": _obj(1)}) + b"b"
    pkl = _pickle(_dict({"weight": _dict({"w": _tensor()}), "config": config}))
    loaded = read_torch_archive(_write(tmp_path, _archive(pkl, {"0": FOUR_HALVES})))
    assert isinstance(loaded["config"], HParams) and loaded["config"]["a"] == 1


@pytest.mark.parametrize("max_sec", ["54", -1, float("nan"), True])
def test_a_gpt_token_limit_that_is_no_duration_is_refused_before_export(tmp_path, max_sec):
    """`data.max_sec` was only checked in the finished bundle's manifest, after the whole export had run."""
    weights = _dict({"model.ar_text_embedding.word_embeddings.weight": _tensor(0, (2, 2), (2, 1))})
    config = _dict({"model": _dict({}), "data": _dict({"max_sec": _obj(max_sec)})})
    pkl = _pickle(_dict({"weight": weights, "config": config}))
    _refused(_write(tmp_path, _archive(pkl, {"0": FOUR_HALVES})), load_gpt_checkpoint, match="data.max_sec must be")
