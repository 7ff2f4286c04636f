"""Writing a user's output file (audio, a voice, a parity case) so that it is either whole or absent: to a temporary
file beside it, renamed into place; a device or FIFO is written in place and a symlink is followed, never replaced;
a path that cannot be written is one error of the caller's kind, never a traceback or a partial file."""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from pathlib import Path
from typing import BinaryIO, Iterable, Iterator

from .errors import EdgevoiceError


def current_umask() -> int:
    """The process umask, read without changing it (os.umask would, for a moment, in every thread)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    return 0o022


@contextlib.contextmanager
def atomic_file(path: Path, error: type[Exception]) -> Iterator[BinaryIO]:
    """A binary file to write `path`'s new content into; renamed over `path` when the block ends without an
    exception, removed otherwise. OSErrors become `error("<path>: ...")`."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".partial", dir=path.parent)
    except OSError as exc:
        raise error(f"{path}: cannot write ({exc.strerror or exc})") from None
    try:
        with os.fdopen(handle, "wb") as out:
            yield out
        os.chmod(temp, 0o666 & ~current_umask())  # mkstemp makes 0600; a new file should look like any other
        os.replace(temp, path)
    except OSError as exc:
        raise error(f"{path}: write failed ({exc.strerror or exc})") from None
    finally:
        if os.path.exists(temp):
            os.unlink(temp)


def check_output(path: str | Path, error: type = EdgevoiceError, folder: bool = False,
                 inputs: Iterable[str | Path | None] = (), input_folders: Iterable[str | Path] = ()) -> None:
    """Refuse, before any work is done, an output path that cannot become a file (with `folder`: a folder): a
    folder (a file), a path under something that is not a folder, a name the file system refuses, a link into a
    folder that does not exist, one of the command's `inputs` (files) or a path inside one of its `input_folders`
    (the bundle): the output would replace what it is made from. Nothing is created; write errors that only writing
    reveals (a full disk, a read-only folder) come from the write itself."""
    if str(path) == "-":
        return
    if not folder and str(path).endswith(("/", os.sep)):  # Path() would drop the slash and write a file there
        raise error(f"{path}: ends in '/', a folder's name; give a file name")
    path = Path(path)
    target = output_target(path, error)
    _refuse_inputs(path, target, [Path(p) for p in inputs if p is not None and str(p) != "-"],
                   [Path(p) for p in input_folders], error)
    try:
        if folder and target.exists() and not target.is_dir():
            raise error(f"{path}: is not a folder")
        if not folder and target.is_dir():
            raise error(f"{path}: is a folder; give a file name")
        for parent in target.parents:
            if parent.exists():
                if not parent.is_dir():
                    raise error(f"{path}: cannot write ({parent} is not a folder)")
                return
    except OSError as exc:  # e.g. a name longer than the file system allows
        raise error(f"{path}: cannot write ({exc.strerror or exc})") from None


def _refuse_inputs(path: Path, target: Path, inputs: list[Path], folders: list[Path], error: type) -> None:
    try:
        where = target.resolve()
        if where.exists() and not (where.is_file() or where.is_dir()):
            return  # a device or FIFO is written in place, not replaced
        for given in folders:
            source = given.resolve()
            if source.is_dir() and (where == source or source in where.parents):
                raise error(f"{path}: is inside {given}, an input of this command; write it elsewhere")
        for given in inputs:
            source = given.resolve()
            if source.is_dir():
                continue  # refused as an input by the command itself
            if where == source or (where.exists() and source.exists() and os.path.samefile(where, source)):
                raise error(f"{path}: is also an input of this command ({given}), which the output would "
                            "replace; write it elsewhere")
    except OSError:
        return  # a path that cannot be resolved is refused below, or by the write


def output_target(path: Path, error: type = EdgevoiceError) -> Path:
    """Where writing `path` lands: a symlink's target, else the path itself. Folders are made for a new file's
    path, never through a link: a link into a folder that does not exist is refused."""
    try:
        if not path.is_symlink():
            return path
        target = path.resolve()
    except OSError as exc:
        raise error(f"{path}: cannot write ({exc.strerror or exc})") from None
    if not target.parent.is_dir():
        raise error(f"{path}: is a link to {target}, whose folder does not exist")
    return target


def write_output(path: str | Path, data: bytes, error: type = EdgevoiceError) -> Path:
    """Write `data` to the user's output `path`:

    * `-` writes to standard output (pipes work);
    * an existing device or FIFO (`/dev/null`, a named pipe) is written directly, never replaced;
    * otherwise (absent or a regular file; a symlink is followed to its target) the file is written to a temporary
      file in the same folder and renamed into place when complete, with permissions that follow the umask, so a
      reader never sees half a file and a failed write leaves nothing behind.
    Write errors are one-line `error`s."""
    if str(path) == "-":
        _write_stream(sys.stdout.buffer, data, "standard output", error)
        return Path("-")
    path = Path(path)
    target = output_target(path, error)
    if _special_file(target, path, error):
        # a device or FIFO: written in place, never replaced; unbuffered, so a write error surfaces in the write
        with _opened(target, error) as handle:
            _write_stream(handle, data, str(path), error)
        return path
    with atomic_file(target, error) as out:
        out.write(data)
    return path


def _special_file(target: Path, path: Path, error: type) -> bool:
    """Whether `target` exists and is neither a regular file nor a folder (a device, a FIFO)."""
    try:
        if target.is_dir():
            raise error(f"{path}: is a folder; give a file name")
        return target.exists() and not target.is_file()
    except OSError as exc:
        raise error(f"{path}: cannot write ({exc.strerror or exc})") from None


def _opened(path: Path, error: type):
    try:
        return open(path, "ab", buffering=0)
    except OSError as exc:
        raise error(f"{path}: cannot write ({exc.strerror or exc})") from None


def _write_stream(handle, data: bytes, name: str, error: type) -> None:
    """All of `data`, or an error: a pipe whose reader has gone takes part of a large write without complaint
    (`head -c 100`), so the rest is written until the pipe refuses it."""
    rest = memoryview(data)
    try:
        while rest:
            written = handle.write(rest)
            if not written:
                raise error(f"{name}: took none of the last {len(rest)} bytes")
            rest = rest[written:]
        handle.flush()
    except BrokenPipeError:
        raise error(f"{name} was closed before all {len(data)} bytes were written") from None
    except OSError as exc:
        raise error(f"{name}: write failed ({exc.strerror or exc})") from None
