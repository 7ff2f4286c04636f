"""`.npz` files of plain arrays with a JSON header (voices, parity cases): atomic writes, no pickles."""

from __future__ import annotations

import io
import json
import math
import zipfile
from pathlib import Path

import numpy as np

from .errors import EdgevoiceError
from .files import write_output


def atomic_savez(path: str | Path, header: dict, error: type = EdgevoiceError, **arrays: np.ndarray) -> Path:
    """An `.npz` of plain arrays plus a JSON `header`, written where `files.write_output` puts a user's output
    (atomically; a device or FIFO in place; a symlink followed); a path that cannot be written is one `error`."""
    buffer = io.BytesIO()  # whole before anything is written, so a device or pipe never gets half a file
    np.savez(buffer, header=np.array(json.dumps(header, ensure_ascii=False)), **arrays)
    return write_output(path, buffer.getvalue(), error)


def read_npz(path: str | Path, what: str, error: type = ValueError, max_bytes: int | None = None
             ) -> tuple[dict, dict[str, np.ndarray]]:
    """(JSON header, arrays) of a file `atomic_savez` wrote; anything else is one `error` naming `what`. Every
    array's declared size is checked against the bytes stored for it (and their sum against `max_bytes`) before
    anything is allocated, so a crafted header cannot ask for terabytes."""
    path = Path(path)
    if not path.is_file():
        kind = "is a folder" if path.is_dir() else "is not a regular file" if path.exists() else None
        raise error(f"{path}: {kind}, not a {what}" if kind else f"{path}: {what} not found")
    try:
        problem = _size_problem(path, max_bytes)
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as exc:
        raise error(f"{path}: not an edgevoice {what} ({type(exc).__name__}: {exc})") from None
    if problem:
        raise error(f"{path}: not an edgevoice {what} ({problem})")
    try:
        with np.load(path, allow_pickle=False) as data:
            header = json.loads(str(data["header"]))
            arrays = {name: data[name] for name in data.files if name != "header"}
    except (zipfile.BadZipFile, OSError, KeyError, ValueError, EOFError) as exc:
        raise error(f"{path}: not an edgevoice {what} ({type(exc).__name__}: {exc})") from None
    except RecursionError:
        raise error(f"{path}: not an edgevoice {what} (its header is nested too deeply)") from None
    if not isinstance(header, dict):
        raise error(f"{path}: not an edgevoice {what} (its header is not an object)")
    return header, arrays


def _size_problem(path: Path, max_bytes: int | None) -> str | None:
    """Why the arrays of an `.npz` cannot be what their headers declare, or are too large; None if they fit."""
    total = 0
    with zipfile.ZipFile(path) as archive:
        for info in archive.infolist():
            total += info.file_size
            if max_bytes is not None and total > max_bytes:
                return f"its arrays hold over {max_bytes:,} bytes"
            with archive.open(info) as member:
                version = np.lib.format.read_magic(member)
                read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                               else np.lib.format.read_array_header_2_0)
                shape, _, dtype = read_header(member)
            declared = math.prod(shape) * dtype.itemsize
            if declared > info.file_size:
                return f"{info.filename} declares {declared:,} bytes but holds {info.file_size:,}"
    return None
