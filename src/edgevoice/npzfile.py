"""`.npz` files of plain arrays with a JSON header (voices, parity cases): atomic writes, no pickles."""

from __future__ import annotations

import json
import os
import tempfile
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
