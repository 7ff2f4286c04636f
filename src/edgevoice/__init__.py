"""edgevoice: voice-cloning text-to-speech (GPT-SoVITS) on ordinary CPUs, checked against PyTorch.

    import edgevoice
    synth = edgevoice.load("my-bundle")                      # OpenVINO on the CPU
    voice = synth.create_voice("ref.wav", "Transcript of the clip.", "en")
    audio = synth.synthesize("Hello there.", voice, "en")     # float32, synth.sample_rate Hz
"""

from .errors import AudioError, BundleError, EdgevoiceError, OptionsError, TextError, VoiceError
from .synthesizer import AudioChunk, SynthesisOptions, Synthesizer
from .voice import Voice

__all__ = ["load", "Synthesizer", "SynthesisOptions", "AudioChunk", "Voice", "EdgevoiceError", "BundleError",
           "AudioError", "OptionsError", "TextError", "VoiceError"]


def load(bundle_dir, backend="openvino", threads=None, verify=True) -> Synthesizer:
    """Open a bundle for synthesis; `backend` is "openvino" (default), "onnxruntime" or "onnxruntime-cuda"."""
    return Synthesizer.load(bundle_dir, backend=backend, threads=threads, verify=verify)
