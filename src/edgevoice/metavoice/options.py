"""MetaVoice-1B synthesis options. The defaults are upstream's `fast_inference.TTS.synthesise` (stage 1: top-p 0.95,
temperature 1, speaker guidance 3; stage 2: top-k 200, temperature 1) and travel in the bundle."""

from __future__ import annotations

from dataclasses import dataclass
from numbers import Integral

from ..errors import OptionsError
from ..options import ModelOptions

FAMILY = "metavoice"
MIN_REFERENCE_SECONDS = 30.0  # upstream's check_audio_file threshold
# Speaker guidance multiplies the logits by g and (1 - g): a finite but huge g (1e39) overflows float32 to inf and
# NaN, and the sampler then ends every sentence at once. Upstream's default is 3 (1: none); 100 is far beyond any
# useful strength and keeps the guided logits (|logit| ~ tens) far from overflow.
MAX_GUIDANCE = 100.0


@dataclass(frozen=True)
class SynthesisOptions(ModelOptions):
    MODEL_DEFAULTS = ("guidance", "top_p", "top_k", "temperature", "stage2_top_k", "stage2_temperature",
                      "sentence_pause", "normalize_loudness")

    guidance: float = 3.0  # speaker guidance scale (upstream's guidance_scale; 1 = no guidance)
    prompt_guidance: float = 1.0  # upstream's second scale; > 1 needs a prompt row the released models never use
    top_p: float | None = 0.95  # stage 1 nucleus sampling (None: off)
    top_k: int | None = None  # stage 1 top-k; when set it replaces top_p (upstream allows only one)
    temperature: float = 1.0  # stage 1
    stage2_top_k: int | None = 200
    stage2_temperature: float = 1.0
    greedy: bool = False  # top-k 1 in both stages and no other masking: a sampling-free run
    max_new_tokens: int | None = None  # stage-1 tokens per sentence (None: as many as the contexts allow)
    sentence_pause: float = 0.2  # seconds of silence between sentences of a longer text
    normalize_loudness: bool = True  # a pure gain to -14 LUFS (peak kept under 0.99); off: EnCodec's raw output
    seed: int | None = None

    def __post_init__(self):
        super().__post_init__()
        if self.guidance < 1:
            raise OptionsError(f"guidance {self.guidance} must be at least 1 (upstream asserts it)")
        if self.guidance > MAX_GUIDANCE:
            raise OptionsError(f"guidance {self.guidance} is over {MAX_GUIDANCE:g} (upstream's default is 3)")
        if self.prompt_guidance != 1:
            raise OptionsError("prompt guidance other than 1 needs a prompt row, which MetaVoice-1B's inference "
                               "never builds; leave it at 1")
        if self.top_p is not None and not 0 < self.top_p <= 1:
            raise OptionsError(f"top_p {self.top_p} is outside (0, 1]")
        for name in ("top_k", "stage2_top_k", "max_new_tokens"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, Integral) or value < 1):
                raise OptionsError(f"{name} must be a positive integer, not {value!r}")
            if value is not None:  # numpy integers as plain ints: top_k goes into the bundle's JSON manifest
                object.__setattr__(self, name, int(value))
        for name in ("temperature", "stage2_temperature"):
            if not 0.01 <= getattr(self, name) <= 10:
                raise OptionsError(f"{name} {getattr(self, name)} is outside 0.01–10")
        if not 0 <= self.sentence_pause <= 5:
            raise OptionsError(f"sentence_pause {self.sentence_pause} is outside 0–5 s")
