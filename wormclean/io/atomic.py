"""Outputs that appear complete or not at all: write to a temporary name beside the target, rename at the end."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

from wormclean.errors import OutputError


def check_output_path(path: str | os.PathLike, overwrite: bool) -> Path:
    """Check that ``path`` can be written, before any long work starts.

    Raises :class:`~wormclean.errors.OutputError` if the file exists and ``overwrite`` is false, or if its
    folder is missing or not writable.
    """
    path = Path(path)
    if path.exists() and not overwrite:
        raise OutputError(f"{path} exists; use --overwrite to replace it")
    if path.is_dir():
        raise OutputError(f"{path} is a folder, expected a file name")
    folder = path.parent
    if not folder.is_dir():
        raise OutputError(f"output folder {folder} does not exist")
    if not os.access(folder, os.W_OK):
        raise OutputError(f"output folder {folder} is not writable")
    return path


def partial_path(path: str | os.PathLike) -> Path:
    """The temporary name used while ``path`` is written: hidden, same folder, same extension."""
    path = Path(path)
    return path.with_name(f".{path.stem}.partial{path.suffix}")


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary path to write; rename it to ``path`` when the block completes.

    If the block raises (or is interrupted), the temporary file is removed and ``path`` is left untouched:
    a reader never sees a half-written file under the final name.
    """
    path = check_output_path(path, overwrite)
    temporary = partial_path(path)
    try:
        yield temporary
        os.replace(temporary, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            temporary.unlink()
