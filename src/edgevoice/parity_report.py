"""Parity a person can read: gates with limits per precision, free-running statistics, and `report.json` plus a
self-contained `report.html` (plots embedded as PNG data URIs; matplotlib, from the `report` extra, is imported
only to draw).

Nothing here knows a family. A family's parity module (`<family>/parity.py`, picked by the `parity` command)
supplies, next to its forced case (`make_case`, `run_case`, `compare_runs`, `save_case`, `load_case`):

* `GATES`: a `Gate` for each figure its `compare_runs` returns that is worth a limit, with the measurements
  behind each default written beside it;
* `SAMPLED` (whether a free run depends on the seed) and `free_run(synth, case, seed) -> FreeRun`;
* `ParityRun`s with `label`, `audio`, `meta` (`edgevoice.parity.describe`), `free_runs`, and, for models that
  sample tokens, the teacher-forced `logits` `[steps, ..., vocab]`.

This module adds what every family shares: the log-mel distance, per-step logit errors, free-running statistics,
the verdict of each gate, and the two report files.
"""

from __future__ import annotations

import base64
import html
import io
import json
import re
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterable

import numpy as np

from .errors import EdgevoiceError

REPORT_FORMAT = "edgevoice-parity-report"
REPORT_FORMAT_VERSION = 1

# Precision classes, tightest first. A comparison is judged by the looser of its two runs' classes.
PRECISIONS = ("fp32", "bf16", "int8")
_PRECISION_CLASS = {"fp32": "fp32", "fp16": "bf16", "bf16": "bf16", "int8": "int8"}
# Our PyTorch reference computes in FP32 whatever the bundle (what other backends compute in is in a run's
# `precisions`: `edgevoice.parity.run_precisions`).
FP32_BACKENDS = frozenset({"pytorch"})

# One log-mel view for every family and rate (16–48 kHz): 1024-point frames every 256 samples, 80 HTK mel bands
# (the sizes of the log-mel L1 `edgevoice quantize` reports for EmotiVoice), natural log.
MEL_FFT, MEL_HOP, MEL_BANDS, MEL_FLOOR = 1024, 256, 80, 1e-5
# Comparisons clip both spectrograms 80 dB below the reference's loudest mel value: with only an absolute floor
# the near-empty bands of a quiet signal dominate the mean (full-size random GPT-SoVITS, against OpenVINO FP32:
# onnxruntime FP32 gave 1.2e-3 unclipped, 7.7e-4 clipped; INT8 1.29 and 0.83; white noise 5.2 and 5.0; silence
# 3.2 and 1.1; half the gain 0.69 and 0.50).
MEL_RANGE_DB = 80.0


# ------------------------------------------------------------------------------------------------ gates


@dataclass(frozen=True)
class Gate:
    """A limit on one figure of a comparison, per precision class; a limit of None reports without gating."""

    at_least: bool  # True: the figure must be ≥ the limit (SNR, agreement); False: ≤ it (errors, distances)
    fp32: float | None = None
    bf16: float | None = None
    int8: float | None = None

    def limit(self, precision: str) -> float | None:
        return getattr(self, precision)

    def holds(self, value: float | None, limit: float) -> bool:
        if value is None:  # the figure of identical outputs (an SNR without noise)
            return True
        return bool(value >= limit) if self.at_least else bool(value <= limit)  # NaN fails both ways


# Free-running figures are reported, not gated, unless the user sets a limit: sampled runs part at a near-tie
# of two tokens however exact the arithmetic, so how often that happens depends on the model and the text.
FREE_RUNNING_GATES = {
    "free_token_agreement": Gate(at_least=True),
    "free_log_mel_l1": Gate(at_least=False),
}


def with_overrides(gates: dict[str, Gate], settings: Iterable[str]) -> dict[str, Gate]:
    """`gates` changed by `[PRECISION:]NAME=LIMIT` settings (without a precision: every precision); a LIMIT of
    `off` removes the limit."""
    gates = dict(gates)
    for setting in settings:
        match = re.fullmatch(r"\s*(?:(\w+):)?(\w+)\s*=\s*(\S+)\s*", setting)
        if not match:
            raise EdgevoiceError(f"--gate {setting!r}: expected NAME=LIMIT or PRECISION:NAME=LIMIT")
        precision, name, text = match.groups()
        if name not in gates:
            raise EdgevoiceError(f"--gate {setting!r}: no gate {name!r} for this model (gates: "
                                 f"{', '.join(sorted(gates))})")
        if precision is not None and precision not in PRECISIONS:
            raise EdgevoiceError(f"--gate {setting!r}: precision must be one of {', '.join(PRECISIONS)}")
        limit = None if text.lower() == "off" else _number(text, setting)
        gates[name] = replace(gates[name], **{p: limit for p in ([precision] if precision else PRECISIONS)})
    return gates


def _number(text: str, setting: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise EdgevoiceError(f"--gate {setting!r}: the limit must be a number or 'off'") from None
    if not np.isfinite(value):
        raise EdgevoiceError(f"--gate {setting!r}: the limit must be finite")
    return value


def run_precision(meta: dict) -> str:
    """The precision class a run computed in, from its `describe()`."""
    if meta.get("backend") in FP32_BACKENDS:
        return "fp32"
    # a precision this edgevoice does not know is judged as the loosest
    classes = [_PRECISION_CLASS.get(p, PRECISIONS[-1]) for p in meta.get("precisions") or ["fp32"]]
    return max(classes, key=PRECISIONS.index)


# ------------------------------------------------------------------------------------------------ figures


def mel_filterbank(rate: int, n_fft: int = MEL_FFT, bands: int = MEL_BANDS) -> np.ndarray:
    """Triangular HTK-mel filters `[bands, n_fft//2 + 1]` from 0 Hz to Nyquist."""
    top = 2595.0 * np.log10(1.0 + rate / 2 / 700.0)
    edges = 700.0 * (10.0 ** (np.linspace(0.0, top, bands + 2) / 2595.0) - 1.0)
    bins = np.linspace(0.0, rate / 2, n_fft // 2 + 1)
    rising = (bins - edges[:-2, None]) / (edges[1:-1, None] - edges[:-2, None])
    falling = (edges[2:, None] - bins) / (edges[2:, None] - edges[1:-1, None])
    return np.maximum(0.0, np.minimum(rising, falling))


def mel(audio: np.ndarray, rate: int) -> np.ndarray:
    """Mel magnitudes `[bands, frames]` of a waveform: centred frames (reflected at the ends), each without its
    DC offset as in Kaldi's fbank, periodic Hann window. An inaudible offset, which random-weight vocoders emit
    (−0.035 under a 4e-4 signal at full size), would otherwise set the clip level and hide the signal."""
    audio = np.asarray(audio, np.float64).reshape(-1)
    if audio.size == 0:
        audio = np.zeros(1)
    padded = np.pad(audio, (MEL_FFT // 2, MEL_FFT // 2 + max(0, MEL_FFT - audio.size)), mode="reflect")
    frames = np.lib.stride_tricks.sliding_window_view(padded, MEL_FFT)[::MEL_HOP][: 1 + audio.size // MEL_HOP]
    frames = frames - frames.mean(axis=1, keepdims=True)
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(MEL_FFT) / MEL_FFT)
    return mel_filterbank(rate) @ np.abs(np.fft.rfft(frames * window, axis=-1)).T


def mel_floor(reference_mel: np.ndarray) -> float:
    return max(MEL_FLOOR, float(reference_mel.max(initial=0.0)) * 10 ** (-MEL_RANGE_DB / 20))


def log_mel(audio: np.ndarray, rate: int, floor: float = MEL_FLOOR) -> np.ndarray:
    """Natural-log mel magnitudes `[bands, frames]`, clipped at `floor`."""
    return np.log(np.maximum(mel(audio, rate), floor))


def log_mel_distance(reference: np.ndarray, test: np.ndarray, rate: int) -> float:
    """Mean |Δ log-mel| over the frames both waveforms have (free runs may differ in length), both clipped
    `MEL_RANGE_DB` below the reference's loudest value."""
    a, b = mel(reference, rate), mel(test, rate)
    floor, frames = mel_floor(a), min(a.shape[1], b.shape[1])
    return float(np.mean(np.abs(np.log(np.maximum(a[:, :frames], floor)) - np.log(np.maximum(b[:, :frames], floor)))))


def step_errors(reference: np.ndarray, test: np.ndarray) -> dict:
    """Per step (first axis) of teacher-forced logits `[steps, ..., vocab]`: max |Δ| and the share of rows
    (codebooks, when a model has several) whose top-1 token agrees."""
    reference, test = np.asarray(reference, np.float64), np.asarray(test, np.float64)
    steps = reference.shape[0]
    top1 = (reference.argmax(-1) == test.argmax(-1)).reshape(steps, -1).mean(axis=1)
    return {"max_abs": np.abs(reference - test).reshape(steps, -1).max(axis=1).tolist(),
            "top1_agreement": top1.tolist()}


@dataclass
class FreeRun:
    """One unforced run: its discrete choices (sampled tokens, predicted durations) and its waveform."""

    seed: int
    tokens: np.ndarray  # [steps, ...]
    audio: np.ndarray


def free_run_arrays(runs: list[FreeRun]) -> dict[str, np.ndarray]:
    """The arrays a parity case file stores for a reference's free runs."""
    arrays = {}
    for run in runs:
        arrays[f"free_{run.seed}_tokens"] = np.asarray(run.tokens)
        arrays[f"free_{run.seed}_audio"] = np.asarray(run.audio, np.float32)
    return arrays


def free_runs_from(arrays: dict[str, np.ndarray]) -> list[FreeRun]:
    seeds = sorted({int(m.group(1)) for name in arrays if (m := re.fullmatch(r"free_(-?\d+)_tokens", name))})
    try:
        return [FreeRun(s, arrays[f"free_{s}_tokens"], arrays[f"free_{s}_audio"]) for s in seeds]
    except KeyError as exc:
        raise EdgevoiceError(f"parity case: free run without its audio ({exc})") from None


def compare_free(reference: FreeRun, test: FreeRun, rate: int) -> dict:
    """Token agreement (share of steps, up to the longer run, where both chose the same), the first step where
    they part (None when identical), the length difference (test − reference) in steps and in seconds of audio,
    and the log-mel distance."""
    a = np.asarray(reference.tokens).reshape(len(reference.tokens), -1)
    b = np.asarray(test.tokens).reshape(len(test.tokens), -1)
    common = min(len(a), len(b))
    same = np.all(a[:common] == b[:common], axis=1) if a.shape[1:] == b.shape[1:] else np.zeros(common, bool)
    longer = max(len(a), len(b))
    parted = np.flatnonzero(~same)
    first = int(parted[0]) if parted.size else (None if len(a) == len(b) else common)
    return {"seed": reference.seed, "token_agreement": float(same.sum() / longer) if longer else 1.0,
            "first_divergence": first, "length_difference": len(b) - len(a),
            "seconds_difference": (np.size(test.audio) - np.size(reference.audio)) / rate,
            "log_mel_l1": log_mel_distance(reference.audio, test.audio, rate)}


def free_running(reference: list[FreeRun], test: list[FreeRun], rate: int) -> dict:
    """Statistics over seeds of `test`'s free runs against the reference's (same seeds)."""
    by_seed = {run.seed: run for run in test}
    missing = [run.seed for run in reference if run.seed not in by_seed]
    if missing:
        raise EdgevoiceError(f"no free run for seed(s) {', '.join(map(str, missing))} to compare")
    pairs = [compare_free(run, by_seed[run.seed], rate) for run in reference]
    agreement = [p["token_agreement"] for p in pairs]
    parted = [p["first_divergence"] for p in pairs if p["first_divergence"] is not None]
    lengths = [p["length_difference"] for p in pairs]
    seconds = [p["seconds_difference"] for p in pairs]
    distance = [p["log_mel_l1"] for p in pairs]
    return {
        "seeds": len(pairs), "identical": len(pairs) - len(parted),
        "token_agreement": {"mean": float(np.mean(agreement)), "worst": float(np.min(agreement))},
        "first_divergence": {"median": float(np.median(parted)) if parted else None,
                             "earliest": int(min(parted)) if parted else None},
        "length_difference": {"mean": float(np.mean(lengths)), "worst": int(max(lengths, key=abs))},
        "seconds_difference": {"mean": float(np.mean(seconds)), "worst": float(max(seconds, key=abs))},
        "log_mel_l1": {"mean": float(np.mean(distance)), "worst": float(np.max(distance))},
        "per_seed": pairs,
    }


# ------------------------------------------------------------------------------------------------ verdicts


@dataclass
class ReportRun:
    """What the report needs of a run, whatever its family."""

    label: str
    audio: np.ndarray
    meta: dict
    logits: np.ndarray | None = None
    free_runs: list[FreeRun] = field(default_factory=list)

    @classmethod
    def of(cls, run) -> "ReportRun":
        """From any family's `ParityRun` (token families carry `logits`)."""
        return cls(run.label, run.audio, run.meta, getattr(run, "logits", None), list(getattr(run, "free_runs", [])))


@dataclass
class Verdict:
    """One run against the reference: its figures, each gate's check, per-step errors, free-running figures."""

    label: str
    precision: str
    meta: dict
    figures: dict
    checks: list[dict]
    steps: dict | None = None
    free_running: dict | None = None

    @property
    def passed(self) -> bool:
        return all(check["passed"] for check in self.checks)

    def failures(self) -> list[str]:
        return [f"{c['figure']} {_fmt(c['value']) if c['measured'] else 'not measured'} "
                f"{'<' if c['at_least'] else '>'} {_fmt(c['limit'])}" for c in self.checks if not c["passed"]]

    def to_json(self) -> dict:
        return {"precision": self.precision, "log_mel_l1": self.figures["log_mel_l1"], "passed": self.passed,
                "gates": self.checks, "free_running": self.free_running}


def judge(reference: ReportRun, run: ReportRun, comparison: dict, gates: dict[str, Gate], rate: int) -> Verdict:
    """`run` against `reference`: the family's `comparison` plus the log-mel distance, per-step logit errors and
    free-running statistics, each figure checked against its gate's limit for the comparison's precision."""
    precision = max(run_precision(reference.meta), run_precision(run.meta), key=PRECISIONS.index)
    figures = {k: v for k, v in comparison.items() if k not in ("label", "meta")}
    figures["log_mel_l1"] = log_mel_distance(reference.audio, run.audio, rate)
    steps = None
    if reference.logits is not None and run.logits is not None:
        steps = step_errors(reference.logits, run.logits)
    free = None
    if reference.free_runs:
        free = free_running(reference.free_runs, run.free_runs, rate)
        figures["free_token_agreement"] = free["token_agreement"]["mean"]
        figures["free_log_mel_l1"] = free["log_mel_l1"]["mean"]
    checks = []
    for name, gate in gates.items():
        limit = gate.limit(precision)
        if limit is None:
            continue
        measured = name in figures  # not, e.g., a free-running gate without free runs: that fails
        value = figures.get(name)
        checks.append({"figure": name, "value": value, "limit": limit, "at_least": gate.at_least,
                       "measured": measured, "passed": measured and gate.holds(value, limit)})
    return Verdict(run.label, precision, run.meta, figures, checks, steps, free)


def gate_lines(verdicts: list[Verdict]) -> list[str]:
    """Each run's verdict for the command's text output (the figures themselves are in the family's table)."""
    lines = ["gates (limits of each run's precision, --gate [PRECISION:]NAME=LIMIT changes them; log-mel L1 vs the "
             "reference):"]
    for v in verdicts:
        verdict = "pass" if v.passed else "FAIL " + "; ".join(v.failures())
        lines.append(f"  {v.label[:34]:34s} {v.precision:5s} {_fmt(v.figures['log_mel_l1']):>9s}  {verdict}")
    free = [v for v in verdicts if v.free_running]
    if free:
        seeds = free[0].free_running["seeds"]
        lines.append(f"free running ({seeds} seed{'s' if seeds != 1 else ''}): token agreement mean/worst, identical "
                     "seeds, first divergence (median step), length Δ (worst, s), log-mel L1 (mean)")
        for v in free:
            f, agreement = v.free_running, v.free_running["token_agreement"]
            lines.append(f"  {v.label[:34]:34s} {agreement['mean']:.3f}/{agreement['worst']:.3f}"
                         f"  {f['identical']}/{f['seeds']}  {_fmt(f['first_divergence']['median'])}"
                         f"  {f['seconds_difference']['worst']:+.2f}  {f['log_mel_l1']['mean']:.4f}")
    return lines


def _fmt(value) -> str:
    if value is None:
        return "identical"
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        return str(value)
    value = float(value)
    return f"{value:.3g}" if 1e-3 <= abs(value) < 1e4 or value == 0 else f"{value:.2e}"


# ------------------------------------------------------------------------------------------------ report.json


def document(family: str, case: dict, reference: ReportRun, verdicts: list[Verdict], gates: dict[str, Gate],
             defaults: dict[str, Gate]) -> dict:
    """report.json: every key is always present (None where a figure does not apply). Machines are listed once
    and runs point to them by index."""
    machines: list[dict] = []

    def placed(meta: dict) -> dict:
        host = meta.get("host")
        if host is not None and host not in machines:
            machines.append(host)
        return {"meta": {k: v for k, v in meta.items() if k != "host"},
                "machine": None if host is None else machines.index(host)}  # None: a case from an older edgevoice

    return {
        "format": REPORT_FORMAT, "format_version": REPORT_FORMAT_VERSION,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"), "family": family,
        "passed": all(v.passed for v in verdicts), "case": case,
        "gates": {name: {"at_least": g.at_least, **{p: g.limit(p) for p in PRECISIONS},
                         "changed": g != defaults.get(name)} for name, g in gates.items()},
        "reference": {"label": reference.label, "precision": run_precision(reference.meta), **placed(reference.meta)},
        "runs": [{"label": v.label, "precision": v.precision, "passed": v.passed, **placed(v.meta),
                  "figures": v.figures, "gates": v.checks, "steps": v.steps, "free_running": v.free_running}
                 for v in verdicts],
        "machines": machines,
    }


def _json_safe(value):
    """NaN and infinities (a broken run's figures) as strings: report.json stays strict JSON."""
    if isinstance(value, float) and not np.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value


# ------------------------------------------------------------------------------------------------ report.html

# Instruction-set flags that decide which kernels a backend picks (shown first; the whole list is folded away).
# x86 `smep` is a protection feature, not Arm's SME.
KERNEL_FLAGS = re.compile(r"sse4_2|avx\w*|fma|f16c|amx\w*|asimd\w*|sve\w*|i8mm|\w*bf16|sme(?!p)\w*")
STYLE = """
body{font:14px/1.45 system-ui,sans-serif;margin:2em auto;max-width:1100px;color:#222;padding:0 1em}
h1{margin-bottom:.2em} h2{margin-top:1.8em;border-bottom:1px solid #ddd} table{border-collapse:collapse;margin:.6em 0}
td,th{border:1px solid #ccc;padding:.25em .55em;text-align:left;vertical-align:top} th{background:#f3f3f3}
td.num{text-align:right;font-variant-numeric:tabular-nums} .pass{background:#e3f5e1} .fail{background:#fbdada}
.verdict{display:inline-block;padding:.2em .8em;border-radius:.3em;font-weight:bold;color:#fff}
.verdict.pass{background:#2e7d32} .verdict.fail{background:#c62828} img{max-width:100%} .muted{color:#666}
code{background:#f3f3f3;padding:0 .2em} audio{display:block;margin:.3em 0 1em}
"""


def write_report(folder: str | Path, doc: dict, reference: ReportRun, runs: list[ReportRun], rate: int
                 ) -> tuple[Path, Path]:
    """`report.json` and `report.html` in `folder` (created if needed)."""
    folder = Path(folder)
    page = render_html(doc, reference, runs, rate)  # before writing anything: a missing extra leaves no files
    try:
        folder.mkdir(parents=True, exist_ok=True)
        json_path, html_path = folder / "report.json", folder / "report.html"
        json_path.write_text(json.dumps(_json_safe(doc), indent=1, ensure_ascii=False, allow_nan=False) + "\n",
                             encoding="utf-8")
        html_path.write_text(page, encoding="utf-8")
    except OSError as exc:
        raise EdgevoiceError(f"{folder}: cannot write the report ({exc.strerror or exc})") from None
    return json_path, html_path


def _figure_class():
    try:
        from matplotlib.figure import Figure  # no pyplot: no global state, no GUI backend
    except ImportError:
        raise EdgevoiceError("--report draws its plots with matplotlib: pip install 'edgevoice[report]'") from None
    return Figure


def _png(figure) -> str:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=90)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _audio_plot(Figure, run: ReportRun, reference: ReportRun, rate: int) -> str:
    """Waveform (over the reference's), log-mel spectrogram and, for a compared run, its difference (both clipped
    as `log_mel_distance` clips them)."""
    compared = run is not reference
    figure = Figure(figsize=(10, 2.1 * (2 + compared)), layout="constrained")
    axes = figure.subplots(2 + compared, 1, sharex=True)
    if compared:
        axes[0].plot(np.arange(reference.audio.size) / rate, reference.audio, color="0.65", lw=0.6, label="reference")
    axes[0].plot(np.arange(run.audio.size) / rate, run.audio, lw=0.6, color="C0", label=run.label)
    axes[0].set_ylabel("amplitude")
    axes[0].legend(loc="upper right", fontsize=8)
    floor = mel_floor(mel(reference.audio, rate))  # every run is drawn over the reference's 80 dB
    spectrogram = log_mel(run.audio, rate, floor)
    extent = (0, spectrogram.shape[1] * MEL_HOP / rate, 0, MEL_BANDS)
    image = axes[1].imshow(spectrogram, origin="lower", aspect="auto", extent=extent, cmap="magma")
    axes[1].set_ylabel("mel band")
    figure.colorbar(image, ax=axes[1], label="log mel")
    if compared:
        ref_mel = log_mel(reference.audio, rate, floor)
        frames = min(spectrogram.shape[1], ref_mel.shape[1])
        diff = spectrogram[:, :frames] - ref_mel[:, :frames]
        span = max(float(np.abs(diff).max()), 1e-12)
        image = axes[2].imshow(diff, origin="lower", aspect="auto", cmap="RdBu_r", vmin=-span, vmax=span,
                               extent=(0, frames * MEL_HOP / rate, 0, MEL_BANDS))
        axes[2].set_ylabel("mel band")
        largest = "identical" if not diff.any() else f"max |Δ| {span:.2e}"
        axes[2].set_title(f"log-mel difference vs the reference ({largest})", fontsize=9)
        figure.colorbar(image, ax=axes[2], label="Δ log mel")
    axes[-1].set_xlabel("seconds")
    return _png(figure)


def _steps_plot(Figure, runs: list[dict]) -> str:
    """Per-step logit errors of the report.json `runs` that have them."""
    figure = Figure(figsize=(10, 4.6), layout="constrained")
    top, bottom = figure.subplots(2, 1, sharex=True)
    for index, run in enumerate(run for run in runs if run["steps"]):
        steps = np.arange(len(run["steps"]["max_abs"]))
        # identical logits (|Δ| = 0) are drawn at 1e-12 so that the log axis can show them
        top.semilogy(steps, np.maximum(run["steps"]["max_abs"], 1e-12), lw=1, marker=".", ms=3, label=run["label"],
                     color=f"C{index}")
        bottom.plot(steps, run["steps"]["top1_agreement"], drawstyle="steps-mid", lw=1, color=f"C{index}")
    top.set_ylabel("max |Δ logit|")
    top.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1))
    bottom.set_ylabel("top-1 agreement")
    bottom.set_ylim(-0.05, 1.05)
    bottom.set_xlabel("GPT step (teacher-forced)")
    return _png(figure)


def _free_plot(Figure, runs: list[dict]) -> str:
    """Per-seed free-running figures of the report.json `runs` that have them."""
    figure = Figure(figsize=(10, 3.2), layout="constrained")
    left, right = figure.subplots(1, 2)
    for index, run in enumerate(run for run in runs if run["free_running"]):
        pairs = run["free_running"]["per_seed"]
        seeds = [p["seed"] for p in pairs]
        left.plot(seeds, [p["token_agreement"] for p in pairs], "o", color=f"C{index}", label=run["label"])
        right.plot(seeds, [p["log_mel_l1"] for p in pairs], "o", color=f"C{index}")
    from matplotlib.ticker import MaxNLocator

    left.set(xlabel="seed", ylabel="token agreement", ylim=(-0.05, 1.05))
    right.set(xlabel="seed", ylabel="log-mel L1 vs reference")
    for axis in (left, right):
        axis.xaxis.set_major_locator(MaxNLocator(integer=True))
    right.legend(*left.get_legend_handles_labels(), fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1))
    return _png(figure)


def _wav_uri(audio: np.ndarray, gain: float, rate: int) -> str:
    from .audio import wav_bytes

    return "data:audio/wav;base64," + base64.b64encode(wav_bytes(audio * gain, rate)).decode("ascii")


def render_html(doc: dict, reference: ReportRun, runs: list[ReportRun], rate: int) -> str:
    """The report as one HTML page with everything embedded (no network, no files beside it)."""
    Figure = _figure_class()
    verdicts = doc["runs"]
    e = html.escape
    parts = [f"<!doctype html><html lang='en'><head><meta charset='utf-8'><link rel='icon' href='data:,'>"
             f"<title>edgevoice parity: {e(doc['family'])}</title><style>{STYLE}</style></head><body>",
             f"<h1>edgevoice parity report</h1><p><span class='verdict {'pass' if doc['passed'] else 'fail'}'>"
             f"{'ALL GATES PASS' if doc['passed'] else 'A GATE FAILED'}</span> <span class='muted'>"
             f"{e(doc['family'])} · {e(doc['created'])}</span></p>", _case_html(doc)]
    parts += ["<h2>Summary</h2>", _summary_html(doc), "<h2>Gates</h2>", _gates_html(doc)]
    if any(v["steps"] for v in verdicts):
        parts += ["<h2>GPT logits per step</h2><p>Teacher-forced logits over the case's tokens: the largest "
                  "absolute difference from the reference at each step, and whether the top-1 token agrees.</p>",
                  f"<img alt='per-step logit error' src='{_steps_plot(Figure, verdicts)}'>"]
    if any(v["free_running"] for v in verdicts):
        parts += ["<h2>Free running</h2><p>The text run freely (nothing forced: sampled from each seed, or once "
                  "for a deterministic model) on every run, compared with the reference's free run of the same "
                  "seed.</p>", _free_html(verdicts),
                  f"<img alt='free-running statistics' src='{_free_plot(Figure, verdicts)}'>"]
    gain = 0.9 / max(float(np.abs(reference.audio).max()), 1e-12)
    parts.append(f"<h2>Audio</h2><p class='muted'>Players are scaled by one gain ({gain:.3g}, the reference's "
                 "peak to 0.9) so that loudness differences stay audible.</p>")
    for run in [reference, *runs]:
        title = "reference: " + run.label if run is reference else run.label
        plot = _audio_plot(Figure, run, reference, rate)
        parts += [f"<h3>{e(title)}</h3>", f"<img alt='{e(run.label)} audio' src='{plot}'>",
                  f"<audio controls preload='none' src='{_wav_uri(run.audio, gain, rate)}'></audio>"]
    parts += ["<h2>Machines</h2>", _machines_html(doc), "</body></html>"]
    return "\n".join(parts)


def _case_html(doc: dict) -> str:
    e, case = html.escape, doc["case"]
    rows = "".join(f"<tr><th>{e(str(k))}</th><td>{'—' if v is None else e(str(v))}</td></tr>"
                   for k, v in case.items())
    return f"<table>{rows}<tr><th>reference</th><td>{e(doc['reference']['label'])}</td></tr></table>"


def _summary_html(doc: dict) -> str:
    e = html.escape
    names = list(dict.fromkeys(name for v in doc["runs"] for name in v["figures"]))
    head = "".join(f"<th>{e(n).replace('_', '_<wbr>')}</th>" for n in names)  # narrow columns break at _
    ref = doc["reference"]
    rows = [f"<tr><td>{e(ref['label'])}</td><td>{ref['precision']}</td><td>{e(_where(ref['meta']))}</td>"
            + "<td class='muted'>—</td>" * len(names) + "<td>reference</td></tr>"]
    for v in doc["runs"]:
        checks = {c["figure"]: c for c in v["gates"]}
        cells = []
        for name in names:
            check = checks.get(name)
            mark = "" if check is None else f" class='num {'pass' if check['passed'] else 'fail'}' title='" \
                f"{'≥' if check['at_least'] else '≤'} {_fmt(check['limit'])} ({v['precision']})'"
            cells.append(f"<td{mark or ' class=num'}>{e(_fmt(v['figures'].get(name)))}</td>")
        result = "<td class='pass'>pass</td>" if v["passed"] else "<td class='fail'>FAIL</td>"
        rows.append(f"<tr><td>{e(v['label'])}</td><td>{v['precision']}</td><td>{e(_where(v['meta']))}</td>"
                    f"{''.join(cells)}{result}</tr>")
    return (f"<table><tr><th>run</th><th>precision</th><th>backend · bundle</th>{head}<th>result</th></tr>"
            f"{''.join(rows)}</table><p class='muted'>Green or red cells are gated (hover for the limit); "
            "SNR 'identical' means no difference at all.</p>")


def _where(meta: dict) -> str:
    device = f" ({meta['device']})" if meta.get("device", "cpu") != "cpu" else ""
    return f"{meta.get('backend', '?')}{device} · {Path(str(meta.get('bundle', '?'))).name}"


def _gates_html(doc: dict) -> str:
    rows = []
    for name, gate in doc["gates"].items():
        limits = "".join(f"<td class='num'>{'—' if gate[p] is None else _fmt(gate[p])}</td>" for p in PRECISIONS)
        rows.append(f"<tr><td>{html.escape(name)}</td><td>{'≥' if gate['at_least'] else '≤'}</td>{limits}"
                    f"<td>{'set by --gate' if gate['changed'] else 'default'}</td></tr>")
    return ("<table><tr><th>figure</th><th>must be</th>" + "".join(f"<th>{p}</th>" for p in PRECISIONS)
            + f"<th></th></tr>{''.join(rows)}</table><p class='muted'>A run is judged by the looser precision of "
            "itself and the reference; — reports without gating.</p>")


def _free_html(verdicts: list[dict]) -> str:
    rows = []
    for v in verdicts:
        f = v["free_running"]
        if f:
            rows.append(f"<tr><td>{html.escape(v['label'])}</td><td class='num'>{f['identical']}/{f['seeds']}</td>"
                        f"<td class='num'>{f['token_agreement']['mean']:.3f}</td>"
                        f"<td class='num'>{f['token_agreement']['worst']:.3f}</td>"
                        f"<td class='num'>{_fmt(f['first_divergence']['earliest'])}</td>"
                        f"<td class='num'>{_fmt(f['first_divergence']['median'])}</td>"
                        f"<td class='num'>{f['length_difference']['mean']:+.2f}</td>"
                        f"<td class='num'>{f['length_difference']['worst']:+d}</td>"
                        f"<td class='num'>{f['seconds_difference']['worst']:+.3f}</td>"
                        f"<td class='num'>{f['log_mel_l1']['mean']:.4f}</td>"
                        f"<td class='num'>{f['log_mel_l1']['worst']:.4f}</td></tr>")
    return ("<table><tr><th rowspan=2>run</th><th rowspan=2>identical seeds</th><th colspan=2>token agreement</th>"
            "<th colspan=2>first divergence step</th><th colspan=2>length Δ (steps)</th><th>length Δ (s)</th>"
            "<th colspan=2>log-mel L1</th></tr><tr><th>mean</th><th>worst</th><th>earliest</th><th>median</th>"
            f"<th>mean</th><th>worst</th><th>worst</th><th>mean</th><th>worst</th></tr>{''.join(rows)}</table>"
            "<p class='muted'>'identical' in a divergence column: no seed parted.</p>")


def _machines_html(doc: dict) -> str:
    e = html.escape
    users: dict[int | None, list[str]] = {}
    for entry in [doc["reference"], *doc["runs"]]:
        users.setdefault(entry["machine"], []).append(entry["label"])
    parts = []
    for index, host in enumerate(doc["machines"]):
        cpu = host["cpu"]
        kernels = [f for f in cpu["flags"] if KERNEL_FLAGS.fullmatch(f)]
        gpus = ", ".join(host["gpus"]) or "none found"
        libraries = ", ".join(f"{k} {v}" for k, v in host["libraries"].items())
        parts.append(
            f"<h3>Machine {index + 1}: {e(host['name'])}</h3><p class='muted'>runs: "
            f"{e('; '.join(users.get(index, [])))}</p><table>"
            f"<tr><th>CPU</th><td>{e(str(cpu['model']))}, {cpu['cores']} logical cores</td></tr>"
            f"<tr><th>kernel-relevant flags</th><td><code>{e(' '.join(kernels)) or 'none'}</code></td></tr>"
            f"<tr><th>all CPU flags</th><td><details><summary>{len(cpu['flags'])} flags</summary><code>"
            f"{e(' '.join(cpu['flags']))}</code></details></td></tr>"
            f"<tr><th>GPU</th><td>{e(gpus)}</td></tr><tr><th>OS</th><td>{e(host['os'])}</td></tr>"
            f"<tr><th>Python</th><td>{e(host['python'])}</td></tr><tr><th>libraries</th><td>{e(libraries)}</td></tr>"
            "</table>")
    if None in users:
        parts.append(f"<p class='muted'>No machine recorded for {e('; '.join(users[None]))} (a case saved by an "
                     "older edgevoice).</p>")
    return "\n".join(parts)
