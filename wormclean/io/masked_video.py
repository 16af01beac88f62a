"""Masked videos in Tierpsy's MaskedVideos HDF5 layout, written frame by frame.

Layout (``N`` frames of ``H`` x ``W``; every image dataset is chunked one frame per chunk, gzip)::

    /mask            (N, H, W) uint8   the frame inside the dilated worm regions, 0 elsewhere; kept pixels are
                                       clipped to 1..255 because Tierpsy reserves 0 for "no data"
    /full_data       (ceil(N / save_interval), H, W) uint8   whole frames 0, s, 2s, ... (attribute save_interval)
    /bgnd            (ceil(N / bgnd_interval), H, W) uint8   the net's backgrounds of frames 0, b, 2b, ...
                                       (attribute save_interval = b)
    /worm_mask       (N, H, W) uint8   1 on worm pixels (before dilation), 0 elsewhere: for other trackers
    /mean_intensity  (N,) float32      mean grey level of each stored (8-bit) frame
    /video_metadata  (N,) table        best_effort_timestamp, best_effort_timestamp_time (float64): each frame's
                                       presentation timestamp (in the stream's time base) and its time in
                                       seconds, the columns of the table Tierpsy makes with ffprobe
    /timestamp/raw   (N,) int64        the timestamps in frames, as Tierpsy derives them from /video_metadata:
                                       best_effort_timestamp / its smallest step (gaps are dropped frames)
    /timestamp/time  (N,) float64      best_effort_timestamp_time
    /worm_blobs      (n_blobs,) table  one row per worm blob per frame, :data:`~wormclean.segment.blobs.BLOB_DTYPE`
                                       (frame_number, label, centroid, area, bounding box, length)
    /provenance_tracking/COMPRESS      scalar string, JSON: how the file was made (see below)

``/mask``, ``/full_data`` and ``/bgnd`` carry the HDF5 image attributes (CLASS=IMAGE,
IMAGE_SUBCLASS=IMAGE_GRAYSCALE, IMAGE_WHITE_IS_ZERO=0, DISPLAY_ORIGIN=UL, IMAGE_VERSION=1.2) and Tierpsy's unit
attributes, as its ``set_unit_conversions`` writes them: ``expected_fps`` and ``time_units`` ("seconds", or
expected_fps 1 and "frames" when the rate is unknown), ``microns_per_pixel`` and ``xy_units``
("micrometers", or microns_per_pixel 1 and "pixels" when the pixel size is not given) and
``is_light_background`` (1 or 0). The file's root attributes hold ``wormclean_version``, ``source_video``,
``settings`` and ``model`` (JSON), ``n_frames`` (frames written) and ``broken_at`` (first frame that could not
be decoded, -1 if none).

Timestamps come from the decoder (variable frame rates included) when the container has them; sources without
(image folders, TIFF stacks, streams whose packets lack unique timestamps) get frame index and index / fps.
``/video_metadata`` says which in its attribute ``timestamp_source`` ("container" or "frame_number"), with the
``time_base`` (seconds per timestamp unit, e.g. "1/12800"). Frames past a break are not written, nor their times.

Tierpsy counts a step as done when ``/provenance_tracking/STEP`` exists (its ``CheckFinished``), so this node
makes Tierpsy start at TRAJ_CREATE by itself. It holds what Tierpsy's ``execThisPoint`` stores: ``func_name``,
``func_arguments`` (JSON of the source video, settings and model), ``pkgs_versions`` and ``cmd_original``
(the command line), plus ``program``. ``/video_metadata`` and ``/worm_blobs`` carry PyTables' table attributes
(CLASS=TABLE), so that PyTables, and Tierpsy through it, read them as tables.

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
from types import TracebackType

import cv2
import h5py
import numpy as np
from isal import isal_zlib

from wormclean._version import __version__
from wormclean.io.video import FrameTimes
from wormclean.segment.blobs import BLOB_DTYPE, mask_pixels, measure_blobs

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
VIDEO_METADATA_DTYPE = np.dtype([("best_effort_timestamp", np.float64), ("best_effort_timestamp_time", np.float64)])
"""Columns of ``/video_metadata`` that Tierpsy reads (``extractMetaData.get_timestamp``); ffprobe's are float64."""
PROVENANCE_STEP = "COMPRESS"
"""The Tierpsy step a wormclean file stands for: Tierpsy's own masking, after which its tracking starts."""


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
        Pixel size; when not given, Tierpsy's "unknown" (1, in pixels) is stored.
    source_video : str
        Path of the input video.
    settings, model : dict
        The job's settings and the model used (path, sha256, ...), stored as JSON attributes.
    frame_times : FrameTimes, optional
        Presentation times of the source's frames (:meth:`~wormclean.io.video.VideoReader.frame_times`);
        without them, frame index and index / fps.
    command_line : str
        The command that made the file, recorded in the provenance.
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
        frame_times: FrameTimes | None = None,
        command_line: str = "",
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
        try:
            attrs = self._file.attrs
            attrs["wormclean_version"] = __version__
            attrs["source_video"] = str(source_video)
            attrs["settings"] = json.dumps(settings or {}, sort_keys=True, default=str)
            attrs["model"] = json.dumps(model or {}, sort_keys=True, default=str)
            self._provenance = {
                "program": "wormclean",
                "func_name": "mask_video",
                "func_arguments": json.dumps(
                    {"source_video": str(source_video), "settings": settings or {}, "model": model or {}},
                    sort_keys=True,
                    default=str,
                ),
                "pkgs_versions": {"wormclean": __version__},
                "cmd_original": command_line,
            }
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
            self._mean = self._frame_rows("mean_intensity", np.float32, expected)
            self._raw_time = self._frame_rows("timestamp/raw", np.int64, expected)
            self._time = self._frame_rows("timestamp/time", np.float64, expected)
            self._fps = float(fps) if fps and fps > 0 else float("nan")
            self._frame_times = frame_times or FrameTimes.from_frame_numbers(0, fps)
            self._video_metadata = _Rows(_table_dataset(self._file, "video_metadata", VIDEO_METADATA_DTYPE, expected))
            self._video_metadata.dataset.attrs["timestamp_source"] = self._frame_times.source
            self._video_metadata.dataset.attrs["time_base"] = str(self._frame_times.time_base or "unknown")
            self._blobs = _Rows(_table_dataset(self._file, "worm_blobs", BLOB_DTYPE, 4 * expected))
            self.n_blobs = 0
            self._norm_range = self._full_raw = None
            if bit_depth > 8:
                self._norm_range = self._frame_rows("normalization_range", np.float32, expected, columns=2)
                self._full_raw = self._file.create_dataset(
                    "full_data_raw",
                    shape=self._full.shape,
                    maxshape=(None, height, width),
                    dtype=np.uint16,
                    chunks=(1, height, width),
                    **_COMPRESSION,
                )
                self._full_raw.attrs["save_interval"] = self.save_interval
        except BaseException:
            # A stop signal or a failure part-way: an h5py file left open would be flushed into its closed
            # Python file when collected at exit, and HDF5 crashes the process there.
            self._file.close()
            raise

    def _frame_rows(self, name: str, dtype: type, rows: int, columns: int | None = None) -> _Rows:
        """A growable dataset of one value (or ``columns`` values) per frame, appended to in blocks."""
        shape = (rows,) if columns is None else (rows, columns)
        maxshape = (None, *shape[1:])
        return _Rows(self._file.create_dataset(name, shape=shape, maxshape=maxshape, dtype=dtype, chunks=True))

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

    def write(
        self,
        index: int,
        frame: np.ndarray,
        worm_mask: np.ndarray,
        keep: np.ndarray | int,
        contours: tuple[np.ndarray, ...] | None = None,
        keep_boxes: list[tuple[slice, slice]] | None = None,
    ) -> None:
        """Append frame ``index`` (frames must come in order 0, 1, 2, ...).

        Parameters
        ----------
        frame : np.ndarray
            ``(H, W)`` uint8 or uint16 frame.
        worm_mask : np.ndarray
            bool ``(H, W)``, the worm pixels.
        keep : np.ndarray or int
            bool ``(H, W)``, the pixels kept in ``/mask`` (the dilated worm regions); or the radius in pixels
            by which ``worm_mask`` is grown to give them, box by box in ``keep_boxes`` (then required: the
            blobs' boxes grown by that radius) without a whole-frame mask.
        contours : tuple of np.ndarray, optional
            The :func:`~wormclean.segment.blobs.outer_contours` of ``worm_mask``, when they are known already.
        keep_boxes : list of (slice, slice), optional
            Regions (rows, columns) that hold every pixel of ``keep``, when they are known
            (:func:`~wormclean.segment.threshold.grown_boxes`): only they are masked, not the whole frame.
        """
        if index != self.n_frames:
            raise ValueError(f"frames must be written in order: expected {self.n_frames}, got {index}")
        image = self.to_8bit(frame)
        if isinstance(keep, np.ndarray):
            masked = _masked(image, keep, keep_boxes)
        else:
            if keep_boxes is None:
                raise ValueError("a dilation radius needs the grown boxes of the blobs (keep_boxes)")
            masked = _masked_grown(image, mask_pixels(worm_mask), int(keep), keep_boxes)
        _put_image(self._mask, index, masked)
        _put_image(self._worm_mask, index, mask_pixels(worm_mask))
        self._mean.append(_stored_mean(image))
        pts, seconds = self._frame_time(index)
        self._raw_time.append(pts)  # in frames once all are known: see close()
        self._time.append(seconds)
        self._video_metadata.append((pts, seconds))
        blobs = measure_blobs(worm_mask, index, contours)
        self._blobs.append(blobs)
        self.n_blobs += len(blobs)
        if index % self.save_interval == 0:
            _put_image(self._full, index // self.save_interval, _stored(image))
            if self._full_raw is not None:
                _put_image(self._full_raw, index // self.save_interval, frame)
        if self._norm_range is not None:
            self._norm_range.append(self._range)
        if self._pending_background is not None:
            self._put_background(*self._pending_background)
            self._pending_background = None
        self.n_frames += 1

    def _frame_time(self, index: int) -> tuple[int, float]:
        """Presentation timestamp and seconds of frame ``index`` (frame index / fps past the known times)."""
        times = self._frame_times
        if index < len(times.pts):
            return int(times.pts[index]), float(times.seconds[index])
        return index, index / self._fps

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
            rows = [self._mean, self._raw_time, self._time, self._video_metadata, self._blobs, self._norm_range]
            for buffered in rows:
                if buffered is not None:
                    buffered.flush()
            n_full = -(-self.n_frames // self.save_interval)
            sizes = {
                self._mask: self.n_frames,
                self._worm_mask: self.n_frames,
                self._mean.dataset: self.n_frames,
                self._raw_time.dataset: self.n_frames,
                self._time.dataset: self.n_frames,
                self._video_metadata.dataset: self.n_frames,
                self._blobs.dataset: self.n_blobs,
                self._full: n_full,
                self._bgnd: self.n_backgrounds,
                self._full_raw: n_full,
            }
            if self._norm_range is not None:
                sizes[self._norm_range.dataset] = self.n_frames
            for dataset, size in sizes.items():
                if dataset is not None and dataset.shape[0] != size:
                    dataset.resize(size, axis=0)
            raw_time = self._raw_time.dataset
            raw_time[...] = timestamps_in_frames(raw_time[...])
            for table in (self._video_metadata.dataset, self._blobs.dataset):
                table.attrs["NROWS"] = np.int64(table.shape[0])
            provenance = self._file.create_dataset(
                f"provenance_tracking/{PROVENANCE_STEP}", data=np.bytes_(json.dumps(self._provenance).encode())
            )
            # As PyTables' create_array(obj=bytes) marks it, so that Tierpsy's node.read() gives bytes back.
            provenance.attrs.update(_pytables_attributes("ARRAY", FLAVOR="python", VERSION="2.4"))
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


def is_complete(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a finished wormclean output: it opens as HDF5, was made by wormclean, holds at least
    one frame (root attribute ``n_frames``, set when the file is closed) and the provenance node written last.

    Outputs only get their final name once closed (:func:`~wormclean.io.atomic.atomic_output`), so this mostly
    guards against files damaged or copied in by other means.
    """
    try:
        with h5py.File(path, "r") as file:
            return (
                "wormclean_version" in file.attrs
                and int(file.attrs.get("n_frames", 0)) > 0
                and f"provenance_tracking/{PROVENANCE_STEP}" in file
            )
    except (OSError, ValueError, KeyError, TypeError):
        return False


def timestamps_in_frames(pts: np.ndarray) -> np.ndarray:
    """Presentation timestamps in frames, as Tierpsy counts them: divided by the smallest step between frames.

    Tierpsy's ``extractMetaData._correct_timestamp``, rounded to whole frames. ``pts`` is ``(n,)`` int64.
    """
    steps = np.diff(pts)
    steps = steps[steps > 0]
    step = int(steps.min()) if len(steps) else 1
    return pts if step == 1 else np.rint(pts / step).astype(np.int64)


def _unit_attributes(fps: float | None, microns_per_pixel: float | None, is_light_background: bool) -> dict:
    """Tierpsy's unit attributes of an image dataset, with its "unknown" values (its ``set_unit_conversions``)."""
    units: dict = {"is_light_background": np.int32(bool(is_light_background))}
    if fps and fps > 0:
        units.update(expected_fps=float(fps), time_units="seconds")
    else:
        units.update(expected_fps=1.0, time_units="frames")
    if microns_per_pixel and microns_per_pixel > 0:
        units.update(microns_per_pixel=float(microns_per_pixel), xy_units="micrometers")
    else:
        units.update(microns_per_pixel=1.0, xy_units="pixels")
    return units


def _table_dataset(file: h5py.File, name: str, dtype: np.dtype, rows: int) -> h5py.Dataset:
    """A growable compound dataset with the attributes by which PyTables (and Tierpsy) read it as a table."""
    dataset = file.create_dataset(
        name, shape=(max(1, rows),), maxshape=(None,), dtype=dtype, chunks=(max(16, min(rows, 4096)),), **_COMPRESSION
    )
    fields = {f"FIELD_{position}_NAME": field for position, field in enumerate(dtype.names)}
    dataset.attrs.update(_pytables_attributes("TABLE", VERSION="2.7", **fields))
    return dataset


def _pytables_attributes(kind: str, **attributes: str) -> dict[str, np.bytes_]:
    """The attributes (fixed-length strings) by which PyTables recognises a node of class ``kind``."""
    return {key: np.bytes_(value) for key, value in {"CLASS": kind, "TITLE": "", **attributes}.items()}


class _Rows:
    """Rows appended to a growable dataset, written a block of ``block_rows`` at a time: h5py's overhead on a
    write of one frame's few bytes costs more than the data (a fifth of a millisecond each). Memory stays at one
    block; :meth:`flush` writes what is held."""

    def __init__(self, dataset: h5py.Dataset, block_rows: int = 1024):
        self.dataset = dataset
        self._block = np.zeros((block_rows, *dataset.shape[1:]), dtype=dataset.dtype)
        self._start = 0  # dataset row of the block's first row
        self._held = 0

    def append(self, rows) -> None:
        """Append one row (a value or a tuple of a compound row's fields), or an array of rows."""
        rows = np.asarray(rows, dtype=self.dataset.dtype).reshape(-1, *self.dataset.shape[1:])
        while len(rows):
            taken = rows[: len(self._block) - self._held]
            self._block[self._held : self._held + len(taken)] = taken
            self._held += len(taken)
            rows = rows[len(taken) :]
            if self._held == len(self._block):
                self.flush()

    def flush(self) -> None:
        """Write the rows held."""
        if self._held:
            _put(self.dataset, slice(self._start, self._start + self._held), self._block[: self._held])
            self._start += self._held
            self._held = 0


def _stored(image: np.ndarray) -> np.ndarray:
    """An 8-bit image as stored: Tierpsy reserves 0 for "no data", so every stored pixel is at least 1."""
    return np.maximum(image, 1)  # not cv2.max, which takes a 1x1 image for a scalar


def _stored_mean(image: np.ndarray) -> float:
    """The mean of ``_stored(image)``, from the image's sum and its count of zeros (each stored as 1) without
    making the stored image: the same value as ``cv2.mean`` of it."""
    return (cv2.sumElems(image)[0] + image.size - cv2.countNonZero(image)) * (1.0 / image.size)


def _masked(image: np.ndarray, keep: np.ndarray, boxes: list[tuple[slice, slice]] | None) -> np.ndarray:
    """``_stored(image)`` where ``keep`` is set, 0 elsewhere; only the ``boxes`` (rows, columns) are looked at
    when given (they hold every pixel of ``keep``), else the whole image."""
    masked = np.zeros_like(image)
    for box in [(slice(None), slice(None))] if boxes is None else boxes:
        stored = _stored(image[box])
        cv2.bitwise_and(stored, stored, mask=mask_pixels(keep[box]), dst=masked[box])
    return masked


def _masked_grown(image: np.ndarray, worms: np.ndarray, radius: int, boxes: list[tuple[slice, slice]]) -> np.ndarray:
    """``_stored(image)`` where the uint8 mask ``worms`` grown by ``radius`` pixels (a disc) is set, 0 elsewhere.

    Each box (a blob's bounding box grown by ``radius``) is grown and masked on its own, and the boxes are
    combined, which equals masking by the whole frame's dilation (see
    :func:`~wormclean.segment.threshold.dilate`) without making it.
    """
    masked = np.zeros_like(image)
    disc = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))
    for box in boxes:
        grown = cv2.dilate(worms[box], disc) if radius > 0 else worms[box]
        stored = _stored(image[box])
        part = masked[box]
        cv2.bitwise_or(part, cv2.bitwise_and(stored, stored, mask=grown), dst=part)  # boxes may overlap
    return masked


def _put(dataset: h5py.Dataset, row: int | slice, value) -> None:
    """Write ``dataset[row]`` (one row or a slice of rows), growing the dataset by half its size (at least 16
    rows) when full."""
    end = row.stop if isinstance(row, slice) else row + 1
    if end > dataset.shape[0]:
        dataset.resize(max(end, dataset.shape[0] + max(16, dataset.shape[0] // 2)), axis=0)
    dataset[row] = value


def _put_image(dataset: h5py.Dataset, row: int, image: np.ndarray) -> None:
    """Write one frame-sized chunk, compressed here rather than inside HDF5.

    Compressed with ISA-L's deflate (``isal_zlib``), which writes the zlib stream HDF5's gzip filter reads, at
    a tenth of zlib's time and smaller on masked frames (0.4 ms against 5.6 ms for a 2048x2048 mask, 8 kB
    against 21 kB); like ``zlib.compress`` it lets other threads run, where h5py's own gzip filter holds the GIL
    and stalls decoding and segmentation.
    """
    if row >= dataset.shape[0]:
        dataset.resize(max(row + 1, dataset.shape[0] + max(16, dataset.shape[0] // 2)), axis=0)
    data = np.ascontiguousarray(image, dtype=dataset.dtype)
    dataset.id.write_direct_chunk((row, 0, 0), isal_zlib.compress(data, _GZIP_LEVEL))
