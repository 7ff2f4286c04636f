"""Fuzz the untrusted-file loaders for a while: checkpoints (torch zip, SoVITS-marked, safetensors) and bundles.

    python benchmarks/fuzz_loaders.py --minutes 10 [--workers 2] [--batch 400] [--seed 0] [--keep DIR]

Not run in CI (tests/test_checkpoint_hardening.py and tests/test_bundle_hardening.py run a bounded version). Seed
files are written once (torch and safetensors are needed for that), then worker subprocesses load mutated copies
in batches. A worker that dies on a signal (a segfault in numpy/zipfile/OpenVINO-free code would be one), exits
oddly or runs past its time limit is counted as a crash or hang and the input it was on is kept. The expected
outcomes are a successful load (which is then checked: arrays whose every byte reads; bundle files that resolve
inside the folder without links, allow-listed options) or CheckpointError / BundleError; anything else is an
"other exception" and its traceback's last line is kept.

The checkpoint mutators are the ones of tests/test_checkpoint_hardening.py (`mutate`: byte flips, truncation,
pickle bytes with valid CRCs, resized storages, safetensors header/data area), plus JSON-aware ones here that set
safetensors header values and pickle integers to boundary values; the bundle mutators edit manifest.json as JSON
(paths that escape, symlink names, forbidden options, wrong types), flip its bytes, or tamper with the folder
(symlinks in and out, files swapped for folders), re-signing manifest.sha256 most of the time as an attacker would.
"""

from __future__ import annotations

import argparse
import collections
import copy
import hashlib
import importlib.util
import json
import os
import random
import shutil
import struct
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CHECKPOINT_KINDS = ("sv", "gpt", "sovits", "safetensors")
KINDS = CHECKPOINT_KINDS + ("bundle",)
OUTCOMES = {".": "ok", "c": "CheckpointError", "b": "BundleError", "o": "other exception"}
INTERESTING = [-1, 0, 1, 2, 3, 7, 255, 2**16, 2**31 - 1, 2**31, 2**32, 2**62, 2**63 - 1, 2**63, 2**64, -2**63,
               1e300, 0.5, float("nan"), True, None, "", "x", "F32", "Q4", [], {}, [0], [-1], [2**62, 2**62],
               [0, 2**63], [8, 0], "../x", "/etc/passwd"]
BUNDLE_STRINGS = ["../outside.bin", "/etc/passwd", "sub/../g.bin", "./g.bin", "sub//extra.bin", "", "link.bin",
                  "linkdir/x.bin", "g.bin\n", "..\\g.bin", "C:/x", "sub", "g.bin", "sub/extra.bin", "CACHE_DIR",
                  "manifest.json", "a" * 5000]


def _test_mutators():
    """`mutate` and helpers from the checkpoint hardening tests, loaded by path (tests/ is not a package)."""
    spec = importlib.util.spec_from_file_location("_hardening", REPO / "tests" / "test_checkpoint_hardening.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# ---------------------------------------------------------------------------------------------------------------
# seeds


def write_seeds(folder: Path) -> None:
    import numpy as np
    import torch
    from safetensors.numpy import save_file

    sys.path.insert(0, str(REPO / "src"))
    from edgevoice.bundle import GraphEntry, Manifest, TensorSpec, write_manifest

    generator = torch.Generator().manual_seed(0)
    base = torch.randn(6, 8, generator=generator)
    torch.save({"conv1.weight": base.half(), "conv1.t": base.t(), "bn.num_batches_tracked": torch.tensor(3),
                "bn.mask": torch.rand(5, generator=generator) > 0.5, "emb": torch.arange(10)[2:8:2],
                "bf": torch.ones(3, dtype=torch.bfloat16)}, folder / "sv")
    torch.save({"weight": {"model.ar_text_embedding.word_embeddings.weight": torch.zeros(512, 2, dtype=torch.float16),
                           "model.h.0.w": base.half()},
                "config": {"model": {"n_layer": 1, "phoneme_vocab_size": 512}, "data": {"max_sec": 54}},
                "info": "GPT-e1"}, folder / "gpt")
    torch.save({"weight": {"enc_p.text_embedding.weight": torch.zeros(322, 2, dtype=torch.float16),
                           "dec.conv.weight": base[:3].half()},
                "config": {"model": {"inter_channels": 4}, "data": {"sampling_rate": 32000}}, "info": "tiny"},
               folder / "sovits.pth")
    (folder / "sovits").write_bytes(b"01" + (folder / "sovits.pth").read_bytes()[2:])
    save_file({"a": base.numpy(), "b": np.arange(5, dtype=np.int64), "c": np.zeros((0, 2), np.float16)},
              str(folder / "safetensors"))

    bundle = folder / "bundle"
    bundle.mkdir()
    for name, content in {"g.xml": b"<net/>", "g.bin": b"\x00" * 16, "g.onnx": b"onnx",
                          "bert_vocab.txt": b"[PAD]\n"}.items():
        (bundle / name).write_bytes(content)
    (bundle / "sub").mkdir()
    (bundle / "sub" / "extra.bin").write_bytes(b"extra")
    graph = GraphEntry("g", {"openvino": "g.xml", "onnx": "g.onnx"}, "fp32", [TensorSpec("x", "float32", [1, "n"])],
                       [TensorSpec("y", "float32", [1])],
                       {"openvino": {"INFERENCE_PRECISION_HINT": "f32", "KV_CACHE_PRECISION": "f32"}},
                       states={"key.0": "present_key.0"})
    manifest = Manifest("gpt-sovits", "v2", 32000, ["a", "b"], {"bert": {"vocab_file": "bert_vocab.txt"}},
                        {"g": graph}, {"top_k": 5}, {"gpt": {"file": "s1.ckpt", "sha256": "0" * 64}})
    write_manifest(bundle, manifest)
    (folder / "outside.bin").write_bytes(b"\x00" * 16)


# ---------------------------------------------------------------------------------------------------------------
# mutators beyond the tests'


def _json_paths(node, prefix=()):
    yield prefix
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _json_paths(value, prefix + (key,))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _json_paths(value, prefix + (index,))


def _replace(root, path, value):
    if not path:
        return value
    node = root
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return root


def mutate_json(data, rng: random.Random, values: list):
    """Set one node of a JSON document to a boundary value, delete it, or add an entry beside it."""
    paths = list(_json_paths(data))
    for _ in range(rng.randint(1, 3)):
        path = rng.choice(paths)
        action = rng.random()
        if action < 0.6 or not path:
            data = _replace(data, path, copy.deepcopy(rng.choice(values)))
        elif action < 0.8:
            parent = data
            for key in path[:-1]:
                parent = parent[key]
            if isinstance(parent, dict):
                parent.pop(path[-1], None)
            elif isinstance(parent, list) and path[-1] < len(parent):
                parent.pop(path[-1])
        else:
            parent = data
            for key in path:
                parent = parent[key] if isinstance(parent, (dict, list)) else parent
            if isinstance(parent, dict):
                parent[rng.choice([str(v) for v in values] + BUNDLE_STRINGS)] = copy.deepcopy(rng.choice(values))
            elif isinstance(parent, list):
                parent.append(copy.deepcopy(rng.choice(values)))
        paths = list(_json_paths(data))
    return data


def mutate_safetensors_json(data: bytes, rng: random.Random) -> bytes:
    (length,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + length])
    header = mutate_json(header, rng, INTERESTING)
    text = json.dumps(header).encode()
    return struct.pack("<Q", len(text)) + text + data[8 + length :]


def mutate_pickle_ints(data: bytes, rng: random.Random, hardening) -> bytes:
    """Set BININT1/BININT2/BININT arguments in data.pkl (offsets, sizes, strides, storage lengths) to edge values."""
    def edit(name, raw):
        if not name.endswith("data.pkl"):
            return raw
        raw = bytearray(raw)
        positions = [i for i, byte in enumerate(raw) if byte in b"KMJ"]
        for _ in range(rng.randint(1, 4)):
            if not positions:
                break
            i = rng.choice(positions)
            width = {ord("K"): 1, ord("M"): 2, ord("J"): 4}[raw[i]]
            value = rng.choice([0, 1, 2, 255, 2**15, 2**16 - 1, 2**31 - 1, 2**32 - 1, rng.randrange(2**32)])
            raw[i + 1 : i + 1 + width] = (value % (1 << (8 * width))).to_bytes(width, "little")[:width]
        return bytes(raw)
    return hardening._rezip(data, edit)


def mutate_checkpoint(kind: str, seed: bytes, rng: random.Random, hardening) -> bytes:
    choice = rng.random()
    if choice < 0.15 and kind == "safetensors":
        return mutate_safetensors_json(seed, rng)
    if choice < 0.15:
        return mutate_pickle_ints(seed, rng, hardening)
    mutator = rng.choice(["bytes", "truncate", "member", "storage"])
    edits = [(rng.random(), rng.randrange(256)) for _ in range(rng.randint(1, 8))]
    return hardening.mutate(seed, kind, mutator, edits, rng.random())


def mutate_bundle(seed: Path, work: Path, outside: Path, rng: random.Random) -> None:
    """A tampered copy of the seed bundle at `work`."""
    shutil.rmtree(work, ignore_errors=True)
    shutil.copytree(seed, work, symlinks=True)
    manifest = work / "manifest.json"
    choice = rng.random()
    if choice < 0.55:
        data = mutate_json(json.loads(manifest.read_text()), rng, INTERESTING + BUNDLE_STRINGS + [
            {"openvino": {"CACHE_DIR": "/tmp/x"}}, {"openvino": {"NUM_STREAMS": 2}}, {"onnxruntime": {}},
            {"g.xml": "0" * 64}, {"/etc/passwd": "0" * 64}, {"openvino": "../g.xml"}])
        manifest.write_text(json.dumps(data))
    elif choice < 0.7:
        raw = bytearray(manifest.read_bytes())
        for _ in range(rng.randint(1, 6)):
            raw[rng.randrange(len(raw))] = rng.randrange(256)
        manifest.write_bytes(bytes(raw))
    else:
        target = rng.choice(["g.bin", "g.xml", "g.onnx", "bert_vocab.txt", "sub/extra.bin", "sub"])
        path = work / target
        action = rng.choice(["link-out", "link-in", "dir", "delete", "link-dir"])
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink()
        if action == "link-out":
            path.symlink_to(outside)
        elif action == "link-in":
            path.symlink_to(work / "g.onnx")
        elif action == "dir":
            path.mkdir()
        elif action == "link-dir":
            path.symlink_to(outside.parent, target_is_directory=True)
    if rng.random() < 0.8:  # re-sign the manifest, as an attacker would
        digest = hashlib.sha256(manifest.read_bytes()).hexdigest()
        (work / "manifest.sha256").write_text(f"{digest}  manifest.json\n")


def check_arrays(result) -> None:
    import numpy as np

    assert isinstance(result, dict), type(result)
    for key, value in result.items():
        assert isinstance(key, str) and isinstance(value, np.ndarray), (key, type(value))
        assert all(isinstance(n, int) and n >= 0 for n in value.shape), value.shape
        value.tobytes()


def check_bundle(bundle) -> None:
    """A bundle that loaded must be closed: listed files inside, no links, options allow-listed."""
    from edgevoice.bundle import OPENVINO_RUNTIME_OPTIONS, openvino_options

    root = bundle.path.resolve()
    for rel in bundle.manifest.files:
        path = bundle.file(rel)
        assert not path.is_symlink() and path.resolve().is_relative_to(root), rel
    for graph in bundle.manifest.graphs.values():
        assert set(openvino_options(graph)) <= OPENVINO_RUNTIME_OPTIONS
        for rel in graph.files.values():
            bundle.file(rel)


# ---------------------------------------------------------------------------------------------------------------
# worker: one batch in this process


def worker(kind: str, seeds: Path, out: Path, name: str, seed: int, count: int) -> None:
    import faulthandler
    import resource

    faulthandler.enable()  # a segfault prints where it happened to this worker's stderr
    limit = 4 << 30
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))  # an absurd allocation fails instead of swapping
    sys.path.insert(0, str(REPO / "src"))
    from edgevoice.bundle import Bundle
    from edgevoice.errors import BundleError
    from edgevoice_export.checkpoints import CheckpointError, read_safetensors
    from edgevoice_export.gpt_sovits.checkpoints import load_gpt_checkpoint, load_sovits_checkpoint, load_sv_checkpoint

    loaders = {"sv": lambda p: load_sv_checkpoint(p).weights, "gpt": lambda p: load_gpt_checkpoint(p).weights,
               "sovits": lambda p: load_sovits_checkpoint(p).weights, "safetensors": read_safetensors}
    hardening = _test_mutators() if kind in CHECKPOINT_KINDS else None
    rng = random.Random(seed)
    current = out / f"{name}.current"
    with open(out / f"{name}.results", "a") as results, open(out / f"{name}.other", "a") as other:
        for i in range(count):
            if kind == "bundle":
                work = out / f"{name}.bundle"
                mutate_bundle(seeds / "bundle", work, seeds / "outside.bin", rng)
                current.write_text(str(work))
            else:
                data = mutate_checkpoint(kind, (seeds / kind).read_bytes(), rng, hardening)
                current.write_bytes(data)
            try:
                if kind == "bundle":
                    check_bundle(Bundle.load(work, verify=rng.random() < 0.9))
                else:
                    check_arrays(loaders[kind](current))
                outcome = "."
            except (CheckpointError, BundleError) as exc:
                outcome = "c" if isinstance(exc, CheckpointError) else "b"
                if "\n" in str(exc) or "\r" in str(exc):  # the right error, but not one line
                    outcome = "o"
                    other.write(f"{kind} seed={seed} #{i}: {type(exc).__name__} of several lines: "
                                f"{str(exc)[:300]!r}\n")
            except Exception as exc:  # noqa: BLE001 - that is what is being counted
                outcome = "o"
                last = traceback.format_exception(exc)[-1].strip()
                other.write(f"{kind} seed={seed} #{i}: {type(exc).__name__}: {last[:300]}\n")
            if outcome == "o":
                other.flush()
                keep = out / f"other-{kind}-{seed}-{i}"
                if kind == "bundle":
                    shutil.copytree(work, keep, symlinks=True)
                else:
                    keep.write_bytes(data)
            results.write(outcome)
            results.flush()


# ---------------------------------------------------------------------------------------------------------------
# parent: keep workers busy until the time is up


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0, help="total fuzzing time")
    parser.add_argument("--workers", type=int, default=2, help="worker processes at a time")
    parser.add_argument("--batch", type=int, default=400, help="inputs per worker process")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds a batch may take before it is a hang")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--kinds", default=",".join(KINDS), help=f"comma-separated subset of {','.join(KINDS)}")
    parser.add_argument("--keep", type=Path, help="folder for crashing/other inputs (default: a temporary folder)")
    parser.add_argument("--worker", nargs=5, metavar=("KIND", "SEEDS", "OUT", "NAME", "SEED"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        kind, seeds, out, name, seed = args.worker
        worker(kind, Path(seeds), Path(out), name, int(seed), args.batch)
        return

    kinds = [k for k in args.kinds.split(",") if k]
    out = args.keep or Path(tempfile.mkdtemp(prefix="fuzz_loaders."))
    out.mkdir(parents=True, exist_ok=True)
    seeds = out / "seeds"
    shutil.rmtree(seeds, ignore_errors=True)
    seeds.mkdir()
    write_seeds(seeds)
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1",
               PYTHONPATH=os.pathsep.join([str(REPO / "src"), os.environ.get("PYTHONPATH", "")]))
    deadline = time.monotonic() + args.minutes * 60
    counts = collections.Counter()
    per_kind = collections.defaultdict(collections.Counter)
    running: dict[str, tuple[subprocess.Popen, str, float, int]] = {}
    batch_seed = args.seed * 1_000_000
    print(f"fuzzing {', '.join(kinds)} for {args.minutes:g} min with {args.workers} workers; inputs kept in {out}",
          flush=True)

    def finish(name: str, timed_out: bool = False) -> None:
        process, kind, _, seed = running.pop(name)
        results = (out / f"{name}.results").read_text() if (out / f"{name}.results").exists() else ""
        for char in results:
            counts[OUTCOMES[char]] += 1
            per_kind[kind][OUTCOMES[char]] += 1
        other = out / f"{name}.other"
        if other.exists() and other.stat().st_size:
            print(other.read_text().rstrip(), flush=True)
        rc = process.returncode
        if timed_out or rc != 0 or len(results) < args.batch:
            # killed by a signal: a crash in the loader; a Python exit code: the harness itself failed
            outcome = "hang" if timed_out else "crash" if rc is None or rc < 0 else "worker error"
            counts[outcome] += 1
            per_kind[kind][outcome] += 1
            keep = out / f"{outcome}-{kind}-{seed}-{len(results)}"
            current = out / f"{name}.current"
            if current.exists():
                if kind == "bundle":
                    shutil.copytree(Path(current.read_text()), keep, symlinks=True)
                else:
                    shutil.copyfile(current, keep)
            stderr = (out / f"{name}.stderr").read_text(errors="replace")[-2000:]
            print(f"{outcome.upper()}: {kind} seed={seed} input #{len(results)} (rc {rc}), kept {keep}\n{stderr}",
                  flush=True)
        for suffix in (".results", ".other", ".current", ".stderr"):
            (out / f"{name}{suffix}").unlink(missing_ok=True)
        shutil.rmtree(out / f"{name}.bundle", ignore_errors=True)

    while time.monotonic() < deadline or running:
        while time.monotonic() < deadline and len(running) < args.workers:
            kind = kinds[batch_seed % len(kinds)]
            name = f"w{batch_seed}"
            with open(out / f"{name}.stderr", "w") as stderr:
                process = subprocess.Popen(
                    [sys.executable, __file__, "--batch", str(args.batch), "--worker", kind, str(seeds), str(out),
                     name, str(batch_seed)], stdout=subprocess.DEVNULL, stderr=stderr, env=env)
            running[name] = (process, kind, time.monotonic(), batch_seed)
            batch_seed += 1
        time.sleep(0.2)
        for name, (process, kind, started, _) in list(running.items()):
            if process.poll() is not None:
                finish(name)
            elif time.monotonic() - started > args.timeout or time.monotonic() > deadline + args.timeout:
                process.kill()
                process.wait()
                finish(name, timed_out=True)

    tried = sum(counts.values())
    order = ["ok", "CheckpointError", "BundleError", "other exception", "crash", "hang", "worker error"]
    print(f"tried {tried}: " + ", ".join(f"{key} {counts[key]}" for key in order))
    for kind in kinds:
        print(f"  {kind:12s} " + ", ".join(f"{key} {per_kind[kind][key]}" for key in order))
    if counts["other exception"] or counts["crash"] or counts["hang"] or counts["worker error"]:
        print(f"inputs kept in {out}")
        sys.exit(1)


if __name__ == "__main__":
    main()
