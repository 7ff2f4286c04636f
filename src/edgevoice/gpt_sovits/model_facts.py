"""The manifest's model facts GPT-SoVITS synthesis reads, checked when a bundle is opened.

The hashes say a bundle's files are the ones its manifest lists, not that the manifest's numbers make sense: a
hand-edited `model` section (a hop of 0, 10^12 channels, a count written as a string) used to surface as a
traceback deep inside synthesis or as a request for terabytes. Each fact must be a whole number in a plausible
range and agree with the graphs' own tensor shapes where those are fixed, or the bundle is refused in one line.
"""

from __future__ import annotations

import math

from ..bundle import Bundle
from ..errors import BundleError, abbreviated

# Far above every released configuration (vocabulary 1025, 732 phones, 2048-point STFT, 24 layers, 16 heads, 1024
# channels) and far below sizes that would make numpy or a graph allocate gigabytes per call.
MAX_SIZE = 1 << 16
MAX_COUNT = 1024
GPT_FACTS = {"n_layer": MAX_COUNT, "vocab_size": MAX_SIZE, "eos": MAX_SIZE, "phone_vocab_size": MAX_SIZE}
SOVITS_FACTS = {"inter_channels": MAX_SIZE, "gin_channels": MAX_SIZE, "spec_channels": MAX_SIZE,
                "hop_length": MAX_SIZE, "filter_length": MAX_SIZE, "win_length": MAX_SIZE}
OPTIONAL = {"phone_vocab_size"}
# (fact, graph, tensor, axis): where a graph's fixed dimension must equal a fact
SHAPED = (("inter_channels", "sovits_latent", "noise", 1), ("inter_channels", "sovits_vocoder", "z", 1),
          ("gin_channels", "sovits_latent", "ge", 1), ("gin_channels", "sovits_vocoder", "ge", 1),
          ("spec_channels", "ref_encoder", "refer_spec", 1), ("vocab_size", "gpt_prefill", "logits", -1),
          ("vocab_size", "gpt_step", "logits", -1), ("vocab_size", "gpt_decode", "logits", -1))


def checked_model(bundle: Bundle) -> dict:
    """The manifest's `model` section, or a one-line BundleError naming the first fact that is missing, of the
    wrong type, out of range or at odds with the graphs."""
    model, where = bundle.manifest.model, f"{bundle.path}: manifest model"
    facts = {}
    for section, limits in (("gpt", GPT_FACTS), ("sovits", SOVITS_FACTS)):
        values = model.get(section)
        if not isinstance(values, dict):
            raise BundleError(f"{where} has no {section!r} section of facts (made by another exporter? re-export the "
                              "bundle)")
        for key, limit in limits.items():
            if key not in values and key in OPTIONAL:
                continue
            value = values.get(key)
            least = 0 if key == "eos" else 1
            if isinstance(value, bool) or not isinstance(value, int) or not least <= value <= limit:
                raise BundleError(f"{where} {section}.{key} must be a whole number in {least}…{limit}, found "
                                  f"{abbreviated(repr(value))}")
            facts[key] = value
    _check_consistent(model, facts, where)
    _check_shapes(bundle, facts, where)
    return model


def _check_consistent(model: dict, facts: dict, where: str) -> None:
    if facts["eos"] >= facts["vocab_size"]:
        raise BundleError(f"{where} gpt.eos {facts['eos']} is not a token id (vocab_size {facts['vocab_size']})")
    if facts["spec_channels"] != facts["filter_length"] // 2 + 1 or facts["win_length"] > facts["filter_length"]:
        raise BundleError(f"{where} sovits: spec_channels {facts['spec_channels']}, filter_length "
                          f"{facts['filter_length']} and win_length {facts['win_length']} are not one STFT's sizes")
    max_sec = model["gpt"].get("max_sec")
    if not is_max_sec(max_sec):
        raise BundleError(f"{where} gpt.max_sec must be a positive number of seconds, found "
                          f"{abbreviated(repr(max_sec))}")


def is_max_sec(value) -> bool:
    """Whether `value` can be the GPT's `max_sec` (upstream's token limit, 50 per second): absent, or a positive
    finite number (the exporter checks the checkpoint's the same way, before the export)."""
    return value is None or (not isinstance(value, bool) and isinstance(value, (int, float)) and math.isfinite(value)
                             and value > 0)


def _check_shapes(bundle: Bundle, facts: dict, where: str) -> None:
    graphs = bundle.manifest.graphs
    for fact, graph, tensor, axis in SHAPED:
        entry = graphs.get(graph)
        specs = [] if entry is None else [t for t in (*entry.inputs, *entry.outputs) if t.name == tensor]
        if not specs or not -len(specs[0].shape) <= axis < len(specs[0].shape):
            continue  # a graph this bundle lacks, or a tensor of another form (older exports): nothing to compare
        size = specs[0].shape[axis]
        if isinstance(size, int) and size != facts[fact]:
            raise BundleError(f"{where} {fact} {facts[fact]} does not match {graph}'s {tensor} {specs[0].shape}")
    prefill = graphs.get("gpt_prefill")
    if prefill is not None:
        layers = sum(t.name.startswith("present_key.") for t in prefill.outputs)
        if layers != facts["n_layer"]:
            raise BundleError(f"{where} gpt.n_layer {facts['n_layer']} does not match gpt_prefill's {layers} "
                              "layers of keys")
