"""The settings of the jobs, frozen and checked on creation: the one home of their defaults and of their checks.

No torch and nothing heavy is imported here, so that the CLI reads its option defaults from these classes (its
``--help`` stays fast) and the library takes them as they are. A mask job's spans in seconds are resolved to
frames once per video (:meth:`MaskSettings.for_video`); that resolved object is what the output records and what
the cleaner, the background schedule and the writer take.

Jobs: ``mask`` (:class:`MaskSettings`, of which :class:`SegmentSettings` and :class:`NetSettings` are the parts a
:class:`~wormclean.predict.cleaner.Cleaner` takes), ``fit`` on videos (:class:`VideoFitSettings`) or on crops
(:class:`CropFitSettings`), both with the training loop's :class:`TrainSettings`; ``filter`` takes
:class:`~wormclean.segment.detection.DetectionSettings` and ``simulate``
:class:`~wormclean.sim.settings.SimulationSettings`.
"""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass, fields

from wormclean.errors import SettingsError
from wormclean.units import FrameSpan

# --- mask ------------------------------------------------------------------------------------------------------

DEFAULT_BGND_INTERVAL = "1000"
"""Frames per background. On a 2-core CPU the full net takes 22-27 s per 2048x2048 frame (whole or in 1024
tiles) and decoding, segmenting and writing 35-75 ms per frame; one net frame in 1000 adds about 27 ms per frame,
keeping the job within about 1.5x its speed without the net (benchmarks/bench_mask.py measures it)."""

DEFAULT_SAVE_INTERVAL = "5000"
"""Frames between whole frames stored in ``/full_data``."""

DEFAULT_DILATION = 5
"""Pixels by which worm regions grow before a frame is masked."""

LARGEST_DILATION = 1000
"""Largest dilation, in pixels: the disc is (2r + 1)^2, and worms are tens of pixels wide."""

DEFAULT_MIN_AREA = 50
"""Smallest blob kept with ``background="net"``, in pixels. Dust specks and noise a net's background blurs away
are mostly 10-50 pixels; an adult worm at 2048 pixels across a plate covers about 400. On unseen synthetic plates
with the shipped model, raising it from 10 to 50 took precision from 0.29-0.44 to 0.72-0.82 with recall unchanged
(Tierpsy's own mask default is 100, for its magnification). With a background from the video the smallest blob
follows the worms the video shows (:class:`~wormclean.segment.background.WormStats`)."""

THRESHOLD_METHODS = ("delta", "otsu")
"""delta: a worm pixel differs from the background by more than ``delta`` grey levels; otsu: Otsu's threshold of
the difference, per frame."""

BACKGROUND_MODES = ("fused", "net", "temporal")
"""fused: the video's own median background, with the net's where it removes worms that never moved; net: the
net's background alone (the paper's method); temporal: the video's median alone (immobile worms are lost)."""

WINDOW_SAMPLES = 21
"""Sample frames per window's temporal background (their median): with worms covering a few percent of a plate,
21 frames leave every pixel worm-free in most of them once the worms have moved a body length or two."""

SAMPLE_SPAN_SECONDS = 300.0
"""Each window's samples are spread over at least this much of the video around it (the whole of a shorter one):
long enough for slow worms to move off every pixel they cover, short enough to follow condensation or a plate
that shifts during a recording."""

CALIBRATION_STRIDE = 2
"""Every second sample frame is measured for the worm statistics: half the cost, and still tens of worms."""

MIN_TEMPORAL_FRAMES = 8
"""Videos of fewer frames get no temporal background (a median of a handful of frames keeps the worms); their
frames are filtered instead."""

DEFAULT_ADAPT_STEPS = 40
"""Most training steps (of 8 crops of 96x96) that adapt the worm filter to a video's plate and worms, per fold.
Each step takes about 0.2 s on two quiet CPU cores, so both folds cost at most about 16 s, whatever the video's
length. On the semi-real REPORT plates 40 steps gave a mean F1 of 0.836, 80 steps 0.813, none 0.804."""

ADAPT_PASSES = 20.0
"""A small plate is adapted on until its fold's pixels have been seen this many times (fewer steps than
:data:`DEFAULT_ADAPT_STEPS`): more would only learn that plate's pixels by heart."""

FOLD_WORM_LENGTHS = 4.0
"""Side of the checkerboard squares of the cross-fitted adaptation, in worm lengths (at least a training crop):
large enough that most still worms lie in one square, small enough that both folds see every kind of structure."""

# The fused background's decisions (segment/background.py, predict/windows.py).
MIN_MOVING_BLOBS = 3
"""Fewer moving-worm blobs than this in a window's sample frames: the worm statistics come from the priors."""

MOVING_STAGE_FRACTION = 0.2
"""A sample frame differing from the temporal background over more than this fraction of its pixels means the
camera or the stage moved (or the light changed): the temporal background does not hold and the frames are
filtered instead."""

MAX_GHOST_RATIO = 0.6
"""Where worms have moved less than their own length over the samples, the median still holds them, and the
frames are lighter than it where a worm has just left (a ghost) about as often as darker where a worm is. Over
this ratio of ghost to worm pixels the median is no background (measured: 0.98 for a 3-second clip of crawling
worms, 0.0-0.4 for clips where the median works, 0.42 for the real deeptangle plate)."""

NOISY = 1 / 3
"""Sensor noise over this fraction of ``delta`` puts one pixel in a few hundred over ``delta`` in a single frame:
specks enough to grow spurs on every moving worm's edge, which make the worms look longer than the candidates the
fusion measures on the temporal background (a median of many frames, nearly free of noise). Measured: 2.4-2.9 grey
levels on plates of noise 2.5-3, 1.5 on the real deeptangle plate, 4.5 on a blurred plate of noise 5, whose worms
looked 41 % longer (55.8 pixels against 39.5)."""

REGION_LEVELS = (0.5, 0.9)
"""A still worm is where the filter's probability is over the first level, connected to a pixel over the second:
the worm's faint edge is taken with its sure core, and a faint smudge with no sure core is not."""

REGION_AREAS = (0.25, 3.0)
"""A filter region is a still worm when its area is within these factors of the video's typical moving worm: from
a worm half buried in the lawn to a few worms lying together; what is smaller or larger is no worm of this video."""

DEVICES = ("auto", "cpu", "cuda")
"""Where the net runs (``cuda:N`` picks a GPU); auto takes CUDA when there is a GPU."""

DEFAULT_DELTA_8BIT = 10.0
"""Difference (grey levels of an 8-bit video) above which a pixel is a worm; scaled by ``2 ** (bits - 8)``."""

LARGEST_DELTA = 65535
"""Largest worm threshold in grey levels: the whole 16-bit range (a larger one finds no worm in any video)."""

LARGEST_SPAN = 1_000_000_000
"""Largest span of frames or seconds an option takes (a span longer than any video means "once")."""


def default_delta(bit_depth: int) -> float:
    """The default worm threshold for a video of ``bit_depth`` bits: 10 grey levels at 8 bits, scaled."""
    return DEFAULT_DELTA_8BIT * 2.0 ** (bit_depth - 8)


def parse_span(text: str | int | float, option: str | None = None) -> FrameSpan:
    """A positive span in frames (``150``) or seconds (``20s``) of at most :data:`LARGEST_SPAN`; ``option``, if
    given, names it in the error."""
    try:
        span = FrameSpan.parse(text)
        if not 0 < span.value <= LARGEST_SPAN:
            raise SettingsError(f"expected more than 0 and at most {LARGEST_SPAN} {span.unit}, got {text!r}")
    except SettingsError as error:
        raise SettingsError(f"{option}: {error}" if option else str(error)) from None
    return span


def _check_choice(value, choices, option: str) -> None:
    if value not in choices:
        raise SettingsError(f"unknown {option} {value!r}; use one of {', '.join(choices)}")


def _check_at_least(value, lowest, option: str) -> None:
    if value is not None and value < lowest:
        raise SettingsError(f"{option} must be at least {lowest}, got {value}")


def _check_positive(value, option: str) -> None:
    if value is not None and not 0 < value < math.inf:
        raise SettingsError(f"{option} must be positive, got {value}")


@dataclass(frozen=True)
class SegmentSettings:
    """How a video's backgrounds become worm masks (the segmentation part of :class:`MaskSettings`).

    Parameters
    ----------
    threshold : {"delta", "otsu"}
        Thresholding of the difference from the background (:data:`THRESHOLD_METHODS`).
    delta : float, optional
        Threshold in grey levels for ``"delta"`` (at most :data:`LARGEST_DELTA`); default :func:`default_delta`
        of the video's bit depth.
    min_area : int, optional
        Smallest worm blob in pixels; default from the size of the worms the video shows moving (fused and
        temporal backgrounds), else :data:`DEFAULT_MIN_AREA`.
    background : {"fused", "net", "temporal"}
        Where the background comes from (:data:`BACKGROUND_MODES`).
    dark_worms : bool, optional
        Worms darker than the background; default from the model.
    worm_filter : str, optional
        The worm filter's model file or registered name (fused backgrounds); None for the shipped prior.
    adapt_steps : int
        Steps that adapt the worm filter to each video (:data:`DEFAULT_ADAPT_STEPS`); 0 uses it as it is.
    """

    threshold: str = "delta"
    delta: float | None = None
    min_area: int | None = None
    background: str = "fused"
    dark_worms: bool | None = None
    worm_filter: str | None = None
    adapt_steps: int = DEFAULT_ADAPT_STEPS

    def __post_init__(self):
        _check_choice(self.threshold, THRESHOLD_METHODS, "threshold")
        _check_positive(self.delta, "--delta")
        if self.delta is not None and self.delta > LARGEST_DELTA:
            raise SettingsError(f"--delta must be at most {LARGEST_DELTA} (the 16-bit range), got {self.delta:g}")
        _check_at_least(self.min_area, 0, "--min-area")
        _check_choice(self.background, BACKGROUND_MODES, "background")
        _check_at_least(self.adapt_steps, 0, "--adapt-steps")

    def delta_for(self, bit_depth: int) -> float:
        """The worm threshold in grey levels for video of ``bit_depth`` bits (``delta``, or its default)."""
        return self.delta if self.delta is not None else default_delta(bit_depth)


@dataclass(frozen=True)
class NetSettings:
    """Where and how the net runs: ``device`` (:data:`DEVICES`), ``tile_size`` (largest tile side in pixels) and
    ``batch_size`` (tiles per forward pass); None takes the device's default
    (:mod:`wormclean.predict.inference`)."""

    device: str = "auto"
    tile_size: int | None = None
    batch_size: int | None = None

    def __post_init__(self):
        if str(self.device) not in DEVICES and not str(self.device).startswith("cuda:"):
            raise SettingsError(f"--device must be auto, cpu or cuda, got {self.device!r}")
        _check_at_least(self.tile_size, 1, "--tile-size")
        _check_at_least(self.batch_size, 1, "--batch-size")


@dataclass(frozen=True)
class MaskSettings:
    """Settings of a mask job; checked on creation, stored in every output file.

    Parameters
    ----------
    model : str, optional
        Model file path or registered name; None for the default model.
    bgnd_interval : int or str
        One background per this many frames (``250``) or seconds (``"10s"``); resolved to ``b`` frames per video.
        This is the one meaning of ``bgnd_interval`` everywhere: the video has a background per window of ``b``
        frames, the one of window ``j`` filed under frame ``j * b`` (row ``j`` of ``/bgnd``), and every frame is
        segmented against the background of the window it lies in. From the video (``background`` fused or
        temporal), window ``j`` is frames ``j * b`` to ``(j + 1) * b - 1`` and its background is made from
        :data:`WINDOW_SAMPLES` frames sampled across and around it (:func:`~wormclean.predict.windows.plan_windows`).
        From single frames (``background="net"``, or a video with no temporal background, whose frames are filtered
        instead), the background is made from frame ``j * b`` alone and its window is the frames nearer to that
        frame than to ``(j +/- 1) * b`` (ties to the earlier), so that every frame takes the nearest background
        (:func:`~wormclean.predict.windows.plan_frame_windows`); ``1`` makes one for every frame.
    dilation : int
        Radius in pixels by which worm regions grow before the frame is masked (``/mask``).
    save_interval : int or str
        A whole frame goes to ``/full_data`` every this many frames (or seconds, ``"200s"``).
    microns_per_pixel : float, optional
        Pixel size, stored in the output.
    background, threshold, delta, min_area, dark_worms, worm_filter, adapt_steps :
        See :class:`SegmentSettings` (:attr:`segmentation`).
    device, tile_size, batch_size :
        See :class:`NetSettings` (:attr:`net`).
    """

    model: str | None = None
    bgnd_interval: int | str = DEFAULT_BGND_INTERVAL
    background: str = "fused"
    threshold: str = "delta"
    delta: float | None = None
    min_area: int | None = None
    dilation: int = DEFAULT_DILATION
    save_interval: int | str = DEFAULT_SAVE_INTERVAL
    device: str = "auto"
    tile_size: int | None = None
    batch_size: int | None = None
    dark_worms: bool | None = None
    worm_filter: str | None = None
    adapt_steps: int = DEFAULT_ADAPT_STEPS
    microns_per_pixel: float | None = None

    def __post_init__(self):
        # Paths and torch devices as the strings they name: the settings are compared, hashed and saved.
        for name in ("model", "worm_filter"):
            if getattr(self, name) is not None:
                object.__setattr__(self, name, os.fspath(getattr(self, name)))
        object.__setattr__(self, "device", str(self.device))
        for name in ("bgnd_interval", "save_interval"):
            # Checked and normalised now ("250", "10s"); seconds become frames once a video's fps is known.
            object.__setattr__(self, name, str(parse_span(getattr(self, name), f"--{name.replace('_', '-')}")))
        self.segmentation, self.net  # noqa: B018 (the parts check themselves when built)
        _check_at_least(self.dilation, 0, "--dilation")
        if self.dilation > LARGEST_DILATION:
            raise SettingsError(f"--dilation must be at most {LARGEST_DILATION}, got {self.dilation}")
        _check_positive(self.microns_per_pixel, "--microns-per-pixel")

    @property
    def segmentation(self) -> SegmentSettings:
        """The settings of the segmentation."""
        return SegmentSettings(**{field.name: getattr(self, field.name) for field in fields(SegmentSettings)})

    @property
    def net(self) -> NetSettings:
        """The settings of the net."""
        return NetSettings(**{field.name: getattr(self, field.name) for field in fields(NetSettings)})

    def for_video(
        self, fps: float, bit_depth: int, segmentation: SegmentSettings, net: NetSettings
    ) -> VideoMaskSettings:
        """These settings resolved for a video of ``fps`` frames per second and ``bit_depth`` bits, with the
        ``segmentation`` and ``net`` a :class:`~wormclean.predict.cleaner.Cleaner` resolved (``dark_worms`` from
        its model, the device and its tiling; the cleaner's :meth:`~wormclean.predict.cleaner.Cleaner.for_video`
        passes them)."""
        return VideoMaskSettings(
            bgnd_interval_frames=FrameSpan.parse(self.bgnd_interval).frames(fps),
            save_interval_frames=FrameSpan.parse(self.save_interval).frames(fps),
            delta=segmentation.delta_for(bit_depth),
            threshold=segmentation.threshold,
            min_area=segmentation.min_area,
            background=segmentation.background,
            dark_worms=segmentation.dark_worms,
            device=net.device,
            tile_size=net.tile_size,
            batch_size=net.batch_size,
        )

    def to_dict(self) -> dict:
        """The settings as plain values."""
        return asdict(self)


@dataclass(frozen=True)
class VideoMaskSettings:
    """What :class:`MaskSettings` become for one video: spans in frames, the threshold in its grey levels, and
    what the cleaner resolved (polarity, device, tiling). Recorded in the output as ``resolved``; the background
    schedule (:class:`~wormclean.predict.windows.BackgroundSchedule`) takes it.

    Attributes
    ----------
    bgnd_interval_frames : int
        Frames per background window (:attr:`MaskSettings.bgnd_interval`).
    save_interval_frames : int
        Frames between whole frames in ``/full_data``.
    delta : float
        The ``"delta"`` threshold in grey levels.
    threshold, min_area, background : str, int or None, str
        As in :class:`SegmentSettings`.
    dark_worms : bool
        Worms darker than the background (from the model unless given).
    device : str
        Where the net runs (``"cpu"``, ``"cuda:0"``).
    tile_size, batch_size : int
        The net's tiling on that device.
    """

    bgnd_interval_frames: int
    save_interval_frames: int
    delta: float
    threshold: str
    min_area: int | None
    background: str
    dark_worms: bool
    device: str
    tile_size: int
    batch_size: int

    def to_dict(self) -> dict:
        """The settings as plain values."""
        return asdict(self)


# --- fit -------------------------------------------------------------------------------------------------------

FINE_TUNING_STEPS = 500
"""Steps of ``wormclean fit`` when it starts from a model (``--init``), unless ``--steps`` says otherwise."""

REFERENCE_BATCH = 36
REFERENCE_LEARNING_RATE = 1e-4


@dataclass(frozen=True)
class TrainSettings:
    """Settings of one training run.

    ``width`` and ``depth`` of None take the architecture of ``--init``/``--resume`` or else the paper's
    (48, 5). ``learning_rate`` of None is 1e-4 at batch 36, scaled linearly with the batch size.
    """

    steps: int = 10000
    batch_size: int = 16
    width: int | None = None
    depth: int | None = None
    learning_rate: float | None = None
    device: str = "auto"
    workers: int = 0
    seed: int = 0
    validate_every: int = 250
    time_limit_s: float | None = None

    def __post_init__(self):
        if self.steps < 1:
            raise SettingsError(f"--steps must be at least 1, got {self.steps}")
        if self.batch_size < 1:
            raise SettingsError(f"--batch-size must be at least 1, got {self.batch_size}")
        for name in ("width", "depth"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise SettingsError(f"--{name} must be at least 1, got {getattr(self, name)}")
        if self.seed < 0:
            raise SettingsError(f"--seed must be 0 or more, got {self.seed}")
        if self.workers < 0:
            raise SettingsError(f"--workers must be 0 or more, got {self.workers}")
        if self.validate_every < 1:
            raise SettingsError(f"validate_every must be at least 1, got {self.validate_every}")
        if self.time_limit_s is not None and not self.time_limit_s > 0:
            raise SettingsError(f"the time limit must be positive, got {self.time_limit_s}")
        if self.learning_rate is not None and not 0 < self.learning_rate < math.inf:
            raise SettingsError(f"the learning rate must be positive, got {self.learning_rate}")

    @property
    def lr(self) -> float:
        """The learning rate: ``learning_rate``, or the default for ``batch_size``."""
        if self.learning_rate is not None:
            return self.learning_rate
        return REFERENCE_LEARNING_RATE * self.batch_size / REFERENCE_BATCH


@dataclass(frozen=True)
class VideoFitSettings:
    """What a model learns from videos (``wormclean fit VIDEOS``): lagged frame pairs cut into patches.

    Parameters
    ----------
    lag : str, optional
        Frames (``"150"``) or seconds (``"200s"``) between the two frames of a pair; None: half the video, at
        most 60 s (:func:`~wormclean.data.pairs.resolve_lag`).
    patch_size : int
        Side of the square training patches, pixels.
    val_fraction : float
        Fraction of the videos held out for validation, in [0, 1).
    val_batches, val_batch_size : int
        Fixed validation batches drawn once.
    n_key_frames : int
        Frames per video whose pairs are scored for change (see :class:`~wormclean.data.patches.LaggedPatchDataset`).
    min_change : float
        Drop frame pairs whose largest smoothed change is below this many grey levels.
    change_fraction : float
        Fraction of patches centred on where the pair changed most (moving worms), in [0, 1].
    """

    lag: str | None = None
    patch_size: int = 256
    val_fraction: float = 0.1
    val_batches: int = 4
    val_batch_size: int = 8
    n_key_frames: int = 8
    min_change: float = 0.0
    change_fraction: float = 0.0

    def __post_init__(self):
        if self.lag is not None:
            object.__setattr__(self, "lag", str(parse_span(self.lag, "--lag")))
        _check_at_least(self.patch_size, 16, "--patch-size")
        if not 0 <= self.val_fraction < 1:
            raise SettingsError(f"--val-fraction must be in [0, 1), got {self.val_fraction}")
        _check_at_least(self.val_batches, 0, "val_batches")
        _check_at_least(self.val_batch_size, 1, "val_batch_size")
        _check_at_least(self.n_key_frames, 1, "n_key_frames")
        _check_at_least(self.min_change, 0, "--min-change")
        if not 0 <= self.change_fraction <= 1:
            raise SettingsError(f"--focus-changes must be in [0, 1], got {self.change_fraction}")

    @property
    def lag_span(self) -> FrameSpan | None:
        """The lag as a :class:`~wormclean.units.FrameSpan` (None: automatic)."""
        return None if self.lag is None else FrameSpan.parse(self.lag)


SYNTHESIS_MODES = ("keep", "remove")
"""keep: the target classes stay and the others vary; remove: the targets vary and are taken away."""


@dataclass(frozen=True)
class SynthesisSettings:
    """How synthetic pairs are drawn.

    Parameters
    ----------
    patch_size : int
        Side of the square images, pixels.
    mode : {"keep", "remove"}
        Keep the target classes (others and background vary) or remove them (targets vary).
    max_overlap : float
        Largest fraction of an object's visible area that other objects may cover, in [0, 1).
        The paper used 0.5 to 0.9.
    n_targets, n_others : (int, int)
        Inclusive range of how many target and other crops are tried per image.
    max_coverage : float
        The varying objects (keep: others; remove: targets) stop being added once they cover this fraction of
        the image, in (0, 1]. Below one half, most draws leave any given pixel free of them, so their median
        there is the background: this is what lets the L1 loss take them away, whatever the crop sizes.
    zoom : (float, float)
        Range of the scale factor applied to crops.
    intensity_scale : (float, float)
        Range of the factor on a crop's (background-subtracted) values and on background patches.
    intensity_offset : (float, float)
        Range of the value added inside a crop, as a fraction of the full range.
    placement_tries : int
        Random positions tried per crop before it is left out.
    clean_target : bool
        Train towards the shared layer instead of the second image (see the module docstring).
    """

    patch_size: int = 256
    mode: str = "keep"
    max_overlap: float = 0.7
    n_targets: tuple[int, int] = (1, 3)
    n_others: tuple[int, int] = (2, 10)
    max_coverage: float = 0.4
    zoom: tuple[float, float] = (0.85, 1.15)
    intensity_scale: tuple[float, float] = (0.85, 1.15)
    intensity_offset: tuple[float, float] = (-0.02, 0.02)
    placement_tries: int = 20
    clean_target: bool = False

    def __post_init__(self):
        if self.patch_size < 16:
            raise SettingsError(f"--patch-size must be at least 16, got {self.patch_size}")
        if self.mode not in SYNTHESIS_MODES:
            raise SettingsError(f"mode must be 'keep' or 'remove', got {self.mode!r}")
        if not 0 <= self.max_overlap < 1:
            raise SettingsError(f"--max-overlap must be in [0, 1), got {self.max_overlap}")
        for name in ("n_targets", "n_others"):
            low, high = getattr(self, name)
            if not 0 <= low <= high:
                raise SettingsError(f"{name} must be a range 0 <= low <= high, got {getattr(self, name)}")
        for name in ("zoom", "intensity_scale"):
            low, high = getattr(self, name)
            if not 0 < low <= high:
                raise SettingsError(f"{name} must be a positive range low <= high, got {getattr(self, name)}")
        low, high = self.intensity_offset
        if not -1 <= low <= high <= 1:
            raise SettingsError(f"intensity_offset must be a range within [-1, 1], got {self.intensity_offset}")
        if not 0 < self.max_coverage <= 1:
            raise SettingsError(f"max_coverage must be in (0, 1], got {self.max_coverage}")
        if self.placement_tries < 1:
            raise SettingsError(f"placement_tries must be at least 1, got {self.placement_tries}")


@dataclass(frozen=True)
class CropFitSettings:
    """What a still-image model learns from a CROPS_DIR (``wormclean fit --crops``): synthetic pairs.

    Parameters
    ----------
    synthesis : SynthesisSettings
        How the pairs are drawn (patch size, keep or remove, overlap, ...).
    log_scale : bool
        Normalise ``log1p`` of the working values (for data spanning decades, e.g. 16-bit fluorescence).
    validation_fraction : float
        Fraction of source images whose crops make only the validation pairs, in [0, 1).
    validation_batches, validation_batch_size : int
        Fixed validation batches drawn once.
    max_crops_per_class : int or None
        At most this many crops of each class in memory.
    """

    synthesis: SynthesisSettings = SynthesisSettings()
    log_scale: bool = False
    validation_fraction: float = 0.1
    validation_batches: int = 2
    validation_batch_size: int = 8
    max_crops_per_class: int | None = 2000

    def __post_init__(self):
        if not 0 <= self.validation_fraction < 1:
            raise SettingsError(f"the validation fraction must be in [0, 1), got {self.validation_fraction}")
        _check_at_least(self.validation_batches, 0, "validation_batches")
        _check_at_least(self.validation_batch_size, 1, "validation_batch_size")
        _check_at_least(self.max_crops_per_class, 1, "max_crops_per_class")

    @classmethod
    def from_options(cls, **options) -> CropFitSettings:
        """Settings from flat keywords: those of :class:`SynthesisSettings` (``patch_size=64``,
        ``n_targets=(1, 2)``) go to ``synthesis``, the others are this class's own."""
        synthesis_names = {field.name for field in fields(SynthesisSettings)}
        synthesis = {name: value for name, value in options.items() if name in synthesis_names}
        own = {name: value for name, value in options.items() if name not in synthesis_names}
        return cls(synthesis=SynthesisSettings(**synthesis), **own)


# --- still images: crops and filter ---------------------------------------------------------------------------

COLOUR_MODES = ("grey", "invert", "rgb")
"""Working spaces of still images: grey (bright objects), invert (the complement: dark objects), rgb."""


@dataclass(frozen=True)
class CropSettings:
    """Settings of crop extraction.

    Parameters
    ----------
    colour : {"auto", "grey", "invert", "rgb"}
        Working space. ``auto``: ``rgb`` for colour images, else ``grey`` or ``invert`` by ``dark_objects``.
    dark_objects : bool or None
        Objects darker than their background (complement taken for ``rgb``/``auto``); None guesses it
        from the images (see :func:`~wormclean.stills.colour.objects_are_dark`).
    log_threshold : bool
        Otsu on ``log1p`` of the working image rather than on its values.
    min_area : int
        Smallest object kept, in pixels.
    margin : int
        Pixels of zeroed border around each crop (room for interpolation when it is rotated).
    background_size : int
        Side of the square background patches (clipped to the image).
    backgrounds_per_image : int
        Background patches cut at random from each image.
    background_grow : int
        Foreground is grown by this many pixels before it is cleared from background patches (halos).
    box_ellipse : bool
        Boxes mode: cut the foreground of a box to its inscribed ellipse before keeping the largest component.
    min_visible : float
        Background patches with less visible background than this fraction are not kept.
    focus_sigma : float
        Gaussian sigma (pixels) of the Laplacian of Gaussian in focus mode.
    focus_quantiles : (float, float)
        Score quantiles below which components are ``blurred`` and above which ``focused``.
    seed : int
        Where background patches are cut.
    """

    colour: str = "auto"
    dark_objects: bool | None = None
    log_threshold: bool = True
    min_area: int = 20
    margin: int = 2
    background_size: int = 256
    backgrounds_per_image: int = 4
    background_grow: int = 3
    box_ellipse: bool = True
    min_visible: float = 0.1
    focus_sigma: float = 2.0
    focus_quantiles: tuple[float, float] = (1 / 3, 2 / 3)
    seed: int = 0

    def __post_init__(self):
        if self.colour not in ("auto", *COLOUR_MODES):
            raise SettingsError(f"--colour must be auto, grey, invert or rgb, got {self.colour!r}")
        if self.min_area < 1:
            raise SettingsError(f"--min-area must be at least 1, got {self.min_area}")
        if self.margin < 0 or self.background_grow < 0:
            raise SettingsError("margin and background_grow must be 0 or more")
        if self.background_size < 8:
            raise SettingsError(f"--background-size must be at least 8, got {self.background_size}")
        if self.backgrounds_per_image < 0:
            raise SettingsError(f"--backgrounds-per-image must be 0 or more, got {self.backgrounds_per_image}")
        if not 0 <= self.min_visible < 1:
            raise SettingsError(f"min_visible must be in [0, 1), got {self.min_visible}")
        if self.focus_sigma <= 0:
            raise SettingsError(f"focus_sigma must be positive, got {self.focus_sigma}")
        low, high = self.focus_quantiles
        if not 0 < low <= high < 1:
            raise SettingsError(f"focus quantiles must satisfy 0 < low <= high < 1, got {self.focus_quantiles}")


@dataclass(frozen=True)
class DetectionSettings:
    """How filtered images become masks and boxes.

    Parameters
    ----------
    min_area : int
        Smallest object, in pixels.
    min_contrast : float
        The threshold is at least this far above the output's median (its background), as a fraction of the
        full range: an output with no object left is not split into noise by Otsu.
    close_radius : int
        Morphological closing (disc radius, pixels) joining the pieces of one object before labelling.
    """

    min_area: int = 100
    min_contrast: float = 0.05
    close_radius: int = 0

    def __post_init__(self):
        if self.min_area < 1:
            raise SettingsError(f"--min-area must be at least 1, got {self.min_area}")
        if not 0 <= self.min_contrast < 1:
            raise SettingsError(f"--min-contrast must be in [0, 1), got {self.min_contrast}")
        if self.close_radius < 0:
            raise SettingsError(f"--close-radius must be 0 or more, got {self.close_radius}")
