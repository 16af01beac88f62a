"""SIGTERM and SIGHUP as a clean stop, like Ctrl-C: the signal becomes an exception in the main thread, so every
``finally`` on the way out runs (temporary outputs removed, locks released).

A batch scheduler sends SIGTERM at its time limit, a closed terminal SIGHUP; without this the process dies where
it is and leaves its temporary files behind. The command line installs it for a whole command; worker
processes of a batch for each task they run (:mod:`wormclean.predict.batch`).
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from collections.abc import Callable, Iterator

STOP_SIGNALS = (signal.SIGTERM, signal.SIGHUP)
"""The signals that stop a job cleanly."""


class Stopped(BaseException):
    """Raised in the main thread when a stop signal arrives; a :class:`BaseException`, as
    :class:`KeyboardInterrupt` is, so that handlers of ordinary errors let it through.

    Parameters
    ----------
    signal_number : int
        The signal that came (``signal.SIGTERM``, ``signal.SIGHUP``).
    """

    def __init__(self, signal_number: int):
        self.signal_number = int(signal_number)
        super().__init__(signal.Signals(self.signal_number).name)

    @property
    def exit_code(self) -> int:
        """The exit status of a process ended by this signal, as a shell reports it: 128 + the number."""
        return 128 + self.signal_number


_UNSAFE_CODE: set = set()  # code of functions that C libraries call back, where an exception would crash them
_RETRY_S = 0.05  # a stop that came during such a call is raised this much later


def not_stopped_in(function: Callable) -> Callable:
    """Mark ``function`` as one that a C library calls back (HDF5 writing through a Python file): a stop signal
    that arrives while it runs is raised a little later, back in Python, since an exception thrown through the
    library's frames can leave it corrupt and crash the process."""
    _UNSAFE_CODE.add(function.__code__)
    return function


def _raise_stopped(signal_number: int, frame) -> None:
    while frame is not None:
        # h5py's own Python code too: a callback's exception can surface as it returns into HDF5 from there.
        if frame.f_code in _UNSAFE_CODE or frame.f_globals.get("__name__", "").startswith("h5py"):
            threading.Timer(_RETRY_S, os.kill, (os.getpid(), signal_number)).start()
            return
        frame = frame.f_back
    # Further signals are ignored while the first one's clean-up runs; a second one would cut it short.
    for number in STOP_SIGNALS:
        signal.signal(number, signal.SIG_IGN)
    raise Stopped(signal_number)


@contextlib.contextmanager
def stop_on_signals() -> Iterator[None]:
    """Within the block, SIGTERM and SIGHUP raise :class:`Stopped` in the main thread; the previous handlers
    are restored after it. Call from the main thread only."""
    previous = {number: signal.signal(number, _raise_stopped) for number in STOP_SIGNALS}
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
