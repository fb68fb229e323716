"""Atomic file writes: a reader (or a crash) never sees a half-written file.

Data goes to a temporary file in the destination's directory, is flushed and fsynced, then renamed
over the destination with :func:`os.replace` (atomic on POSIX), and the directory is fsynced so
that the rename survives a power cut too. A writer killed at any moment leaves either the old file
or the new one, plus at most a stray ``.<name>.<random>.tmp`` file that is ignored. The new file
gets the permissions :func:`open` would give it (``0o666`` minus the umask).
"""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path
from typing import IO, Any, Iterator, Union

PathLike = Union[str, "os.PathLike[str]"]


@contextlib.contextmanager
def atomic_open(path: PathLike, mode: str = "wb") -> Iterator[IO[Any]]:
    """Open a temporary file for writing that replaces ``path`` when the block exits cleanly.

    ``mode`` is ``"wb"`` or ``"w"`` (text, UTF-8). On an exception the temporary file is removed and
    ``path`` is untouched.
    """
    if mode not in ("wb", "w"):
        raise ValueError(f"mode must be 'wb' or 'w', got {mode!r}")
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = _create_temporary(target)
    try:
        handle: IO[Any] = os.fdopen(fd, "wb") if mode == "wb" else os.fdopen(fd, "w", encoding="utf-8")
        with handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    fsync_directory(target.parent)


def _create_temporary(target: Path) -> tuple[int, Path]:
    """A new file ``.<name>.<random>.tmp`` next to ``target``, open for writing, mode 0o666 - umask."""
    while True:
        tmp = target.parent / f".{target.name}.{secrets.token_hex(4)}.tmp"
        try:
            return os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666), tmp
        except FileExistsError:
            continue


def fsync_directory(directory: Path) -> None:
    """Persist a rename in ``directory`` (no-op where directories cannot be opened, e.g. Windows)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        with contextlib.suppress(OSError):
            os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write_bytes(path: PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically."""
    with atomic_open(path, "wb") as handle:
        handle.write(data)


def atomic_write_text(path: PathLike, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    with atomic_open(path, "w") as handle:
        handle.write(text)
