"""What a decode step whose attention writes the KV cache in place is fed (shared by the families' host caches and
by the exporter that makes such steps, `edgevoice_export.fused_attention`).

Such a step reads each layer's cache buffer `[rows, H, capacity, Dh]` and writes the call's new keys and values
into the same buffer at each row's own length (onnxruntime's `GroupQueryAttention`, its `present_*` outputs bound
to the buffers it reads), so the host passes lengths instead of a slot mask and copies nothing."""

from __future__ import annotations

import numpy as np

from .errors import BundleError

IN_PLACE_INPUT_NAMES = ("seqlens_k", "total_sequence_length")
# a host-cache step reads a slot mask (as exported) or its buffers' lengths (its attention fused by `quantize`)
STEP_CACHE_INPUTS = ({"past_mask"}, set(IN_PLACE_INPUT_NAMES))


def check_step_cache_inputs(bundle, graph_name: str) -> None:
    """Refuse a bundle whose host-cache step `graph_name` (if it has one) reads neither cache interface."""
    step = bundle.manifest.graphs.get(graph_name)
    if step is not None and not any(names <= {t.name for t in step.inputs} for names in STEP_CACHE_INPUTS):
        raise BundleError(f"{bundle.path}: graph {graph_name!r} has neither past_mask nor seqlens_k and "
                          "total_sequence_length; re-export the bundle with this version")


def in_place_feeds(filled: np.ndarray, new: int) -> dict[str, np.ndarray]:
    """The step's length inputs for a call adding `new` tokens to rows holding `filled` slots each: `seqlens_k`
    is each row's length after the call minus one, `total_sequence_length` the longest row's length after it."""
    filled = np.asarray(filled)
    return {"seqlens_k": (filled + new - 1).astype(np.int32),
            "total_sequence_length": np.array(int(filled.max()) + new, np.int32)}
