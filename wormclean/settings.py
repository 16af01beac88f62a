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

DEVICES = ("auto", "cpu", "cuda")
"""Where the net runs (``cuda:N`` picks a GPU); auto takes CUDA when there is a GPU."""

DEFAULT_DELTA_8BIT = 10.0
"""Difference (grey levels of an 8-bit video) above which a pixel is a worm; scaled by ``2 ** (bits - 8)``."""

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
        Threshold in grey levels for ``"delta"``; default :func:`default_delta` of the video's bit depth.
    min_area : int, optional
        Smallest worm blob in pixels; default from the size of the worms the video shows moving (fused and
        temporal backgrounds), else :data:`DEFAULT_MIN_AREA`.
    background : {"fused", "net", "temporal"}
        Where the background comes from (:data:`BACKGROUND_MODES`).
    dark_worms : bool, optional
        Worms darker than the background; default from the model.
    """

    threshold: str = "delta"
    delta: float | None = None
    min_area: int | None = None
    background: str = "fused"
    dark_worms: bool | None = None

    def __post_init__(self):
        _check_choice(self.threshold, THRESHOLD_METHODS, "threshold")
        _check_positive(self.delta, "--delta")
        _check_at_least(self.min_area, 0, "--min-area")
        _check_choice(self.background, BACKGROUND_MODES, "background")

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
        One background per this many frames (``250``) or seconds (``"10s"``).
    dilation : int
        Radius in pixels by which worm regions grow before the frame is masked (``/mask``).
    save_interval : int or str
        A whole frame goes to ``/full_data`` every this many frames (or seconds, ``"200s"``).
    microns_per_pixel : float, optional
        Pixel size, stored in the output.
    background, threshold, delta, min_area, dark_worms :
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
    microns_per_pixel: float | None = None

    def __post_init__(self):
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
        self, fps: float, bit_depth: int, segmentation: SegmentSettings | None = None
    ) -> VideoMaskSettings:
        """These settings resolved for a video of ``fps`` frames per second and ``bit_depth`` bits;
        ``segmentation``, if given, is the one that segments instead of :attr:`segmentation` (a cleaner made
        apart from these settings)."""
        return VideoMaskSettings(
            bgnd_interval_frames=FrameSpan.parse(self.bgnd_interval).frames(fps),
            save_interval_frames=FrameSpan.parse(self.save_interval).frames(fps),
            delta=(segmentation or self.segmentation).delta_for(bit_depth),
        )

    def to_dict(self) -> dict:
        """The settings as plain values."""
        return asdict(self)


@dataclass(frozen=True)
class VideoMaskSettings:
    """What :class:`MaskSettings` become for one video: spans in frames, the threshold in its grey levels.

    Attributes
    ----------
    bgnd_interval_frames : int
        Frames per background (the net's frames 0, b, 2b, ... or windows of b frames).
    save_interval_frames : int
        Frames between whole frames in ``/full_data``.
    delta : float
        The ``"delta"`` threshold in grey levels.
    """

    bgnd_interval_frames: int
    save_interval_frames: int
    delta: float

    def to_dict(self) -> dict:
        """The settings as plain values."""
        return asdict(self)
