"""edgevoice: voice-cloning and expressive text-to-speech on ordinary CPUs, checked against PyTorch.

    import edgevoice
    synth = edgevoice.load("my-bundle")                      # the bundle's family, OpenVINO on the CPU
    voice = synth.create_voice("ref.wav", "Transcript of the clip.", "en")       # GPT-SoVITS
    audio = synth.synthesize("Hello there.", voice, "en")     # float32, synth.sample_rate Hz
"""

from .errors import (AudioError, BundleError, EdgevoiceError, OptionsError, ReferenceWarning, SynthesisError, TextError,
                     VoiceError)
from .families import load
from .options import AudioChunk

__all__ = ["load", "Synthesizer", "SynthesisOptions", "AudioChunk", "Voice", "BatchRequest", "EdgevoiceError",
           "BundleError", "AudioError", "OptionsError", "TextError", "VoiceError", "SynthesisError", "ReferenceWarning"]
_GPT_SOVITS_NAMES = {"Synthesizer", "SynthesisOptions", "Voice", "BatchRequest"}  # the first family's, kept here


def __getattr__(name: str):
    # imported on first use: a process that opens only another family's bundles never imports GPT-SoVITS
    if name in _GPT_SOVITS_NAMES:
        from . import gpt_sovits

        return getattr(gpt_sovits, name)
    raise AttributeError(f"module 'edgevoice' has no attribute {name!r}")


def __dir__() -> list[str]:  # the lazy names too: tab completion and help() list the whole API
    return sorted(set(globals()) | set(__all__))
