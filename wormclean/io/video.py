"""Reading videos: the interface every source shares (:class:`VideoReader`), and video files through PyAV.

Every reader gives grey frames, ``(height, width)`` C-contiguous arrays, ``uint8`` for 8-bit sources and
``uint16`` for deeper ones. Frames are numbered from 0 in presentation order.
"""

from __future__ import annotations

import abc
import bisect
import logging
import operator
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from functools import cache
from pathlib import Path

import av
import numpy as np
from av.video.reformatter import ColorRange

from wormclean.errors import VideoError
from wormclean.threads import run_ahead

log = logging.getLogger(__name__)

_BREAKS_SAID: set[tuple[str, int]] = set()  # (video, frame) of the breaks this process has warned about

DEFAULT_FPS = 25.0
"""Frame rate of sources that carry none: image sequences, TIFF stacks, HDF5 without ``expected_fps``."""

CONTAINER_SUFFIXES = frozenset(
    {".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi", ".mpg", ".mpeg", ".mjpg", ".mjpeg", ".wmv"}
)
"""Suffixes of video files read through PyAV (FFmpeg also probes the content, whatever the suffix)."""


@dataclass(frozen=True)
class VideoInfo:
    """What a video is, as known when it is opened.

    Attributes
    ----------
    path : the file or folder
    n_frames : number of frames in the source (frames from ``broken_at`` on, if any, cannot be decoded)
    fps : frames per second
    height, width : frame size in pixels
    bit_depth : 8 (frames are ``uint8``) or 16 (``uint16``; any source deeper than 8 bits)
    codec : e.g. ``"h264"``, ``"mjpeg"``, ``"png-sequence"``, ``"tiff-stack"``, ``"tierpsy-hdf5"``
    """

    path: Path
    n_frames: int
    fps: float
    height: int
    width: int
    bit_depth: int
    codec: str

    @property
    def duration(self) -> float:
        """Length in seconds."""
        return self.n_frames / self.fps


@dataclass(frozen=True)
class FrameTimes:
    """When each frame of a video is presented.

    Attributes
    ----------
    pts : ``(n_frames,)`` int64, presentation timestamps in units of ``time_base``
    seconds : ``(n_frames,)`` float64, the same times in seconds
    time_base : seconds per ``pts`` unit; ``None`` when the frame rate is unknown
    source : ``"container"`` (the decoder's timestamps, variable frame rates included) or ``"frame_number"``
        (the source carries no times: ``pts`` is the frame index and ``seconds`` is index / fps)
    """

    pts: np.ndarray
    seconds: np.ndarray
    time_base: Fraction | None
    source: str

    @classmethod
    def from_frame_numbers(cls, n_frames: int, fps: float | None) -> FrameTimes:
        """Times of a source without timestamps: frame index / ``fps`` (NaN when ``fps`` is not positive)."""
        index = np.arange(n_frames, dtype=np.int64)
        if not (fps and fps > 0):
            return cls(index, np.full(n_frames, np.nan), None, "frame_number")
        return cls(index, index / float(fps), Fraction(1 / fps).limit_denominator(1_000_000), "frame_number")


class VideoReader(abc.ABC):
    """Grey frames of one video, sequentially (:meth:`frames`) or by index (:meth:`read`, ``reader[i]``).

    One subclass per kind of source. A reader is not meant to be shared between threads; :meth:`frames` and
    :meth:`read` each work on their own handle, so several of them may run side by side.

    Attributes
    ----------
    info : :class:`VideoInfo`
    broken_at : index of the first frame that could not be decoded when the source breaks part-way, else
        ``None``. It is found while reading: iteration stops there, with a warning, and everything before it
        is good.
    """

    def __init__(self, info: VideoInfo) -> None:
        self.info = info
        self.broken_at: int | None = None

    path = property(lambda self: self.info.path, doc="The file or folder.")
    n_frames = property(lambda self: self.info.n_frames, doc="Number of frames.")
    fps = property(lambda self: self.info.fps, doc="Frames per second.")
    height = property(lambda self: self.info.height, doc="Frame height in pixels.")
    width = property(lambda self: self.info.width, doc="Frame width in pixels.")
    bit_depth = property(lambda self: self.info.bit_depth, doc="8 or 16.")

    @property
    def dtype(self) -> type[np.unsignedinteger]:
        """``np.uint8`` for 8-bit sources, ``np.uint16`` for 16-bit ones."""
        return np.uint16 if self.bit_depth > 8 else np.uint8

    @property
    def keyframes(self) -> list[int] | None:
        """Indices of the frames that decode on their own (cheap to reach by seeking), or ``None`` when every
        frame is (image folders, stacks, HDF5)."""
        return None

    def frames(self, start: int = 0, stop: int | None = None, prefetch: int = 8) -> Iterator[tuple[int, np.ndarray]]:
        """Frames ``start`` to ``stop - 1`` in order, as ``(index, frame)`` pairs.

        Decoding runs ahead in a background thread, at most ``prefetch`` frames ahead. Iteration stops early,
        with a warning, where the source breaks (see ``broken_at``).
        """
        if not 0 <= start <= self.n_frames:
            raise IndexError(f"start {start} outside 0..{self.n_frames} for {self.path}")
        stop = self.n_frames if stop is None else min(stop, self.n_frames)
        if self.broken_at is not None:
            stop = min(stop, self.broken_at)
        if prefetch < 1:
            raise ValueError(f"prefetch must be at least 1, got {prefetch}")
        return run_ahead(self._read_sorted(range(start, max(start, stop))), prefetch, f"decode {self.path.name}")

    def read(self, indices: Iterable[int]) -> Iterator[tuple[int, np.ndarray]]:
        """The frames at ``indices`` (any order, repeats allowed), as ``(index, frame)`` pairs in sorted order.

        One forward pass: the decoder seeks (to the keyframe before a wanted frame) only when that frame lies
        beyond the next keyframe, and otherwise decodes forward. Negative indices count from the end. The pass
        stops early, with a warning, where the source breaks.
        """
        wanted = sorted({self._check_index(index) for index in indices})
        if self.broken_at is not None:
            wanted = [index for index in wanted if index < self.broken_at]
        return self._read_sorted(wanted)

    def __getitem__(self, index: int) -> np.ndarray:
        """One frame, ``(height, width)``; raises :class:`VideoError` if it cannot be decoded."""
        index = self._check_index(index)
        frame = self._read_one(index) if self.broken_at is None or index < self.broken_at else None
        if frame is None:
            raise VideoError(f"{self.path}: frame {index} cannot be decoded (the video breaks at {self.broken_at})")
        return frame

    def frame_times(self) -> FrameTimes:
        """Presentation time of every frame; sources without timestamps give frame index / fps."""
        return FrameTimes.from_frame_numbers(self.n_frames, self.fps)

    def __len__(self) -> int:
        return self.n_frames

    def __iter__(self) -> Iterator[np.ndarray]:
        return (frame for _, frame in self.frames())

    @abc.abstractmethod
    def close(self) -> None:
        """Release open files. Iterators already handed out keep their own handles until they finish."""

    def __enter__(self) -> VideoReader:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def __repr__(self) -> str:
        info = self.info
        return f"<{type(self).__name__} {info.path} {info.n_frames} frames {info.width}x{info.height} {info.codec}>"

    @abc.abstractmethod
    def _read_sorted(self, indices: Iterable[int]) -> Iterator[tuple[int, np.ndarray]]:
        """Yield ``(index, frame)`` for sorted, unique, valid ``indices``; stop at a break (see `_mark_broken`)."""

    def _read_one(self, index: int) -> np.ndarray | None:
        """The frame at a valid ``index``, or ``None`` if it cannot be decoded."""
        return next((frame for _, frame in self._read_sorted([index])), None)

    def _check_index(self, index: int) -> int:
        index = operator.index(index)
        if index < 0:
            index += self.n_frames
        if not 0 <= index < self.n_frames:
            raise IndexError(f"frame {index} outside 0..{self.n_frames - 1} for {self.path}")
        return index

    def _frame_is_valid(self, index: int, frame: np.ndarray) -> bool:
        """Whether ``frame`` has the video's size and type; if not, the video breaks at ``index``."""
        if frame.shape == (self.height, self.width) and frame.dtype == self.dtype:
            return True
        height, width = frame.shape[:2]
        self._mark_broken(
            index, f"it is {width}x{height} {frame.dtype}, not {self.width}x{self.height} {np.dtype(self.dtype)}"
        )
        return False

    def _mark_broken(self, index: int, reason: str) -> None:
        """Record that frame ``index`` cannot be decoded; reading never goes past it again."""
        if self.broken_at is None or index < self.broken_at:
            self.broken_at = index
            # A job opens a video more than once (frames, backgrounds, samples): the user hears it once.
            said = (str(self.path), index) in _BREAKS_SAID
            _BREAKS_SAID.add((str(self.path), index))
            log.log(logging.DEBUG if said else logging.WARNING, "%s: frame %d cannot be decoded (%s); reading "
                    "stops there", self.path, index, reason)


class IndexedReader(VideoReader):
    """Base for sources whose frames are stored one by one (images, TIFF pages, HDF5 slices): no decoding
    state, so any frame is read directly."""

    @abc.abstractmethod
    def _load(self, index: int) -> np.ndarray:
        """Frame ``index`` as grey ``(height, width)``; raises :class:`VideoError` if it cannot be read."""

    def _read_sorted(self, indices: Iterable[int]) -> Iterator[tuple[int, np.ndarray]]:
        for index in indices:
            try:
                frame = self._load(index)
            except VideoError as error:
                self._mark_broken(index, str(error))
                return
            if not self._frame_is_valid(index, frame):
                return
            yield index, np.ascontiguousarray(frame)


# ---------------------------------------------------------------------------------------------------------
# Video files through PyAV


class PyAVReader(VideoReader):
    """A video file that FFmpeg decodes (mp4, mkv, avi, mov, raw MJPEG, ...; h264, hevc, mjpeg, mpeg-1/2/4,
    ffv1, ...).

    Opening demuxes the whole file once, decoding only its first frame, to list every packet's timestamp and
    keyframe flag. That gives the exact frame count (header counts are missing in mkv and raw streams and
    wrong in truncated files, so they are never trusted) and the keyframes that seeking needs. Demuxing only
    copies compressed bytes: it costs reading the file once, far less than decoding it.

    Frames are matched to indices by presentation timestamp. If the packets lack unique timestamps, frames are
    numbered in the order the decoder gives them, and :meth:`read` decodes forward from the start, never
    seeking. Frames before the first decodable one (a stream cut before its first keyframe) are not counted.
    """

    def __init__(self, path: str | Path) -> None:
        path = Path(path)
        container = _open_container(path)
        try:
            stream = container.streams.video[0]
            table = _scan(container, stream, path)
            fps = float(stream.average_rate or stream.guessed_rate or DEFAULT_FPS)
            codec = stream.codec_context.name
            time_base = stream.time_base
        finally:
            container.close()
        self._table = table
        self._time_base = time_base
        self._frame_format = "gray16le" if table.bit_depth == 16 else "gray"
        self._cursor: _Cursor | None = None
        super().__init__(
            VideoInfo(
                path=path,
                n_frames=table.listed if table.gap is not None else table.n_frames,
                fps=fps,
                height=table.height,
                width=table.width,
                bit_depth=table.bit_depth,
                codec=codec,
            )
        )
        if table.gap is not None:
            self._mark_broken(
                table.gap,
                f"the container's index lists {table.listed} frames; from frame {table.gap} on, the packets "
                "read do not match it (frames missing or damaged)",
            )

    @property
    def keyframes(self) -> list[int]:
        """Indices of the keyframes, where decoding can start."""
        return list(self._table.keyframes)

    def close(self) -> None:
        if self._cursor is not None:
            self._cursor.close()
            self._cursor = None

    def frame_times(self) -> FrameTimes:
        """The packets' presentation timestamps; frame index / fps when they are missing or repeat."""
        if self._table.timestamps is None or not self._time_base:
            return super().frame_times()
        pts = np.asarray(self._table.timestamps, dtype=np.int64)
        seconds = pts * (self._time_base.numerator / self._time_base.denominator)
        return FrameTimes(pts, seconds, Fraction(self._time_base), "container")

    def _read_sorted(self, indices: Iterable[int]) -> Iterator[tuple[int, np.ndarray]]:
        cursor = _Cursor(self)
        try:
            yield from cursor.read(indices)
        finally:
            cursor.close()

    def _read_one(self, index: int) -> np.ndarray | None:
        # A cursor kept between calls, so that reader[i], reader[i + 1], ... decode forward, not from a keyframe.
        if self._cursor is None:
            self._cursor = _Cursor(self)
        return next((frame for _, frame in self._cursor.read([index])), None)

    def _to_array(self, frame: av.VideoFrame) -> np.ndarray:
        """Grey ``(height, width)`` array, full range (limited-range sources are expanded)."""
        # to_ndarray converts YUV and RGB to grey by the frame's colour range, but returns grey frames as
        # they are: limited-range grey (e.g. from x265) is expanded here.
        array = frame.to_ndarray(format=self._frame_format)
        if frame.format.name == self._frame_format and frame.color_range == ColorRange.MPEG:
            array = _limited_to_full(array.dtype.itemsize * 8)[array]
        return np.ascontiguousarray(array)


@dataclass
class _FrameTable:
    """What demuxing a video stream found.

    Attributes
    ----------
    n_frames : number of frames
    timestamps : presentation timestamp of each frame, or ``None`` when the packets lack unique timestamps
    index_of : frame index by timestamp (negative for frames before the first decodable one)
    keyframe_packets : decode-order packet number of each frame where decoding may start, by frame index;
        frame 0 (the start of the file, packet 0) is always one
    seekable : whether the container has an index that makes seeking by timestamp exact
    height, width : size of the first decoded frame
    bit_depth : 8, or 16 when that frame has more than 8 bits per component
    listed : frames the container's index lists when it lists more than could be demuxed, else None
    gap : the first of those frames the demuxer did not deliver (the table ends before it), else None
    """

    n_frames: int
    timestamps: list[int] | None
    index_of: dict[int, int]
    keyframe_packets: dict[int, int]
    seekable: bool
    height: int
    width: int
    bit_depth: int
    listed: int | None = None
    gap: int | None = None

    def __post_init__(self) -> None:
        self.keyframes = sorted(self.keyframe_packets)

    def keyframe_before(self, index: int) -> int:
        """The last keyframe at or before frame ``index``."""
        return self.keyframes[bisect.bisect_right(self.keyframes, index) - 1]

    def frame_index(self, frame: av.VideoFrame, previous: int) -> int | None:
        """Index of a decoded frame by its timestamp; without timestamps, the one after ``previous``."""
        if self.timestamps is None:
            return previous + 1
        return self.index_of.get(frame.pts)


# Containers with an index of their packets, in which FFmpeg's seeking by timestamp lands on the keyframe
# asked for. MPEG program/transport streams and raw streams seek by guessing byte positions, and their
# timestamps after a seek can differ from those of a pass from the start: there, keyframes ahead are reached
# by demuxing forward without decoding.
_INDEXED_FORMATS = frozenset({"mov", "mp4", "matroska", "avi"})


def _open_container(path: Path) -> av.container.InputContainer:
    """Open ``path`` with FFmpeg, check it has a video stream and ask for threaded decoding."""
    try:
        container = av.open(str(path), metadata_errors="ignore")
    except av.FFmpegError as error:
        raise VideoError(f"{path} cannot be opened as a video ({_reason(error)})") from None
    except OSError as error:
        raise VideoError(f"{path} cannot be read ({error.strerror or error})") from None
    if not container.streams.video:
        container.close()
        raise VideoError(f"{path} has no video stream")
    container.streams.video[0].thread_type = "AUTO"
    return container


def _scan(container: av.container.InputContainer, stream: av.VideoStream, path: Path) -> _FrameTable:
    """Demux every packet of ``stream``, decoding only until the first frame comes out."""
    stamps: list[int | None] = []
    positions: list[int] = []  # byte offset of each packet, to match them with the container's index
    keyframes: list[tuple[int | None, int]] = []  # (timestamp, packet number)
    first: av.VideoFrame | None = None
    decode_error = "its video stream is empty"
    try:
        for packet in container.demux(stream):
            if first is None:
                try:
                    first = next(iter(stream.decode(packet)), None)
                except av.FFmpegError as error:
                    decode_error = _reason(error)
            if packet.size == 0:  # the end-of-stream flush, or AVI's empty "dropped frame" chunks: no picture
                continue
            if packet.is_keyframe:
                keyframes.append((packet.pts, len(stamps)))
            stamps.append(packet.pts)
            positions.append(packet.pos)
    except av.FFmpegError as error:
        # Frames after the damage cannot be reached; those before are counted and readable.
        log.warning("%s: demuxing stops after %d packets (%s)", path, len(stamps), _reason(error))
    if first is None:
        raise VideoError(f"{path} has no decodable frame ({decode_error})")
    listed, gap = _index_gap(stream, positions)
    if gap is not None:
        # The demuxer skipped damaged packets and numbered the next ones as if they followed on: every later
        # frame would take an earlier one's place and time. Only the frames before the gap are kept.
        del stamps[gap:]
        keyframes = [(ts, number) for ts, number in keyframes if number < gap]
    if None in stamps or len(set(stamps)) < len(stamps):
        log.debug("%s: packets lack unique timestamps; frames are numbered as decoded, without seeking", path)
        return _FrameTable(len(stamps), None, {}, {0: 0}, False, *_frame_layout(first), listed, gap)
    ordered = sorted(stamps)
    skipped = ordered.index(first.pts) if first.pts in stamps else 0
    if skipped:
        log.info("%s: the first %d frames cannot be decoded and are not counted", path, skipped)
    index_of = {ts: position - skipped for position, ts in enumerate(ordered)}
    keyframe_packets = {index_of[ts]: number for ts, number in keyframes if index_of[ts] > 0} | {0: 0}
    seekable = not _INDEXED_FORMATS.isdisjoint(container.format.name.split(","))
    return _FrameTable(
        len(ordered) - skipped,
        ordered[skipped:],
        index_of,
        keyframe_packets,
        seekable,
        *_frame_layout(first),
        listed - skipped if gap is not None else None,
        gap - skipped if gap is not None else None,
    )


# How far a packet's data may lie past the offset the index gives for it (AVI's index points at the chunk
# header, 8 bytes before the data).
_INDEX_SLACK = 16


def _index_gap(stream: av.VideoStream, positions: list[int]) -> tuple[int, int | None]:
    """Frames the container's index lists, and the first frame the demuxer did not deliver, if any.

    Only when the index lists more (non-empty) packets than were demuxed is there a gap: the first packet
    whose position does not match its index entry, or the end of those demuxed.
    """
    entries = [entry for entry in getattr(stream, "index_entries", None) or () if entry.size > 0]
    if len(entries) <= len(positions):
        return len(entries), None
    for number, (entry, position) in enumerate(zip(entries, positions)):
        if not entry.pos <= position <= entry.pos + _INDEX_SLACK:
            return len(entries), number
    return len(entries), len(positions)


def _frame_layout(frame: av.VideoFrame) -> tuple[int, int, int]:
    """Height, width and bit depth (8, or 16 for anything deeper) of a decoded frame."""
    bits = max(component.bits for component in frame.format.components)
    return frame.height, frame.width, 16 if bits > 8 else 8


class _Cursor:
    """An open container and its decoder, positioned after the last frame it gave out.

    It reaches each wanted frame by decoding forward, or, when a keyframe lies between the current position
    and that frame, by starting afresh at the keyframe before the frame: seeking there in indexed containers,
    demuxing forward to it without decoding in others.
    """

    def __init__(self, reader: PyAVReader) -> None:
        self._reader = reader
        self._table = reader._table
        self._container: av.container.InputContainer | None = None
        self._decoded: Iterator[av.VideoFrame] | None = None
        self._position = -1  # index of the last frame given out, or of the keyframe to start from minus 1
        self._fresh = True  # nothing given out since the last (re)start
        self._seeked = False  # the container was seeked: packet numbers are unknown, and a seek may land late
        self._next_packet = 0  # decode-order number of the next packet demuxed (when not seeked)
        self._skip_to = 0  # packets before this number are demuxed but not decoded
        self.n_decoded = 0
        self.n_seeks = 0

    def close(self) -> None:
        if self._container is not None:
            self._container.close()
        self._container = None
        self._decoded = None

    def read(self, indices: Iterable[int]) -> Iterator[tuple[int, np.ndarray]]:
        """Yield ``(index, frame)`` for sorted, unique ``indices``; stop where the video breaks."""
        n_read = 0
        for index in indices:
            frame = self._decode_to(index)
            if frame is None:
                break
            n_read += 1
            yield index, frame
        log.debug("%s: %d frames read, %d decoded, %d seeks", self._reader.path, n_read, self.n_decoded, self.n_seeks)
        self.n_decoded = self.n_seeks = 0

    def _decode_to(self, target: int) -> np.ndarray | None:
        """Frame ``target`` as an array, or ``None`` (the reader marked broken) if it cannot be decoded."""
        keyframe = self._table.keyframe_before(target)
        if self._decoded is None or target <= self._position or keyframe > self._position + 1:
            self._restart(keyframe)
        while True:
            try:
                frame = next(self._decoded)
            except StopIteration:
                return self._broken("the stream ends early")
            except av.FFmpegError as error:
                return self._broken(_reason(error))
            self.n_decoded += 1
            index = self._table.frame_index(frame, self._position)
            if self._fresh and self._seeked and (index is None or index > self._position + 1):
                # The seek did not land on the keyframe asked for: never trust seeking in this file again.
                log.debug("%s: seek to frame %d failed; demuxing forward instead", self._reader.path, keyframe)
                self._table.seekable = False
                self._restart(keyframe)
                continue
            if index is None:
                index = self._position + 1
            if index <= self._position:
                continue  # before the keyframe decoding started from (leading B-frames), or repeated
            if index > self._position + 1:
                return self._broken(f"frames {self._position + 1}..{index - 1} are missing")
            if index == target and frame.is_corrupt:
                return self._broken("the decoder marks it corrupt")
            self._position = index
            self._fresh = False
            if index == target:
                array = self._reader._to_array(frame)
                return array if self._reader._frame_is_valid(index, array) else None

    def _restart(self, keyframe: int) -> None:
        """Start decoding afresh at ``keyframe``."""
        if self._container is None:
            self._open()
        if self._table.seekable and keyframe > 0:
            stream = self._container.streams.video[0]
            self._container.seek(self._table.timestamps[keyframe], stream=stream, backward=True, any_frame=False)
            self._seeked = True
            self._skip_to = 0
            self.n_seeks += 1
        else:
            packet = self._table.keyframe_packets[keyframe]
            if self._seeked or packet < self._next_packet:
                self._open()
            else:
                self._container.streams.video[0].codec_context.flush_buffers()
            self._skip_to = packet
        self._decoded = self._decode()
        self._position = keyframe - 1
        self._fresh = True

    def _open(self) -> None:
        self.close()
        self._container = _open_container(self._reader.path)
        self._seeked = False
        self._next_packet = 0

    def _decode(self) -> Iterator[av.VideoFrame]:
        """Decoded frames from the container's current position, skipping packets before ``_skip_to``."""
        stream = self._container.streams.video[0]
        for packet in self._container.demux(stream):
            if packet.size:
                number = self._next_packet
                self._next_packet += 1
                if number < self._skip_to:
                    continue
            yield from stream.decode(packet)

    def _broken(self, reason: str) -> None:
        self._reader._mark_broken(self._position + 1, reason)
        self.close()
        return None


@cache
def _limited_to_full(bits: int) -> np.ndarray:
    """Look-up table from limited ("TV", 16-235 scaled to ``bits``) to full-range grey levels."""
    scale = 2 ** (bits - 8)
    levels = np.arange(2**bits, dtype=np.float64)
    full = (levels - 16 * scale) * (2**bits - 1) / (219 * scale)
    return np.clip(np.round(full), 0, 2**bits - 1).astype(np.uint16 if bits > 8 else np.uint8)


def _reason(error: av.FFmpegError) -> str:
    """FFmpeg's message without the errno and file name PyAV adds."""
    return getattr(error, "strerror", None) or str(error)
