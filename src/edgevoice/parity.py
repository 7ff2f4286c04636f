"""What every family's parity check shares: where a run happened, and how far its audio is from the reference.
The cases and the other comparisons are the family's (`<family>/parity.py`); the `parity` command picks that module
by the bundle's family."""

from __future__ import annotations

import platform

import numpy as np


def describe(synth) -> dict:
    """Backend, bundle, precisions and machine of a run."""
    precisions = sorted({g.precision for g in synth.bundle.manifest.graphs.values()})
    return {"backend": synth.backend.name, "bundle": str(synth.bundle.path), "bundle_hash": synth.bundle.bundle_hash,
            "precisions": precisions, "machine": platform.node(),
            "processor": platform.processor() or platform.machine()}


def audio_difference(reference: np.ndarray, test: np.ndarray) -> dict:
    """SNR (None when identical, so the figure stays JSON-safe) and max |Δ| of `test` against `reference`."""
    reference = reference.astype(np.float64)
    noise = float(np.sum((reference - test) ** 2))
    snr = None if noise == 0 else float(10 * np.log10(max(float(np.sum(reference ** 2)), 1e-30) / noise))
    return {"audio_snr_db": snr, "audio_max_abs": float(np.abs(reference - test).max())}
