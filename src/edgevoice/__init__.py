"""edgevoice: voice-cloning and expressive text-to-speech on ordinary CPUs, checked against PyTorch.

    import edgevoice
    synth = edgevoice.load("my-bundle")                      # the bundle's family, OpenVINO on the CPU
    voice = synth.create_voice("ref.wav", "Transcript of the clip.", "en")       # GPT-SoVITS
    audio = synth.synthesize("Hello there.", voice, "en")     # float32, synth.sample_rate Hz
"""

from .errors import AudioError, BundleError, EdgevoiceError, OptionsError, TextError, VoiceError
from .families import load as _load
from .gpt_sovits import SynthesisOptions, Synthesizer, Voice
from .options import AudioChunk

__all__ = ["load", "Synthesizer", "SynthesisOptions", "AudioChunk", "Voice", "EdgevoiceError", "BundleError",
           "AudioError", "OptionsError", "TextError", "VoiceError"]


def load(bundle_dir, backend="openvino", threads=None, verify=True, cache_dir=True):
    """Open a bundle with its family's synthesizer; `backend` is "openvino" (default), "onnxruntime" or
    "onnxruntime-cuda". OpenVINO keeps compiled graphs in `cache_dir`: True (default) for the user's cache folder
    ($EDGEVOICE_CACHE_DIR, else $XDG_CACHE_HOME/edgevoice/openvino, else ~/.cache/edgevoice/openvino), a folder,
    or None for no cache."""
    return _load(bundle_dir, backend=backend, threads=threads, verify=verify, cache_dir=cache_dir)
