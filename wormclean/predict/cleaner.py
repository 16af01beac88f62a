"""The Python API: a trained model plus segmentation settings, applied to frames or whole videos.

>>> from wormclean import Cleaner
>>> cleaner = Cleaner.load("model.pt")  # doctest: +SKIP
>>> for index, frame, worms in cleaner.iter_masks("plate.mp4", bgnd_interval="10s"):  # doctest: +SKIP
...     ...

Background schedule
-------------------
The net runs on one frame in ``bgnd_interval`` (frames 0, b, 2b, ...); every frame is segmented against the
nearest of those backgrounds, scaled to the frame's brightness (:func:`~wormclean.segment.threshold.segment`).
The backgrounds are computed in a thread, ahead of the frames that need them: for long intervals from a second
reader that seeks straight to the background frames, for short ones from the decoded stream itself (the frames
waiting for their background are held, at most half an interval of them).
"""

from __future__ import annotations

import logging
import math
import os
import queue
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import closing
from dataclasses import replace

import numpy as np
import torch

from wormclean.data.worm_crops import CropSettings, Plate, WormLayer, plate_in_worm_units
from wormclean.errors import ModelFileError, VideoError
from wormclean.io import VideoReader, open_video
from wormclean.memory import keep_freed_memory
from wormclean.model.modelfile import ModelFile, load_model
from wormclean.model.registry import resolve_model
from wormclean.predict.inference import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_TILE_SIZE,
    predict_backgrounds,
    prepare_net,
    resolve_device,
)
from wormclean.predict.inputs import check_image
from wormclean.predict.tiling import check_tile_size, min_tile_size, plan_tiles
from wormclean.predict.windows import MIN_TEMPORAL_FRAMES, TemporalUnavailable, WindowSchedule
from wormclean.predict.worm_filter import WormFilter
from wormclean.segment.background import WormStats, fuse_backgrounds, median_region_area
from wormclean.segment.threshold import background_level, segment
from wormclean.settings import (
    ADAPT_PASSES,
    DEFAULT_ADAPT_STEPS,
    DEFAULT_BGND_INTERVAL,
    DEFAULT_MIN_AREA,
    FOLD_WORM_LENGTHS,
    MaskSettings,
    NetSettings,
    SegmentSettings,
    parse_span,
)
from wormclean.threads import END, NOTHING, Producer

log = logging.getLogger(__name__)

DEFAULT_CROPS = CropSettings()

# Up to this interval the backgrounds come from the decoded stream (holding at most interval / 2 frames);
# above it from a second reader, so memory stays small whatever the interval.
_STREAM_INTERVAL_LIMIT = 32
_HELD_FRAMES = 4  # frames held while waiting for a background computed from a second reader


def adapt_steps(shape: tuple[int, int], most: int, batch_size: int = 8) -> int:
    """Steps of adaptation per fold for a plate of ``shape``: :data:`~wormclean.settings.ADAPT_PASSES` over half
    of it (one fold), at most ``most``."""
    per_step = batch_size * DEFAULT_CROPS.size**2
    return min(most, math.ceil(ADAPT_PASSES * shape[0] * shape[1] / 2 / per_step))


def check_video_model(model: ModelFile) -> None:
    """Refuse models not trained on videos (e.g. stills models) with a clear :class:`ModelFileError`."""
    kind = model.metadata.get("kind", "video")
    if kind != "video":
        raise ModelFileError(f"{model.path or 'the model'} is a {kind} model; masking videos needs a video model")
    if model.config.in_channels != 1 or model.config.out_channels != 1:
        raise ModelFileError(f"{model.path or 'the model'} is not a one-channel (grey) model")


def match_model_units(values: np.ndarray, normalisation) -> tuple[float, float]:
    """How to express a frame of another bit depth in the units a model was trained on.

    Returns ``(gain, shift)`` with ``raw = model_units * gain + shift``: the frame's median lands on the
    model's offset and its spread on the model's scale, so the net sees inputs with the statistics of its
    training data, whatever the camera's bit depth or the part of the range it uses.
    """
    median = float(np.median(values))
    spread = max(float(values.std()), 1e-3)
    gain = spread / normalisation.scale
    return gain, median - normalisation.offset * gain


class Cleaner:
    """A video model with the settings that turn its backgrounds into worm masks.

    Parameters
    ----------
    model : ModelFile
        A loaded video model (:func:`~wormclean.model.modelfile.load_model`).
    device : str
        ``"auto"``, ``"cpu"`` or ``"cuda"``.
    tile_size, batch_size : int, optional
        Tiling of the net (defaults per device, see :mod:`wormclean.predict.inference`); checked as
        :class:`~wormclean.settings.NetSettings`.
    threshold, delta, min_area, background, worm_filter, adapt_steps :
        How backgrounds become masks; checked as :class:`~wormclean.settings.SegmentSettings`, kept as
        ``segmentation``. ``worm_filter`` (a model file or name, None for the shipped prior) and ``adapt_steps``
        make the worm filter (:mod:`wormclean.predict.worm_filter`) of fused backgrounds, which also filters the
        frames of a video with no temporal background (fused or temporal).
    dark_worms : bool, optional
        Worms darker than the background; default from the model's metadata (``dark_worms``), else True.
        When it differs from the polarity the model was trained on, frames are inverted before the net and
        its backgrounds inverted back, so a model trained on dark worms also serves bright ones.
    """

    def __init__(
        self,
        model: ModelFile,
        device: str | torch.device = "auto",
        tile_size: int | None = None,
        batch_size: int | None = None,
        threshold: str = "delta",
        delta: float | None = None,
        min_area: int | None = None,
        dark_worms: bool | None = None,
        background: str = "fused",
        worm_filter: str | os.PathLike | None = None,
        adapt_steps: int = DEFAULT_ADAPT_STEPS,
    ):
        check_video_model(model)
        model_dark_worms = bool(model.metadata.get("dark_worms", True))
        self.segmentation = SegmentSettings(
            threshold=threshold,
            delta=delta,
            min_area=None if min_area is None else int(min_area),
            background=background,
            dark_worms=model_dark_worms if dark_worms is None else bool(dark_worms),
            worm_filter=None if worm_filter is None else str(worm_filter),
            adapt_steps=int(adapt_steps),
        )
        NetSettings(str(device), tile_size, batch_size)  # checks them; the defaults come with the device
        self.model = model
        self.device = resolve_device(device)
        if self.device.type == "cpu":
            keep_freed_memory()  # the net's feature maps, reused rather than faulted in afresh
        self.tile_size = tile_size or DEFAULT_TILE_SIZE[self.device.type]
        self.batch_size = batch_size or DEFAULT_BATCH_SIZE[self.device.type]
        check_tile_size(self.tile_size, model.net.receptive_field_radius(), model.config.multiple)
        self.threshold = self.segmentation.threshold
        self.delta = self.segmentation.delta
        self.min_area = self.segmentation.min_area
        self.background_mode = self.segmentation.background
        self.dark_worms = self.segmentation.dark_worms
        self.invert = self.dark_worms != model_dark_worms
        prepare_net(model.net, self.device)
        self.worm_filter = WormFilter.load(self.segmentation.worm_filter) if background != "net" else None

    @classmethod
    def load(cls, model: str | os.PathLike | None = None, device: str | torch.device = "auto", **settings) -> Cleaner:
        """Load a model by path or registered name (None: the default model) and build a :class:`Cleaner`.

        ``settings`` are the other :class:`Cleaner` parameters.
        """
        return cls(load_model(resolve_model(model)), device=device, **settings)

    @classmethod
    def from_settings(cls, settings: MaskSettings) -> Cleaner:
        """Load the model and build the :class:`Cleaner` that mask-job ``settings`` describe."""
        return cls.load(settings.model, **vars(settings.net), **vars(settings.segmentation))

    def backgrounds(self, frames: list[np.ndarray]) -> list[np.ndarray]:
        """The net's backgrounds of several ``(H, W)`` frames (tiles batched): float32 ``(H, W)`` each.

        Frames of another bit depth than the model's (16-bit video, 8-bit model) are mapped into the model's
        units around the net by :func:`match_model_units`; inverted polarity is handled likewise. Raises
        :class:`~wormclean.errors.ArrayError` for a frame that is not finite ``(H, W)`` grey levels
        (:func:`~wormclean.predict.inputs.check_image`).
        """
        maps = []
        inputs = []
        for frame in frames:
            check_image(frame, "frame")
            values = frame.astype(np.float32)
            if self.invert:
                values = float(np.iinfo(frame.dtype).max if frame.dtype.kind in "ui" else 255) - values
            bits = 16 if frame.dtype == np.uint16 else 8
            gain, shift = match_model_units(values, self.model.normalisation) if bits != self.model_bits else (1, 0)
            maps.append((frame.dtype, gain, shift))
            inputs.append((values - shift) / gain if gain != 1 or shift != 0 else values)
        backgrounds = predict_backgrounds(
            self.model.net, self.model.normalisation, inputs, self.tile_size, self.batch_size, self.device
        )
        results = []
        for (dtype, gain, shift), background in zip(maps, backgrounds):
            background = background * gain + shift
            if self.invert:
                background = float(np.iinfo(dtype).max if dtype.kind in "ui" else 255) - background
            results.append(background.astype(np.float32))
        return results

    @property
    def model_bits(self) -> int:
        """Bit depth of the video the model was trained on."""
        return self.model.normalisation.bit_depth

    def background(self, frame: np.ndarray) -> np.ndarray:
        """The net's background of one ``(H, W)`` frame: float32 ``(H, W)`` in raw pixel units."""
        return self.backgrounds([frame])[0]

    def adapt_filter(self, plate: Plate, layers: list[WormLayer], stats: WormStats) -> WormFilter:
        """The worm filter adapted to one video: ``plate``, its temporal background in worm units, and
        ``layers``, its moving worms (:meth:`~wormclean.predict.worm_filter.WormFilter.adapted`)."""
        block = max(round(FOLD_WORM_LENGTHS * stats.length), 2 * DEFAULT_CROPS.size)
        steps = adapt_steps(plate.image.shape, self.segmentation.adapt_steps)
        return self.worm_filter.adapted(plate, layers, steps, block, device=self.device)

    def worm_probability(self, plate: np.ndarray, worm_filter: WormFilter | None = None) -> np.ndarray:
        """Per pixel of ``plate`` (worm units), the probability of a worm by ``worm_filter`` (default: the
        prior): float32 ``(H, W)``."""
        worm_filter = worm_filter or self.worm_filter
        net = worm_filter.nets[0]
        # --tile-size is the background net's; the filter's tiles are at least as large as its halo needs.
        tile_size = max(self.tile_size, min_tile_size(net.receptive_field_radius(), net.config.multiple))
        return worm_filter.probability(plate, tile_size, self.batch_size, self.device)

    def filtered_backgrounds(self, frames: list[np.ndarray]) -> list[np.ndarray]:
        """Backgrounds of frames with no background from the video: each frame with the worms the filter sees in
        it filled in from around them: float32 ``(H, W)`` each.

        With no moving worm to measure, a worm is as large as the filter's own median region in the frame
        (:func:`~wormclean.segment.background.worm_regions` keeps regions of a worm's size), and as dark as twice
        the threshold (:meth:`worm_prior`)."""
        backgrounds = []
        for frame in frames:
            values = frame.astype(np.float32)
            stats = self.worm_prior(frame.shape, self.delta_for(16 if frame.dtype == np.uint16 else 8))
            top = np.iinfo(frame.dtype).max if frame.dtype.kind in "ui" else 255
            plate = plate_in_worm_units(values, self.dark_worms, stats.contrast, top)
            probability = self.worm_probability(plate.image)
            stats = replace(stats, area=median_region_area(probability) or stats.area)
            fusion = fuse_backgrounds(values, probability, stats)
            backgrounds.append(fusion.background)
        return backgrounds

    def frame_backgrounds(self, frames: list[np.ndarray]) -> list[np.ndarray]:
        """Backgrounds made of the frames alone: the net's (``background="net"``) or the frames filtered
        (:meth:`filtered_backgrounds`, where a video gives no temporal background)."""
        return self.backgrounds(frames) if self.background_mode == "net" else self.filtered_backgrounds(frames)

    def delta_for(self, bit_depth: int) -> float:
        """The worm threshold in grey levels for video of ``bit_depth`` bits (``delta``, or its default)."""
        return self.segmentation.delta_for(bit_depth)

    def worm_prior(self, shape: tuple[int, int], delta: float) -> WormStats:
        """What a worm is assumed to look like when no worm of the video moves."""
        return WormStats.prior(shape, delta)

    def segment(
        self,
        frame: np.ndarray,
        background: np.ndarray,
        worms: WormStats | None = None,
        background_level: float | None = None,
        with_contours: bool = False,
    ) -> np.ndarray | tuple[np.ndarray, list[np.ndarray]]:
        """Worm mask of ``frame`` against ``background`` (flicker-compensated): bool ``(H, W)``, and with
        ``with_contours`` the outer contours of its blobs.

        ``worms``, what this video's worms look like, sets the smallest blob (unless ``min_area`` was given),
        the largest, and the largest hole filled; without it the smallest is ``min_area`` or 50 and every hole
        is filled. ``background_level``, the background's
        :func:`~wormclean.segment.threshold.background_level`, saves measuring it for every frame that uses it.
        Raises :class:`~wormclean.errors.ArrayError` for arrays that are not finite ``(H, W)`` grey levels.
        """
        check_image(frame, "frame")
        check_image(background, "background")
        if worms is None:
            limits = dict(min_area=DEFAULT_MIN_AREA if self.min_area is None else self.min_area)
        else:
            limits = dict(
                min_area=worms.min_area if self.min_area is None else self.min_area,
                max_area=worms.max_area,
                max_hole=worms.max_hole,
            )
        return segment(
            frame,
            background,
            dark_worms=self.dark_worms,
            method=self.threshold,
            delta=self.delta_for(16 if frame.dtype == np.uint16 else 8),
            background_level=background_level,
            with_contours=with_contours,
            **limits,
        )

    def video_backgrounds(
        self, reader: VideoReader, indices: list[int], bgnd_interval: int | str = DEFAULT_BGND_INTERVAL
    ) -> dict | None:
        """The backgrounds :meth:`iter_masks` would use for frames ``indices`` of an open video, by index
        (:class:`~wormclean.predict.windows.WindowBackground`), or None where the frames' own serve
        (:meth:`frame_backgrounds`: ``background="net"``, or a video with no background of its own, and then a
        warning says why)."""
        if self.background_mode == "net":
            return None
        interval = parse_span(bgnd_interval, "bgnd_interval").frames(reader.fps)
        try:
            if reader.n_frames < MIN_TEMPORAL_FRAMES:
                raise TemporalUnavailable(f"the video has only {reader.n_frames} frames")
            return WindowSchedule(self, reader, interval).backgrounds_at(indices)
        except TemporalUnavailable as reason:
            log.warning("%s: no background from the video (%s); filtering the frames themselves", reader.path, reason)
            return None

    def frames_per_call(self, shape: tuple[int, int]) -> int:
        """How many frames of ``shape`` fill one batch of tiles (at least 1)."""
        net = self.model.net
        padded = (shape[0] + 2 * net.edge_margin, shape[1] + 2 * net.edge_margin)  # as predict_backgrounds pads
        n_tiles = len(plan_tiles(padded, self.tile_size, net.receptive_field_radius(), net.config.multiple).tiles)
        return max(1, self.batch_size // n_tiles)

    def iter_masks(
        self,
        video: str | os.PathLike | VideoReader,
        bgnd_interval: int | str = DEFAULT_BGND_INTERVAL,
        on_background: Callable[[int, np.ndarray], None] | None = None,
        report: dict | None = None,
        with_contours: bool = False,
    ) -> Iterator[tuple]:
        """Worm masks of every frame of a video, streamed: ``(index, frame, worm_mask)`` in frame order, and
        with ``with_contours`` the outer contours of the mask's blobs as a fourth item.

        Parameters
        ----------
        video : path or VideoReader
            The video (opened with :func:`~wormclean.io.open_video` if a path).
        bgnd_interval : int or str
            One background per this many frames (``250``) or seconds (``"10s"``). With the net alone it runs
            on frames 0, b, 2b, ... (1: on every frame) and each frame takes the nearest; with a background from
            the video, each window of b frames has its own (:mod:`wormclean.predict.windows`).
        on_background : callable, optional
            Called as ``on_background(index, background)`` for each background, in order, before the frames
            that use it are yielded.
        report : dict, optional
            Filled with how the backgrounds were made: the mode used (``background``; ``fallback`` says why the
            net's alone was used) and, per window, the worm statistics and the regions taken from the net.
        with_contours : bool
            Also yield each mask's blob outlines (:func:`~wormclean.segment.blobs.outer_contours`), found anyway
            while cleaning the mask: the mask job's blob table and dilation need them.

        Where the video breaks part-way, iteration stops before the broken frame (``reader.broken_at``).
        """
        reader = video if isinstance(video, VideoReader) else open_video(video)
        try:
            if reader.bit_depth != self.model_bits:
                log.info("%s is %d-bit, the model %d-bit: frames are mapped into the model's units",
                         reader.path, reader.bit_depth, self.model_bits)
            interval = parse_span(bgnd_interval, "bgnd_interval").frames(reader.fps)
            per_frame = _BackgroundSchedule(self, reader, interval, on_background, self.frame_backgrounds).run
            if self.background_mode == "net":
                if report is not None:
                    report.update(background="net", requested="net")
                masks = per_frame()
            else:
                masks = WindowSchedule(self, reader, interval, on_background, report).run(per_frame)
            with closing(masks):  # on an early stop, the schedule's threads stop now
                for index, frame, (worms, contours) in masks:
                    yield (index, frame, worms, contours) if with_contours else (index, frame, worms)
        finally:
            if reader is not video:
                reader.close()


class _BackgroundSchedule:
    """Makes the backgrounds of frames 0, b, 2b, ... in a thread (``make``: the net's, or the frames filtered) and
    pairs every frame with its nearest background."""

    def __init__(self, cleaner: Cleaner, reader: VideoReader, interval: int, on_background,
                 make: Callable[[list[np.ndarray]], list[np.ndarray]]):
        self.cleaner = cleaner
        self.make = make
        self.reader = reader
        self.interval = interval
        self.on_background = on_background
        self.from_stream = interval <= _STREAM_INTERVAL_LIMIT
        self.held_limit = interval // 2 + 2 if self.from_stream else _HELD_FRAMES
        self.requests: queue.Queue = queue.Queue()
        self.available: deque[tuple[int, np.ndarray, float]] = deque()  # (index, background, its level)
        self.backgrounds: Producer | None = None

    # -- background thread ------------------------------------------------------------------------------
    def _requested(self) -> Iterator[tuple[int, np.ndarray]]:
        while (item := self.requests.get()) is not END:
            yield item

    def _groups(self, source: Iterator[tuple[int, np.ndarray]], size: int) -> Iterator[list]:
        """Consecutive groups of at most ``size`` frames; from the stream, only what is already waiting."""
        for first in source:
            group = [first]
            while len(group) < size:
                if self.from_stream and self.requests.empty():
                    break
                following = next(source, None)
                if following is None:
                    break
                group.append(following)
            yield group

    def _made(self) -> Iterator[tuple[int, np.ndarray]]:
        """``(index, background)`` of the frames 0, b, 2b, ... in order (made in the producer thread)."""
        second_reader = source = None
        try:
            if self.from_stream:
                source = self._requested()
            else:
                second_reader = open_video(self.reader.path)
                source = second_reader.read(range(0, self.reader.n_frames, self.interval))
            size = self.cleaner.frames_per_call((self.reader.height, self.reader.width))
            for group in self._groups(source, size):
                backgrounds = self.make([frame for _, frame in group])
                yield from zip((index for index, _ in group), backgrounds)
        finally:
            if source is not None:
                source.close()
            if second_reader is not None:
                second_reader.close()

    # -- consumer ---------------------------------------------------------------------------------------
    def _pull(self, block: bool) -> bool:
        """Take one result from the thread; False if none was waiting (``block`` false)."""
        item = self.backgrounds.take(block)
        if item is NOTHING:
            return False
        if item is not END:
            self.available.append((*item, background_level(item[1])))
            if self.on_background is not None:
                self.on_background(*item)
        return True

    def _nearest(self, index: int) -> tuple[np.ndarray, float] | None:
        """The background nearest to frame ``index`` (the earlier one on ties) and its level, or None if not
        known yet."""
        while len(self.available) >= 2 and self.available[1][0] <= index:
            self.available.popleft()
        if not self.available:
            if self.backgrounds.finished:
                raise VideoError(f"{self.reader.path}: no background could be computed for frame {index}")
            return None
        before = self.available[0][0]
        if before > index or 2 * (index - before) <= self.interval:
            return self.available[0][1:]
        if len(self.available) >= 2:
            return self.available[1][1:]
        return self.available[0][1:] if self.backgrounds.finished else None

    def _ready(self, held: deque, keep: int) -> Iterator[tuple[int, np.ndarray, tuple]]:
        """Segment held frames whose background is known, waiting for backgrounds while more than ``keep``
        frames are held: ``(index, frame, (worm_mask, contours))``."""
        while held:
            nearest = self._nearest(held[0][0])
            if nearest is None:
                if not self._pull(block=len(held) > keep):
                    return
                continue
            index, frame = held.popleft()
            background, level = nearest
            yield index, frame, self.cleaner.segment(frame, background, background_level=level, with_contours=True)

    def run(self) -> Iterator[tuple[int, np.ndarray, tuple]]:
        self.backgrounds = Producer(self._made(), depth=2, name=f"backgrounds {self.reader.path.name}")
        held: deque[tuple[int, np.ndarray]] = deque()
        frames = self.reader.frames()
        try:
            for index, frame in frames:
                if self.from_stream and index % self.interval == 0:
                    self.requests.put((index, frame))
                held.append((index, frame))
                yield from self._ready(held, self.held_limit)
            self.requests.put(END)
            yield from self._ready(held, 0)
        finally:
            frames.close()
            self.requests.put(END)  # a thread waiting for frames from the stream stops waiting
            self.backgrounds.close()
