"""`.npz` files of plain arrays with a JSON header (voices, parity cases): atomic writes, no pickles."""

from __future__ import annotations

import json
import os
import tempfile
import zipfile
from pathlib import Path

import numpy as np


def atomic_savez(path: str | Path, header: dict, **arrays: np.ndarray) -> Path:
    """An `.npz` of plain arrays plus a JSON `header`, written to a temporary file and renamed into place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".partial", dir=path.parent)
    os.close(handle)
    try:
        with open(temp, "wb") as out:
            np.savez(out, header=np.array(json.dumps(header, ensure_ascii=False)), **arrays)
        os.replace(temp, path)
    finally:
        if os.path.exists(temp):
            os.unlink(temp)
    return path


def read_npz(path: str | Path, what: str, error: type = ValueError) -> tuple[dict, dict[str, np.ndarray]]:
    """(JSON header, arrays) of a file `atomic_savez` wrote; anything else is one `error` naming `what`."""
    path = Path(path)
    if not path.is_file():
        raise error(f"{path}: {what} not found")
    try:
        with np.load(path, allow_pickle=False) as data:
            header = json.loads(str(data["header"]))
            arrays = {name: data[name] for name in data.files if name != "header"}
    except (zipfile.BadZipFile, OSError, KeyError, ValueError, EOFError) as exc:
        raise error(f"{path}: not an edgevoice {what} ({type(exc).__name__}: {exc})") from None
    if not isinstance(header, dict):
        raise error(f"{path}: not an edgevoice {what} (its header is not an object)")
    return header, arrays
