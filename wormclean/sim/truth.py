"""The truth file written beside a synthetic video: ``OUT.mp4`` -> ``OUT.truth.h5``.

Layout::

    /labels      (n_frames, height, width) uint8, 0 = background, k + 1 = worm k; one frame per chunk, gzip
    /background  (height, width) float32, the noise-free background before flicker
    /immobile    (n_worms,) bool, worms that never move
    /gain        (n_frames,) float32, per-frame flicker gain
    attributes   format, format_version, wormclean_version and every simulation setting (worm size in pixels)
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

import h5py
import numpy as np

from wormclean._version import __version__
from wormclean.errors import VideoError
from wormclean.sim.settings import SimulationSettings

TRUTH_SUFFIX = ".truth.h5"
FORMAT = "wormclean-sim-truth"
FORMAT_VERSION = 1


def truth_path(video_path: str | os.PathLike) -> Path:
    """The truth file of a synthetic video (``OUT.mp4`` -> ``OUT.truth.h5``); a truth path is returned as is."""
    path = Path(video_path)
    if path.name.endswith(TRUTH_SUFFIX):
        return path
    return path.with_suffix(TRUTH_SUFFIX)


class TruthWriter:
    """Write a truth file: the per-video arrays at once, the labels frame by frame.

    Parameters
    ----------
    path
        File to write (callers make it atomic).
    settings
        The simulation's settings, stored as attributes: a :class:`SimulationSettings`, or anything with its
        ``size``, ``n_frames`` and ``to_dict()`` (a semi-real plate, :mod:`wormclean.sim.semireal`).
    background : (height, width) float32
    immobile : (n_worms,) bool
    gain : (n_frames,) float32
    """

    def __init__(
        self,
        path: str | os.PathLike,
        settings: SimulationSettings,
        background: np.ndarray,
        immobile: np.ndarray,
        gain: np.ndarray,
    ):
        height, width = settings.size
        self._file = h5py.File(path, "w")
        self._file.attrs["format"] = FORMAT
        self._file.attrs["format_version"] = FORMAT_VERSION
        self._file.attrs["wormclean_version"] = __version__
        for name, value in settings.to_dict().items():
            self._file.attrs[name] = value
        self._labels = self._file.create_dataset(
            "labels",
            shape=(settings.n_frames, height, width),
            dtype=np.uint8,
            chunks=(1, height, width),
            compression="gzip",
            compression_opts=1,
            shuffle=False,
        )
        self._file.create_dataset("background", data=background.astype(np.float32), compression="gzip")
        self._file.create_dataset("immobile", data=np.asarray(immobile, bool))
        self._file.create_dataset("gain", data=np.asarray(gain, np.float32))

    def write(self, index: int, labels: np.ndarray) -> None:
        """Store frame ``index``'s labels, ``(height, width) uint8``."""
        self._labels[index] = labels

    def close(self) -> None:
        """Close the file."""
        self._file.close()

    def __enter__(self) -> TruthWriter:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


@dataclass
class Truth:
    """What a synthetic video really shows.

    Attributes
    ----------
    labels : (n_frames, height, width) uint8
        An open ``h5py.Dataset`` (read frames by indexing), or an array if read with ``in_memory=True``.
        0 = background, ``k + 1`` = worm ``k``.
    background : (height, width) float32
        The noise-free background, before flicker.
    immobile : (n_worms,) bool
        Worms that never move.
    gain : (n_frames,) float32
        Per-frame flicker gain: a frame's background is ``gain[t] * background`` plus noise.
    settings : dict
        The simulation settings (worm size in pixels); ``SimulationSettings.from_dict`` rebuilds them.
    """

    labels: h5py.Dataset | np.ndarray
    background: np.ndarray
    immobile: np.ndarray
    gain: np.ndarray
    settings: dict
    _file: h5py.File | None = field(default=None, repr=False)

    @property
    def masks(self) -> np.ndarray:
        """``(n_frames, height, width) bool``, true on worms; reads every frame, so mind the memory."""
        return np.asarray(self.labels[...]) > 0

    def close(self) -> None:
        """Close the file behind :attr:`labels` (if it was not read into memory)."""
        if self._file is not None:
            self._file.close()
            self._file = None

    def __enter__(self) -> Truth:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


def read_truth(path: str | os.PathLike, in_memory: bool = False) -> Truth:
    """Open the truth of a synthetic video.

    Parameters
    ----------
    path
        The video (its ``.truth.h5`` beside it is read) or the truth file itself.
    in_memory
        Read the labels into an array and close the file. Otherwise ``labels`` is an open dataset: close the
        :class:`Truth` (or use it in a ``with`` block) when done.

    Raises
    ------
    VideoError
        If the file is missing or is not a wormclean truth file.
    """
    path = truth_path(path)
    if not path.is_file():
        raise VideoError(f"no truth file {path}")
    try:
        file = h5py.File(path, "r")
    except OSError as error:
        raise VideoError(f"cannot read truth file {path}: {error}") from None
    try:
        if file.attrs.get("format") != FORMAT:
            raise VideoError(f"{path} is not a wormclean simulation truth file")
        if file.attrs.get("format_version") != FORMAT_VERSION:
            raise VideoError(f"{path} has truth format version {file.attrs.get('format_version')}, expected 1")
        names = set(SimulationSettings.__dataclass_fields__)
        settings = {name: _plain(value) for name, value in file.attrs.items() if name in names}
        truth = Truth(
            labels=file["labels"],
            background=file["background"][...],
            immobile=file["immobile"][...].astype(bool),
            gain=file["gain"][...],
            settings=settings,
            _file=file,
        )
    except Exception:
        file.close()
        raise
    if in_memory:
        truth.labels = truth.labels[...]
        truth.close()
    return truth


def _plain(value):
    """HDF5 attributes come back as numpy types; settings are plain Python values."""
    if isinstance(value, np.ndarray):
        return tuple(value.tolist())
    if isinstance(value, np.generic):
        return value.item()
    return value
