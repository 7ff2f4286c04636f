"""EmotiVoice at run time: its text front end (`frontend`, `zh`, `en`, `numerals`), the WordPiece tokenizer of
its style BERT (`wordpiece`), and the synthesizer (built-in speakers, free-text style prompts)."""

from .options import SynthesisOptions
from .synthesizer import SpeakerStyle, Synthesizer

__all__ = ["Synthesizer", "SynthesisOptions", "SpeakerStyle"]
