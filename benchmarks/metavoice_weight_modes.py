"""MetaVoice's OpenVINO stage 1 under each NNCF weight mode `quantize` could use: speed per step and the accuracy gate,
side by side, so the modes in export/metavoice/quantize.py (`compress_stage1`: INT8_ASYM; INT4_ASYM in groups of
`INT4_GROUP`) stand on figures.

    python benchmarks/metavoice_weight_modes.py --bundle FP32_BUNDLE [--modes int8_asym int8_sym int4_asym:128
        int4_asym:64 int4_sym:128] [--threads 2] [--rounds 2] [--work DIR]

For each mode: the variant `quantize --decode-engine openvino` would write with that compression instead of the
policy's (the same u8 KV cache and runtime options), its teacher-forced guided logits against FP32 (the gate's own
measure: top-1 agreement, worst rel-L2; a mode that misses its precision's gate is reported with the failures), its
weights' size, and ms per step through the runtime's stateful decoder after prefills of 64 and 600 positions
(`step_engine.step_ms`), `--rounds` times right after the variant is made (the best kept: noise only slows a run
down; variants are made one after another, so compare within one run). Needs ~10 GB of memory per variant and
`--work` space for one variant bundle at a time (deleted after it is timed, unless `--keep`).
"""

from __future__ import annotations

import argparse
import gc
import shutil
import tempfile
import time
from pathlib import Path

from limits import cpu_info

MODES = ("int8_asym", "int8_sym", "int4_asym:128", "int4_asym:64", "int4_sym:128")


def compressor(mode: str):
    """`compress_stage1`'s replacement for `mode` (NAME[:GROUP])."""
    import nncf

    name, _, group = mode.partition(":")
    weight_mode = getattr(nncf.CompressWeightsMode, name.upper(), None)
    if weight_mode is None or not name.startswith(("int8", "int4")) or (group and not group.isdigit()):
        raise ValueError(f"{mode!r} is not a mode: NAME[:GROUP] with NAME an NNCF INT8/INT4 weight mode "
                         f"(e.g. {', '.join(MODES)})")

    def compress(model, precision: str, width: int):
        if not group:
            return nncf.compress_weights(model, mode=weight_mode)
        size = int(group) if width % int(group) == 0 else -1
        return nncf.compress_weights(model, mode=weight_mode, group_size=size, ratio=1.0)
    return compress


def make_variant(source: Path, out: Path, mode: str, threads: int) -> dict:
    """The variant `quantize` writes with `mode`'s compression, and what it reported."""
    from edgevoice.errors import EdgevoiceError
    from edgevoice_export.metavoice import quantize as mv_quantize
    from edgevoice_export.quantize import QuantizeOptions

    precision = "int4" if mode.startswith("int4") else "int8"
    policy = mv_quantize.compress_stage1
    mv_quantize.compress_stage1 = compressor(mode)
    start = time.perf_counter()
    try:
        report = mv_quantize.quantize_metavoice(source, out, QuantizeOptions(
            precision=precision, threads=threads, progress=False, decode_engine="openvino", overwrite=True))
    except EdgevoiceError as exc:
        return {"mode": mode, "gate": str(exc)}
    finally:
        mv_quantize.compress_stage1 = policy
    logits = report.accuracy["logits"]
    return {"mode": mode, "gate": "passed", "seconds": round(time.perf_counter() - start, 1),
            "weights_mb": round(report.sizes["variant_mb"], 1), "top1": round(logits["top1_agreement"], 3),
            "rel_l2_worst": round(logits["rel_l2"]["worst"], 4), "rel_l2_mean": round(logits["rel_l2"]["mean"], 4)}


def step_times(bundle: Path, threads: int) -> dict[int, float]:
    from edgevoice.backends import OpenVINOBackend
    from edgevoice.bundle import Bundle
    from edgevoice.metavoice.synthesizer import Synthesizer
    from edgevoice_export.metavoice.step_engine import step_ms

    synth = Synthesizer(Bundle.load(bundle), OpenVINOBackend(threads=threads))
    return step_ms(synth)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bundle", required=True, help="an FP32 MetaVoice bundle with the OpenVINO stage 1")
    parser.add_argument("--modes", nargs="+", default=list(MODES))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--work", default=None, help="folder for the variant bundles (default: a temporary one)")
    parser.add_argument("--keep", action="store_true", help="keep the variant bundles in --work")
    args = parser.parse_args()
    for mode in args.modes:
        try:
            compressor(mode)  # an unknown mode fails before any work
        except ValueError as exc:
            parser.error(str(exc))

    work = Path(args.work or tempfile.mkdtemp(prefix="mv-modes-"))
    rows, times = [], {}
    for mode in args.modes:
        out = work / mode.replace(":", "-g")
        row = make_variant(Path(args.bundle), out, mode, args.threads)
        rows.append(row)
        print(row, flush=True)
        if row["gate"] == "passed":
            times[mode] = [step_times(out, args.threads) for _ in range(args.rounds)]
            print(mode, times[mode], flush=True)
        if not args.keep:
            shutil.rmtree(out, ignore_errors=True)
        gc.collect()

    cpu = cpu_info()
    print(f"\nCPU: {cpu.model}, flags {' '.join(cpu.flags)}; {args.threads} threads; "
          f"{time.strftime('%Y-%m-%d %H:%M')}\n")
    print("| mode | stage-1 weights MB | gate | top-1 | worst rel-L2 | ms per step @ 64 / 600 (best of rounds) |")
    print("|---|---|---|---|---|---|")
    for row in rows:
        if row["gate"] != "passed":
            print(f"| {row['mode']} | – | {row['gate']} | – | – | – |")
            continue
        best = {p: min(r[p] for r in times[row["mode"]]) for p in times[row["mode"]][0]}
        print(f"| {row['mode']} | {row['weights_mb']} | passed | {row['top1']} | {row['rel_l2_worst']} | "
              + " / ".join(f"{best[p]:.1f}" for p in sorted(best)) + " |")


if __name__ == "__main__":
    main()
