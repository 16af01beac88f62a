"""The mask job: videos in, Tierpsy-style masked HDF5 files out (``wormclean mask``).

Three stages overlap: the reader decodes ahead in its own thread, the net computes backgrounds in another
(:meth:`~wormclean.predict.cleaner.Cleaner.iter_masks`), and a writer thread dilates, compresses and stores
each frame while the next one is segmented. Queues between the stages are short, so memory does not grow
with video length. Each output is written under a temporary name and renamed when complete.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from wormclean._version import __version__
from wormclean.errors import OutputError, SettingsError
from wormclean.io import open_video
from wormclean.io.atomic import FailSafeFile, atomic_output, check_output_path
from wormclean.io.images import check_image_name, encode_image
from wormclean.io.masked_video import MaskedVideoWriter
from wormclean.model.registry import file_sha256
from wormclean.predict.cleaner import Cleaner
from wormclean.segment.threshold import brightness_gain, grown_boxes
from wormclean.settings import MaskSettings
from wormclean.threads import Consumer

log = logging.getLogger(__name__)

OUTPUT_SUFFIXES = (".hdf5", ".h5")
_WRITER_QUEUE = 8


@dataclass(frozen=True)
class MaskResult:
    """What happened to one video: ``output`` written with ``n_frames`` frames, or ``error`` (a message).

    In a batch (:mod:`wormclean.predict.batch`) also its ``status`` (``"done"``, ``"skipped"``: a complete
    output was already there, or ``"failed"``), the ``seconds`` its last attempt took and how many
    ``attempts`` were made.
    """

    video: Path
    output: Path
    n_frames: int = 0
    broken_at: int | None = None
    error: str | None = None
    seconds: float = 0.0
    attempts: int = 1
    skipped: bool = False

    @property
    def status(self) -> str:
        """``"failed"``, ``"skipped"`` or ``"done"``."""
        return "failed" if self.error is not None else "skipped" if self.skipped else "done"


def output_paths(videos: list[Path], output: str | os.PathLike) -> list[Path]:
    """Output file per video: ``output`` itself if it ends in .hdf5/.h5 (one video), else ``output/STEM.hdf5``.

    Raises :class:`SettingsError` if one file is named for several videos, or two videos share a name.
    """
    output = Path(output)
    if output.suffix and output.suffix.lower() not in OUTPUT_SUFFIXES and not output.is_dir():
        raise SettingsError(
            f"-o {output}: give an .hdf5 or .h5 file, or a folder (a new one without an extension, or an existing one)"
        )
    if output.suffix.lower() in OUTPUT_SUFFIXES:
        if len(videos) != 1:
            raise SettingsError(f"-o {output} names one file, but there are {len(videos)} videos; give a folder")
        paths = [output]
    else:
        paths = [output / f"{video.stem}.hdf5" for video in videos]
        seen: dict[Path, Path] = {}
        for video, path in zip(videos, paths):
            if path in seen:
                raise SettingsError(f"{seen[path]} and {video} would both be written to {path}")
            seen[path] = video
    for video, path in zip(videos, paths):
        if path.resolve() == video.resolve():
            raise SettingsError(f"the output {path} would replace its input; choose another -o")
    return paths


class _Writer:
    """Masks frames (keeping the worms grown by ``dilation``) and writes them in a
    :class:`~wormclean.threads.Consumer` thread; an error there is raised in the caller at its next call."""

    def __init__(self, writer: MaskedVideoWriter, dilation: int):
        self.writer = writer
        self.dilation = dilation
        self.thread = Consumer(self._write, _WRITER_QUEUE, "mask writer")

    def _write(self, item) -> None:
        if len(item) == 2:
            self.writer.write_background(*item)
        else:
            index, frame, worms, contours = item  # the contours give the boxes to grow and mask, and the blob table
            boxes = grown_boxes(contours, self.dilation, worms.shape)
            self.writer.write(index, frame, worms, self.dilation, contours, boxes)

    def frame(self, index: int, frame: np.ndarray, worms: np.ndarray, contours: list[np.ndarray]) -> None:
        """Queue a frame with its worm mask and the mask's outer contours."""
        self.thread.put((index, frame, worms, contours))

    def background(self, index: int, background: np.ndarray) -> None:
        self.thread.put((index, background))

    def close(self) -> None:
        """Stop the thread once everything queued is handled (errors stay in the thread)."""
        self.thread.close()

    def finish(self) -> None:
        """Wait until everything queued is written; raise the writer's error if there was one."""
        self.thread.finish()


class _OutputCheck:
    """Watches a mask job for the two silent failures: no worm in any frame, and a background far from the
    frames. Each gives one warning with the likely fix when the job ends."""

    def __init__(self, video, delta: float):
        self.video = video
        self.delta = delta
        self.frames_with_worms = 0
        self.background_error: float | None = None
        self._pending: np.ndarray | None = None

    def background(self, then: Callable[[int, np.ndarray], None]) -> Callable[[int, np.ndarray], None]:
        """Wrap an ``on_background`` callback: the first background is compared with the next frame."""

        def seen(index: int, background: np.ndarray) -> None:
            if self.background_error is None and self._pending is None:
                self._pending = background
            then(index, background)

        return seen

    def frame(self, frame: np.ndarray, worms: np.ndarray) -> None:
        if self._pending is not None:
            gain = brightness_gain(frame, self._pending)
            step = max(1, frame.shape[0] // 256)
            difference = np.abs(frame[::step, ::step] - self._pending[::step, ::step] * gain)
            self.background_error = float(np.median(difference))
            self._pending = None
        self.frames_with_worms += cv2.hasNonZero(worms.view(np.uint8))  # stops at the first worm pixel

    def warn(self, n_frames: int) -> None:
        if self.background_error is not None and self.background_error > 2 * self.delta:
            log.warning(
                "%s: the background is %.1f grey levels from the frames (median), more than twice --delta %g: "
                "is the model made for this kind of video (magnification, bit depth, --dark-worms/--light-worms)?",
                self.video, self.background_error, self.delta,
            )
        elif self.frames_with_worms == 0:
            log.warning(
                "%s: no worm found in any of its %d frames. If there are worms, lower --delta (now %g grey levels); "
                "12-bit cameras storing 16-bit files need about --delta 160, 10-bit ones about 40",
                self.video, n_frames, self.delta,
            )


def mask_video(
    video: str | os.PathLike,
    output: str | os.PathLike,
    settings: MaskSettings,
    cleaner: Cleaner | None = None,
    overwrite: bool = False,
    progress: Callable[[int, int], None] | None = None,
    command_line: str = "",
) -> MaskResult:
    """Mask one video into a MaskedVideos HDF5 file (layout in :mod:`wormclean.io.masked_video`).

    Parameters
    ----------
    video : path
        The input video.
    output : path
        The HDF5 file to write; it appears complete or not at all.
    settings : MaskSettings
        The job's settings.
    cleaner : Cleaner, optional
        A loaded model with segmentation settings; built from ``settings`` if absent.
    overwrite : bool
        Replace an existing output.
    progress : callable, optional
        Called as ``progress(frames_done, n_frames)`` after each frame.
    command_line : str
        The command that started the job, recorded in the output's provenance.

    Returns
    -------
    MaskResult
        Frames written and, if the video broke part-way, the first frame that could not be decoded (the
        masks of every frame before it are written).
    """
    output = check_output_path(output, overwrite)
    cleaner = cleaner or Cleaner.from_settings(settings)
    with open_video(video) as reader:
        this_video = settings.for_video(reader.fps, reader.bit_depth, cleaner.segmentation, cleaner.net)
        model_path = cleaner.model.path
        model_info = {
            "path": str(model_path.resolve()) if model_path else None,
            "sha256": file_sha256(model_path) if model_path else None,
            "metadata": cleaner.model.metadata,
        }
        check = _OutputCheck(video, this_video.delta)
        # HDF5 crashes the process when it cannot write (a full disk); FailSafeFile keeps that error for us.
        with atomic_output(output, overwrite) as temporary, FailSafeFile(temporary) as file:
            writer = MaskedVideoWriter(
                file,
                reader.height,
                reader.width,
                fps=reader.fps,
                bit_depth=reader.bit_depth,
                is_light_background=this_video.dark_worms,
                save_interval=this_video.save_interval_frames,
                bgnd_interval=this_video.bgnd_interval_frames,
                expected_frames=reader.n_frames,
                microns_per_pixel=settings.microns_per_pixel,
                source_video=str(Path(video).resolve()),
                settings={**settings.to_dict(), "resolved": this_video.to_dict(), "wormclean_version": __version__},
                model=model_info,
                frame_times=reader.frame_times(),
                command_line=command_line,
            )
            report: dict = {}
            stage = None
            try:  # from here on the file is closed whatever happens, a stop signal included
                stage = _Writer(writer, settings.dilation)
                # closing(): on an error, stop the background thread now, not when the traceback is freed.
                masks = cleaner.iter_masks(
                    reader, this_video.bgnd_interval_frames, check.background(stage.background), report, True
                )
                with closing(masks):
                    for index, frame, worms, contours in masks:
                        check.frame(frame, worms)
                        stage.frame(index, frame, worms, contours)
                        file.check()  # stop at a full disk rather than at the end of the video
                        if progress is not None:
                            progress(index + 1, reader.n_frames)
                stage.finish()
            finally:
                if stage is not None:
                    stage.close()
                writer.close(broken_at=reader.broken_at, backgrounds=report)
            if writer.n_frames == 0:
                raise OutputError(f"{video}: no frame could be decoded, nothing written")
            check.warn(writer.n_frames)
        if reader.broken_at is not None:
            log.warning(
                "%s breaks at frame %d of %d: masks written for frames 0-%d only",
                video,
                reader.broken_at,
                reader.n_frames,
                reader.broken_at - 1,
            )
        return MaskResult(Path(video), output, writer.n_frames, reader.broken_at)


PREVIEW_PANEL = 1024  # largest side of one panel in a preview, in pixels
_OVERLAY_COLOUR = np.array([0, 0, 255], dtype=np.float32)  # red, in OpenCV's BGR order


def preview_image(frames: list[np.ndarray], backgrounds: list[np.ndarray], masks: list[np.ndarray]) -> np.ndarray:
    """One row per frame: frame | background | worm mask in red over the frame. BGR uint8 ``(rows, cols, 3)``.

    16-bit frames are scaled to 8 bits by the brightest frame; panels are shrunk so that their longer side is
    at most 1024 pixels.
    """
    top = max(float(frame.max()) for frame in frames) if frames[0].dtype != np.uint8 else 255.0
    scale = 255.0 / max(top, 1.0)
    rows = []
    for frame, background, worms in zip(frames, backgrounds, masks):
        grey = [
            np.clip(np.rint(image.astype(np.float32) * scale), 0, 255).astype(np.uint8) for image in (frame, background)
        ]
        overlay = cv2.cvtColor(grey[0], cv2.COLOR_GRAY2BGR).astype(np.float32)
        overlay[worms] = 0.4 * overlay[worms] + 0.6 * _OVERLAY_COLOUR
        panels = [cv2.cvtColor(image, cv2.COLOR_GRAY2BGR) for image in grey] + [overlay.astype(np.uint8)]
        shrink = min(1.0, PREVIEW_PANEL / max(frame.shape))
        if shrink < 1.0:
            size = (max(1, round(frame.shape[1] * shrink)), max(1, round(frame.shape[0] * shrink)))
            panels = [cv2.resize(panel, size, interpolation=cv2.INTER_AREA) for panel in panels]
        gap = np.full((panels[0].shape[0], 4, 3), 255, dtype=np.uint8)
        rows.append(np.concatenate([panels[0], gap, panels[1], gap, panels[2]], axis=1))
    gap = np.full((4, rows[0].shape[1], 3), 255, dtype=np.uint8)
    return np.concatenate([part for row in rows for part in (row, gap)][:-1], axis=0)


def write_preview(
    cleaner: Cleaner,
    video: str | os.PathLike,
    output: str | os.PathLike,
    n_frames: int = 3,
    overwrite: bool = False,
    bgnd_interval: int | str | None = None,
) -> tuple[Path, int]:
    """Write :func:`preview_image` of ``n_frames`` frames spread evenly through ``video`` to an image file.

    The backgrounds are those ``wormclean mask`` would use with the cleaner's settings (``bgnd_interval``, if
    given, in place of theirs); with the net alone, the net's backgrounds of the frames themselves.
    Returns the image's path and the number of frames drawn: fewer than ``n_frames`` in a shorter video, or
    one that breaks before some of them.
    """
    output = check_image_name(check_output_path(output, overwrite))
    with open_video(video) as reader:
        indices = sorted({round(i) for i in np.linspace(0, reader.n_frames - 1, n_frames)})
        frames = [frame for _, frame in reader.read(indices)]
        if not frames:
            raise OutputError(f"{video}: no frame could be decoded for the preview")
        indices = indices[: len(frames)]
        made = cleaner.video_backgrounds(reader, indices, bgnd_interval)
    if made is None:
        backgrounds, stats = cleaner.frame_backgrounds(frames), [None] * len(frames)
    else:
        backgrounds, stats = [made[index].background for index in indices], [made[index].stats for index in indices]
    masks = [cleaner.segment(*args) for args in zip(frames, backgrounds, stats)]
    data = encode_image(preview_image(frames, backgrounds, masks), output)
    with atomic_output(output, overwrite) as temporary:
        temporary.write_bytes(data)
    return output, len(frames)
