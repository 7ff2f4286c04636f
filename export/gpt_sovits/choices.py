"""GPT-SoVITS' own quantisation choices (`QuantizeOptions.family`), beside the options every family shares."""

from __future__ import annotations

from dataclasses import dataclass

from edgevoice.errors import BundleError

from ..quantize import ENGINE_CHOICES, QuantizeOptions

VOCODER_TAIL_CHOICES = ("auto", "whole", "split")  # `--vocoder-tail` (vocoder_tail.py says what each does)


@dataclass(frozen=True)
class GptSovitsChoices:
    """`max_tokens` caps each calibration sentence; `max_drop` turns on accuracy control for `sovits_vocoder`: the
    largest held-out log-mel L1 against FP32 allowed (see `quantize_within_budget`). `compute` (INT8): "auto" lets
    the CPU's class choose each quantised graph's float-part precision (`compute.py`), "f32" keeps them all f32.
    `vocoder_engine` (INT8, CPUs with VNNI): "auto" adds onnxruntime's 8-bit vocoder where it measured faster and
    as accurate (`vocoder_engine.py`), "onnxruntime" always, "openvino" never. `prefill_engine`, `latent_engine`
    (INT8, CPUs with VNNI): the same for onnxruntime's dynamic-INT8 prefill and QDQ-INT8 encoder + flow
    (`stand_ins.py`). `vocoder_tail` (with that 8-bit vocoder): "split" tries its float stages as their own graph
    on the backend's engine and ships that in its place where measured faster (`vocoder_tail.py`: faster, but
    OpenVINO's libraries and buffers in a process that otherwise loads none cost ~100 MiB, past the 600 MB goal);
    "auto" ships it beside the one graph, for the runtime to run where OpenVINO is loaded anyway; "whole" keeps the
    float stages inside."""

    max_tokens: int | None = None
    max_drop: float | None = None
    compute: str = "auto"  # or "f32"
    vocoder_engine: str = "auto"  # one of ENGINE_CHOICES
    prefill_engine: str = "auto"  # one of ENGINE_CHOICES
    latent_engine: str = "auto"  # one of ENGINE_CHOICES
    vocoder_tail: str = "auto"  # one of VOCODER_TAIL_CHOICES

    def __post_init__(self):
        for what in ("vocoder_engine", "prefill_engine", "latent_engine"):
            if getattr(self, what) not in ENGINE_CHOICES:
                raise BundleError(f"unknown {what.replace('_', ' ')} {getattr(self, what)!r} (choose "
                                  f"{', '.join(ENGINE_CHOICES)})")
        if self.vocoder_tail not in VOCODER_TAIL_CHOICES:
            raise BundleError(f"unknown vocoder tail {self.vocoder_tail!r} (choose {', '.join(VOCODER_TAIL_CHOICES)})")
        if self.compute not in ("auto", "f32"):
            raise BundleError(f"unknown compute {self.compute!r} (choose auto or f32)")


def choices(options: QuantizeOptions) -> GptSovitsChoices:
    """GPT-SoVITS' choices in `options` (its defaults where none are given)."""
    if options.family is None:
        return GptSovitsChoices()
    if not isinstance(options.family, GptSovitsChoices):
        raise BundleError(f"QuantizeOptions.family is {type(options.family).__name__}, not GPT-SoVITS' "
                          "GptSovitsChoices")
    return options.family
