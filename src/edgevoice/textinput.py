"""Text as people hand it over, for every family: read from a file or standard input (UTF-8 checked), cleaned of
markup and terminal escapes, and checked for characters a model's front end cannot read.

`prepare_text` cleans, in this order:

1. **markup**: comments (`<!-- … -->`), declarations (`<?xml …?>`, `<!DOCTYPE …>`) and tags (`<speak>`,
   `<break time="1s"/>`, `<b>`, `</p>`) are removed. A tag is `<`, an optional `/`, a name that starts with a letter
   and attributes that each have a value; so `a < b`, `<3`, `x<y and z>w` and MetaVoice's `<|endoftext|>` stay as
   written. Tags that end a phrase (`break`, `br`, `p`, `s`, `div`, `li`, `speak`, `sentence`, `paragraph`) leave a
   space, others nothing (`un<b>believ</b>able` stays one word);
2. **character references** that end in `;` (`&amp;`, `&#233;`, `&#xE9;`) are decoded; a bare `&` (`AT&T`,
   `?a=1&b=2`) stays;
3. **escapes and invisible characters**: terminal escape sequences (`ESC[31m`, window titles) and other control
   characters are removed; tabs and other spaces (no-break, thin) become a plain space (the ideographic space
   U+3000 stays: Chinese and Japanese text uses it); `\\r\\n`, `\\r` and the line/paragraph separators become `\\n`;
   format characters (zero-width spaces, byte-order marks, soft hyphens, bidirectional controls) are removed.

The result is a `PreparedText`, which `prepare_text` returns unchanged, so text cleaned by the command line and
cleaned again by a synthesizer is not decoded twice (`&amp;lt;` is `&lt;`, never `<`).

Characters a front end cannot read are dropped by it (or become an unknown phone); `unreadable` finds them, by the
front end's own rule for one character, among letters, digits and other symbols (emoji): punctuation and spaces are
the front end's business.
"""

from __future__ import annotations

import html
import re
import unicodedata
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Callable

from .errors import TextError

MAX_TEXT_BYTES = 1 << 20  # read from a file or standard input; every family's own limit is far below this
SHOWN_CHARACTERS = 12  # unreadable characters named in one message; the rest are counted

_SEPARATING_TAGS = frozenset({"break", "br", "p", "s", "div", "li", "speak", "sentence", "paragraph"})
_ATTRIBUTE = r"""[A-Za-z_:][\w:.-]*\s*=\s*(?:"[^"<>]*"|'[^'<>]*'|[^\s"'<>=`]+)"""
_TAG_RE = re.compile(rf"<(/?)([A-Za-z][\w:.-]*)((?:\s+{_ATTRIBUTE})*)\s*/?>")
_COMMENT_RE = re.compile(r"<!--.*?(?:-->|\Z)|<![A-Za-z\[][^<>]*>|<\?[^<>]*\?>", re.DOTALL)
_REFERENCE_RE = re.compile(r"&(?:#[0-9]{1,7}|#[xX][0-9a-fA-F]{1,6}|[A-Za-z][A-Za-z0-9]{1,31});")
# ECMA-48: CSI (ESC [ or the 8-bit 0x9B) with parameters and a final byte; OSC (ESC ] or 0x9D) up to BEL or ST;
# any other two-character escape
_ESCAPE_RE = re.compile(r"(?:\x1b\[|\x9b)[0-?]*[ -/]*[@-~]|(?:\x1b\]|\x9d)[^\x07\x1b\x9c]*(?:\x07|\x1b\\|\x9c)"
                        r"|\x1b[@-_]?")
_NEWLINES_RE = re.compile(r"\r\n?|[\u2028\u2029\x85]")


class PreparedText(str):
    """Text that has been through `prepare_text` (preparing it again changes nothing)."""


class UnreadableTextWarning(UserWarning):
    """The text has characters the front end will leave out."""


@dataclass(frozen=True)
class Unreadable:
    """The distinct characters of a text that `reader` (a front end, in words) cannot read, in order of first
    appearance."""

    characters: tuple[str, ...]
    reader: str
    anything_readable: bool = True  # whether any letter, digit or symbol of the text is read

    def __bool__(self) -> bool:
        return bool(self.characters)

    def refuse_if_nothing_is_read(self) -> None:
        """A `TextError` when the front end would read none of the text's letters (it would speak punctuation)."""
        if self and not self.anything_readable:
            raise TextError(f"{self.reader} can read nothing in this text: {self._listed()}")

    def message(self) -> str:
        return f"{self.reader} cannot read {self._listed()} of this text"

    def _listed(self) -> str:
        count = len(self.characters)
        shown = " ".join(self.characters[:SHOWN_CHARACTERS])
        more = f" and {count - SHOWN_CHARACTERS} more" if count > SHOWN_CHARACTERS else ""
        return f"{count} different character{'s' * (count > 1)} ({shown}{more})"

    def warning(self) -> str:
        return f"{self.message()} (left out)"

    def warn(self) -> None:
        if self:
            warnings.warn(self.warning(), UnreadableTextWarning, stacklevel=3)


# ---------------------------------------------------------------------------------------------------- reading


def check_encoding(text: str, source: str = "the text") -> str:
    """`text` if it is valid Unicode; a command-line argument with bytes that are not UTF-8 arrives with lone
    surrogates (Python's surrogateescape), which are a one-line `TextError` naming the first bad byte's offset."""
    if not isinstance(text, str):
        raise TextError(f"{source} must be a string, not {type(text).__name__}")
    for index, char in enumerate(text):
        if "\ud800" <= char <= "\udfff":
            offset = len(text[:index].encode("utf-8"))  # the first surrogate: none before it
            # U+DC80…U+DCFF stand for the undecodable bytes 0x80…0xff; any other is a lone surrogate from Python
            escaped = "\udc80" <= char <= "\udcff"
            shown = f"byte 0x{ord(char) - 0xDC00:02x}" if escaped else f"U+{ord(char):04X}"
            raise TextError(f"{source} is not valid UTF-8 ({shown} at byte offset {offset})")
    return text


def decode_utf8(data: bytes, source: str) -> str:
    """UTF-8 bytes (a leading byte-order mark is dropped) to text; invalid bytes are a one-line `TextError`."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise TextError(f"{source} is not valid UTF-8 (byte 0x{data[exc.start]:02x} at byte offset "
                        f"{exc.start}: {exc.reason})") from None


def read_text(source: str | Path, stdin: BinaryIO | None = None, limit: int = MAX_TEXT_BYTES) -> str:
    """The text of a UTF-8 file, or of `stdin` when `source` is `-`; more than `limit` bytes is refused without
    reading the rest."""
    if str(source) == "-":
        if stdin is None:
            raise TextError("no standard input to read the text from")
        return decode_utf8(_read_limited(stdin, limit, "standard input"), "standard input")
    path = Path(source)
    if not path.is_file():
        raise TextError(f"{path}: text file not found" if not path.exists() else f"{path}: not a regular file")
    try:
        with path.open("rb") as handle:
            data = _read_limited(handle, limit, str(path))
    except OSError as exc:
        raise TextError(f"{path}: cannot read ({exc.strerror or exc})") from None
    return decode_utf8(data, f"{path}: the text")


def _read_limited(handle: BinaryIO, limit: int, name: str) -> bytes:
    data = handle.read(limit + 1)
    if len(data) > limit:
        raise TextError(f"{name}: the text is over {limit:,} bytes; give it in parts")
    return data


# ---------------------------------------------------------------------------------------------------- cleaning


def prepare_text(text: str) -> PreparedText:
    """`text` without markup, character references, escapes and invisible characters (see the module's notes)."""
    if isinstance(text, PreparedText):
        return text
    check_encoding(text)
    return PreparedText(strip_escapes(decode_references(strip_markup(text))))


def text_to_speak(text: str, limit: int) -> PreparedText:
    """`text` for a synthesis call, every family's check: prepared, not empty once prepared, at most `limit`
    characters (the family's own limit)."""
    text = prepare_text(text)
    if not text.strip():
        raise TextError("the text to synthesise is empty")
    length = len(text.strip())  # a file's closing newline is no character of the text
    if length > limit:
        raise TextError(f"the text is {length} characters long; the limit is {limit} per call")
    return text


def strip_markup(text: str) -> str:
    """Remove comments, declarations and tags; tags that end a phrase leave a space."""
    text = _COMMENT_RE.sub("", text)
    return _TAG_RE.sub(lambda m: " " if m.group(2).lower() in _SEPARATING_TAGS else "", text)


def decode_references(text: str) -> str:
    """Decode `&name;`, `&#N;` and `&#xN;` (references of unknown names stay as written). Numbers give their
    character as they are, even a control character (HTML would drop it), so that an escaped terminal escape
    sequence is found and removed whole by `strip_escapes`."""
    return _REFERENCE_RE.sub(_decoded, text)


def _decoded(match: re.Match) -> str:
    reference = match.group(0)
    if not reference.startswith("&#"):
        return html.unescape(reference)
    number = int(reference[3:-1], 16) if reference[2] in "xX" else int(reference[2:-1])
    return chr(number) if 0 < number <= 0x10FFFF and not 0xD800 <= number <= 0xDFFF else ""


def strip_escapes(text: str) -> str:
    """Remove terminal escape sequences, control and format characters; unify spaces and line breaks."""
    text = _NEWLINES_RE.sub("\n", _ESCAPE_RE.sub("", text))
    return "".join(_clean_character(char) for char in text)


def _clean_character(char: str) -> str:
    if char == "\n" or " " <= char <= "~":  # the common case first
        return char
    category = unicodedata.category(char)
    if char == "\t" or (category == "Zs" and char != "\u3000"):
        return " "
    # unassigned code points stay (a newer Unicode may know them; the front end decides), and so does U+200D,
    # which joins emoji sequences
    if category[0] == "C" and category != "Cn" and char != "\u200d":
        return ""
    return char


# ---------------------------------------------------------------------------------------------------- reading aloud


def spoken(char: str) -> bool:
    """Letters, digits and other symbols (emoji, ©): the characters whose loss changes what is said."""
    category = unicodedata.category(char)
    return category[0] in "LN" or (category == "So" and char != "°")


def unreadable(text: str, readable: Callable[[str], bool], reader: str) -> Unreadable:
    """The distinct spoken characters of `text` that `readable` says the front end cannot read."""
    distinct = [char for char in dict.fromkeys(text) if spoken(char)]  # in order of first appearance
    missing = tuple(char for char in distinct if not readable(char))
    return Unreadable(missing, reader, anything_readable=len(missing) < len(distinct))
