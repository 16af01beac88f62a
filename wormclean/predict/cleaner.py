"""The Python API: a trained model plus segmentation settings, applied to frames or whole videos.

>>> from wormclean import Cleaner
>>> cleaner = Cleaner.load("model.pt")  # doctest: +SKIP
>>> for index, frame, worms in cleaner.iter_masks("plate.mp4", bgnd_interval="10s"):  # doctest: +SKIP
...     ...

Settings
--------
A cleaner is built from a job's :class:`~wormclean.settings.MaskSettings` (``Cleaner.from_settings``, as ``wormclean
mask`` and ``wormclean preview`` do), or from the same settings as keywords (``Cleaner(model, background="net")``),
which build that object. Which background every frame is segmented against is the background schedule's
(:class:`~wormclean.predict.windows.BackgroundSchedule`); ``bgnd_interval`` is described at
:attr:`~wormclean.settings.MaskSettings.bgnd_interval`.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Callable, Iterator
from contextlib import closing
from dataclasses import dataclass, replace

import numpy as np
import torch

from wormclean.data.worm_crops import CropSettings, Plate, WormLayer, plate_in_worm_units
from wormclean.errors import ModelFileError
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
from wormclean.predict.windows import BackgroundMethods, BackgroundSchedule, TemporalUnavailable, WindowBackground
from wormclean.predict.worm_filter import WormFilter
from wormclean.segment.background import WormStats, fuse_backgrounds, median_region_area
from wormclean.segment.threshold import segment
from wormclean.settings import (
    ADAPT_PASSES,
    DEFAULT_MIN_AREA,
    FOLD_WORM_LENGTHS,
    MaskSettings,
    NetSettings,
    VideoMaskSettings,
    parse_span,
)

log = logging.getLogger(__name__)

DEFAULT_CROPS = CropSettings()


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


@dataclass(frozen=True)
class VideoPlate:
    """What one video teaches the worm filter (:meth:`Cleaner.video_plate`).

    Attributes
    ----------
    plate : Plate
        Its temporal background in worm units.
    layers : list of WormLayer
        Its moving worms.
    still_worms : np.ndarray or None
        bool ``(H, W)``: where the filter adapted to the video sees still worms in the plate (grown as the fused
        background fills them in); None where it sees none.
    """

    plate: Plate
    layers: list[WormLayer]
    still_worms: np.ndarray | None


class Cleaner:
    """A video model with the settings that turn its backgrounds into worm masks.

    Parameters
    ----------
    model : ModelFile
        A loaded video model (:func:`~wormclean.model.modelfile.load_model`).
    settings : MaskSettings, optional
        The job's settings; the net's (``device``, ``tile_size``, ``batch_size``) and the segmentation's
        (``threshold``, ``delta``, ``min_area``, ``background``, ``dark_worms``, ``worm_filter``,
        ``adapt_steps``) are used here, ``bgnd_interval`` by :meth:`iter_masks` unless it is given one.
    **options
        Instead of ``settings``, its fields as keywords (``device="cpu", background="net"``): they build the
        :class:`~wormclean.settings.MaskSettings`, checked as the CLI's options are.

    Attributes
    ----------
    settings : MaskSettings
        The settings as given.
    segmentation : SegmentSettings
        Their segmentation part, resolved: ``dark_worms`` from the model's metadata (``dark_worms``, else True)
        unless given. When it differs from the polarity the model was trained on, frames are inverted before the
        net and its backgrounds inverted back, so a model trained on dark worms also serves bright ones.
    net : NetSettings
        Their net part, resolved: the device (``"auto"`` becomes ``"cuda"`` or ``"cpu"``) and its default tiling
        (:mod:`wormclean.predict.inference`).
    worm_filter : WormFilter or None
        The worm filter (:mod:`wormclean.predict.worm_filter`) of fused backgrounds, and of the frames of a video
        with no temporal background (fused or temporal); None with the net alone.
    """

    def __init__(self, model: ModelFile, *, settings: MaskSettings | None = None, **options):
        if settings is not None and options:
            raise TypeError("give a Cleaner either settings or keyword options, not both")
        settings = MaskSettings(**options) if settings is None else settings
        check_video_model(model)
        model_dark_worms = bool(model.metadata.get("dark_worms", True))
        segmentation = settings.segmentation
        if segmentation.dark_worms is None:
            segmentation = replace(segmentation, dark_worms=model_dark_worms)
        self.settings = settings
        self.segmentation = segmentation
        self.model = model
        self.device = resolve_device(settings.device)
        if self.device.type == "cpu":
            keep_freed_memory()  # the net's feature maps, reused rather than faulted in afresh
        self.net = NetSettings(
            str(self.device),
            settings.tile_size or DEFAULT_TILE_SIZE[self.device.type],
            settings.batch_size or DEFAULT_BATCH_SIZE[self.device.type],
        )
        check_tile_size(self.net.tile_size, model.net.receptive_field_radius(), model.config.multiple)
        self.invert = segmentation.dark_worms != model_dark_worms
        prepare_net(model.net, self.device)
        self.worm_filter = WormFilter.load(segmentation.worm_filter) if segmentation.background != "net" else None

    @classmethod
    def load(cls, model: str | os.PathLike | None = None, device: str | torch.device = "auto", **options) -> Cleaner:
        """Load a model by path or registered name (None: the default model) and build a :class:`Cleaner`.

        ``options`` are the other fields of :class:`~wormclean.settings.MaskSettings`.
        """
        return cls.from_settings(MaskSettings(model=model, device=device, **options))

    @classmethod
    def from_settings(cls, settings: MaskSettings) -> Cleaner:
        """Load the model and build the :class:`Cleaner` that mask-job ``settings`` describe."""
        return cls(load_model(resolve_model(settings.model)), settings=settings)

    def for_video(self, reader: VideoReader, bgnd_interval: int | str | None = None) -> VideoMaskSettings:
        """The settings resolved for the video of ``reader`` (:meth:`~wormclean.settings.MaskSettings.for_video`),
        with ``bgnd_interval`` in place of the settings' own if given."""
        settings = self.settings
        if bgnd_interval is not None:
            settings = replace(settings, bgnd_interval=str(parse_span(bgnd_interval, "bgnd_interval")))
        return settings.for_video(reader.fps, reader.bit_depth, self.segmentation, self.net)

    @property
    def methods(self) -> BackgroundMethods:
        """The functions the background schedule makes backgrounds with."""
        return BackgroundMethods(
            net=self.backgrounds,
            filtered=self.filtered_backgrounds,
            adapt_filter=self.adapt_filter,
            worm_probability=self.worm_probability,
            frames_per_call=self.frames_per_call,
        )

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
            self.model.net, self.model.normalisation, inputs, self.net.tile_size, self.net.batch_size, self.device
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
        tile_size = max(self.net.tile_size, min_tile_size(net.receptive_field_radius(), net.config.multiple))
        return worm_filter.probability(plate, tile_size, self.net.batch_size, self.device)

    def filtered_backgrounds(self, frames: list[np.ndarray]) -> list[np.ndarray]:
        """Backgrounds of frames with no background from the video: each frame with the worms the filter sees in
        it filled in from around them: float32 ``(H, W)`` each.

        With no moving worm to measure, a worm is as large as the filter's own median region in the frame
        (:func:`~wormclean.segment.background.worm_regions` keeps regions of a worm's size), and as dark as twice
        the threshold (:meth:`~wormclean.segment.background.WormStats.prior`)."""
        backgrounds = []
        for frame in frames:
            values = frame.astype(np.float32)
            stats = WormStats.prior(frame.shape, self.segmentation.delta_for(16 if frame.dtype == np.uint16 else 8))
            top = np.iinfo(frame.dtype).max if frame.dtype.kind in "ui" else 255
            plate = plate_in_worm_units(values, self.segmentation.dark_worms, stats.contrast, top)
            probability = self.worm_probability(plate.image)
            stats = replace(stats, area=median_region_area(probability) or stats.area)
            fusion = fuse_backgrounds(values, probability, stats)
            backgrounds.append(fusion.background)
        return backgrounds

    def frame_backgrounds(self, frames: list[np.ndarray]) -> list[np.ndarray]:
        """Backgrounds made of the frames alone: the net's (``background="net"``) or the frames filtered
        (:meth:`filtered_backgrounds`, where a video gives no temporal background)."""
        net_only = self.segmentation.background == "net"
        return self.backgrounds(frames) if net_only else self.filtered_backgrounds(frames)

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
        min_area = self.segmentation.min_area
        if worms is None:
            limits = dict(min_area=DEFAULT_MIN_AREA if min_area is None else min_area)
        else:
            limits = dict(
                min_area=worms.min_area if min_area is None else min_area,
                max_area=worms.max_area,
                max_hole=worms.max_hole,
            )
        return segment(
            frame,
            background,
            dark_worms=self.segmentation.dark_worms,
            method=self.segmentation.threshold,
            delta=self.segmentation.delta_for(16 if frame.dtype == np.uint16 else 8),
            background_level=background_level,
            with_contours=with_contours,
            **limits,
        )

    def video_backgrounds(
        self, reader: VideoReader, indices: list[int], bgnd_interval: int | str | None = None
    ) -> dict[int, WindowBackground] | None:
        """The backgrounds :meth:`iter_masks` would use for frames ``indices`` of an open video, by index
        (:meth:`~wormclean.predict.windows.BackgroundSchedule.backgrounds_at`), or None where the frames' own serve
        (:meth:`frame_backgrounds`: ``background="net"``, or a video with no background of its own, and then a
        warning says why)."""
        if self.segmentation.background == "net":
            return None
        schedule = BackgroundSchedule(reader, self.for_video(reader, bgnd_interval), self.methods)
        try:
            return schedule.backgrounds_at(indices)
        except TemporalUnavailable as reason:
            log.warning("%s: no background from the video (%s); filtering the frames themselves", reader.path, reason)
            return None

    def immobile_worm_regions(self, path: str | os.PathLike) -> np.ndarray | None:
        """Where a video's immobile worms are: the regions a fused background fills in, made over the whole
        video as one window. bool ``(H, W)``, or None where the video has no temporal background (logged; ``fit``
        says how many videos that was).

        Training leaves these out of the loss (:class:`~wormclean.data.patches.LaggedPatchDataset`): a pair of
        frames shows an immobile worm in both, and a net that learns the pair learns to keep it.
        """
        plate = self.video_plate(path)
        return None if plate is None else plate.still_worms

    def video_plate(self, path: str | os.PathLike) -> VideoPlate | None:
        """What a video teaches the worm filter, made over the whole video as one window of a fused background:
        its temporal background in worm units, its moving worms, and where the filter (adapted to the video as
        in the job) sees still worms; None where the video has no temporal background (logged)."""
        seen: dict = {}

        def adapt(plate: Plate, layers: list[WormLayer], stats: WormStats) -> WormFilter:
            seen.update(plate=plate, layers=list(layers))
            return self.adapt_filter(plate, layers, stats)

        with open_video(path) as reader:
            resolved = replace(self.for_video(reader, reader.n_frames), background="fused")
            schedule = BackgroundSchedule(reader, resolved, replace(self.methods, adapt_filter=adapt))
            try:
                made = schedule.backgrounds_at([0])[0]
            except TemporalUnavailable as reason:
                log.info("%s: no temporal background (%s); it teaches the worm filter nothing", path, reason)
                return None
        return VideoPlate(seen["plate"], seen["layers"], made.worm_regions)

    def frames_per_call(self, shape: tuple[int, int]) -> int:
        """How many frames of ``shape`` fill one batch of tiles (at least 1)."""
        net = self.model.net
        padded = (shape[0] + 2 * net.edge_margin, shape[1] + 2 * net.edge_margin)  # as predict_backgrounds pads
        n_tiles = len(plan_tiles(padded, self.net.tile_size, net.receptive_field_radius(), net.config.multiple).tiles)
        return max(1, self.net.batch_size // n_tiles)

    def iter_masks(
        self,
        video: str | os.PathLike | VideoReader,
        bgnd_interval: int | str | None = None,
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
        bgnd_interval : int or str, optional
            One background per this many frames (``250``) or seconds (``"10s"``)
            (:attr:`~wormclean.settings.MaskSettings.bgnd_interval`); default the settings' own.
        on_background : callable, optional
            Called as ``on_background(index, background)`` for each background, in order, before the frames
            that use it are yielded (``index``: the frame it is filed under, a multiple of the interval).
        report : dict, optional
            Filled with how the backgrounds were made: the mode used (``background``; ``fallback`` says why the
            frames themselves were filtered) and, per window, the worm statistics and the filter's regions.
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
            schedule = BackgroundSchedule(reader, self.for_video(reader, bgnd_interval), self.methods,
                                          on_background, report)
            with closing(schedule.run()) as made:  # on an early stop, the schedule's thread stops now
                for index, frame, window, level in made:
                    worms, contours = self.segment(frame, window.background, window.stats, level, with_contours=True)
                    yield (index, frame, worms, contours) if with_contours else (index, frame, worms)
        finally:
            if reader is not video:
                reader.close()
