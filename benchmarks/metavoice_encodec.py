"""Time MetaVoice's waveform stage, the EnCodec 24 kHz decoder, at the released geometry with random weights:
our PyTorch module vs its exported graph on OpenVINO FP32 and onnxruntime (same codes, interleaved rounds).

    python benchmarks/metavoice_encodec.py [--threads 2] [--seconds 10] [--rounds 3] [--codebooks 8]

Prints seconds of compute per second of audio (median of the rounds) per backend. The export (with its parity
check at every example length) runs once into a temporary folder first.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from edgevoice_export.graph_export import export_graph
from edgevoice_export.metavoice.encodec import EncodecDecoder, encodec_config, encodec_graph


def random_decoder(seed: int = 0) -> EncodecDecoder:
    torch.manual_seed(seed)
    model = EncodecDecoder(encodec_config(None))
    model.codebooks.uniform_(-1, 1)
    return model.eval()


def runners(spec, folder: Path, threads: int) -> dict:
    import onnxruntime as ort
    import openvino as ov

    compiled = ov.Core().compile_model(str(folder / f"{spec.name}.xml"), "CPU", {
        "INFERENCE_PRECISION_HINT": "f32", "INFERENCE_NUM_THREADS": threads})
    request = compiled.create_infer_request()
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    session = ort.InferenceSession(str(folder / f"{spec.name}.onnx"), options, providers=["CPUExecutionProvider"])

    def pytorch(codes):
        with torch.no_grad():
            return spec.module(torch.from_numpy(codes)).numpy()

    def openvino(codes):
        request.infer({"codes": codes})
        return request.get_output_tensor(0).data

    return {"pytorch": pytorch, "openvino": openvino,
            "onnxruntime": lambda codes: session.run(None, {"codes": codes})[0]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--codebooks", type=int, default=8)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    decoder = random_decoder()
    config = decoder.config
    spec = encodec_graph(decoder, args.codebooks)
    frames = round(args.seconds * config.frame_rate)
    codes = np.random.default_rng(1).integers(0, config.bins, (1, args.codebooks, frames), dtype=np.int64)
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        _, parity = export_graph(spec, Path(tmp), args.threads)
        print(f"export + parity check: {time.perf_counter() - start:.1f} s")
        for result in parity:
            print(result.line())
        run = runners(spec, Path(tmp), args.threads)
        reference = run["pytorch"](codes)
        times = {name: [] for name in run}
        for _ in range(args.rounds):
            for name, fn in run.items():
                start = time.perf_counter()
                out = fn(codes)
                times[name].append(time.perf_counter() - start)
                assert np.abs(out - reference).max() <= 1e-3 * np.abs(reference).max(), name
    audio = frames / config.frame_rate
    print(f"\nEnCodec 24 kHz decoder, full size (n_filters {config.n_filters}, dimension {config.dimension}, "
          f"{args.codebooks} of {config.n_q} codebooks), {audio:.1f} s of audio, {args.threads} threads, "
          f"median of {args.rounds}")
    print("| backend | s per audio s | s per call |\n|---|---|---|")
    for name, values in times.items():
        median = statistics.median(values)
        print(f"| {name} | {median / audio:.4f} | {median:.3f} |")


if __name__ == "__main__":
    main()
