"""Reading Tierpsy MaskedVideos (HDF5) as videos.

A MaskedVideos file holds ``/mask``, the frames with the background set to 0, ``(n_frames, height, width)``
uint8, and ``/full_data``, a full frame every ``save_interval`` frames. The frame rate is the dataset's
``expected_fps`` attribute.
"""

from __future__ import annotations

import logging
from pathlib import Path

import h5py
import numpy as np

from wormclean.errors import VideoError
from wormclean.io.video import DEFAULT_FPS, IndexedReader, VideoInfo

log = logging.getLogger(__name__)

HDF5_SUFFIXES = frozenset({".hdf5", ".h5", ".hdf"})
DATASETS = ("mask", "full_data")
"""The datasets read as the video, in order of preference."""


def is_masked_video(path: Path) -> bool:
    """Whether ``path`` is an HDF5 video to search for: it has frames (``/mask`` or ``/full_data``) and is not
    an output of ``wormclean mask`` (whose root attributes name its ``source_video``).

    Folder searches use it to pass over other HDF5 files, such as the simulator's ``.truth.h5``, and over
    wormclean's own masks written beside the videos they came from.
    """
    try:
        with h5py.File(path, "r") as file:
            has_frames = any(isinstance(file.get(name), h5py.Dataset) for name in DATASETS)
            return has_frames and "source_video" not in file.attrs
    except OSError:
        return False


class TierpsyReader(IndexedReader):
    """The ``/mask`` dataset of a Tierpsy MaskedVideos file, or ``/full_data`` when there is no ``/mask``.

    Frame rate: the dataset's ``expected_fps`` attribute, else 25.
    """

    def __init__(self, path: str | Path) -> None:
        path = Path(path)
        try:
            self._file = h5py.File(path, "r")
        except OSError as error:
            raise VideoError(f"{path} is not a readable HDF5 file ({error})") from None
        try:
            self._dataset = self._find_dataset(path)
        except VideoError:
            self._file.close()
            raise
        dataset = self._dataset
        n_frames, height, width = dataset.shape
        info = VideoInfo(
            path, n_frames, _fps(dataset), height, width, 16 if dataset.dtype == np.uint16 else 8, "tierpsy-hdf5"
        )
        super().__init__(info)

    def _find_dataset(self, path: Path) -> h5py.Dataset:
        name = next((name for name in DATASETS if isinstance(self._file.get(name), h5py.Dataset)), None)
        if name is None:
            raise VideoError(f"{path} has neither /mask nor /full_data: not a Tierpsy MaskedVideos file")
        dataset = self._file[name]
        if dataset.ndim != 3 or dataset.dtype not in (np.uint8, np.uint16):
            raise VideoError(
                f"{path}: /{name} is {dataset.dtype} {dataset.shape}, expected (frames, height, width) uint8 or uint16"
            )
        if dataset.shape[0] == 0:
            raise VideoError(f"{path}: /{name} holds no frames")
        return dataset

    def close(self) -> None:
        self._file.close()

    def _load(self, index: int) -> np.ndarray:
        try:
            return self._dataset[index]
        except (OSError, ValueError) as error:
            raise VideoError(f"{self._dataset.name} frame {index} cannot be read ({error})") from None


def _fps(dataset: h5py.Dataset) -> float:
    """The dataset's ``expected_fps``, or 25 when it is missing or not a positive number."""
    value = dataset.attrs.get("expected_fps", DEFAULT_FPS)
    try:
        fps = float(np.asarray(value).ravel()[0])
    except (TypeError, ValueError, IndexError):
        fps = 0.0
    if not fps > 0 or fps == float("inf"):
        log.warning("%s: expected_fps %r is not a frame rate; using %g", dataset.file.filename, value, DEFAULT_FPS)
        return DEFAULT_FPS
    return fps
