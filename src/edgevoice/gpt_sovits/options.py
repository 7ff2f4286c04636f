"""GPT-SoVITS synthesis options; the defaults are upstream's (api_v2 / TTS_infer_pack) and travel in the bundle."""

from __future__ import annotations

from dataclasses import dataclass

from . import frontend
from ..errors import OptionsError
from ..options import ModelOptions, check_speed
from .sampler import UPSTREAM_MIN_TOKENS, SamplingOptions

FAMILY = "gpt-sovits"
MAX_BATCH = 64  # fragments decoded together; the KV cache is allocated per row
# Upstream fixes the flow's noise scale at 0.5 (its interfaces offer no other); 1e8 already turns the audio into a
# full-scale square wave, so a scale far from upstream's is refused rather than returned as noise.
MAX_NOISE_SCALE = 2.0
MAX_FRAGMENT_INTERVAL = 10.0  # seconds of silence after a fragment (upstream's WebUI offers 0.01–1)


def stretched_frames(tokens: int, speed: float = 1.0) -> int:
    """50 Hz frames that SoVITS turns `tokens` 25 Hz tokens into at `speed` (upstream's TextEncoder rule: the
    features are resized to int(2T / speed) + 1 frames unless speed is exactly 1)."""
    return 2 * tokens if speed == 1 else int(2 * tokens / speed) + 1


@dataclass(frozen=True)
class SynthesisOptions(ModelOptions):
    MODEL_DEFAULTS = ("top_k", "top_p", "temperature", "repetition_penalty", "noise_scale", "split_method",
                      "fragment_interval", "speed")

    top_k: int = SamplingOptions.top_k
    top_p: float = SamplingOptions.top_p
    temperature: float = SamplingOptions.temperature
    repetition_penalty: float = SamplingOptions.repetition_penalty
    noise_scale: float = 0.5
    max_tokens: int | None = None  # None: the model's limit (upstream's: 1499 tokens for max_sec 54)
    min_tokens: int = UPSTREAM_MIN_TOKENS  # EOS is held back until this many tokens (e.g. to fix a benchmark's length)
    seed: int | None = None
    split_method: str = "cut1"
    fragment_interval: float = 0.3  # seconds of silence after each fragment
    speed: float = 1.0  # speech rate: 2 = twice as fast, 0.5 = half as fast (upstream's speed_factor)
    batch_size: int = 1  # fragments whose GPT decodes together (throughput; the audio is the same)

    def __post_init__(self):
        super().__post_init__()
        self.sampling()  # validates the sampling fields
        if not 0 <= self.noise_scale <= MAX_NOISE_SCALE:
            raise OptionsError(f"noise_scale must be 0…{MAX_NOISE_SCALE} (upstream's is 0.5), not {self.noise_scale}")
        if not 0 <= self.fragment_interval <= MAX_FRAGMENT_INTERVAL:
            raise OptionsError(f"fragment_interval must be 0…{MAX_FRAGMENT_INTERVAL:g} seconds, not "
                               f"{self.fragment_interval}")
        if not 1 <= self.batch_size <= MAX_BATCH:
            raise OptionsError(f"batch_size must be 1…{MAX_BATCH}, not {self.batch_size}")
        check_speed(self.speed)
        if self.split_method not in frontend.CUT_METHODS:
            raise OptionsError(f"unknown split method {self.split_method!r} "
                               f"(choose from {', '.join(frontend.CUT_METHODS)})")

    def check_given(self, given: dict) -> None:
        # min_tokens alone may exceed the cap (EOS held back to the model's limit); asked for together, one would
        # be ignored
        low, high = given.get("min_tokens"), given.get("max_tokens")
        if isinstance(low, int) and isinstance(high, int) and low > high:  # other types: __post_init__ says
            raise OptionsError(f"min_tokens {low} is more than max_tokens {high}: give equal values to fix the length")

    def sampling(self) -> SamplingOptions:
        return SamplingOptions(top_k=self.top_k, top_p=self.top_p, temperature=self.temperature,
                               repetition_penalty=self.repetition_penalty, min_tokens=self.min_tokens,
                               max_tokens=self.max_tokens)
