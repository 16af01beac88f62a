"""Encode grey uint8 frames to a video file with PyAV.

Pixel formats and colour range
------------------------------
Grey frames are stored **full range** (0-255), flagged as such in the stream, so a decoder that honours the
flag (PyAV's ``to_ndarray(format="gray")``, OpenCV, FFmpeg) gets the grey levels back and even reading the
luma plane raw gives the right values. Left unflagged, H.264 marks them limited range and readers are off by up
to 20 grey levels.

The pixel format, unless given, is picked per codec:

* ``libx264`` / ``libx265``: ``yuv420p`` when width and height are even (plays everywhere, hardware decoders
  included), else ``gray`` (4:0:0, allowed at odd sizes; FFmpeg-based readers decode it, some players do not).
  Frames are never padded, so the decoded size is always the written size.
* ``mjpeg``: ``yuvj420p`` (JPEG allows odd sizes).
* lossless codecs that take grey (``ffv1``, ``ffvhuff``, ``png``, ``utvideo``...): ``gray``.
* anything else: ``yuv420p``, which needs even sizes.
"""

from __future__ import annotations

import functools
import logging
import os
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from types import TracebackType

import av
import numpy as np
from av.video.reformatter import ColorRange

from wormclean.errors import OutputError, SettingsError

log = logging.getLogger(__name__)

X264_PRESETS = (
    "ultrafast",
    "superfast",
    "veryfast",
    "faster",
    "fast",
    "medium",
    "slow",
    "slower",
    "veryslow",
    "placebo",
)
CRF_CODECS = ("libx264", "libx265")


@dataclass(frozen=True)
class EncoderSettings:
    """How frames are compressed.

    Parameters
    ----------
    codec
        FFmpeg encoder name: ``libx264`` (default), ``libx265``, ``mjpeg``, ``ffv1``, ...
    crf
        Constant rate factor of ``libx264``/``libx265``: 0 is lossless, 18 visually lossless, 51 worst.
    preset
        x264/x265 speed preset; faster presets make bigger files for the same quality.
    gop
        Keyframe interval in frames. Short intervals make seeking cheap (a seek decodes from the previous
        keyframe) at some cost in file size.
    qscale
        ``mjpeg`` quantiser, 1 (best) to 31 (worst).
    pixel_format
        Stored pixel format; ``None`` picks one per codec (see the module docstring).
    threads
        Encoder threads; 0 lets the encoder choose.
    """

    codec: str = "libx264"
    crf: float = 18.0
    preset: str = "veryfast"
    gop: int = 25
    qscale: int = 2
    pixel_format: str | None = None
    threads: int = 0

    def __post_init__(self):
        try:
            codec = av.codec.Codec(self.codec, "w")
        except Exception:
            raise SettingsError(f"unknown video encoder {self.codec!r}") from None
        if codec.type != "video":
            raise SettingsError(f"{self.codec!r} is not a video encoder")
        if not 0 <= self.crf <= 51:
            raise SettingsError(f"crf must be between 0 and 51, got {self.crf}")
        if self.preset not in X264_PRESETS:
            raise SettingsError(f"preset must be one of {', '.join(X264_PRESETS)}; got {self.preset!r}")
        if not (isinstance(self.gop, int) and self.gop >= 1):
            raise SettingsError(f"gop must be a whole number of frames >= 1, got {self.gop}")
        if not 1 <= self.qscale <= 31:
            raise SettingsError(f"qscale must be between 1 and 31, got {self.qscale}")
        if self.threads < 0:
            raise SettingsError(f"threads must be >= 0, got {self.threads}")
        if self.pixel_format is not None:
            supported = [fmt.name for fmt in codec.video_formats or ()]
            if supported and self.pixel_format not in supported:
                raise SettingsError(
                    f"{self.codec} does not take pixel format {self.pixel_format!r}; it takes {', '.join(supported)}"
                )

    def pixel_format_for(self, height: int, width: int) -> str:
        """The pixel format used for frames of ``height`` x ``width`` pixels.

        Raises :class:`~wormclean.errors.SettingsError` if the format needs even sizes and the size is odd.
        """
        odd = height % 2 == 1 or width % 2 == 1
        if self.pixel_format is not None:
            name = self.pixel_format
        elif self.codec in CRF_CODECS:
            name = "gray" if odd else "yuv420p"
        elif self.codec == "mjpeg":
            name = "yuvj420p"
        elif "gray" in [fmt.name for fmt in av.codec.Codec(self.codec, "w").video_formats or ()]:
            name = "gray"
        else:
            name = "yuv420p"
        if odd and self.codec != "mjpeg" and _subsamples(name):
            raise SettingsError(
                f"{self.codec} with pixel format {name} needs an even width and height, got {width}x{height}"
            )
        return name

    def codec_options(self) -> dict[str, str]:
        """Encoder options (FFmpeg AVOptions) for these settings."""
        options = {"g": str(self.gop)}
        if self.codec in CRF_CODECS:
            options.update(crf=f"{self.crf:g}", preset=self.preset)
        if self.codec == "libx265":
            options["x265-params"] = "log-level=error"
        if self.codec == "mjpeg":
            options.update(qmin=str(self.qscale), qmax=str(self.qscale))
        return options


def _subsamples(pixel_format: str) -> bool:
    """True if the format stores chroma at a lower resolution, which libx264 and others need even sizes for."""
    probe = av.VideoFormat(pixel_format, 8, 8)
    return any(component.width < 8 or component.height < 8 for component in probe.components)


@functools.cache
def _writable_suffixes() -> frozenset[str]:
    """The file extensions FFmpeg names a container it can write by, lower case with the dot (``.mp4``)."""
    suffixes = set()
    for name in av.formats_available:
        try:
            container = av.ContainerFormat(name)
        except ValueError:
            continue
        if container.is_output:
            suffixes |= {f".{extension.strip().lower()}" for extension in container.extensions}
    return frozenset(suffixes)


def check_video_path(path: str | os.PathLike) -> Path:
    """Check, before any work, that ``path``'s extension names a container FFmpeg writes; raise
    :class:`~wormclean.errors.OutputError` naming ``path`` if not."""
    path = Path(path)
    if not path.suffix:
        raise OutputError(f"{path} has no extension; name the video e.g. {path.name}.mp4")
    if path.suffix.lower() not in _writable_suffixes():
        raise OutputError(f"{path}: no video container is written as {path.suffix}; use e.g. .mp4, .mkv or .avi")
    return path


class VideoWriter:
    """Write grey ``(height, width) uint8`` frames to a video file.

    The container comes from the file extension (``.mp4``, ``.mkv``, ``.avi``, ``.mov``...). The frame size
    is fixed by the first frame. Use as a context manager, or call :meth:`close`.

    This class writes to ``path`` directly; callers that need an atomic output wrap it in
    :func:`wormclean.io.atomic.atomic_output`.

    Parameters
    ----------
    path
        Output file.
    fps
        Frame rate in frames per second.
    settings
        Codec and quality; default: H.264, CRF 18, preset veryfast, a keyframe every 25 frames.
    """

    def __init__(self, path: str | os.PathLike, fps: float = 25.0, settings: EncoderSettings | None = None):
        if not fps > 0:
            raise SettingsError(f"fps must be positive, got {fps}")
        self.path = Path(path)
        self.fps = fps
        self.settings = settings or EncoderSettings()
        self.frames_written = 0
        self._stream = None
        self._shape: tuple[int, int] | None = None
        if not self.path.parent.is_dir():
            raise OutputError(f"output folder {self.path.parent} does not exist")
        try:
            self._container = av.open(str(self.path), "w")
        except (av.FFmpegError, ValueError) as error:
            raise OutputError(f"cannot write video {self.path}: {error}") from None

    def write(self, frame: np.ndarray) -> None:
        """Encode one frame, ``(height, width) uint8``."""
        frame = np.asarray(frame)
        if frame.dtype != np.uint8 or frame.ndim != 2:
            raise ValueError(f"expected a (height, width) uint8 frame, got {frame.shape} {frame.dtype}")
        if self._stream is None:
            self._open_stream(*frame.shape)
        elif frame.shape != self._shape:
            raise ValueError(f"frame size {frame.shape} differs from the first frame's {self._shape}")
        video_frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="gray")
        video_frame.color_range = ColorRange.JPEG
        video_frame.pts = self.frames_written
        self._mux(self._stream.encode(video_frame))
        self.frames_written += 1

    def close(self) -> None:
        """Flush the encoder and close the file."""
        if self._container is None:
            return
        try:
            if self._stream is not None:
                self._mux(self._stream.encode())
        finally:
            self._container.close()
            self._container = None
        log.debug("wrote %d frames to %s", self.frames_written, self.path)

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def _open_stream(self, height: int, width: int) -> None:
        pixel_format = self.settings.pixel_format_for(height, width)
        rate = Fraction(self.fps).limit_denominator(1001)
        try:
            stream = self._container.add_stream(self.settings.codec, rate=rate)
        except (av.FFmpegError, ValueError) as error:
            raise OutputError(f"cannot write {self.settings.codec} into {self.path.name}: {error}") from None
        stream.width, stream.height = width, height
        stream.pix_fmt = pixel_format
        stream.codec_context.time_base = 1 / rate
        stream.codec_context.color_range = ColorRange.JPEG
        stream.codec_context.thread_count = self.settings.threads
        stream.options = self.settings.codec_options()
        self._stream = stream
        self._shape = (height, width)
        log.debug("encoding %dx%d %s with %s", width, height, pixel_format, self.settings)

    def _mux(self, packets) -> None:
        try:
            self._container.mux(packets)
        except av.FFmpegError as error:
            if isinstance(error, OSError):
                raise  # a failed system call (a full disk): the caller names its output and the cause
            raise OutputError(f"cannot write video {self.path}: {error}") from None
