"""Where OpenVINO keeps compiled graphs between runs: a private folder of the user's, never inside a bundle.

Compiling the full-size GPT-SoVITS graphs takes seconds (SoVITS alone 2–4 s on two Zen 4 cores); reading
a compiled graph back takes a fraction of that (benchmarks/results/startup_memory.md). The folder is
`$EDGEVOICE_CACHE_DIR`, else `$XDG_CACHE_HOME/edgevoice/openvino`, else `~/.cache/edgevoice/openvino`; it is
created 0700 and must belong to this user and be writable by nobody else, since OpenVINO trusts what it reads there.
A folder that cannot be used is one warning on the `edgevoice` logger, and synthesis runs without the cache.

Each graph gets a subfolder named after the sha256 of its IR files as the manifest lists them: OpenVINO keys its
blobs by the IR's path and file metadata, not by the weights (measured: new weights behind an unchanged XML loaded
the old compiled graph), so a bundle replaced in place would otherwise run stale weights. Every bundle version
adds subfolders (a full-size INT8 GPT-SoVITS ~330 MiB), so when a new one is made the least recently used are
removed until the cache is under `MAX_CACHE_BYTES` again.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import stat
import tempfile
from os import PathLike
from pathlib import Path
from typing import Iterable, Mapping

CACHE_ENV = "EDGEVOICE_CACHE_DIR"
MAX_CACHE_BYTES = 4 << 30  # about a dozen full-size bundles' graphs
_PRIVATE = 0o700
_GRAPH_FOLDER = re.compile(r"[0-9a-f]{32}")  # the only subfolders pruning may touch

log = logging.getLogger("edgevoice")
_warned: set[str] = set()  # one warning per folder and process (a server loads a bundle once per worker)


def default_cache_dir(environ: Mapping[str, str] | None = None) -> Path:
    """`$EDGEVOICE_CACHE_DIR`, else `$XDG_CACHE_HOME/edgevoice/openvino`, else `~/.cache/edgevoice/openvino`
    (empty variables count as unset, and XDG_CACHE_HOME only when absolute, as the XDG spec says)."""
    environ = os.environ if environ is None else environ
    if environ.get(CACHE_ENV):
        return Path(environ[CACHE_ENV]).expanduser()
    xdg = environ.get("XDG_CACHE_HOME", "")
    base = Path(xdg) if os.path.isabs(xdg) else Path.home() / ".cache"
    return base / "edgevoice" / "openvino"


def cache_folder(cache_dir: str | PathLike | bool | None) -> Path | None:
    """The folder a `cache_dir` argument means, ready to use: True → `default_cache_dir()`, False/None → no cache,
    else that folder. None (after one warning) when the folder cannot be made private and writable."""
    if cache_dir is None or cache_dir is False:
        return None
    try:
        folder = Path(os.path.abspath(default_cache_dir() if cache_dir is True else Path(cache_dir).expanduser()))
    except RuntimeError as exc:  # Path.home(): no HOME and no password entry (a bare service account)
        _warn_once(Path("~/.cache/edgevoice/openvino"), str(exc))
        return None
    try:
        _make_private_folder(folder)
        _check_private(folder)
        _probe_write(folder)
    except OSError as exc:
        _warn_once(folder, exc.strerror or str(exc))
        return None
    return folder


def graph_cache_folder(root: Path, digests: Iterable[str]) -> Path | None:
    """`root`'s subfolder for one graph, named after its files' sha256 (created 0700); None after a warning when it
    cannot be made."""
    key = hashlib.sha256(":".join(digests).encode()).hexdigest()[:32]
    folder = root / key
    try:
        new = not folder.is_dir()
        folder.mkdir(mode=_PRIVATE, exist_ok=True)
        os.utime(folder)  # its last use, which pruning goes by
    except OSError as exc:
        _warn_once(folder, exc.strerror or str(exc))
        return None
    if new:
        try:
            prune(root, keep=folder)
        except OSError:  # pruning is housekeeping: a folder it cannot tidy still caches
            pass
    return folder


def prune(root: Path, keep: Path, limit: int | None = None) -> list[Path]:
    """Remove the least recently used graph subfolders of `root` (never `keep`) until their blobs take at most
    `limit` bytes (`MAX_CACHE_BYTES`); only `*.blob` files in folders named like ours are deleted, and a folder
    holding anything else stays. Best effort: a file another process removed first is simply skipped."""
    limit = MAX_CACHE_BYTES if limit is None else limit
    entries = []
    for folder in root.iterdir():
        if _GRAPH_FOLDER.fullmatch(folder.name) and folder.is_dir() and folder != keep:
            blobs = list(folder.glob("*.blob"))
            entries.append((folder.stat().st_mtime, folder, blobs, sum(_size(blob) for blob in blobs)))
    total = sum(entry[3] for entry in entries) + sum(_size(blob) for blob in keep.glob("*.blob"))
    removed = []
    for _, folder, blobs, size in sorted(entries, key=lambda entry: entry[0]):
        if total <= limit:
            break
        for blob in blobs:
            blob.unlink(missing_ok=True)  # a process reading it keeps its open copy (POSIX)
        total -= size
        try:
            folder.rmdir()
        except OSError:  # something else lives there: leave it
            continue
        removed.append(folder)
    return removed


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


class _NotPrivate(OSError):
    """A folder that exists but is not safe to cache into."""


def _make_private_folder(folder: Path) -> None:
    """Create `folder` and any missing parents 0700 (Path.mkdir gives parents the umask's mode)."""
    missing = []
    for parent in [folder, *folder.parents]:
        if parent.exists():
            break
        missing.append(parent)
    for path in reversed(missing):
        path.mkdir(mode=_PRIVATE, exist_ok=True)


def _check_private(folder: Path) -> None:
    """Refuse a folder of another user or one others may write: they could plant compiled graphs."""
    info = folder.stat()
    if not stat.S_ISDIR(info.st_mode):
        raise _NotPrivate(f"{folder} is not a folder")
    if hasattr(os, "getuid") and info.st_uid != os.getuid():
        raise _NotPrivate("it belongs to another user")
    if info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise _NotPrivate("others may write to it (chmod go-w it)")


def _probe_write(folder: Path) -> None:
    """Write and remove a file: permission bits say nothing for root or on a read-only mount."""
    handle, name = tempfile.mkstemp(prefix=".probe-", dir=folder)
    os.close(handle)
    os.unlink(name)


def _warn_once(folder: Path, reason: str) -> None:
    if str(folder) not in _warned:
        _warned.add(str(folder))
        log.warning("edgevoice: compile cache folder %s cannot be used (%s); compiling without it", folder, reason)
