"""The background schedule: which background every frame of a video is segmented against, made ahead in a thread.

The video is cut into windows once, from its resolved settings (``bgnd_interval``, one meaning, written at
:attr:`~wormclean.settings.MaskSettings.bgnd_interval`); each window has one background. One sampling reader, beside
the reader of the frames, decodes the frames the windows are made from, and one worker thread
(:class:`~wormclean.threads.Producer`) makes their backgrounds in order, ahead of the frames that need them.

From the video (``background`` fused or temporal), a window's background is made from a few sample frames spread
around it (keyframes where the video has enough of them, so each sample costs one frame's decode, not a decode
from the previous keyframe): their flicker-normalised median is the window's temporal background. The moving worms
of the samples calibrate what a worm looks like in this video and, as layers, adapt the worm filter to it (once,
on the first window: :meth:`~wormclean.predict.worm_filter.WormFilter.adapted`); the filter runs on the temporal
background, and the still worms it sees there are filled in (:mod:`wormclean.segment.background`). A later window
whose temporal background holds nothing of a worm's size that the last one the filter ran on did not (and the
reverse) keeps that window's still worms and calibration, and the filter is not run again: on a plate where
nothing changes, a window then costs its sample frames and their median. Window 0 is made before the first frame
is segmented, so that a video with no temporal background is known at once.

From single frames (``background="net"``, or where a temporal background cannot hold: too few frames, a stage or
camera that moves; a warning then says so once), a window's background is the net's of its one frame, or that
frame with the worms the filter sees in it filled in.

The schedule knows no cleaner: it is given the functions that make backgrounds (:class:`BackgroundMethods`).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterator
from contextlib import closing
from dataclasses import dataclass, replace

import numpy as np

from wormclean.data.worm_crops import Plate, WormLayer, plate_in_worm_units, worm_layers
from wormclean.errors import VideoError
from wormclean.io import VideoReader, open_video
from wormclean.predict.worm_filter import WormFilter
from wormclean.segment.background import (
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
from wormclean.settings import (
    CALIBRATION_STRIDE,
    MAX_GHOST_RATIO,
    MIN_TEMPORAL_FRAMES,
    MOVING_STAGE_FRACTION,
    SAMPLE_SPAN_SECONDS,
    WINDOW_SAMPLES,
    VideoMaskSettings,
)
from wormclean.threads import END, Producer

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Window:
    """Frames ``start`` to ``stop - 1`` share one background, made from the frames ``samples`` and filed under frame
    ``key`` (a multiple of ``bgnd_interval``: its row in ``/bgnd``)."""

    start: int
    stop: int
    samples: tuple[int, ...]
    key: int


def plan_windows(
    n_frames: int,
    window_frames: int,
    keyframes: list[int] | None,
    span_frames: int,
    n_samples: int = WINDOW_SAMPLES,
) -> list[Window]:
    """Cut ``n_frames`` into windows of ``window_frames`` and choose each window's sample frames (backgrounds from
    the video).

    A window's samples are spread over its span: the window widened to at least ``span_frames`` around its
    centre, kept inside the video. When the video has at least ``n_samples`` keyframes, the samples are keyframes
    (each costs one frame's decode): those in the span, or the ``n_samples`` nearest to the window's centre if the
    span holds fewer. Otherwise (short videos; indexed sources, where every frame is cheap: ``keyframes`` None)
    ``n_samples`` frames evenly spread over the span.

    Returns
    -------
    list of Window
        Windows in order; starts (and keys) are multiples of ``window_frames``.
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
        windows.append(Window(start, stop, tuple(int(i) for i in samples), start))
    return windows


def plan_frame_windows(n_frames: int, window_frames: int) -> list[Window]:
    """Windows of backgrounds made from single frames: frames ``0, b, 2b, ...`` (``b = window_frames``), each
    serving the frames nearer to it than to the next (ties to the earlier), the last one the frames after it."""
    if n_frames < 1 or window_frames < 1:
        raise ValueError(f"need frames and a window, got {n_frames}, {window_frames}")
    keys = list(range(0, n_frames, window_frames))
    starts = [0] + [key - window_frames + window_frames // 2 + 1 for key in keys[1:]]
    stops = starts[1:] + [n_frames]
    return [Window(start, stop, (key,), key) for start, stop, key in zip(starts, stops, keys)]


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
    background: np.ndarray | None  # float32 (H, W), raw pixel units; None: no sample frame could be decoded
    stats: WormStats | None  # None for backgrounds of single frames: the blob limits are the defaults
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


@dataclass(frozen=True)
class BackgroundMethods:
    """What the schedule calls to make backgrounds (a :class:`~wormclean.predict.cleaner.Cleaner` gives them).

    Attributes
    ----------
    net : callable
        ``net(frames)``: the net's background of each ``(H, W)`` frame, float32 ``(H, W)``.
    filtered : callable
        ``filtered(frames)``: each frame with the worms the (unadapted) worm filter sees in it filled in.
    adapt_filter : callable
        ``adapt_filter(plate, layers, stats)``: the worm filter adapted to one video's plate (worm units) and its
        moving worms.
    worm_probability : callable
        ``worm_probability(plate, worm_filter)``: per pixel of a plate in worm units, the probability of a worm.
    frames_per_call : callable
        ``frames_per_call((H, W))``: how many frames ``net`` and ``filtered`` take at once.
    """

    net: Callable[[list[np.ndarray]], list[np.ndarray]]
    filtered: Callable[[list[np.ndarray]], list[np.ndarray]]
    adapt_filter: Callable[[Plate, list[WormLayer], WormStats], WormFilter]
    worm_probability: Callable[[np.ndarray, WormFilter], np.ndarray]
    frames_per_call: Callable[[tuple[int, int]], int]


class TemporalUnavailable(Exception):
    """Raised internally when a video gives no temporal background; the reason is its message."""


class BackgroundSchedule:
    """Pairs every frame of a video with its window's background, made ahead in a thread.

    Parameters
    ----------
    reader : VideoReader
        The video; a second reader on the same path decodes the frames the backgrounds are made from.
    settings : VideoMaskSettings
        The job's settings resolved for this video: ``bgnd_interval_frames``, ``background``, ``dark_worms``
        and ``delta`` are used.
    methods : BackgroundMethods
        The functions that make backgrounds.
    on_background : callable, optional
        ``on_background(key, background)`` for each window (``key``: :attr:`Window.key`), in order, before its
        frames are yielded.
    report : dict, optional
        Filled with what was done: the mode used (``background``; ``fallback`` says why the frames were
        filtered), and per window from the video its worm statistics and filter regions.
    """

    def __init__(self, reader: VideoReader, settings: VideoMaskSettings, methods: BackgroundMethods,
                 on_background: Callable[[int, np.ndarray], None] | None = None, report: dict | None = None):
        self.reader = reader
        self.settings = settings
        self.methods = methods
        self.on_background = on_background
        self.report = report if report is not None else {}
        self.window_frames = settings.bgnd_interval_frames
        self.mode = settings.background  # "frames" once the video's frames are filtered instead
        if self.mode == "net":
            self.windows = plan_frame_windows(reader.n_frames, self.window_frames)
        else:
            span = math.ceil(SAMPLE_SPAN_SECONDS * reader.fps)
            self.windows = plan_windows(reader.n_frames, self.window_frames, reader.keyframes, span)
        self._previous_stats: WormStats | None = None
        self._filter: WormFilter | None = None  # the worm filter adapted to this video, on its first fused window

    # -- making backgrounds (in the worker thread, but for window 0) ----------------------------------------
    def _samples(self, second: VideoReader, windows: list[Window]) -> Iterator[tuple[Window, list]]:
        """Each of ``windows`` with its sample frames, from one forward pass of ``second``; frames no later window
        needs are let go."""
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

    def _from_frames(self, sampled: Iterator[tuple[Window, list]]) -> Iterator[WindowBackground]:
        """Backgrounds of single frames (the net's, or the frames filtered), made in batches of consecutive
        windows; a window whose frame could not be decoded has none."""
        make = self.methods.net if self.mode == "net" else self.methods.filtered
        size = self.methods.frames_per_call((self.reader.height, self.reader.width))
        batch: list[tuple[Window, np.ndarray]] = []

        def made() -> Iterator[WindowBackground]:
            backgrounds = make([frame for _, frame in batch])
            return (WindowBackground(window, background, None) for (window, _), background in zip(batch, backgrounds))

        with closing(sampled):
            for window, frames in sampled:
                if frames:
                    batch.append((window, frames[0]))
                if batch and (len(batch) == size or not frames):
                    yield from made()
                    batch = []
                if not frames:
                    yield WindowBackground(window, None, None)
            if batch:
                yield from made()

    def _check_video(self) -> None:
        """Raise :class:`TemporalUnavailable` for a video too short for a temporal background."""
        if self.reader.n_frames < MIN_TEMPORAL_FRAMES:
            raise TemporalUnavailable(f"the video has only {self.reader.n_frames} frames")

    def _make(
        self, window: Window, frames: list[np.ndarray], previous: WindowBackground | None = None
    ) -> WindowBackground:
        """The background of ``window`` from its sample ``frames``. With the ``previous`` window's background, a
        fused one: where nothing of a worm's size has come or gone in the temporal background since the filter last
        ran, its still worms are carried over and the filter (most of a window's work) is not run again."""
        if previous is not None and window.samples == previous.window.samples:
            return replace(previous, window=window)  # a video shorter than the sampling span: one background
        dark_worms, delta = self.settings.dark_worms, self.settings.delta
        if len(frames) < min(len(window.samples), MIN_TEMPORAL_FRAMES):
            raise TemporalUnavailable(f"only {len(frames)} sample frames could be decoded")
        temporal = temporal_background(frames)
        moved = float(np.median([changed_fraction(frame, temporal, delta) for frame in frames]))
        if moved > MOVING_STAGE_FRACTION:
            raise TemporalUnavailable(
                f"the frames differ from their median over {100 * moved:.0f} % of the field (a moving stage or "
                "camera, or changing light)"
            )
        ghosts = ghost_ratio(frames, temporal, dark_worms, delta)
        if ghosts > MAX_GHOST_RATIO:
            raise TemporalUnavailable(
                f"the worms moved too little over the sampled frames for their median to show the plate under them "
                f"(ghost ratio {ghosts:.2f})"
            )
        if (
            self.mode == "fused"
            and previous is not None
            and previous.reference is not None
            and not worm_sized_change(temporal, previous.reference, delta, previous.stats)
        ):
            filled = fill_worm_regions(temporal, previous.worm_regions, previous.stats)
            return replace(previous, window=window, background=filled)
        stats = calibrate_worms(frames[::CALIBRATION_STRIDE], temporal, dark_worms, delta)
        if stats is None:
            stats = self._previous_stats or WormStats.prior((self.reader.height, self.reader.width), delta)
        self._previous_stats = stats
        if self.mode == "temporal":
            return WindowBackground(window, temporal, stats)
        plate = plate_in_worm_units(temporal, dark_worms, stats.contrast, np.iinfo(self.reader.dtype).max)
        if self._filter is None:
            layers = worm_layers(frames, temporal, dark_worms, delta, stats.area, stats.contrast)
            self._filter = self.methods.adapt_filter(plate, layers, stats)
        fusion = fuse_backgrounds(temporal, self.methods.worm_probability(plate.image, self._filter), stats)
        return WindowBackground(window, fusion.background, stats, fusion.n_candidates, fusion.n_worms, fusion.regions,
                                reference=temporal, net_window=window.start)

    def _make_later(self, window: Window, frames: list[np.ndarray], previous: WindowBackground) -> WindowBackground:
        """A window after the first; where its temporal background does not hold, the filtered first sample
        (or the previous window's background) stands in."""
        try:
            return self._make(window, frames, previous)
        except TemporalUnavailable as reason:
            log.warning("%s: frames %d-%d: no background from the video (%s); filtering the frames there",
                        self.reader.path, window.start, window.stop - 1, reason)
            background = self.methods.filtered(frames[:1])[0] if frames else previous.background
            return WindowBackground(window, background, previous.stats)

    def _from_video(
        self, sampled: Iterator[tuple[Window, list]], first: WindowBackground
    ) -> Iterator[WindowBackground]:
        """The backgrounds of the windows after the first, from the video, in order."""
        previous = first
        with closing(sampled):
            for window, frames in sampled:
                previous = self._make_later(window, frames, previous)
                yield previous

    def _start(self, second: VideoReader) -> tuple[WindowBackground | None, Iterator[WindowBackground]]:
        """Window 0's background, if made here (from the video), and the backgrounds of the others (or of all),
        to be made in the worker thread. A video with no temporal background is planned anew, from its frames."""
        if self.mode != "net":
            sampled = self._samples(second, self.windows)
            try:
                self._check_video()
                window, frames = next(sampled)
                first = self._make(window, frames)
                self.report.update(background=self.mode, requested=self.mode)
                return first, self._from_video(sampled, first)
            except TemporalUnavailable as reason:
                sampled.close()  # the sampling reader starts again, on the frames
                log.warning("%s: no background from the video (%s); filtering the frames themselves",
                            self.reader.path, reason)
                self.report.update(background="frames", requested=self.mode, fallback=str(reason))
                self.mode = "frames"
                self.windows = plan_frame_windows(self.reader.n_frames, self.window_frames)
            except BaseException:
                sampled.close()
                raise
        else:
            self.report.update(background="net", requested="net")
        return None, self._from_frames(self._samples(second, self.windows))

    def backgrounds_at(self, indices: list[int]) -> dict[int, WindowBackground]:
        """The backgrounds from the video of the windows holding frames ``indices``, by frame index (for previews
        and training); raises :class:`TemporalUnavailable` where the video has none.

        As in the job, a window after the first keeps the still worms of the last window the filter ran for
        (here among the windows made) unless something of a worm's size changed since; where something changed
        in a window between them, the job's background may differ from this one by what the filter then found.
        """
        self._check_video()
        needed = sorted({index // self.window_frames for index in indices})
        made: dict[int, WindowBackground] = {}
        previous = None
        with open_video(self.reader.path) as second:
            for window, frames in self._samples(second, [self.windows[number] for number in needed]):
                previous = made[window.start] = self._make(window, frames, previous)
        return {index: made[(index // self.window_frames) * self.window_frames] for index in indices}

    # -- consumer -------------------------------------------------------------------------------------------
    def _use(self, made: WindowBackground) -> float:
        """Record a window's background and pass it on; returns its level, for segmenting its frames."""
        if self.mode in ("fused", "temporal"):
            self.report.setdefault("windows", []).append(made.report())
        if self.on_background is not None:
            self.on_background(made.window.key, made.background)
        return background_level(made.background)

    def run(self) -> Iterator[tuple[int, np.ndarray, WindowBackground, float]]:
        """Yield ``(index, frame, background, level)`` for every frame: its window's background and that
        background's :func:`~wormclean.segment.threshold.background_level`."""
        second = open_video(self.reader.path)
        worker = frames = None
        try:
            current, made = self._start(second)
            worker = Producer(made, depth=2, name=f"backgrounds {self.reader.path.name}")
            frames = self.reader.frames()
            level = None if current is None else self._use(current)
            for index, frame in frames:
                while current is None or index >= current.window.stop:
                    following = worker.take()
                    if following is END:
                        raise VideoError(f"{self.reader.path}: no background could be computed for frame {index}")
                    if following.background is None:  # its frame could not be decoded: the last one serves on
                        if current is None:
                            raise VideoError(f"{self.reader.path}: no background could be computed for frame {index}")
                        current = replace(current, window=replace(current.window, stop=following.window.stop))
                        continue
                    current = following
                    level = self._use(current)
                yield index, frame, current, level
        finally:  # each thread stopped before the reader it decodes from is closed
            if frames is not None:
                frames.close()
            if worker is not None:
                worker.close()
            second.close()
