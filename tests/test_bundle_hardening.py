"""A bundle is a closed box: nothing its manifest says may reach outside its folder or past its checks."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest

import edgevoice.bundle as bundle_module
from edgevoice.bundle import (MANIFEST, MANIFEST_HASH, Bundle, GraphEntry, Manifest, TensorSpec, path_problem,
                              write_manifest)
from edgevoice.errors import BundleError


def _make_bundle(folder: Path) -> Path:
    folder.mkdir()
    for name, content in {"g.xml": b"<net/>", "g.bin": b"\x00" * 16, "g.onnx": b"onnx",
                          "bert_vocab.txt": b"[PAD]\n"}.items():
        (folder / name).write_bytes(content)
    (folder / "sub").mkdir()
    (folder / "sub" / "extra.bin").write_bytes(b"extra")
    graph = GraphEntry("g", {"openvino": "g.xml", "onnx": "g.onnx"}, "fp32",
                       [TensorSpec("x", "float32", [1, "n"])], [TensorSpec("y", "float32", [1])],
                       {"openvino": {"INFERENCE_PRECISION_HINT": "f32", "KV_CACHE_PRECISION": "f32"}})
    manifest = Manifest(family="gpt-sovits", upstream_version="v2", sample_rate=32000, symbols=["a", "b"],
                        model={"bert": {"vocab_file": "bert_vocab.txt"}, "n_layer": 2}, graphs={"g": graph},
                        defaults={"top_k": 5}, sources={"gpt": {"file": "s1.ckpt", "sha256": "0" * 64}})
    write_manifest(folder, manifest)
    return folder


@pytest.fixture
def bundle(tmp_path) -> Path:
    return _make_bundle(tmp_path / "bundle")


@pytest.fixture
def outside(tmp_path) -> Path:
    """A file outside the bundle with the same bytes as the bundle's g.bin (so a hash check alone would pass)."""
    path = tmp_path / "outside.bin"
    path.write_bytes(b"\x00" * 16)
    return path


@pytest.fixture
def hashed(monkeypatch) -> list:
    """Every file `Bundle.load` hashes: a refused manifest must be refused before any is opened."""
    calls = []
    original = bundle_module.sha256_file

    def recording(path, *args, **kwargs):
        calls.append(Path(path))
        return original(path, *args, **kwargs)

    monkeypatch.setattr(bundle_module, "sha256_file", recording)
    return calls


def _manifest(folder: Path) -> dict:
    return json.loads((folder / MANIFEST).read_text(encoding="utf-8"))


def _rewrite(folder: Path, data, rehash: bool = True) -> None:
    """Replace the manifest (as an attacker would, with a matching manifest.sha256 unless `rehash` is off)."""
    raw = json.dumps(data).encode("utf-8")
    (folder / MANIFEST).write_bytes(raw)
    if rehash:
        (folder / MANIFEST_HASH).write_text(f"{hashlib.sha256(raw).hexdigest()}  {MANIFEST}\n")


def _refused(folder: Path, match: str, verify: bool = True) -> BundleError:
    with pytest.raises(BundleError, match=match) as error:
        Bundle.load(folder, verify=verify)
    assert "\n" not in str(error.value) and "\r" not in str(error.value) and len(str(error.value)) < 700
    return error.value


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# ---------------------------------------------------------------------------------------------------------------


def test_clean_bundle_loads(bundle):
    assert (bundle / MANIFEST_HASH).read_text().split()[0] == _sha(bundle / MANIFEST)
    loaded = Bundle.load(bundle)
    assert set(loaded.manifest.files) == {"g.xml", "g.bin", "g.onnx", "bert_vocab.txt", "sub/extra.bin"}
    assert loaded.file("g.xml") == bundle / "g.xml"
    assert loaded.file("sub/extra.bin") == bundle / "sub" / "extra.bin"
    assert loaded.graph("g").runtime_options["openvino"]["KV_CACHE_PRECISION"] == "f32"
    assert loaded.manifest.graphs["g"].inputs[0].shape == [1, "n"]
    Bundle.load(bundle, verify=False)


def test_bundle_without_manifest_hash_still_loads(bundle):
    (bundle / MANIFEST_HASH).unlink()  # written by an older edgevoice
    Bundle.load(bundle)


def test_manifest_edited_after_writing(bundle):
    data = _manifest(bundle)
    data["defaults"]["top_k"] = 50
    _rewrite(bundle, data, rehash=False)
    _refused(bundle, r"manifest.json: corrupt manifest \(it does not match manifest.sha256")
    Bundle.load(bundle, verify=False)  # --no-verify skips every hash, the manifest's too


@pytest.mark.parametrize("content", ["", "zz  manifest.json\n", "0" * 63 + "  manifest.json", "é" * 64])
def test_malformed_manifest_hash(bundle, content):
    (bundle / MANIFEST_HASH).write_text(content, encoding="utf-8")
    _refused(bundle, "manifest.sha256: malformed")


def test_manifest_and_its_hash_may_not_be_links(bundle, tmp_path):
    real = tmp_path / "elsewhere.json"
    real.write_bytes((bundle / MANIFEST).read_bytes())
    (bundle / MANIFEST).unlink()
    (bundle / MANIFEST).symlink_to(real)
    _refused(bundle, "no manifest.json")
    (bundle / MANIFEST).unlink()
    real.rename(bundle / MANIFEST)
    (tmp_path / "hash").write_bytes((bundle / MANIFEST_HASH).read_bytes())
    (bundle / MANIFEST_HASH).unlink()
    (bundle / MANIFEST_HASH).symlink_to(tmp_path / "hash")
    _refused(bundle, "manifest.sha256: not a regular file")


# ---------------------------------------------------------------------------------------------------------------
# paths named by the manifest


@pytest.mark.parametrize("name, problem", [
    ("../outside.bin", "'..' part"),
    ("sub/../g.bin", "'..' part"),
    ("./g.bin", "'..' part"),
    ("sub//extra.bin", "empty"),
    ("sub/", "empty"),
    ("", "empty"),
    ("/etc/passwd", "absolute"),
    ("..\\outside.bin", "backslash"),
    ("C:/Windows/win.ini", "drive"),
    ("g.bin\nx", "control"),
    (5, "not a path string"),
    (None, "not a path string"),
])
def test_path_problems(name, problem):
    assert problem in path_problem(name)


@pytest.mark.parametrize("graph_file", ["../outside.bin", "OUTSIDE", "/etc/passwd", "sub/../../outside.bin",
                                        "..\\outside.bin"])
def test_graph_files_outside_the_bundle(bundle, outside, hashed, graph_file):
    graph_file = str(outside) if graph_file == "OUTSIDE" else graph_file
    data = _manifest(bundle)
    data["graphs"]["g"]["files"]["openvino"] = graph_file
    data["files"][graph_file] = _sha(outside)  # listed, with the right hash: still refused
    _rewrite(bundle, data)
    error = _refused(bundle, "a bundle may only name plain relative paths")
    assert repr(graph_file)[:40] in str(error)
    assert hashed == []  # refused before any file was opened


@pytest.mark.parametrize("key", ["/etc/passwd", "../../../../etc/passwd", "/etc/shadow"])
def test_files_entry_naming_a_system_file(bundle, hashed, key):
    data = _manifest(bundle)
    data["files"][key] = "0" * 64
    _rewrite(bundle, data)
    _refused(bundle, "file '.*passwd'|file '/etc/shadow'")
    assert hashed == []  # whether /etc/shadow exists or is readable is never probed


def test_symlinked_file_pointing_outside(bundle, outside, hashed):
    (bundle / "g.bin").unlink()
    (bundle / "g.bin").symlink_to(outside)  # same bytes, so the listed sha256 matches
    _refused(bundle, "file g.bin goes through the symlink g.bin")
    assert hashed == []


def test_symlink_to_a_file_inside_the_bundle(bundle):
    (bundle / "g.bin").unlink()
    (bundle / "g.bin").symlink_to(bundle / "sub" / "extra.bin")
    _refused(bundle, "symlink")


def test_symlinked_subfolder(bundle, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    (bundle / "sub").rename(elsewhere)
    (bundle / "sub").symlink_to(elsewhere, target_is_directory=True)
    _refused(bundle, "file sub/extra.bin goes through the symlink sub")


def test_listed_path_that_is_a_folder(bundle):
    data = _manifest(bundle)
    data["files"]["sub"] = "0" * 64
    _rewrite(bundle, data)
    _refused(bundle, "file sub is not a regular file")


def test_missing_file(bundle):
    (bundle / "g.onnx").unlink()
    _refused(bundle, "missing file g.onnx")
    (bundle / "sub" / "extra.bin").unlink()
    (bundle / "sub").rmdir()
    (bundle / "sub").write_bytes(b"not a folder")
    _refused(bundle, "missing file")


def test_graph_file_not_listed(bundle):
    data = _manifest(bundle)
    data["graphs"]["g"]["files"]["onnx"] = "other.onnx"
    _rewrite(bundle, data)
    _refused(bundle, "graph 'g' onnx file other.onnx is not listed in the manifest")


@pytest.mark.parametrize("vocab, match", [("../vocab.txt", "model.bert.vocab_file '../vocab.txt'"),
                                          ("/etc/passwd", "absolute"), (7, "not a path string"),
                                          ("unlisted.txt", "not listed")])
def test_other_files_the_manifest_names(bundle, vocab, match):
    data = _manifest(bundle)
    data["model"]["bert"]["vocab_file"] = vocab
    _rewrite(bundle, data)
    _refused(bundle, match)


def test_file_returns_only_listed_files(bundle, outside):
    loaded = Bundle.load(bundle)
    (bundle / "unlisted.txt").write_text("x")
    for rel in ["unlisted.txt", MANIFEST, "../outside.bin", str(outside), "/etc/passwd", "sub", 5, None]:
        with pytest.raises(BundleError, match="not a file listed in the bundle manifest") as error:
            loaded.file(rel)
        assert "\n" not in str(error.value)
    # swapped for a link after loading: caught when the file is asked for
    (bundle / "g.bin").unlink()
    (bundle / "g.bin").symlink_to(outside)
    with pytest.raises(BundleError, match="symlink"):
        loaded.file("g.bin")


def test_write_manifest_refuses_links(bundle, outside):
    (bundle / "link.bin").symlink_to(outside)
    manifest = Bundle.load(bundle).manifest
    with pytest.raises(BundleError, match="link.bin is a symlink"):
        write_manifest(bundle, manifest)


# ---------------------------------------------------------------------------------------------------------------
# runtime options


@pytest.mark.parametrize("options, match", [
    ({"openvino": {"CACHE_DIR": "/tmp/anywhere"}}, "'CACHE_DIR' may not be set by a bundle"),
    ({"openvino": {"CACHE_DIR": "cache"}}, "'CACHE_DIR' may not be set"),
    ({"openvino": {"WEIGHTS_PATH": "x.bin"}}, "'WEIGHTS_PATH' may not be set"),
    ({"openvino": {"SOME_FUTURE_OPTION": 1}}, "may not be set"),
    ({"onnxruntime": {"optimized_model_filepath": "/tmp/x.onnx"}}, "onnxruntime option 'optimized_model_filepath' may "
                                                                    "not be set"),
    ({"onnxruntime": {"session.intra_op.allow_spinning": "yes"}}, "must be \"0\" or \"1\""),
    ({"onnxruntime": {"session.intra_op.allow_spinning": 1}}, "must be \"0\" or \"1\""),
    ({"tensorrt": {"x": "1"}}, "unknown option group 'tensorrt'"),
    ({"openvino": {"INFERENCE_PRECISION_HINT": "../f32"}}, "not a plain option value"),
    ({"openvino": {"INFERENCE_PRECISION_HINT": "C:\\x"}}, "not a plain option value"),
    ({"openvino": {"INFERENCE_PRECISION_HINT": ["f32"]}}, "must be a string, number or boolean"),
    ({"openvino": {"NUM_STREAMS": {"a": 1}}}, "must be a string, number or boolean"),
    ({"openvino": {"NUM_STREAMS": None}}, "must be a string, number or boolean"),
    # allow-listed but a value OpenVINO refuses: every run would fail, and quantize would copy it
    ({"openvino": {"INFERENCE_NUM_THREADS": -5}}, r"INFERENCE_NUM_THREADS'\] = -5 is not a value OpenVINO takes"),
    ({"openvino": {"INFERENCE_NUM_THREADS": 10 ** 9}}, "a whole number 0…65536"),
    ({"openvino": {"INFERENCE_PRECISION_HINT": "fp32"}}, r"f32, bf16, f16, dynamic or undefined"),
    ({"openvino": {"KV_CACHE_PRECISION": "i8"}}, r"f32, bf16, f16, u8 or u4"),
    ({"openvino": {"PERFORMANCE_HINT": "latency"}}, "LATENCY, THROUGHPUT or CUMULATIVE_THROUGHPUT"),
    ({"openvino": {"ENABLE_CPU_PINNING": 2}}, "a boolean, YES or NO"),
    ({"openvino": {"NUM_STREAMS": 1.5}}, "AUTO or NUMA"),
    ({"openvino": []}, "must be an object"),
    ([], "must be an object"),
])
def test_runtime_options_are_allow_listed(bundle, hashed, options, match):
    data = _manifest(bundle)
    data["graphs"]["g"]["runtime_options"] = options
    _rewrite(bundle, data)
    _refused(bundle, match)
    assert hashed == []


@pytest.mark.parametrize("engine, files, states, match", [
    ("tensorrt", None, None, "engine 'tensorrt' is not one of"),
    (["onnxruntime"], None, None, "engine must be a string"),
    ("onnxruntime", {"openvino": "g.xml"}, None, "runs on onnxruntime but has no ONNX file"),
    ("onnxruntime", {"openvino": "g.xml", "onnx": "g.bin"}, {"cache": "present_key.0"}, "is stateful"),
])
def test_graph_engine_is_checked(bundle, hashed, engine, files, states, match):
    data = _manifest(bundle)
    data["graphs"]["g"]["engine"] = engine
    if files:
        data["graphs"]["g"]["files"] = files
    if states:
        data["graphs"]["g"]["states"] = states
    _rewrite(bundle, data)
    _refused(bundle, match)
    assert hashed == []


def test_backend_never_takes_paths_from_the_bundle(tmp_path, monkeypatch):
    pytest.importorskip("openvino")
    import edgevoice.cpu
    from edgevoice.backends import OpenVINOBackend

    (tmp_path / "cpuinfo").write_text("flags : avx2 avx512f avx512_bf16\n")  # a bundle's bf16 is kept only here
    monkeypatch.setattr(edgevoice.cpu, "CPUINFO", tmp_path / "cpuinfo")

    graph = GraphEntry("g", {"openvino": "g.xml"}, "fp32", [], [], {"openvino": {"CACHE_DIR": str(tmp_path)}})
    with pytest.raises(BundleError, match="CACHE_DIR"):
        OpenVINOBackend(threads=1).config_for(graph)  # a GraphEntry built by hand is checked too
    graph.runtime_options = {"openvino": {"KV_CACHE_PRECISION": "f32", "INFERENCE_PRECISION_HINT": "bf16"}}
    config = OpenVINOBackend(threads=1, cache_dir=str(tmp_path / "mine")).config_for(graph)
    assert config["CACHE_DIR"] == str(tmp_path / "mine") and config["KV_CACHE_PRECISION"] == "f32"
    assert config["INFERENCE_PRECISION_HINT"] == "bf16"
    assert "CACHE_DIR" not in OpenVINOBackend(threads=1).config_for(graph)


def test_backend_refuses_an_unlisted_ir_weights_file(bundle, outside):
    pytest.importorskip("openvino")
    from edgevoice.backends import OpenVINOBackend

    data = _manifest(bundle)
    del data["files"]["g.bin"]  # OpenVINO would open g.bin beside g.xml on its own
    _rewrite(bundle, data)
    (bundle / "g.bin").unlink()
    (bundle / "g.bin").symlink_to(outside)
    loaded = Bundle.load(bundle)
    with pytest.raises(BundleError, match="'g.bin' is not a file listed"):
        OpenVINOBackend(threads=1).session(loaded, "g")


def _graph_with_external_weights(folder: Path, location: str, in_subgraph: bool) -> bytes:
    """y = x + w with `w` stored in the file `location` beside the graph (inside an `If` branch with
    `in_subgraph`), as onnx writes external data; returns the weights' bytes."""
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper

    weights = np.arange(4, dtype=np.float32)
    tensor = numpy_helper.from_array(weights, "w")
    tensor.ClearField("raw_data")
    tensor.data_location = TensorProto.EXTERNAL
    tensor.external_data.add(key="location", value=location)
    tensor.external_data.add(key="length", value=str(weights.nbytes))
    (folder / location).write_bytes(weights.tobytes())
    x, y = helper.make_tensor_value_info("x", TensorProto.FLOAT, [4]), helper.make_tensor_value_info("y", 1, [4])
    if in_subgraph:
        branch = helper.make_graph([helper.make_node("Add", ["x", "w"], ["y"])], "branch", [], [y], [tensor])
        other = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "other", [], [y])
        flag = numpy_helper.from_array(np.array(True), "flag")
        nodes = [helper.make_node("If", ["flag"], ["y"], then_branch=branch, else_branch=other)]
        graph = helper.make_graph(nodes, "g", [x], [y], [flag])
    else:
        graph = helper.make_graph([helper.make_node("Add", ["x", "w"], ["y"])], "g", [x], [y], [tensor])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    (folder / "g.onnx").write_bytes(model.SerializeToString())
    return weights.tobytes()


@pytest.mark.parametrize("in_subgraph", [False, True])
def test_onnxruntime_reads_no_weights_file_the_manifest_does_not_list(bundle, in_subgraph):
    """onnxruntime opens a graph's external-data files on its own: a probe re-saved a graph with its weights in
    `hidden.dat`, listed only the graph, and changed the weights unnoticed. Every location (subgraphs too) must be
    a listed, hashed file."""
    pytest.importorskip("onnx")
    import numpy as np

    from edgevoice.backends import OnnxRuntimeBackend
    from edgevoice.onnx_files import external_data_locations

    _graph_with_external_weights(bundle, "hidden.dat", in_subgraph)
    assert external_data_locations((bundle / "g.onnx").read_bytes()) == {"hidden.dat"}
    data = _manifest(bundle)
    data["files"]["g.onnx"] = _sha(bundle / "g.onnx")
    _rewrite(bundle, data)
    with pytest.raises(BundleError, match="keeps weights in 'hidden.dat', a file the manifest does not list"):
        OnnxRuntimeBackend(threads=1).session(Bundle.load(bundle), "g")
    data["files"]["hidden.dat"] = _sha(bundle / "hidden.dat")
    _rewrite(bundle, data)
    session = OnnxRuntimeBackend(threads=1).session(Bundle.load(bundle), "g")
    np.testing.assert_array_equal(session.run({"x": np.ones(4, np.float32)})["y"], np.arange(1, 5))
    (bundle / "hidden.dat").write_bytes(bytes(16))  # changed after loading: the lazy hash check on opening
    with pytest.raises(BundleError, match="hidden.dat does not match its sha256"):
        OnnxRuntimeBackend(threads=1).session(Bundle.load(bundle, lazy=True), "g")


@pytest.mark.parametrize("data", [b"\x0a\xff\xff\xff", b"\x3a\x02\x2a", b"\x0b", b"\x3a" + b"\x80" * 11])
def test_a_malformed_graph_is_refused_before_onnxruntime_opens_it(data):
    from edgevoice.onnx_files import MalformedGraph, external_data_locations

    with pytest.raises(MalformedGraph):
        external_data_locations(data)


# ---------------------------------------------------------------------------------------------------------------
# manifests of the wrong shape


@pytest.mark.parametrize("data", [[], "manifest", None, 1, True])
def test_manifest_that_is_not_an_object(bundle, data):
    _rewrite(bundle, data)
    _refused(bundle, "corrupt manifest \\(expected a JSON object")


def _set(path: str, value):
    def edit(data):
        *parents, last = path.split(".") if path != "files.g.xml" else ("files", "g.xml")
        node = data
        for key in parents:
            node = node[key]
        if value is KeyError:
            del node[last]
        else:
            node[last] = value
    return edit


@pytest.mark.parametrize("edit, match", [
    (_set("graphs", []), "graphs must be an object"),
    (_set("graphs.g", 5), "graph 'g' must be an object"),
    (_set("graphs.g.files", ["g.xml"]), "graph 'g' files must be an object"),
    (_set("graphs.g.files.openvino", {"path": "g.xml"}), r"graph 'g' files\['openvino'\] must be a string"),
    (_set("graphs.g.files", {"openvino\nx": "g.xml"}), r"graph 'g' files: 'openvino\\nx' is not a file format name"),
    (_set("graphs.g.inputs", [{"name": "x\n" * 1000, "dtype": 5, "shape": []}]), "dtype must be a string"),
    (_set("graphs.g.precision", 16), "graph 'g' precision must be a string"),
    (_set("graphs.g.inputs", "x"), "graph 'g' inputs must be a list"),
    (_set("graphs.g.inputs", ["x"]), "graph 'g' input must be an object"),
    (_set("graphs.g.inputs", [{"name": "x", "dtype": "float32"}]), "has no 'shape'"),
    (_set("graphs.g.outputs", [{"name": "y", "dtype": "float32", "shape": "n"}]), "shape must be a list"),
    (_set("graphs.g.outputs", [{"name": "y", "dtype": "float32", "shape": [-1]}]), "negative axis"),
    (_set("graphs.g.outputs", [{"name": "y", "dtype": "float32", "shape": [1.5]}]), "integer or a name"),
    (_set("graphs.g.states", {"k": 1}), "states"),
    (_set("graphs.g.accuracy", []), "accuracy must be an object"),
    (_set("graphs.g.precision", KeyError), "graph 'g' has no 'precision'"),
    (_set("files", []), "files must be an object"),
    (_set("files.g.xml", 5), "must be a string"),
    (_set("files.g.xml", "abc"), "not 64 lowercase hex digits"),
    (_set("sample_rate", "32000"), "sample_rate must be an integer"),
    (_set("sample_rate", True), "sample_rate must be an integer"),
    (_set("sample_rate", -1), "sample_rate must be 1…384000 Hz"),
    (_set("sample_rate", 10 ** 13), "sample_rate must be 1…384000 Hz, found 10000000000000"),  # a probe's
    (_set("symbols", [1]), "each symbol must be a string"),
    (_set("symbols", "ab"), "symbols must be a list"),
    (_set("model", []), "model must be an object"),
    (_set("defaults", None), "defaults must be an object"),
    (_set("extra", 3), "extra must be an object"),
    (_set("family", 3), "family must be a string"),
    (_set("sources", {"gpt": "x"}), "source 'gpt' must be an object"),
    (_set("sources", {"gpt": {"file": "s1.ckpt"}}), "source 'gpt' sha256 must be a string"),
    (_set("sources", {"gpt": {"file": "../s1.ckpt", "sha256": "0"}}), "not a plain file name"),
    (_set("sources", {"gpt": {"file": "a/s1.ckpt", "sha256": "0"}}), "not a plain file name"),
    (_set("graphs", KeyError), "no 'graphs'"),
    (_set("format_version", True), "format version True is not supported"),
    (_set("format_version", "1"), "format version '1' is not supported"),
    (_set("format", ["edgevoice-bundle"]), "not an edgevoice bundle manifest"),
])
def test_manifest_with_wrong_types(bundle, edit, match):
    data = _manifest(bundle)
    edit(data)
    _rewrite(bundle, data)
    _refused(bundle, match)


def test_graph_entry_from_json_raises_bundle_errors():
    for bad in [None, [], {"files": {}}, {"files": 1, "precision": "fp32", "inputs": [], "outputs": []}]:
        with pytest.raises(BundleError):
            GraphEntry.from_json("g", bad)
    with pytest.raises(BundleError):
        Manifest.from_json([], Path("manifest.json"))


def test_non_json_and_non_utf8_manifests(bundle):
    (bundle / MANIFEST).write_bytes(b"\xff\xfe{")
    os.unlink(bundle / MANIFEST_HASH)
    _refused(bundle, "corrupt manifest")
    (bundle / MANIFEST).write_bytes(b"[" * 100000 + b"]" * 100000)
    _refused(bundle, "corrupt manifest")
