"""Exceptions the runtime raises for bad input; the CLI prints them as one line."""


class EdgevoiceError(ValueError):
    """Base class: a problem with the user's input, files or options (not a bug)."""


class BundleError(EdgevoiceError):
    """A model bundle that is missing, corrupt, of an unknown format or mismatched with a voice."""


class AudioError(EdgevoiceError):
    """Reference audio that cannot be read or is unsuitable (length, rate, silence)."""


class TextError(EdgevoiceError):
    """Text that is empty, too long or yields no phones."""


class VoiceError(EdgevoiceError):
    """A voice profile that is missing, corrupt or made with another model."""


class OptionsError(EdgevoiceError):
    """A synthesis option outside its valid range."""


class SynthesisError(EdgevoiceError):
    """Inputs that passed every check still made the model produce unusable output (NaN or infinite audio)."""


class ReferenceWarning(UserWarning):
    """Reference audio the model takes, as upstream does, but that is unlikely to give a faithful voice."""


def abbreviated(text: str, limit: int = 40, quoted: bool = False) -> str:
    """`text` for a one-line error (in quotes with `quoted`): whole when at most `limit` characters, else its two ends
    and its length (a 5,000-digit number would otherwise fill the terminal)."""
    shown = text if len(text) <= limit else f"{text[:12]}...{text[-8:]}"
    shown = f"'{shown}'" if quoted else shown
    return shown if len(text) <= limit else f"{shown} ({len(text)} characters)"
