"""The front-end's exception: bad or unusable text, reported as one line."""

from __future__ import annotations

try:  # the runtime's common base class, when the package provides it
    from edgevoice.errors import TextError as _TextErrorBase
except ImportError:
    _TextErrorBase = ValueError


class FrontendError(_TextErrorBase):
    """Text that is empty, unsupported or yields no phones (a ValueError)."""
