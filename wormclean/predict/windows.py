"""Backgrounds per time window, from the video and the worm filter (``--background fused|temporal``).

The video is cut into windows of ``bgnd_interval`` frames. For each, a second reader decodes a few sample
frames spread around the window (keyframes where the video has enough of them, so each sample costs one frame's
decode, not a decode from the previous keyframe) and their flicker-normalised median is the window's temporal
background. The moving worms of the samples calibrate what a worm looks like in this video and, as layers, adapt
the worm filter to it (once, on the first window: :meth:`~wormclean.predict.worm_filter.WormFilter.adapted`); the
filter runs on the temporal background, and the still worms it sees there are filled in
(:mod:`wormclean.segment.background`). A later window whose temporal background holds nothing of a worm's size
that the last one the filter ran on did not (and the reverse) keeps that window's still worms and calibration,
and the filter is not run again: on a plate where nothing changes, a window then costs its sample frames and
their median. Window 0 is made before the first frame is segmented; the others in a thread, ahead of the frames
that need them.

Where a temporal background cannot hold (too few frames, a stage or camera that moves), the frames themselves are
filtered on the cleaner's own schedule instead, and a warning says so once.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace

import numpy as np

from wormclean.data.worm_crops import plate_in_worm_units, worm_layers
from wormclean.io import VideoReader, open_video
from wormclean.segment.background import (
    MAX_GHOST_RATIO,
    MOVING_STAGE_FRACTION,
    WormStats,
    calibrate_worms,
    changed_fraction,
    fill_worm_regions,
    fuse_backgrounds,
    ghost_ratio,
    temporal_background,
    worm_sized_change,
)
from wormclean.segment.threshold import background_level
from wormclean.threads import END, Producer

log = logging.getLogger(__name__)

DEFAULT_SAMPLES = 21
"""Sample frames per window's median: with worms covering a few percent of a plate, 21 frames leave every pixel
worm-free in most of them once the worms have moved a body length or two."""

SAMPLE_SPAN_SECONDS = 300.0
"""Each window's samples are spread over at least this much of the video around it (the whole of a shorter one):
long enough for slow worms to move off every pixel they cover, short enough to follow condensation or a plate
that shifts during a recording."""

CALIBRATION_STRIDE = 2
"""Every second sample frame is measured for the worm statistics: half the cost, and still tens of worms."""

MIN_TEMPORAL_FRAMES = 8
"""Videos of fewer frames get no temporal background (a median of a handful of frames keeps the worms)."""


@dataclass(frozen=True)
class Window:
    """Frames ``start`` to ``stop - 1`` share one background, made from the frames ``samples``."""

    start: int
    stop: int
    samples: tuple[int, ...]


def plan_windows(
    n_frames: int,
    window_frames: int,
    keyframes: list[int] | None,
    span_frames: int,
    n_samples: int = DEFAULT_SAMPLES,
) -> list[Window]:
    """Cut ``n_frames`` into windows of ``window_frames`` and choose each window's sample frames.

    A window's samples are spread over its span: the window widened to at least ``span_frames`` around its
    centre, kept inside the video. When the video has at least ``n_samples`` keyframes, the samples are keyframes
    (each costs one frame's decode): those in the span, or the ``n_samples`` nearest to the window's centre if the
    span holds fewer. Otherwise (short videos; indexed sources, where every frame is cheap: ``keyframes`` None)
    ``n_samples`` frames evenly spread over the span.

    Returns
    -------
    list of Window
        Windows in order; starts are multiples of ``window_frames``.
    """
    if n_frames < 1 or window_frames < 1 or n_samples < 1:
        raise ValueError(f"need frames, a window and samples, got {n_frames}, {window_frames}, {n_samples}")
    keys = np.array(sorted(keyframes), dtype=np.int64) if keyframes is not None else None
    use_keys = keys is not None and len(keys) >= n_samples
    windows = []
    for start in range(0, n_frames, window_frames):
        stop = min(n_frames, start + window_frames)
        span = max(stop - start, min(span_frames, n_frames))
        span_start = int(np.clip(round((start + stop - span) / 2), 0, n_frames - span))
        if use_keys:
            samples = _spread_keyframes(keys, span_start, span_start + span, n_samples)
        else:
            count = min(n_samples, span)
            samples = np.unique(np.rint(np.linspace(span_start, span_start + span - 1, count)).astype(np.int64))
        windows.append(Window(start, stop, tuple(int(i) for i in samples)))
    return windows


def _spread_keyframes(keys: np.ndarray, start: int, stop: int, n_samples: int) -> np.ndarray:
    """``n_samples`` keyframes spread over frames ``start`` to ``stop - 1``, or the nearest to its centre."""
    inside = keys[(keys >= start) & (keys < stop)]
    if len(inside) < n_samples:
        centre = (start + stop - 1) / 2
        inside = np.sort(keys[np.argsort(np.abs(keys - centre), kind="stable")[:n_samples]])
    pick = np.unique(np.rint(np.linspace(0, len(inside) - 1, n_samples)).astype(np.int64))
    return inside[pick]


@dataclass(frozen=True)
class WindowBackground:
    """The background of one window and what went into it (recorded in the output)."""

    window: Window
    background: np.ndarray  # float32 (H, W), raw pixel units
    stats: WormStats
    n_candidates: int = 0  # regions the worm filter sees in the temporal background
    n_worms: int = 0  # of those, the still worms: the plate is filled in there
    worm_regions: np.ndarray | None = None  # bool (H, W), the still worms (grown), where the plate is filled in
    reference: np.ndarray | None = None  # float32 (H, W), the temporal background the filter was run on (fused)
    net_window: int | None = None  # first frame of the window whose filter run found worm_regions (fused)

    def report(self) -> dict:
        """Plain values for the output file."""
        return {
            "start": self.window.start,
            "samples": len(self.window.samples),
            "worm_stats": self.stats.to_dict(),
            "filter_regions": self.n_candidates,
            "immobile_worm_regions": self.n_worms,
            "net_run_at_window": self.net_window,
        }


class TemporalUnavailable(Exception):
    """Raised internally when a video gives no temporal background; the reason is its message."""


class WindowSchedule:
    """Pairs every frame with its window's background (fused or temporal), made ahead in a thread.

    Parameters
    ----------
    cleaner : Cleaner
        The model and segmentation settings (its ``background`` is ``"fused"`` or ``"temporal"``).
    reader : VideoReader
        The video; a second reader on the same path decodes the samples.
    window_frames : int
        Frames per window.
    on_background : callable, optional
        ``on_background(start, background)`` for each window, in order, before its frames are yielded.
    report : dict, optional
        Filled with what was done: the mode used, and per window the worm statistics and filter regions.
    """

    def __init__(self, cleaner, reader: VideoReader, window_frames: int, on_background=None, report=None):
        self.cleaner = cleaner
        self.reader = reader
        self.window_frames = window_frames
        self.on_background = on_background
        self.report = report if report is not None else {}
        span = math.ceil(SAMPLE_SPAN_SECONDS * reader.fps)
        self.windows = plan_windows(reader.n_frames, window_frames, reader.keyframes, span)
        self._previous_stats: WormStats | None = None
        self._filter = None  # the worm filter adapted to this video, on its first fused window

    # -- making backgrounds -----------------------------------------------------------------------------
    def _samples(self, second: VideoReader, windows: list[Window] | None = None) -> Iterator[tuple[Window, list]]:
        """Each window (of ``windows``, default all) with its sample frames, from one forward pass of ``second``;
        frames no later window needs are let go."""
        windows = self.windows if windows is None else windows
        wanted = sorted({index for window in windows for index in window.samples})
        source = second.read(wanted)
        held: dict[int, np.ndarray] = {}
        try:
            for number, window in enumerate(windows):
                last = max(window.samples)
                for index, frame in source:
                    held[index] = frame
                    if index >= last:
                        break
                frames = [held[index] for index in window.samples if index in held]
                yield window, frames
                following = windows[number + 1].samples[0] if number + 1 < len(windows) else math.inf
                for index in [index for index in held if index < following]:
                    del held[index]
        finally:
            source.close()

    def _make(
        self, window: Window, frames: list[np.ndarray], previous: WindowBackground | None = None
    ) -> WindowBackground:
        """The background of ``window`` from its sample ``frames``. With the ``previous`` window's background, a
        fused one: where nothing of a worm's size has come or gone in the temporal background since the filter last
        ran, its still worms are carried over and the filter (most of a window's work) is not run again."""
        if previous is not None and window.samples == previous.window.samples:
            return replace(previous, window=window)  # a video shorter than the sampling span: one background
        cleaner = self.cleaner
        delta = cleaner.delta_for(self.reader.bit_depth)
        if len(frames) < min(len(window.samples), MIN_TEMPORAL_FRAMES):
            raise TemporalUnavailable(f"only {len(frames)} sample frames could be decoded")
        temporal = temporal_background(frames)
        moved = float(np.median([changed_fraction(frame, temporal, delta) for frame in frames]))
        if moved > MOVING_STAGE_FRACTION:
            raise TemporalUnavailable(
                f"the frames differ from their median over {100 * moved:.0f} % of the field (a moving stage or "
                "camera, or changing light)"
            )
        ghosts = ghost_ratio(frames, temporal, cleaner.dark_worms, delta)
        if ghosts > MAX_GHOST_RATIO:
            raise TemporalUnavailable(
                f"the worms moved too little over the sampled frames for their median to show the plate under them "
                f"(ghost ratio {ghosts:.2f})"
            )
        if (
            cleaner.background_mode == "fused"
            and previous is not None
            and previous.reference is not None
            and not worm_sized_change(temporal, previous.reference, delta, previous.stats)
        ):
            filled = fill_worm_regions(temporal, previous.worm_regions, previous.stats)
            return replace(previous, window=window, background=filled)
        stats = calibrate_worms(frames[::CALIBRATION_STRIDE], temporal, cleaner.dark_worms, delta)
        if stats is None:
            stats = self._previous_stats or cleaner.worm_prior((self.reader.height, self.reader.width), delta)
        self._previous_stats = stats
        if cleaner.background_mode == "temporal":
            return WindowBackground(window, temporal, stats)
        plate = plate_in_worm_units(temporal, cleaner.dark_worms, stats.contrast, np.iinfo(self.reader.dtype).max)
        if self._filter is None:
            layers = worm_layers(frames, temporal, cleaner.dark_worms, delta, stats.area, stats.contrast)
            self._filter = cleaner.adapt_filter(plate, layers, stats)
        fusion = fuse_backgrounds(temporal, cleaner.worm_probability(plate.image, self._filter), stats)
        return WindowBackground(window, fusion.background, stats, fusion.n_candidates, fusion.n_worms, fusion.regions,
                                reference=temporal, net_window=window.start)

    def _make_later(self, window: Window, frames: list[np.ndarray], previous: WindowBackground) -> WindowBackground:
        """A window after the first; where its temporal background does not hold, the filled-in first sample
        (or the previous window's background) stands in. Windows sampled from the same frames (a
        video shorter than the sampling span) share one background."""
        try:
            return self._make(window, frames, previous)
        except TemporalUnavailable as reason:
            log.warning("%s: frames %d-%d: no background from the video (%s); filtering the frames there",
                        self.reader.path, window.start, window.stop - 1, reason)
            background = self.cleaner.filtered_backgrounds(frames[:1])[0] if frames else previous.background
            return WindowBackground(window, background, previous.stats)

    def _later(
        self, windows: Iterator[tuple[Window, list[np.ndarray]]], second: VideoReader, first: WindowBackground
    ) -> Iterator[WindowBackground]:
        """The backgrounds of the windows after the first, in order (made in the producer thread)."""
        previous = first
        try:
            for window, frames in windows:
                previous = self._make_later(window, frames, previous)
                yield previous
        finally:
            windows.close()
            second.close()

    def backgrounds_at(self, indices: list[int]) -> dict[int, WindowBackground]:
        """The backgrounds of the windows holding frames ``indices``, by frame index (for previews).

        As in the job, a window after the first keeps the still worms of the last window the filter ran for
        (here among the windows made) unless something of a worm's size changed since; where something changed
        in a window between them, the job's background may differ from this one by what the filter then found.
        """
        needed = sorted({index // self.window_frames for index in indices})
        made: dict[int, WindowBackground] = {}
        previous = None
        with open_video(self.reader.path) as second:
            for window, frames in self._samples(second, [self.windows[number] for number in needed]):
                previous = made[window.start] = self._make(window, frames, previous)
        return {index: made[(index // self.window_frames) * self.window_frames] for index in indices}

    # -- consumer ---------------------------------------------------------------------------------------
    def _use(self, made: WindowBackground) -> float:
        """Record a window's background and pass it on; returns its level, for segmenting its frames."""
        self.report.setdefault("windows", []).append(made.report())
        if self.on_background is not None:
            self.on_background(made.window.start, made.background)
        return background_level(made.background)

    def run(self, fallback: Callable[[], Iterator]) -> Iterator[tuple[int, np.ndarray, tuple]]:
        """Yield ``(index, frame, (worm_mask, contours))`` for every frame; ``fallback()`` gives them from the
        frames themselves when the video has no temporal background."""
        mode = self.cleaner.background_mode
        second = open_video(self.reader.path)
        windows = self._samples(second)
        try:
            if self.reader.n_frames < MIN_TEMPORAL_FRAMES:
                raise TemporalUnavailable(f"the video has only {self.reader.n_frames} frames")
            window, frames = next(windows)
            current = self._make(window, frames)
        except TemporalUnavailable as reason:
            windows.close()
            second.close()
            log.warning("%s: no background from the video (%s); filtering the frames themselves",
                        self.reader.path, reason)
            self.report.update(background="frames", requested=mode, fallback=str(reason))
            yield from fallback()
            return
        except BaseException:
            windows.close()
            second.close()
            raise
        self.report.update(background=mode, requested=mode)
        later = Producer(self._later(windows, second, current), depth=2, name="windows")
        frames_iter = self.reader.frames()
        try:
            level = self._use(current)
            for index, frame in frames_iter:
                while index >= current.window.stop:
                    current = later.take()
                    if current is END:
                        raise RuntimeError("the background thread ended before the last window")
                    level = self._use(current)
                yield index, frame, self.cleaner.segment(frame, current.background, current.stats, level, True)
        finally:
            frames_iter.close()
            later.close()


def immobile_worm_regions(cleaner, path) -> np.ndarray | None:
    """Where a video's immobile worms are: the regions a fused background fills in, made over the whole
    video as one window. bool ``(H, W)``, or None where the video has no temporal background (logged; ``fit`` says
    how many videos that was).

    Training leaves these out of the loss (:class:`~wormclean.data.patches.LaggedPatchDataset`): a pair of frames
    shows an immobile worm in both, and a net that learns the pair learns to keep it.
    """
    with open_video(path) as reader:
        try:
            if reader.n_frames < MIN_TEMPORAL_FRAMES:
                raise TemporalUnavailable(f"the video has only {reader.n_frames} frames")
            made = WindowSchedule(cleaner, reader, reader.n_frames).backgrounds_at([0])[0]
        except TemporalUnavailable as reason:
            log.info("%s: immobile worms cannot be found (%s); the whole frame is trained on", path, reason)
            return None
    return made.worm_regions
