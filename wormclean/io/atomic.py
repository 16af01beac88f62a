"""Outputs that appear complete or not at all: write to a temporary name beside the target, rename at the end.

The temporary name is unique per process, and a lock beside the target (``.NAME.lock``, held with
``flock`` and released by the system if the process dies) keeps a second job from writing the same output
at the same time: it is told that the output is being written by another job, and the first one finishes.
A failed write (a full disk, a permission problem) becomes one :class:`~wormclean.errors.OutputError` that
names the output and the cause, and the temporary file is removed.
"""

from __future__ import annotations

import contextlib
import fcntl
import glob
import logging
import os
import re
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

from wormclean.errors import OutputError
from wormclean.stopping import not_stopped_in

log = logging.getLogger(__name__)

# HDF5 reports a failed system call inside its message ("... errno = 28, error message = ...") and h5py
# raises some of those as RuntimeError without an errno.
_ERRNO_IN_MESSAGE = re.compile(r"errno = (\d+)")


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
    check_folder_writable(path.parent)
    return path


def check_folder_writable(folder: str | os.PathLike) -> Path:
    """Check that ``folder`` exists and files can be created in it; raise :class:`OutputError` if not."""
    folder = Path(folder)
    if not folder.is_dir():
        raise OutputError(f"output folder {folder} does not exist")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise OutputError(f"output folder {folder} is not writable")
    return folder


def partial_path(path: str | os.PathLike) -> Path:
    """A fresh temporary name for writing ``path``: hidden, same folder, same extension, unique to this call."""
    path = Path(path)
    return path.with_name(f".{path.stem}.partial-{os.getpid()}-{uuid.uuid4().hex[:8]}{path.suffix}")


def write_failure(path: str | os.PathLike, error: BaseException) -> OutputError | None:
    """The one-line :class:`OutputError` for a failed write of ``path``, or None if ``error`` is no OS failure.

    OS errors give their cause (``No space left on device``); so do HDF5 errors that carry an errno in their
    message.
    """
    number = getattr(error, "errno", None)
    if number is None:
        match = _ERRNO_IN_MESSAGE.search(str(error))
        number = int(match.group(1)) if match else None
    if number is not None:
        cause = os.strerror(number)
    elif isinstance(error, OSError):
        cause = str(error).splitlines()[0] if str(error) else type(error).__name__
    else:
        return None
    return OutputError(f"cannot write {path}: {cause}")


class FailSafeFile:
    """A binary file for libraries that cannot survive a failed write: HDF5 on a full disk crashes the process.

    Hand it to ``h5py.File`` in place of a file name. The first :class:`OSError` of a write is kept and every
    later write is dropped, so that the library still closes its file cleanly; :meth:`check` (and leaving
    the ``with`` block without an error) raises the kept error. The file is then incomplete and only fit to
    be deleted, as :func:`atomic_output` does.

    Parameters
    ----------
    path : str or os.PathLike
        The file to create (a temporary name from :func:`atomic_output`).
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.error: OSError | None = None
        self._file = open(self.path, "w+b", buffering=0)  # unbuffered: a failed write fails in write()

    @not_stopped_in
    def write(self, data) -> int:
        """Write all of ``data`` (bytes-like); after a failure, count it as written and drop it."""
        view = memoryview(data).cast("B")
        done = 0
        while self.error is None and done < len(view):
            try:
                done += self._file.write(view[done:]) or 0
            except OSError as error:
                self.error = error
                log.debug("writing %s failed (%s); dropping further writes", self.path, error)
        return len(view)

    @not_stopped_in
    def readinto(self, buffer) -> int:
        """Read into ``buffer``; the number of bytes read."""
        return self._file.readinto(buffer)

    @not_stopped_in
    def read(self, size: int = -1) -> bytes:
        """Read up to ``size`` bytes."""
        return self._file.read(size)

    @not_stopped_in
    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        """Move to ``offset``; the new position."""
        return self._file.seek(offset, whence)

    @not_stopped_in
    def tell(self) -> int:
        """The current position."""
        return self._file.tell()

    @not_stopped_in
    def truncate(self, size: int | None = None) -> int:
        """Set the file's size (dropped, like writes, after a failure)."""
        if self.error is None:
            try:
                return self._file.truncate(size)
            except OSError as error:
                self.error = error
        return self.tell() if size is None else size

    @not_stopped_in
    def flush(self) -> None:
        """Nothing to flush: writes are unbuffered."""

    def check(self) -> None:
        """Raise the first failed write's :class:`OSError`, if there was one."""
        if self.error is not None:
            raise self.error

    @not_stopped_in
    def close(self) -> None:
        """Close the file (a failed write stays in :attr:`error`)."""
        self._file.close()

    def __enter__(self) -> FailSafeFile:
        return self

    def __exit__(self, kind, error, traceback) -> None:
        self.close()
        if error is None:
            self.check()


@contextlib.contextmanager
def output_lock(path: str | os.PathLike, kind: str = "") -> Iterator[None]:
    """Hold the lock on writing ``path``; raise :class:`OutputError` at once if another job holds it.

    The lock is ``flock`` on ``.NAME.lock`` beside ``path`` (``.NAME.KIND.lock`` with a ``kind``: a job that
    writes several files, such as ``fit``, holds one of its own over them all, while each file is still
    written under its plain lock); the file is removed when the lock is released.
    """
    path = Path(path)
    lock_path = path.with_name(f".{path.name}{'.' + kind if kind else ''}.lock")
    while True:
        try:
            fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as error:
            raise write_failure(lock_path, error) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise OutputError(f"{path} is being written by another job; wait for it to finish") from None
        try:
            current = os.stat(lock_path)
        except FileNotFoundError:
            current = None
        locked = os.fstat(fd)
        if current is not None and (current.st_dev, current.st_ino) == (locked.st_dev, locked.st_ino):
            break
        os.close(fd)  # the holder removed this lock file as we opened it: take the new one
    try:
        yield
    finally:
        with contextlib.suppress(FileNotFoundError):
            lock_path.unlink()
        os.close(fd)


def remove_stale_partials(path: str | os.PathLike) -> None:
    """Delete the temporary files of ``path`` that a killed job left (SIGKILL, a power cut); call while holding
    its :func:`output_lock`, since then no live job is writing them."""
    path = Path(path)
    for stale in path.parent.glob(f".{glob.escape(path.stem)}.partial-*{glob.escape(path.suffix)}"):
        log.warning("removing %s, left by a job on %s that was killed", stale, path)
        remove_partial(stale)


def remove_partial(temporary: Path) -> None:
    """Delete a temporary file or folder, whatever is left of it."""
    if temporary.is_dir() and not temporary.is_symlink():
        shutil.rmtree(temporary, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            temporary.unlink()


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary path to write; rename it to ``path`` when the block completes.

    If the block raises (or is interrupted), the temporary file is removed and ``path`` is left untouched:
    a reader never sees a half-written file under the final name. An OS error of the write (raised as
    :class:`OSError` without a file name, or naming the temporary file) becomes an :class:`OutputError`
    naming ``path`` and the cause. Raises :class:`OutputError` if another job is writing ``path``.
    """
    path = check_output_path(path, overwrite)
    with output_lock(path):
        path = check_output_path(path, overwrite)  # the job that held the lock may have written it meanwhile
        remove_stale_partials(path)
        temporary = partial_path(path)
        try:
            yield temporary
            os.replace(temporary, path)
        except (OSError, RuntimeError) as error:
            named = getattr(error, "filename", None)
            failure = write_failure(path, error) if named in (None, str(temporary), temporary) else None
            if failure is None:
                raise
            raise failure from error
        finally:
            remove_partial(temporary)
