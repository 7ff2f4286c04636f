"""The 8-bit vocoder's float tail as its own graph, for the backend's engine (`edgevoice.gpt_sovits.split_vocoder`).

Why (full-size v2, 500 frames = 10 s of audio, AMD EPYC Zen 4 with AVX-512 VNNI/BF16, 2 threads, one sitting):
the last two upsampling stages, which the float ladder (`vocoder_engine`) keeps in float, are 15 % of the
vocoder's operations and took 0.53–0.60 s of its ~1.08 s on onnxruntime (16- and 32-channel convolutions at
~130 GFLOP/s); OpenVINO runs the same operators, masks included, in windows of 64 + 2 frames in 0.38–0.47 s
(0.37 s unmasked at the exact length, but then its memory grows with every new length), at ~170 GFLOP/s; the
vocoder as a whole went from 1.08 to 0.97 s with the windows below.
onnxruntime's NCHWc kernels (the tail rewritten as 2-d convolutions) were slower, 0.74 s.

So, where the ladder kept float stages, `quantize` cuts the 8-bit graph where they begin (its head then returns
`hidden`), takes the same stages from the FP32 vocoder with their masks (`valid_frames`) as `sovits_vocoder_tail`
run at a few window lengths, measures how many frames of context the tail needs (`measured_reach_frames`), checks that
head + tail give the one graph's audio, and keeps the split where it is faster on the held-out calls. In a process
that otherwise loads no OpenVINO (a voice read from a file) its libraries, runtime and buffers cost ~100 MiB, which
took the full-size v2 past the 600 MB goal (602 MB), so by default (`--vocoder-tail auto`) the head is written
beside the one graph (`sovits_vocoder_vnni_head`) and the synthesizer runs the split only where its backend already
runs OpenVINO; `--vocoder-tail split` ships the split alone, `whole` does not try it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import onnx
from onnx import helper

from edgevoice.backends import OpenVINOBackend
from edgevoice.bundle import Bundle, GraphEntry, Manifest, TensorSpec, write_manifest
from edgevoice.gpt_sovits.split_vocoder import VOCODER_HEAD, VOCODER_TAIL, SplitVocoder
from edgevoice.gpt_sovits.synthesizer import EXACT_VOCODER, EXACT_VOCODER_WINDOW_FRAMES

from ..hifigan import measured_reach_frames
from ..onnx_split import subgraph
from ..quant_accuracy import AUDIBLE_LOG_MEL_L1, snr_db
from ..quantize import best_seconds, run_all

# Frames the tail's windows keep (each also computes its reach on both sides): full windows keep the most, a
# fragment's last one the fewest that hold it (one input shape per entry reaches OpenVINO). Measured (full-size v2,
# Zen 4, 2 threads; `benchmarks/startup_memory.py --cases memory`, peak RSS with a voice file / streamed; the vocoder
# over 500 / 50 frames): the one graph 466 / 525 MiB, 1.06–1.09 / 0.10–0.11 s; windows of 16/32/64 534 / 615 MiB,
# 0.94–0.95 s; 64 only 521 / 601 MiB; 32 only 500 / 580 MiB, 0.96–1.00 / 0.11 s; 16/32 500 / 580 MiB, 0.10 s at 50.
# OpenVINO's libraries are ~40 MiB of that (nothing else loads them when the voice comes from a file) and its
# buffers grow with the window, so short windows keep the 600 MB goal; the 16-frame one fits short sentences' ends.
TAIL_WINDOW_FRAMES = (16, 32)
# Taken where head + tail are at least SPLIT_MARGIN faster on one long window (a 10 s sentence's vocoder runs in
# such windows), no slower on the held-out calls within the box's noise (short sentences, ~50 frames each, where a
# padded last window eats the gain: 0.41 vs 0.41 s measured by `quantize` while 50 frames alone, alternating in one
# process, took 0.096–0.099 vs 0.105–0.109 s), and their audio equals the one graph's to float rounding.
SPLIT_MARGIN = 0.95
HELD_OUT_SLACK = 1.05
SAME_AUDIO_DB = 90.0


def _first_node(model: onnx.ModelProto, name: str) -> onnx.NodeProto:
    return next(node for node in model.graph.node if node.name == name)


def _frames_from_hidden(tail: onnx.ModelProto, per_frame: int) -> None:
    """The masks read the frame count from `z`'s shape; the tail has `hidden` instead (`per_frame` samples a frame):
    each `Shape(z)[2:3]` becomes `Shape(hidden)[2:3] / per_frame`, in place."""
    graph = tail.graph
    users = [node for node in graph.node if "z" in node.input]
    for node in users:
        axes = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        if node.op_type != "Shape" or axes.get("start") != 2 or axes.get("end", 3) != 3:
            raise ValueError(f"the vocoder's tail reads z in a {node.op_type} node, not only its length")
    divisor = helper.make_tensor("tail_samples_per_frame", onnx.TensorProto.INT64, [1], [per_frame])
    graph.initializer.append(divisor)
    for node in users:
        frames = node.output[0]
        node.input[0], node.output[0] = "hidden", frames + "_samples"
        position = list(graph.node).index(node) + 1
        graph.node.insert(position, helper.make_node("Div", [frames + "_samples", divisor.name], [frames]))
    inputs = [value for value in graph.input if value.name != "z"]
    del graph.input[:]
    graph.input.extend(inputs)


def _masked_tail(source: Bundle, first_node: str, per_frame: int) -> tuple[onnx.ModelProto, int]:
    """The FP32 vocoder's operators from `first_node` on, masks included (`hidden`, `valid_frames` → `audio`, any
    length), and the channels of `hidden`."""
    model = onnx.load(str(source.file(source.graph("sovits_vocoder").files["onnx"])))
    first = _first_node(model, first_node)
    weights = next(t for t in model.graph.initializer if t.name == first.input[1])
    channels = int(weights.dims[1])
    hidden = helper.make_tensor_value_info("hidden", onnx.TensorProto.FLOAT, [1, channels, "samples"])
    tail = subgraph(model, {"audio": "audio"}, {first.input[0]: hidden}, VOCODER_TAIL)
    _frames_from_hidden(tail, per_frame)
    return tail, channels


def _session(model: onnx.ModelProto, threads: int):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    return ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])


def cut_float_tail(source: Bundle, quantised: onnx.ModelProto, first_node: str, probe: dict, limit: int,
                   threads: int) -> dict:
    """Head (`z`, `ge` → `hidden`) and tail (any length) of the 8-bit vocoder cut before `first_node`, with the
    tail's channels, samples per frame and measured reach (`limit`: the whole vocoder's)."""
    cut = _first_node(quantised, first_node).input[0]
    head = subgraph(quantised, {cut: "hidden"}, {}, EXACT_VOCODER)
    per_frame = _session(head, threads).run(None, probe)[0].shape[-1] // probe["z"].shape[-1]
    tail, channels = _masked_tail(source, first_node, per_frame)
    session = _session(tail, threads)

    def run_tail(x: np.ndarray) -> np.ndarray:
        return session.run(None, {"hidden": x, "valid_frames": np.array([x.shape[-1] // per_frame], np.int64)})[0]

    context = measured_reach_frames(run_tail, channels, per_frame, limit)
    return {"head": head, "tail": tail, "channels": channels, "per_frame": per_frame, "context": context}


def install_split(folder: Path, manifest: Manifest, cut: dict, beside: bool = False) -> dict[str, str]:
    """Write head and tail into the bundle being made, with the tail's context and window lengths; returns their
    files. The head replaces the one graph, or (`beside`) joins it as `VOCODER_HEAD`."""
    entry = manifest.graphs[EXACT_VOCODER]
    files = _write_split(folder, cut["head"], cut["tail"])
    hidden = [TensorSpec("hidden", "float32", [1, cut["channels"], "samples"])]
    manifest.graphs[VOCODER_TAIL] = GraphEntry(
        VOCODER_TAIL, {"onnx": files["tail_onnx"], "openvino": files["tail_openvino"]}, "fp32",
        hidden + [TensorSpec("valid_frames", "int64", [1])], list(entry.outputs))
    head = VOCODER_HEAD if beside else EXACT_VOCODER
    manifest.graphs[head] = GraphEntry(head, {"onnx": files["head"]}, entry.precision, list(entry.inputs), hidden,
                                       accuracy=entry.accuracy, engine=entry.engine)
    manifest.model["sovits"]["vocoder_tail_context_frames"] = cut["context"]
    manifest.model["sovits"]["vocoder_tail_windows"] = [kept + 2 * cut["context"] for kept in TAIL_WINDOW_FRAMES]
    write_manifest(folder, manifest)
    return files


def _split_session(folder: Path, threads: int) -> SplitVocoder:
    """Head + tail as the runtime runs them, from the bundle being written."""
    bundle, backend = Bundle.load(folder), OpenVINOBackend(threads=threads)
    sovits = bundle.manifest.model["sovits"]
    head = VOCODER_HEAD if VOCODER_HEAD in bundle.manifest.graphs else EXACT_VOCODER
    return SplitVocoder(backend.session(bundle, head), backend.session(bundle, VOCODER_TAIL),
                        sovits["vocoder_tail_context_frames"], tuple(sovits["vocoder_tail_windows"]))


def _long_window(held: list[dict], context: int) -> dict:
    """One call as long as the runtime's longest vocoder window, from the held-out calls' `z` end to end."""
    frames = EXACT_VOCODER_WINDOW_FRAMES + 2 * context
    z = np.concatenate([item["z"] for item in held], axis=-1)
    z = np.tile(z, (1, 1, -(-frames // z.shape[-1])))[:, :, :frames]
    return {"z": np.ascontiguousarray(z), "ge": held[0]["ge"]}


def _seconds(sessions: dict, held: list[dict], long: list[dict]) -> dict:
    """Best-of-two seconds per session on the held-out calls and on the long window."""
    return {"held_out": best_seconds({name: (s, held) for name, s in sessions.items()}),
            "long_window": best_seconds({name: (s, long) for name, s in sessions.items()})}


def _faster(seconds: dict, new: str, old: str) -> bool:
    return (seconds["held_out"][new] <= HELD_OUT_SLACK * seconds["held_out"][old]
            and seconds["long_window"][new] <= SPLIT_MARGIN * seconds["long_window"][old])


def _compared(seconds: dict, new: str, old: str) -> str:
    return ", ".join(f"{what.replace('_', ' ')} {s[new]:.2f} vs {s[old]:.2f} s" for what, s in seconds.items())


def split_float_tail(source: Bundle, folder: Path, manifest: Manifest, float_nodes: tuple[str, ...],
                     held: list[dict], one_graph, options: "TailOptions") -> dict:
    """Split the 8-bit vocoder written in `folder` (`one_graph`: its session) where its float nodes begin and keep
    head + tail (in its place, or beside it: `options.beside`) where they give its audio and are faster on `held`
    (exact-length feeds); returns the record."""
    whole = manifest.graphs[EXACT_VOCODER]
    cut = cut_float_tail(source, onnx.load(str(folder / whole.files["onnx"])), float_nodes[0], held[0],
                         manifest.model["sovits"]["vocoder_context_frames"], options.threads)
    files = install_split(folder, manifest, cut, options.beside)
    split = _split_session(folder, options.threads)
    calls = held + [_long_window(held, manifest.model["sovits"]["vocoder_context_frames"])]
    same = min(snr_db(a["audio"], b["audio"])
               for a, b in zip(run_all(one_graph, calls), run_all(split, calls)))
    seconds = _seconds({"one graph": one_graph, "split": split}, held, calls[-1:])
    taken = same >= SAME_AUDIO_DB and _faster(seconds, "split", "one graph")
    if taken and not options.beside:
        (folder / whole.files["onnx"]).unlink()
    elif not taken:  # back to the one graph alone
        for name in [*files.values(), files["tail_openvino"][: -len(".xml")] + ".bin"]:
            (folder / name).unlink()
        for key in ("vocoder_tail_context_frames", "vocoder_tail_windows"):
            del manifest.model["sovits"][key]
        for name in (VOCODER_TAIL, VOCODER_HEAD):
            manifest.graphs.pop(name, None)
        manifest.graphs[EXACT_VOCODER] = whole
    write_manifest(folder, manifest)
    where = " beside the one graph, run where OpenVINO is already loaded" if options.beside else ""
    record = {"taken": taken, "graph": VOCODER_TAIL, "part_of": EXACT_VOCODER, "first_float_node": float_nodes[0],
              "head": VOCODER_HEAD if options.beside else EXACT_VOCODER, "beside": options.beside,
              "context_frames": cut["context"], "windows": list(split.windows),
              "seconds": seconds, "worst_snr_vs_one_graph_db": round(same, 1),
              "reason": f"8-bit head on onnxruntime + float tail on OpenVINO vs the one onnxruntime graph: "
                        f"{_compared(seconds, 'split', 'one graph')}, audio equal to {same:.0f} dB; "
                        + (f"split{where}" if taken else "kept whole")}
    if taken and options.bf16_gate is not None:
        record["bf16"] = _try_bf16(folder, manifest, split, (held, calls[-1:]), options.bf16_gate, options.threads)
        record["reason"] += f"; tail in bf16: {record['bf16']['reason']}"
    return record


@dataclass(frozen=True)
class TailOptions:
    """How `split_float_tail` tries the split: `beside` keeps the one graph too (the runtime picks); `bf16_gate` (a
    CPU with native bf16): `gate(session) -> (accurate, worst log-mel L1)`, the float ladder's accuracy test, which
    a bf16 tail must pass to be kept (`_try_bf16`)."""

    threads: int = 1
    beside: bool = True
    bf16_gate: Callable | None = None


def _try_bf16(folder: Path, manifest: Manifest, f32_split: SplitVocoder, calls: tuple[list, list], gate,
              threads: int) -> dict:
    """The tail with OpenVINO's bf16 hint (native bf16: twice the f32 peak), kept where it passes `gate` (as
    accurate as OpenVINO's INT8 vocoder, and within the audible level) and is faster. Measured on random full-size
    weights: 15 % faster, but log-mel L1 0.89 against OpenVINO INT8's 0.17 (bf16 rounds every activation to 8 bits
    of mantissa, and their near-DC output has its other bands ~60 dB down); on a vocoder trained briefly on speech
    (one float stage): 7-10 % faster, 0.38 against the f32 tail's 0.045 and OpenVINO INT8's 0.52. So f32 on both."""
    tail = manifest.graphs[VOCODER_TAIL]
    tail.runtime_options = {"openvino": {"INFERENCE_PRECISION_HINT": "bf16"}}
    write_manifest(folder, manifest)
    split = _split_session(folder, threads)
    accurate, worst = gate(split)
    seconds = _seconds({"f32": f32_split, "bf16": split}, *calls)
    taken = accurate and _faster(seconds, "bf16", "f32")
    if not taken:
        tail.runtime_options = {}
        write_manifest(folder, manifest)
    return {"taken": taken, "seconds": seconds, "worst_log_mel_l1": worst,
            "reason": f"{_compared(seconds, 'bf16', 'f32')}, worst log-mel L1 {worst:.4f} "
                      f"({'passes' if accurate else 'fails'} its gate: as accurate as OpenVINO's INT8 vocoder and "
                      f"log-mel L1 <= {AUDIBLE_LOG_MEL_L1}); " + ("taken" if taken else "kept f32")}


def _write_split(folder: Path, head: onnx.ModelProto, tail: onnx.ModelProto) -> dict[str, str]:
    import openvino as ov

    names = {"head": f"{EXACT_VOCODER}.head.int8.onnx", "tail_onnx": f"{VOCODER_TAIL}.onnx",
             "tail_openvino": f"{VOCODER_TAIL}.xml"}
    onnx.save(head, str(folder / names["head"]))
    onnx.save(tail, str(folder / names["tail_onnx"]))
    ov.save_model(ov.convert_model(str(folder / names["tail_onnx"])), str(folder / names["tail_openvino"]),
                  compress_to_fp16=False)
    return names
