"""Inference backends behind one small interface: `backend.session(bundle, graph) -> Session`, `Session.run(feeds)`.

* `OpenVINOBackend` (default): compiles the bundle's IR on the CPU with the options stored in the manifest,
  always stating the inference precision (OpenVINO silently picks bf16 on AVX-512-BF16 CPUs otherwise); a
  bundle's bf16 hint runs as f32 on a CPU without native bf16 (`edgevoice.cpu.runnable_hint`).
  A manifest may only set the allow-listed hints in `bundle.OPENVINO_RUNTIME_OPTIONS`; the compile cache
  folder (`cache_dir`) and `extra_config` come from the caller, never from a bundle. Compiled graphs are cached
  per graph under `cache_dir`, keyed by the IR files' sha256 (see `compile_cache`).
* `OnnxRuntimeBackend`: runs the bundle's ONNX files, on the CPU or, with onnxruntime-gpu, on CUDA.
* A graph whose manifest entry names `engine: "onnxruntime"` runs through onnxruntime on the CPU under the
  OpenVINO backend too: the quantiser chose it because it measured OpenVINO slower for that graph on this CPU
  (GPT-SoVITS' decode step: onnxruntime's block-quantised INT8 matmuls, see export/gpt_sovits/quantize.py).
  `runs_graph(backend, entry)` says whether a backend can run an entry at all.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Protocol

import numpy as np

from .bundle import Bundle, GraphEntry, ir_weights, onnxruntime_options, openvino_options
from .cpu import runnable_hint
from .compile_cache import cache_folder, graph_cache_folder
from .errors import BundleError, EdgevoiceError
from .onnx_files import check_external_data


class Session(Protocol):
    input_names: list[str]
    output_names: list[str]

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]: ...


def default_threads() -> int:
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1))


@dataclass
class OpenVINOBackend:
    """OpenVINO on the CPU. `precision` overrides the bundle's inference precision ("f32", "bf16"). `cache_dir`:
    a folder for compiled graphs, True for the user's (`compile_cache.default_cache_dir`), None for none; an
    unusable one is a warning and no cache."""

    threads: int | None = None
    precision: str | None = None
    cache_dir: str | os.PathLike | bool | None = None
    extra_config: dict = field(default_factory=dict)
    # Graphs opened through onnxruntime (their ONNX file, where the bundle has one) although this backend runs
    # OpenVINO: for a long-running process, the graphs that see every input length. OpenVINO keeps ~9.5 MiB of
    # kernels for each new length, for good (oneDNN's process-wide primitive cache; neither releasing the graph nor
    # CPU_RUNTIME_CACHE_CAPACITY gives it back: 60 reference clip lengths +506 MiB, full-size HuBERT INT8, Zen 4),
    # while onnxruntime's memory stays flat (benchmarks/long_running_memory.py).
    onnxruntime_graphs: frozenset = frozenset()
    name: str = "openvino"
    file_format = "openvino"  # which of a graph's files this backend runs

    def __post_init__(self):
        self._openvino_core = None  # made at the first OpenVINO graph: a bundle may run all it needs on onnxruntime
        folder = cache_folder(self.cache_dir)
        self.cache_dir = str(folder) if folder else None
        self._onnxruntime = None  # for graphs whose bundle runs them on onnxruntime (GraphEntry.engine)

    def runs(self, graph: GraphEntry) -> bool:
        return "openvino" in graph.files or (graph.engine == "onnxruntime" and "onnx" in graph.files)

    @property
    def openvino_loaded(self) -> bool:
        """Whether this backend has opened an OpenVINO graph (its libraries and runtime are in the process)."""
        return self._openvino_core is not None

    def config_for(self, graph: GraphEntry) -> dict:
        config = {"PERFORMANCE_HINT": "LATENCY", "NUM_STREAMS": 1,
                  "INFERENCE_NUM_THREADS": self.threads or default_threads(),
                  "INFERENCE_PRECISION_HINT": "f32"}
        config.update(openvino_options(graph))  # re-checked: only allow-listed hints, never a path
        # a bundle's bf16 choice runs as f32 on a CPU without native bf16 (the one place this happens)
        config["INFERENCE_PRECISION_HINT"] = runnable_hint(str(config["INFERENCE_PRECISION_HINT"]))
        if self.precision:
            config["INFERENCE_PRECISION_HINT"] = self.precision
        if self.cache_dir:
            config["CACHE_DIR"] = self.cache_dir
        config.update(self.extra_config)
        return config

    def session(self, bundle: Bundle, graph_name: str) -> "OpenVINOSession | OnnxRuntimeSession":
        graph = bundle.graph(graph_name)
        if graph.engine == "onnxruntime" or (graph_name in self.onnxruntime_graphs and "onnx" in graph.files):
            if self._onnxruntime is None:
                self._onnxruntime = OnnxRuntimeBackend(threads=self.threads)
            return self._onnxruntime.session(bundle, graph_name)
        if "openvino" not in graph.files:
            raise BundleError(f"{bundle.path}: graph {graph_name!r} has no OpenVINO IR (the bundle was exported "
                              "with --format onnx only); use the onnxruntime backend")
        xml = graph.files["openvino"]
        path = bundle.ir(xml)
        weights = ir_weights(xml)
        config = self.config_for(graph)
        cache = self._graph_cache(bundle, [xml, weights]) if "CACHE_DIR" in config else None
        if cache:
            config["CACHE_DIR"] = cache
        else:
            config.pop("CACHE_DIR", None)
        try:
            if self._openvino_core is None:
                import openvino as ov

                self._openvino_core = ov.Core()
            compiled = self._openvino_core.compile_model(str(path), "CPU", config)
        except RuntimeError as exc:  # OpenVINO's errors for a file it cannot read or compile
            raise BundleError(f"{bundle.path}: graph {graph_name!r} cannot be loaded ({engine_message(exc)})") from None
        mapped = [str((bundle.path / weights).resolve())] if weights and (bundle.path / weights).is_file() else []
        return OpenVINOSession(compiled, graph_name, mapped + ([cache] if cache else []))

    def _graph_cache(self, bundle: Bundle, files: list[str | None]) -> str | None:
        """This graph's own cache folder, named after its files' sha256 (OpenVINO's blob key ignores the weights)."""
        digests = [bundle.manifest.files.get(rel, rel) for rel in files if rel]
        folder = graph_cache_folder(Path(self.cache_dir), digests) if self.cache_dir else None
        return str(folder) if folder else None


def release_file_pages(*paths: str) -> int:
    """Drop this process's resident pages of read-only file mappings of `paths` (files, or any file inside a
    folder: a compile cache's blobs); returns how many mappings.

    OpenVINO reads an IR's weights (or a cached blob) through a file mapping and, at the first inference, packs its
    own copy for its kernels; the mapped pages then sit in RSS unused (the whole weight file twice: measured 2.5 GB
    of RSS for MetaVoice's 1.25 GB INT8 stage 1, 1.3 GB after this). They are clean, read-only and file-backed, so
    dropping them is safe: a later read (a recompilation for a new shape) faults them back in from the file."""
    import ctypes

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        madvise = libc.madvise
        with open("/proc/self/maps", encoding="utf-8") as maps:
            lines = [line.split(maxsplit=5) for line in maps]
    except (OSError, AttributeError):  # not Linux: nothing to do
        return 0
    madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    files = {path for path in paths if not os.path.isdir(path)}
    folders = tuple(path.rstrip("/") + "/" for path in paths if os.path.isdir(path))
    dropped = 0
    for fields in lines:
        name = fields[5].strip() if len(fields) == 6 else ""
        if (name in files or (folders and name.startswith(folders))) and fields[1].startswith("r-"):
            start, end = (int(x, 16) for x in fields[0].split("-"))
            dropped += madvise(start, end - start, _MADV_DONTNEED) == 0
    return dropped


_MADV_DONTNEED = 4


class OpenVINOSession:
    # The first run at a new input shape prepares kernels and buffers for it, which it keeps for good: EmotiVoice's
    # full-size vocoder took 0.7-2.5 s at each new mel length against 0.10-0.44 s run again (AMX Xeon, bf16), and a
    # process grew ~90 MiB per length (benchmarks/long_running_memory.py). Families pad or cut such graphs' inputs to
    # a few lengths where they can (`fixed_shapes.py`, GPT-SoVITS' buckets).
    prepares_each_shape = True

    def __init__(self, compiled, name: str = "graph", mapped_files: list[str] | None = None):
        self._compiled = compiled
        self.name = name
        self._request = compiled.create_infer_request()
        # released after the first inference and after each run at new input shapes: the plugin reads constants
        # again from the mapping when it prepares kernels for a new shape (see release_file_pages)
        self._mapped_files = mapped_files or []
        self._shapes_seen: set = set()
        self.input_names = [port.get_any_name() for port in compiled.inputs]
        self.output_names = [port.get_any_name() for port in compiled.outputs]

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        # share_inputs: numpy buffers (e.g. slices of the host KV cache) are read in place, not copied.
        try:
            self._request.infer(feeds, share_inputs=True)
        except RuntimeError as exc:  # a graph that does not take what its manifest says it takes
            raise BundleError(f"graph {self.name!r} failed ({engine_message(exc)})") from None
        shapes = tuple(np.shape(value) for value in feeds.values())
        if shapes not in self._shapes_seen:
            self._shapes_seen.add(shapes)
            if self._mapped_files:
                release_file_pages(*self._mapped_files)
        return {name: self._request.get_tensor(name).data.copy() for name in self.output_names}

    def fork(self) -> "OpenVINOSession":
        """A session on the same compiled graph with a request (and, for a stateful graph, a state) of its own."""
        return OpenVINOSession(self._compiled, self.name, self._mapped_files)

    def set_states(self, values: dict[str, np.ndarray]) -> None:
        """Start a new sequence on a stateful graph: every state variable gets its initial value."""
        import openvino as ov

        self._request.reset_state()
        for state in self._request.query_state():
            if state.name not in values:
                raise BundleError(f"stateful graph has a state {state.name!r} that the bundle does not describe")
            state.state = ov.Tensor(np.ascontiguousarray(values[state.name]))

    def states(self) -> dict[str, np.ndarray]:
        """Copies of a stateful graph's current state variables."""
        return {state.name: state.state.data.copy() for state in self._request.query_state()}

    def precision(self) -> str:
        """The precision OpenVINO compiled the float parts in: "f32", "bf16" or "f16"."""
        return self._compiled.get_property("INFERENCE_PRECISION_HINT").get_type_name()

    def profiling_info(self) -> list:
        """Per-node timings of the last inference (compile with PERF_COUNT=True)."""
        return list(self._request.profiling_info)


@dataclass
class OnnxRuntimeBackend:
    """onnxruntime over the bundle's ONNX graphs. `device="cuda"` needs onnxruntime-gpu and refuses CPU fallback."""

    threads: int | None = None
    device: str = "cpu"
    name: str = "onnxruntime"
    file_format = "onnx"

    def runs(self, graph: GraphEntry) -> bool:
        return "onnx" in graph.files

    def session(self, bundle: Bundle, graph_name: str) -> "OnnxRuntimeSession":
        import onnxruntime as ort

        graph = bundle.graph(graph_name)
        if "onnx" not in graph.files:
            raise BundleError(f"{bundle.path}: graph {graph_name!r} has no ONNX file (the bundle was exported "
                              "with --format openvino only); use the openvino backend")
        options = ort.SessionOptions()
        options.intra_op_num_threads = self.threads or default_threads()
        if self.device == "cpu":
            # a failing run's reason comes back in the exception, which becomes the one-line error; onnxruntime's
            # own log would print it again first, as a second line (CUDA sessions keep their warnings)
            options.log_severity_level = 4
        # A spinning thread pool starves the host loop on small machines, unless the bundle measured otherwise
        # for a graph called in a tight loop (the decode step: see export/gpt_sovits/quantize.py)
        settings = {"session.intra_op.allow_spinning": "0", **onnxruntime_options(graph)}
        for key, value in settings.items():
            options.add_session_config_entry(key, str(value))
        if self.device == "cuda":
            if "CUDAExecutionProvider" not in ort.get_available_providers():
                raise EdgevoiceError("this onnxruntime has no CUDA provider: install onnxruntime-gpu (and CUDA) "
                                     "for --backend onnxruntime-cuda")
            # Parity runs: deterministic kernels, no TF32, and an error instead of a silent CPU fallback.
            options.use_deterministic_compute = True
            options.add_session_config_entry("session.disable_cpu_ep_fallback", "1")
            providers = [("CUDAExecutionProvider", {"cudnn_conv_algo_search": "DEFAULT", "use_tf32": "0"})]
        elif self.device == "cpu":
            providers = ["CPUExecutionProvider"]
        else:
            raise EdgevoiceError(f"unknown onnxruntime device {self.device!r} (use 'cpu' or 'cuda')")
        onnx = graph.files["onnx"]
        check_external_data(bundle, onnx)  # files onnxruntime would read on its own: listed and hashed
        try:
            session = ort.InferenceSession(str(bundle.file(onnx)), options, providers=providers)
        except _onnxruntime_errors() as exc:
            raise BundleError(f"{bundle.path}: graph {graph_name!r} cannot be loaded ({engine_message(exc)})") from None
        if self.device == "cuda" and session.get_providers()[0] != "CUDAExecutionProvider":
            raise EdgevoiceError("onnxruntime could not start its CUDA provider (is onnxruntime-gpu installed?)")
        return OnnxRuntimeSession(session, graph_name, shrink=self.device == "cpu")


class OnnxRuntimeSession:
    """One onnxruntime graph. With `shrink` (CPU sessions) each `run` hands the arena's free chunks back when it
    ends: a graph run once per sentence or window (prefill, vocoder) otherwise keeps its largest call's
    activations for the life of the process, beside every other graph's. Measured (full-size GPT-SoVITS INT8,
    Zen 4, 2 threads): peak RSS of a 10 s sentence after a short one 836 → 736 MiB, with no time cost visible
    against this box's noise (prefill 119-126 vs 124-135 ms, vocoder at 538 frames 1.11-1.26 vs 1.15-1.23 s).
    The decode step, run per token through `bind`, keeps its arena: its activations are small. What handing back
    costs is page faults: 83 k vs 50 k per 10 s synthesis with arenas kept, tens of ms in a VM, for ~200 MiB less
    peak (benchmarks/RESULTS.md, session 13)."""

    prepares_each_shape = False  # a new input shape costs no more than a repeated one; the arena is bounded

    _SHRINK = ("memory.enable_memory_arena_shrinkage", "cpu:0")

    def __init__(self, session, name: str = "graph", shrink: bool = False):
        import onnxruntime as ort

        self._session = session
        self.name = name
        self.input_names = [i.name for i in session.get_inputs()]
        self.output_names = [o.name for o in session.get_outputs()]
        self._run_options = ort.RunOptions()
        if shrink:
            self._run_options.add_run_config_entry(*self._SHRINK)

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        try:
            return dict(zip(self.output_names, self._session.run(self.output_names, feeds, self._run_options)))
        except _onnxruntime_errors() as exc:
            raise BundleError(f"graph {self.name!r} failed ({engine_message(exc)})") from None

    def bind(self, arrays: dict[str, np.ndarray], outputs: dict[str, np.ndarray] | None = None) -> "BoundRun":
        """A way to run this graph with the inputs `arrays` read in place, by address, on every call (and the
        outputs named in `outputs` written into those arrays)."""
        return BoundRun(self, arrays, outputs)


class BoundRun:
    """Runs of one onnxruntime graph whose large inputs stay bound: `run(feeds)` passes only the small ones.

    `session.run` wraps every input array again on every call; a decode step with 48 cache buffers pays ~0.2 ms
    of its ~5 ms for that (full-size GPT-SoVITS INT8, 400 positions, Zen 4). Outputs given as arrays are written
    into them, so a run makes no new arrays: `run` returns those same arrays, overwritten by the next run (copy
    what you keep). The bound arrays must stay alive, C-contiguous and the same shape while this is used (their
    contents may change: they are read at each run); an output array of the wrong shape fails the run. One per
    caller and thread, like a request."""

    def __init__(self, session: OnnxRuntimeSession, arrays: dict[str, np.ndarray],
                 outputs: dict[str, np.ndarray] | None = None):
        self._session = session
        self._outputs = dict(outputs or {})
        self._arrays = (arrays, self._outputs)  # holds them alive: the binding only has their addresses
        self._binding = session._session.io_binding()
        for name, array in [*arrays.items(), *self._outputs.items()]:
            if not array.flags.c_contiguous:
                raise ValueError(f"{name!r} must be C-contiguous to be bound")
        for name, array in arrays.items():
            self._binding.bind_input(name, "cpu", 0, array.dtype, list(array.shape), array.ctypes.data)
        for name in session.output_names:
            if name in self._outputs:
                array = self._outputs[name]
                self._binding.bind_output(name, "cpu", 0, array.dtype, list(array.shape), array.ctypes.data)
            else:
                self._binding.bind_output(name, "cpu")
        self._all_given = all(name in self._outputs for name in session.output_names)

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        for name, array in feeds.items():
            self._binding.bind_cpu_input(name, np.ascontiguousarray(array))
        try:
            self._session._session.run_with_iobinding(self._binding)
        except (*_onnxruntime_errors(), RuntimeError) as exc:  # run_with_iobinding re-raises as RuntimeError
            raise BundleError(f"graph {self._session.name!r} failed ({engine_message(exc)})") from None
        if self._all_given:
            return dict(self._outputs)
        # only the outputs not written into given arrays are copied out (a bound cache can be hundreds of MB)
        made = {name: value.numpy() for name, value in zip(self._session.output_names, self._binding.get_outputs())
                if name not in self._outputs}
        return {**made, **self._outputs}


def runs_graph(backend, graph: GraphEntry) -> bool:
    """Whether `backend` can run the bundle graph `graph` (backends without `runs` run the files of their format)."""
    runs = getattr(backend, "runs", None)
    return runs(graph) if runs else getattr(backend, "file_format", None) in graph.files


def _onnxruntime_errors() -> tuple[type, ...]:
    """onnxruntime's exception classes (they derive from Exception directly, not from RuntimeError)."""
    from onnxruntime.capi import onnxruntime_pybind11_state as state

    return (state.Fail, state.InvalidArgument, state.InvalidProtobuf, state.InvalidGraph, state.NoSuchFile,
            state.RuntimeException, state.NotImplemented)


def engine_message(exc: BaseException) -> str:
    """The informative line of an inference engine's error (OpenVINO nests "Exception from <file>:<line>:" lines
    around it), shortened to stay one readable line."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    useful = [line for line in lines if not line.startswith("Exception from ")] or lines or [type(exc).__name__]
    message = useful[0]
    return message if len(message) <= 300 else message[:297] + "..."


BACKEND_NAMES = ("openvino", "onnxruntime", "onnxruntime-cuda")  # what `make_backend`, the CLI and the server take
MAX_THREADS = 1024  # past what any CPU has; a larger number only reaches the engines as an overflow


def make_backend(backend, threads: int | None = None, cache_dir: str | os.PathLike | bool | None = None,
                 onnxruntime_graphs: Iterable[str] = ()):
    """A backend instance from one of `BACKEND_NAMES` or an instance; `cache_dir` is OpenVINO's compile cache (True:
    the user's folder) and `onnxruntime_graphs` the graphs it leaves to onnxruntime, both ignored by the others."""
    if threads is not None and (not isinstance(threads, int) or isinstance(threads, bool)
                                or not 1 <= threads <= MAX_THREADS):
        raise EdgevoiceError(f"threads must be a whole number 1…{MAX_THREADS} (or None for all), not {threads!r}")
    if not isinstance(cache_dir, (str, os.PathLike, bool, type(None))):
        raise EdgevoiceError(f"cache_dir must be a folder, True (the user's cache) or None/False (no cache), not "
                             f"{type(cache_dir).__name__}")
    if not isinstance(backend, str):
        return backend
    if backend == "openvino":
        return OpenVINOBackend(threads=threads, cache_dir=cache_dir, onnxruntime_graphs=frozenset(onnxruntime_graphs))
    if backend in ("onnxruntime", "onnxruntime-cuda"):
        return OnnxRuntimeBackend(threads=threads, device="cuda" if backend.endswith("-cuda") else "cpu")
    raise EdgevoiceError(f"unknown backend {backend!r} (choose from {', '.join(BACKEND_NAMES)})")
