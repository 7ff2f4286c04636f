"""MetaVoice-1B at run time: upstream's text normalisation and a BPE tokenizer that reads its table from the bundle
(`text`), the speaker encoder's host-side audio chain (`speaker`), sampling with guidance (`sampling`), the token
layouts between the stages (`adapters`), loudness normalisation (`loudness`) and the synthesizer."""

from .options import SynthesisOptions
from .synthesizer import Synthesizer
from .voice import SpeakerVoice

__all__ = ["Synthesizer", "SynthesisOptions", "SpeakerVoice"]
