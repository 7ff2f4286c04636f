"""GPT-SoVITS at run time: reference clips → voices, text → phones → GPT tokens → SoVITS audio."""

from .options import SynthesisOptions
from .synthesizer import BatchRequest, Synthesizer
from .voice import Voice

__all__ = ["BatchRequest", "Synthesizer", "SynthesisOptions", "Voice"]
