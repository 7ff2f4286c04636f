"""EmotiVoice synthesis options; the defaults reproduce upstream's `inference_am_vocoder_joint` and travel in the
bundle."""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import OptionsError
from ..options import ModelOptions, check_speed

FAMILY = "emotivoice"


@dataclass(frozen=True)
class SynthesisOptions(ModelOptions):
    MODEL_DEFAULTS = ("speed", "sentence_pause", "max_sentence_chars", "vocoder_chunk_frames")

    # speech rate: the predicted durations (exp(d) − 1) are divided by it before rounding; 1 is upstream exactly
    speed: float = 1.0
    sentence_pause: float = 0.2  # seconds of silence between the sentences of a longer text (none before the first)
    max_sentence_chars: int = 120  # long sentences are cut at clause marks, then spaces, to stay under this
    vocoder_chunk_frames: int = 64  # mel frames per streamed chunk on onnxruntime (OpenVINO: its fixed windows)
    seed: int | None = None  # EmotiVoice is deterministic; accepted so every family takes --seed

    def __post_init__(self):
        super().__post_init__()
        check_speed(self.speed)
        if not 0 <= self.sentence_pause <= 5:
            raise OptionsError(f"sentence_pause {self.sentence_pause} is outside 0–5 s")
        if not 20 <= self.max_sentence_chars <= 400:
            raise OptionsError(f"max_sentence_chars {self.max_sentence_chars} is outside 20–400")
        if not 8 <= self.vocoder_chunk_frames <= 4096:
            raise OptionsError(f"vocoder_chunk_frames {self.vocoder_chunk_frames} is outside 8–4096")
