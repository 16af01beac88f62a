"""Masked videos in Tierpsy's MaskedVideos HDF5 layout, written frame by frame.

Layout (``N`` frames of ``H`` x ``W``; every image dataset is chunked one frame per chunk, gzip)::

    /mask            (N, H, W) uint8   the frame inside the dilated worm regions, 0 elsewhere; kept pixels are
                                       clipped to 1..255 because Tierpsy reserves 0 for "no data"
    /full_data       (ceil(N / save_interval), H, W) uint8   whole frames 0, s, 2s, ... (attribute save_interval)
    /bgnd            (ceil(N / bgnd_interval), H, W) uint8   the net's backgrounds of frames 0, b, 2b, ...
                                       (attribute save_interval = b)
    /worm_mask       (N, H, W) uint8   1 on worm pixels (before dilation), 0 elsewhere: for other trackers
    /mean_intensity  (N,) float32      mean grey level of each stored (8-bit) frame
    /timestamp/raw   (N,) int64        frame index (the readers give no container timestamps)
    /timestamp/time  (N,) float64      seconds, index / fps (NaN when the frame rate is unknown)

``/mask``, ``/full_data`` and ``/bgnd`` carry the HDF5 image attributes (CLASS=IMAGE,
IMAGE_SUBCLASS=IMAGE_GRAYSCALE, IMAGE_WHITE_IS_ZERO=0, DISPLAY_ORIGIN=UL, IMAGE_VERSION=1.2) and Tierpsy's unit
attributes: ``expected_fps``, ``time_units`` ("seconds", or "frames" with expected_fps 1 when the rate is
unknown), ``is_light_background`` (1 or 0), ``xy_units``, and ``microns_per_pixel`` when given. The file's
root attributes hold ``wormclean_version``, ``source_video``, ``settings`` and ``model`` (JSON), ``n_frames``
(frames written) and ``broken_at`` (first frame that could not be decoded, -1 if none).

Videos deeper than 8 bits: Tierpsy reads only 8-bit images, so ``/mask``, ``/full_data`` and ``/bgnd`` hold
the frames mapped linearly to 8 bits, with one map for the whole video taken from the range of the first image written
(widened by a quarter of it on each side, so later brighter or darker frames rarely saturate). The map is
recorded as ``/normalization_range`` (N, 2) float32, the raw levels that become 0 and 255 (the dataset by which
Tierpsy recognises normalised videos), and the original 16-bit whole frames are kept in ``/full_data_raw``
beside ``/full_data``.
"""

from __future__ import annotations

import json
import logging
import os
import zlib
from types import TracebackType

import cv2
import h5py
import numpy as np

from wormclean import __version__

log = logging.getLogger(__name__)

IMAGE_ATTRIBUTES = {
    "CLASS": np.bytes_("IMAGE"),
    "IMAGE_SUBCLASS": np.bytes_("IMAGE_GRAYSCALE"),
    "IMAGE_WHITE_IS_ZERO": np.uint8(0),
    "DISPLAY_ORIGIN": np.bytes_("UL"),
    "IMAGE_VERSION": np.bytes_("1.2"),
}
# Level 1: masked frames are mostly zeros, which level 1 packs nearly as well as 4 at a third of the time.
_GZIP_LEVEL = 1
_COMPRESSION = {"compression": "gzip", "compression_opts": _GZIP_LEVEL}


class MaskedVideoWriter:
    """Append masked frames to a new MaskedVideos file; memory does not grow with the number of frames.

    Parameters
    ----------
    path : str or os.PathLike
        File to create (callers make it atomic with :func:`~wormclean.io.atomic.atomic_output`).
    height, width : int
        Frame size in pixels.
    fps : float
        Frames per second; 0 or None when unknown.
    bit_depth : int
        Bit depth of the frames (8, or up to 16 for uint16 frames).
    is_light_background : bool
        True when worms are darker than the background.
    save_interval : int
        A whole frame goes to ``/full_data`` every this many frames.
    bgnd_interval : int
        Frames between the backgrounds written with :meth:`write_background`.
    expected_frames : int
        Frames expected, used to size the datasets up front (they grow or shrink as needed).
    microns_per_pixel : float, optional
        Pixel size; stored when given.
    source_video : str
        Path of the input video.
    settings, model : dict
        The job's settings and the model used (path, sha256, ...), stored as JSON attributes.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        height: int,
        width: int,
        fps: float | None,
        bit_depth: int,
        is_light_background: bool,
        save_interval: int,
        bgnd_interval: int,
        expected_frames: int = 0,
        microns_per_pixel: float | None = None,
        source_video: str = "",
        settings: dict | None = None,
        model: dict | None = None,
    ):
        self.height, self.width = int(height), int(width)
        self.bit_depth = int(bit_depth)
        self.save_interval = int(save_interval)
        self.bgnd_interval = int(bgnd_interval)
        self.n_frames = 0
        self.n_backgrounds = 0
        self._range: tuple[float, float] | None = None if bit_depth > 8 else (0.0, 255.0)
        self._pending_background: tuple[int, np.ndarray] | None = None
        expected = max(1, int(expected_frames))
        self._file = h5py.File(path, "w")
        attrs = self._file.attrs
        attrs["wormclean_version"] = __version__
        attrs["source_video"] = str(source_video)
        attrs["settings"] = json.dumps(settings or {}, sort_keys=True, default=str)
        attrs["model"] = json.dumps(model or {}, sort_keys=True, default=str)
        attrs["n_frames"] = 0
        attrs["broken_at"] = -1
        units = _unit_attributes(fps, microns_per_pixel, is_light_background)
        self._mask = self._image_dataset("mask", expected, units)
        self._full = self._image_dataset("full_data", -(-expected // self.save_interval), units)
        self._full.attrs["save_interval"] = self.save_interval
        self._bgnd = self._image_dataset("bgnd", -(-expected // self.bgnd_interval), units)
        self._bgnd.attrs["save_interval"] = self.bgnd_interval
        self._worm_mask = self._file.create_dataset(
            "worm_mask",
            shape=(expected, height, width),
            maxshape=(None, height, width),
            dtype=np.uint8,
            chunks=(1, height, width),
            **_COMPRESSION,
        )
        self._mean = self._file.create_dataset(
            "mean_intensity", shape=(expected,), maxshape=(None,), dtype=np.float32, chunks=True
        )
        self._raw_time = self._file.create_dataset(
            "timestamp/raw", shape=(expected,), maxshape=(None,), dtype=np.int64, chunks=True
        )
        self._time = self._file.create_dataset(
            "timestamp/time", shape=(expected,), maxshape=(None,), dtype=np.float64, chunks=True
        )
        self._fps = float(fps) if fps and fps > 0 else float("nan")
        self._norm_range = self._full_raw = None
        if bit_depth > 8:
            self._norm_range = self._file.create_dataset(
                "normalization_range", shape=(expected, 2), maxshape=(None, 2), dtype=np.float32, chunks=True
            )
            self._full_raw = self._file.create_dataset(
                "full_data_raw",
                shape=self._full.shape,
                maxshape=(None, height, width),
                dtype=np.uint16,
                chunks=(1, height, width),
                **_COMPRESSION,
            )
            self._full_raw.attrs["save_interval"] = self.save_interval

    def _image_dataset(self, name: str, rows: int, units: dict) -> h5py.Dataset:
        dataset = self._file.create_dataset(
            name,
            shape=(rows, self.height, self.width),
            maxshape=(None, self.height, self.width),
            dtype=np.uint8,
            chunks=(1, self.height, self.width),
            **_COMPRESSION,
        )
        for key, value in {**IMAGE_ATTRIBUTES, **units}.items():
            dataset.attrs[key] = value
        return dataset

    def to_8bit(self, image: np.ndarray) -> np.ndarray:
        """An image in the file's 8-bit scale (uint8 as is; deeper images by the video-wide linear map)."""
        if image.dtype == np.uint8:
            return image
        if self._range is None:
            low, high = float(image.min()), float(image.max())
            margin = max((high - low) / 4, 1.0)
            self._range = (max(0.0, low - margin), min(2.0**self.bit_depth - 1, high + margin))
        low, high = self._range
        scaled = (image.astype(np.float32) - low) * np.float32(255.0 / max(high - low, 1.0))
        return np.clip(np.rint(scaled), 0, 255).astype(np.uint8)

    def write(self, index: int, frame: np.ndarray, worm_mask: np.ndarray, keep: np.ndarray) -> None:
        """Append frame ``index`` (frames must come in order 0, 1, 2, ...).

        Parameters
        ----------
        frame : np.ndarray
            ``(H, W)`` uint8 or uint16 frame.
        worm_mask : np.ndarray
            bool ``(H, W)``, the worm pixels.
        keep : np.ndarray
            bool ``(H, W)``, the pixels kept in ``/mask`` (the dilated worm regions).
        """
        if index != self.n_frames:
            raise ValueError(f"frames must be written in order: expected {self.n_frames}, got {index}")
        # Tierpsy reserves 0 for "no data": kept pixels are at least 1.
        stored = cv2.max(self.to_8bit(frame), 1)
        _put_image(self._mask, index, cv2.bitwise_and(stored, stored, mask=keep.astype(np.uint8)))
        _put_image(self._worm_mask, index, worm_mask.astype(np.uint8))
        _put(self._mean, index, np.float32(cv2.mean(stored)[0]))
        _put(self._raw_time, index, index)
        _put(self._time, index, index / self._fps)
        if index % self.save_interval == 0:
            _put_image(self._full, index // self.save_interval, stored)
            if self._full_raw is not None:
                _put_image(self._full_raw, index // self.save_interval, frame)
        if self._norm_range is not None:
            _put(self._norm_range, index, np.asarray(self._range, dtype=np.float32))
        if self._pending_background is not None:
            self._put_background(*self._pending_background)
            self._pending_background = None
        self.n_frames += 1

    def write_background(self, index: int, background: np.ndarray) -> None:
        """Store the net's background of frame ``index`` (a multiple of ``bgnd_interval``, in order)."""
        row = index // self.bgnd_interval
        if index % self.bgnd_interval or row != self.n_backgrounds:
            raise ValueError(f"background of frame {index} is out of order (interval {self.bgnd_interval})")
        self.n_backgrounds += 1
        if background.dtype != np.uint8 and self.bit_depth > 8 and self._range is None:
            # The video-wide 8-bit map is taken from the first frame, which holds the worms; a background
            # (worm-free) would give a range that clips them. Store it once that frame has set the map.
            self._pending_background = (row, background)
            return
        self._put_background(row, background)

    def _put_background(self, row: int, background: np.ndarray) -> None:
        if background.dtype != np.uint8:
            if self.bit_depth > 8:
                background = self.to_8bit(np.clip(np.rint(background), 0, 2**self.bit_depth - 1).astype(np.uint16))
            else:
                background = np.clip(np.rint(background), 0, 255).astype(np.uint8)
        _put_image(self._bgnd, row, background)

    def close(self, broken_at: int | None = None, backgrounds: dict | None = None) -> None:
        """Trim the datasets to what was written, record the frame count and how the backgrounds were made
        (root attribute ``backgrounds``, JSON), and close the file."""
        if not self._file.id.valid:
            return
        if self._pending_background is not None:  # no frame was written: map the background by itself
            self._put_background(*self._pending_background)
            self._pending_background = None
        try:
            n_full = -(-self.n_frames // self.save_interval)
            sizes = {
                self._mask: self.n_frames,
                self._worm_mask: self.n_frames,
                self._mean: self.n_frames,
                self._raw_time: self.n_frames,
                self._time: self.n_frames,
                self._full: n_full,
                self._bgnd: self.n_backgrounds,
                self._norm_range: self.n_frames,
                self._full_raw: n_full,
            }
            for dataset, size in sizes.items():
                if dataset is not None and dataset.shape[0] != size:
                    dataset.resize(size, axis=0)
            self._file.attrs["n_frames"] = self.n_frames
            self._file.attrs["broken_at"] = -1 if broken_at is None else int(broken_at)
            self._file.attrs["backgrounds"] = json.dumps(backgrounds or {}, sort_keys=True, default=str)
        finally:
            self._file.close()

    def __enter__(self) -> MaskedVideoWriter:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.close()


def _unit_attributes(fps: float | None, microns_per_pixel: float | None, is_light_background: bool) -> dict:
    """Tierpsy's unit attributes of an image dataset."""
    units: dict = {"is_light_background": np.int32(bool(is_light_background))}
    if fps and fps > 0:
        units.update(expected_fps=float(fps), time_units="seconds")
    else:
        units.update(expected_fps=1.0, time_units="frames")
    if microns_per_pixel:
        units.update(microns_per_pixel=float(microns_per_pixel), xy_units="micrometers")
    else:
        units["xy_units"] = "pixels"
    return units


def _put(dataset: h5py.Dataset, row: int, value) -> None:
    """Write ``dataset[row]``, growing the dataset by half its size (at least 16 rows) when full."""
    if row >= dataset.shape[0]:
        dataset.resize(max(row + 1, dataset.shape[0] + max(16, dataset.shape[0] // 2)), axis=0)
    dataset[row] = value


def _put_image(dataset: h5py.Dataset, row: int, image: np.ndarray) -> None:
    """Write one frame-sized chunk, compressed here rather than inside HDF5.

    ``zlib.compress`` lets other threads run while it works, where h5py's own gzip filter holds the GIL and
    stalls decoding and segmentation; the bytes are the same deflate stream HDF5's gzip filter writes.
    """
    if row >= dataset.shape[0]:
        dataset.resize(max(row + 1, dataset.shape[0] + max(16, dataset.shape[0] // 2)), axis=0)
    data = np.ascontiguousarray(image, dtype=dataset.dtype)
    dataset.id.write_direct_chunk((row, 0, 0), zlib.compress(data, _GZIP_LEVEL))
