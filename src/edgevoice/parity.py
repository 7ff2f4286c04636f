"""What every family's parity check shares: where a run happened, and how far its audio is from the reference.
The cases and the other comparisons are the family's (`<family>/parity.py`); the `parity` command picks that module
by the bundle's family."""

from __future__ import annotations

import copy
import functools
import os
import platform
import shutil
import subprocess
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import numpy as np

# Distributions whose versions decide a run's numbers (onnxruntime-gpu replaces onnxruntime on CUDA machines).
LIBRARIES = ("edgevoice", "numpy", "openvino", "onnxruntime", "onnxruntime-gpu", "torch")


def run_precisions(backend_name: str, graphs) -> list[str]:
    """The precisions a backend computes a bundle's graphs in: OpenVINO runs the IRs (a quantised bundle's
    precision); onnxruntime the ONNX files, which quantisation leaves FP32 except in graphs it made for onnxruntime
    (`engine: onnxruntime`: the block-INT8 decode step, the 8-bit vocoder); our PyTorch reference is FP32."""
    if backend_name == "pytorch":
        return ["fp32"]
    if backend_name == "onnxruntime":
        return sorted({g.precision if g.engine == "onnxruntime" else "fp32" for g in graphs})
    return sorted({g.precision for g in graphs})


def describe(synth) -> dict:
    """Backend, bundle, precisions and machine of a run."""
    precisions = run_precisions(synth.backend.name, synth.bundle.manifest.graphs.values())
    return {"backend": synth.backend.name, "device": getattr(synth.backend, "device", "cpu"),
            "bundle": str(synth.bundle.path), "bundle_hash": synth.bundle.bundle_hash, "precisions": precisions,
            "sample_rate": synth.sample_rate, "machine": platform.node(),
            "processor": platform.processor() or platform.machine(), "host": host()}


def host() -> dict:
    """What a run's numbers depend on besides the bundle: CPU model and instruction-set flags, GPUs, library
    versions (travels in saved cases, so a replay on another box shows both machines)."""
    return copy.deepcopy(_host())


@functools.cache
def _host() -> dict:
    cpu = _cpuinfo()
    versions = {name: _version(name) for name in LIBRARIES}
    return {"name": platform.node(), "os": platform.platform(), "python": platform.python_version(),
            "cpu": {"model": cpu.get("model name") or cpu.get("Model") or platform.processor() or platform.machine(),
                    "cores": os.cpu_count(),
                    "flags": sorted(set((cpu.get("flags") or cpu.get("Features") or "").split()))},
            "gpus": _nvidia_gpus(), "libraries": {name: v for name, v in versions.items() if v}}


def _cpuinfo() -> dict[str, str]:
    """The first processor's fields of /proc/cpuinfo (Linux; empty elsewhere)."""
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return {}
    fields: dict[str, str] = {}
    for line in text.splitlines():
        key, _, value = line.partition(":")
        fields.setdefault(key.strip(), value.strip())
    return fields


def _nvidia_gpus() -> list[str]:
    """'name, driver, memory' of each NVIDIA GPU that nvidia-smi lists (none without the driver)."""
    if not shutil.which("nvidia-smi"):
        return []
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=20, check=False)
    except (OSError, subprocess.SubprocessError):
        return []
    return [line.strip() for line in out.stdout.splitlines() if line.strip()] if out.returncode == 0 else []


def _version(distribution: str) -> str | None:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None


def audio_difference(reference: np.ndarray, test: np.ndarray) -> dict:
    """SNR (None when identical, so the figure stays JSON-safe) and max |Δ| of `test` against `reference`."""
    reference = reference.astype(np.float64)
    noise = float(np.sum((reference - test) ** 2))
    snr = None if noise == 0 else float(10 * np.log10(max(float(np.sum(reference ** 2)), 1e-30) / noise))
    return {"audio_snr_db": snr, "audio_max_abs": float(np.abs(reference - test).max())}


@dataclass(frozen=True)
class Column:
    """One figure of the parity table each family prints: its title, the result key, its number format, and what
    stands in the cell when the figure is None (an SNR of identical audio)."""

    title: str
    key: str
    spec: str  # width.precision and type, e.g. "9.1e"
    unit: str = ""
    missing: str = "-"

    def cell(self, result: dict) -> str:
        width, _, precision = self.spec.partition(".")
        value = result[self.key]
        text = self.missing if value is None else f"{value:.{precision}}{self.unit}"
        return text.rjust(int(width))

    def heading(self) -> str:
        return self.title.rjust(int(self.spec.partition(".")[0]))


AUDIO_SNR = Column("audio SNR", "audio_snr_db", "10.1f", unit=" dB", missing="identical")
AUDIO_MAX_ABS = Column("max|Δ|", "audio_max_abs", "9.1e")
LABEL_WIDTH = 34


def table_lines(columns: tuple[Column, ...], results: list[dict]) -> list[str]:
    """The table under a family's reference line: a header, then one row per compared run."""
    lines = [f"  {'run':{LABEL_WIDTH}s} " + " ".join(c.heading() for c in columns)]
    for r in results:
        lines.append(f"  {r['label'][:LABEL_WIDTH]:{LABEL_WIDTH}s} " + " ".join(c.cell(r) for c in columns))
    return lines
