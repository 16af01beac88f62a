"""Semi-real plates: real worms pasted onto real, worm-free plate backgrounds, with known truth.

The simulator's plates are not the world. Here both parts come from real recordings:

* the worms are the 720 skeletonised frames of one real dark worm on agar (``../shared/data/wormpose``): for
  each, a mask drawn from its skeleton and width, and its darkness layer (the crop's agar level minus the crop,
  inside the slightly grown mask);
* the backgrounds are named crops of real plates (``../shared/data/realplates``) with real rims, marker-pen
  lines, lawn edges, vignetting, debris and tile seams, from which the real worms were painted out.

The backgrounds come in three sets, each from plate images the others do not use:

* :data:`TUNE` may be looked at while changing wormclean, and the worm filter prior is trained on it
  (``examples/train_worm_filter.py --real``), so it cannot tell priors or settings apart;
* :data:`VALIDATE` is for choosing between priors and settings (a retrained prior against the shipped one, a
  threshold): it is never trained on (``examples/train_worm_filter.py`` checks that its ``WHOLE_PLATES`` leave
  these images out) and its figures are never reported as held-out ones, since choosing on them spends them;
* :data:`REPORT` is held out: neither trained on nor chosen on, only run for the figures that are reported.

A plate follows the paper's additive image model: ``frame = gain[t] * background - sum of worm layers + noise``,
rounded and clipped to uint8. Moving worms crawl: they step through consecutive real postures while sliding
along their heading; still worms keep one posture in one place, some on structure and some on plain agar.

>>> layers = real_worm_layers("../shared/data/wormpose")  # doctest: +SKIP
>>> background = load_background(REPORT[0], "../shared/data/realplates")  # doctest: +SKIP
>>> plate = compose_plate(background, layers, n_worms=10, still_fraction=0.5, n_frames=60, seed=1)  # doctest: +SKIP
>>> write_plate("plate.mp4", plate)  # doctest: +SKIP
"""

from __future__ import annotations

import logging
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import h5py
import numpy as np

from wormclean.errors import SettingsError
from wormclean.io.atomic import FailSafeFile, atomic_output
from wormclean.io.writer import EncoderSettings, VideoWriter
from wormclean.sim.truth import TruthWriter, truth_path
from wormclean.sim.write import SIMULATION_ENCODER, check_simulation_outputs

log = logging.getLogger(__name__)

# The tube is grown by this many pixels for the darkness layer: the real worm's blurred edge lies just outside
# the width Tierpsy measured, and cutting it off would paste a worm with a hard rim.
LAYER_GROWTH = 2
# A background pixel is "structure" where its black-hat (dark detail narrower than a worm length) exceeds this.
STRUCTURE_LEVEL = 20.0


# ---------------------------------------------------------------------------------------------------------------
# Real worms


def worm_tube(skeleton: np.ndarray, width: np.ndarray, shape: tuple[int, int], grow: float = 0.0) -> np.ndarray:
    """The mask of a worm drawn as a tube: a disc of the local width at each skeleton point, joined by segments.

    Parameters
    ----------
    skeleton : (n_points, 2) float
        x, y of the midline in pixels.
    width : (n_points,) float
        Body width at each point, in pixels.
    shape
        ``(height, width)`` of the mask.
    grow
        Pixels added to the radius everywhere.

    Returns
    -------
    np.ndarray
        ``shape`` bool, true inside the tube.
    """
    # Draw at 4x sub-pixel precision (shift=2) so thin worms are not rounded to whole pixels.
    scale = 4
    mask = np.zeros(shape, np.uint8)
    points = np.round(skeleton * scale).astype(np.int32)
    radii = np.maximum(width / 2 + grow, 0.5)
    for k in range(len(points)):
        radius = int(round(radii[k] * scale))
        cv2.circle(mask, tuple(int(v) for v in points[k]), radius, 1, thickness=-1, lineType=cv2.LINE_8, shift=2)
        if k + 1 < len(points):
            thickness = max(1, int(round(2 * min(radii[k], radii[k + 1]))))
            cv2.line(mask, tuple(int(v) for v in points[k]), tuple(int(v) for v in points[k + 1]), 1,
                     thickness=thickness, lineType=cv2.LINE_8, shift=2)
    return mask.view(bool)


def worm_layer(crop: np.ndarray, skeleton: np.ndarray, width: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One real worm's darkness layer and mask from its crop and skeleton.

    Parameters
    ----------
    crop : (height, width) uint8
        The grey crop around a dark worm on agar.
    skeleton : (n_points, 2) float
        x, y of the midline in the crop's pixels (no NaN).
    width : (n_points,) float
        Body width along the midline, in pixels.

    Returns
    -------
    layer : (height, width) float32
        ``agar level - crop`` inside the tube grown by :data:`LAYER_GROWTH`, clipped to >= 0; 0 elsewhere. The
        agar level is the median of the crop outside the grown tube.
    mask : (height, width) bool
        The tube itself.
    """
    mask = worm_tube(skeleton, width, crop.shape)
    grown = worm_tube(skeleton, width, crop.shape, grow=LAYER_GROWTH)
    outside = crop[~grown]
    agar = float(np.median(outside)) if outside.size else float(crop.max())
    layer = np.where(grown, np.clip(agar - crop.astype(np.float32), 0, None), 0).astype(np.float32)
    return layer, mask


def real_worm_layers(folder: str | os.PathLike, frames: slice | None = None) -> list[tuple[np.ndarray, np.ndarray]]:
    """The darkness layers and masks of the real worm in a wormpose-style folder, in time order.

    Parameters
    ----------
    folder
        A folder with ``00000.png``, ``00001.png``, ... (grey crops of one dark worm) and ``features.h5`` holding
        ``skeletons`` ``(n, n_points, 2)`` (x, y in crop pixels, NaN where the worm was not skeletonised) and
        ``width`` ``(n, n_points)``.
    frames
        Only these frames of the recording (default all).

    Returns
    -------
    list of (layer, mask)
        For each frame with a skeleton, in time order: ``(height, width) float32`` darkness (>= 0) and
        ``(height, width) bool`` mask, the size of that frame's crop. Consecutive entries are consecutive
        postures (except across frames without a skeleton).
    """
    folder = Path(folder)
    with h5py.File(folder / "features.h5", "r") as features:
        skeletons = features["skeletons"][...]
        widths = features["width"][...]
    indices = np.arange(len(skeletons))[frames if frames is not None else slice(None)]
    layers = []
    for index in indices:
        skeleton, width = skeletons[index], widths[index]
        if np.isnan(skeleton).any() or np.isnan(width).any():
            continue
        crop = cv2.imread(str(folder / f"{index:05d}.png"), cv2.IMREAD_GRAYSCALE)
        if crop is None:
            raise FileNotFoundError(f"no crop {folder / f'{index:05d}.png'}")
        layers.append(worm_layer(crop, skeleton, width))
    log.debug("%d real worm layers from %s", len(layers), folder)
    return layers


# ---------------------------------------------------------------------------------------------------------------
# Real backgrounds


@dataclass(frozen=True)
class BackgroundCrop:
    """A named crop of a real plate image, to be used (worms painted out) as a background.

    Attributes
    ----------
    name
        Short name used in tables.
    source
        Image path relative to the ``realplates`` folder.
    box
        ``(x, y, width, height)`` in the source image's pixels.
    structure
        What the crop shows, for people reading a table.
    paint
        Extra ``(x, y, width, height)`` boxes, in crop pixels, painted out as well: worms that the automatic
        detector cannot separate from structure (a worm touching a rim or a line), found by looking.
    detect_level
        Black-hat level of :func:`worm_like_blobs`, the automatic worm detector; ``None`` turns it off where it
        would paint real structure away (lawn texture and debris of the lifespan scans), leaving ``paint``.
    """

    name: str
    source: str
    box: tuple[int, int, int, int]
    structure: str
    paint: tuple[tuple[int, int, int, int], ...] = ()
    detect_level: float | None = 25.0


TUNE = (
    BackgroundCrop("chemo1 line+rim", "quantworm_chemotaxis_counter/1/assembled_org.jpeg", (1600, 825, 768, 768),
                   "marker-pen line ending at the thick dark rim, vignetting, tile seams",
                   paint=((668, 78, 40, 30), (678, 358, 28, 28), (222, 110, 38, 38), (638, 668, 52, 42))),
    BackgroundCrop("chemo1 agar", "quantworm_chemotaxis_counter/1/assembled_org.jpeg", (750, 1400, 640, 640),
                   "plain agar, faint tile seams, specks"),
    BackgroundCrop("lifespan10 rim+clamp", "quantworm_lifespan/10/assembled.jpeg", (1250, 50, 640, 640),
                   "plate holder bar and corner, round clamp, glossy double rim, textured agar, tile seams",
                   paint=((12, 362, 38, 30), (215, 528, 40, 22)), detect_level=None),
)
# Lifespan plate 9 and chemotaxis plate 7, in no other set and not in the shipped prior's training. Chemotaxis plate
# 7 is over-exposed (its agar is 255 throughout), so it gives no plain-agar crop: one would be blank.
VALIDATE = (
    BackgroundCrop("chemo7 line+rim", "quantworm_chemotaxis_counter/7/assembled_org.jpeg", (0, 800, 768, 768),
                   "marker-pen line crossing the thick rim, a pen-like object at its end, dark shapes in the rim, "
                   "vignetting, tile seams, saturated agar",
                   paint=((541, 41, 36, 30), (707, 305, 36, 34)), detect_level=None),
    BackgroundCrop("lifespan9 clamp+rim", "quantworm_lifespan/9/assembled.jpeg", (735, 120, 640, 640),
                   "foot of the holder clamp, dark rim arc, neighbouring rims, textured agar, debris clumps, "
                   "tile seams", paint=((309, 571, 40, 63), (553, 384, 23, 14), (572, 390, 22, 17), (591, 396, 24, 17)),
                   detect_level=None),
)
REPORT = (
    BackgroundCrop("chemo3 line+rim", "quantworm_chemotaxis_counter/3/assembled_org.jpeg", (1750, 825, 750, 750),
                   "marker-pen line reaching the rim, double rim, vignetting, tile seams",
                   paint=((358, 172, 28, 28), (496, 402, 42, 42))),
    BackgroundCrop("chemo3 agar", "quantworm_chemotaxis_counter/3/assembled_org.jpeg", (625, 1400, 640, 640),
                   "plain agar, vignetting toward the rim, specks"),
    BackgroundCrop("lifespan8 rims+debris", "quantworm_lifespan/8/assembled.jpeg", (0, 450, 640, 640),
                   "two neighbouring rims, holder clip, dark rim shadow, vignetted agar, debris, tile seams",
                   paint=((598, 265, 36, 45), (565, 440, 35, 30)), detect_level=None),
)


def plate_of(source: str) -> str:
    """The plate a ``realplates`` image shows: its folder, without the ``__1`` of a plate's second scan.

    Two images of one plate (``quantworm_lifespan/8/assembled.jpeg`` and ``quantworm_lifespan/8__1/...``, scanned
    two minutes apart) share their background, so a plate, not a file, is what a set must keep to itself.
    """
    return str(Path(source).parent).removesuffix("__1")


def worm_like_blobs(image: np.ndarray, worm_width: float = 8.0, level: float = 25.0,
                    min_length: float = 15.0, max_length: float = 150.0) -> np.ndarray:
    """Dark, worm-shaped blobs of a grey image: candidates for painting out.

    A blob is a connected part of the black-hat (dark detail narrower than ``4 * worm_width``) above ``level``
    whose longest side is ``min_length``-``max_length`` pixels and which is thin (area below that length times
    ``1.5 * worm_width``). Rims and marker lines are far longer, so they stay.

    Returns
    -------
    np.ndarray
        ``image.shape`` bool.
    """
    size = int(4 * worm_width) | 1
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (size, size))
    detail = cv2.morphologyEx(image, cv2.MORPH_BLACKHAT, kernel)
    n, labels, stats, _ = cv2.connectedComponentsWithStats((detail > level).astype(np.uint8), connectivity=8)
    keep = np.zeros(n, bool)
    for k in range(1, n):
        length = max(stats[k, cv2.CC_STAT_WIDTH], stats[k, cv2.CC_STAT_HEIGHT])
        area = stats[k, cv2.CC_STAT_AREA]
        keep[k] = min_length <= length <= max_length and area <= 1.5 * worm_width * length
    return keep[labels]


def paint_out(image: np.ndarray, mask: np.ndarray, margin: int = 3) -> np.ndarray:
    """``image`` with the pixels of ``mask`` (grown by ``margin``) filled in from around them (OpenCV Telea)."""
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * margin + 1, 2 * margin + 1))
    grown = cv2.dilate(mask.astype(np.uint8), kernel)
    return cv2.inpaint(image, grown, 2 * margin, cv2.INPAINT_TELEA)


def load_background(crop: BackgroundCrop, folder: str | os.PathLike) -> np.ndarray:
    """A worm-free real background: the crop of its plate image with worms painted out.

    Parameters
    ----------
    crop
        Which image and box (see :data:`TUNE`, :data:`VALIDATE` and :data:`REPORT`).
    folder
        The ``realplates`` folder.

    Returns
    -------
    np.ndarray
        ``(height, width) uint8``.
    """
    path = Path(folder) / crop.source
    image = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    if image is None:
        raise FileNotFoundError(f"cannot read {path}")
    x, y, w, h = crop.box
    if x + w > image.shape[1] or y + h > image.shape[0]:
        raise SettingsError(f"{crop.name}: box {crop.box} is outside {path.name} ({image.shape[1]}x{image.shape[0]})")
    # Detect on a margin around the box so worms cut by its border are seen whole.
    pad = 40
    top, left = max(0, y - pad), max(0, x - pad)
    region = image[top:y + h + pad, left:x + w + pad]
    mask = worm_like_blobs(region, level=crop.detect_level) if crop.detect_level is not None else np.zeros(
        region.shape, bool)
    for px, py, pw, ph in crop.paint:
        mask[py + y - top:py + y - top + ph, px + x - left:px + x - left + pw] = True
    painted = paint_out(region, mask)
    return np.ascontiguousarray(painted[y - top:y - top + h, x - left:x - left + w])


def structure_map(background: np.ndarray, worm_length: float) -> np.ndarray:
    """Dark structure of a background: its black-hat with a disc about a worm length wide, ``float32``.

    Rims, lines, lawn edges and debris light up; flat agar and slow vignetting stay near 0.
    """
    size = int(worm_length) | 1
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (size, size))
    return cv2.morphologyEx(background, cv2.MORPH_BLACKHAT, kernel).astype(np.float32)


# ---------------------------------------------------------------------------------------------------------------
# Plates

# The wormpose worm's length in its own pixels (the median of its skeletons' lengths), used to scale it.
REAL_WORM_LENGTH = 89.0
# A still worm "on structure" is put where the background is structured but not so dark that a dark worm on it
# would be invisible: a worm cannot be darker than black, so on a black rim it would not be there to find.
MIN_VISIBLE_LEVEL = 80.0
# Where the background is darker than this (a black rim, the ink of a marker line), a pasted worm is clipped to
# black and cannot be seen, yet the truth would hold it: worms are placed so that their bodies stay off such
# places (moving worms: at least MIN_SEEN_MOVING of the body in every frame; still worms: MIN_SEEN_STILL).
SEEABLE_LEVEL = 30.0
MIN_SEEN_MOVING = 0.95
MIN_SEEN_STILL = 0.8
PLACEMENT_TRIES = 60
# Blur (in plate pixels) of a shrunk worm before it is sampled: about a pixel's own width.
ANTIALIAS_SIGMA = 0.4


@dataclass(frozen=True)
class PlateSettings:
    """How a semi-real plate is composed (sizes in pixels of the plate, times in plate frames).

    Parameters
    ----------
    n_worms
        Worms on the plate.
    still_fraction
        Fraction of them that lie still (rounded to whole worms).
    n_frames
        Frames of the video.
    seed
        Seed of every random choice; the same seed, background and layers give the same plate.
    worm_length
        Length the real worm (:data:`REAL_WORM_LENGTH` in its crops) is scaled to.
    speed
        Distance a moving worm slides along its heading per frame.
    posture_step
        Real frames (15 fps) a moving worm's posture advances per plate frame.
    on_structure_fraction
        Fraction of the still worms put on structure (rounded; see :func:`structure_map`), the rest on plain
        background.
    contrast
        Factor on the real worm's darkness (1: as recorded, about 90 grey levels at its darkest).
    noise_sigma
        Standard deviation of the Gaussian noise added to each frame, in grey levels.
    flicker
        Standard deviation of the per-frame gain around 1 (0.01 = 1 %).
    fps
        Frame rate written into the video.
    """

    n_worms: int = 10
    still_fraction: float = 0.5
    n_frames: int = 60
    seed: int = 0
    worm_length: float = 50.0
    speed: float = 3.0
    posture_step: int = 2
    on_structure_fraction: float = 0.5
    contrast: float = 1.0
    noise_sigma: float = 1.0
    flicker: float = 0.0
    fps: float = 2.0

    def __post_init__(self):
        checks = {
            "n_worms": self.n_worms >= 1, "n_frames": self.n_frames >= 2, "worm_length": self.worm_length > 4,
            "still_fraction": 0 <= self.still_fraction <= 1, "speed": self.speed >= 0,
            "posture_step": self.posture_step >= 0, "on_structure_fraction": 0 <= self.on_structure_fraction <= 1,
            "contrast": self.contrast > 0, "noise_sigma": self.noise_sigma >= 0,
            "flicker": 0 <= self.flicker < 0.5, "fps": self.fps > 0,
        }
        for name, ok in checks.items():
            if not ok:
                raise SettingsError(f"{name} out of range: {getattr(self, name)}")

    @property
    def n_still(self) -> int:
        """Number of still worms."""
        return int(round(self.n_worms * self.still_fraction))

    @property
    def n_on_structure(self) -> int:
        """Number of still worms put on structure."""
        return int(round(self.n_still * self.on_structure_fraction))

    def to_dict(self) -> dict:
        """The settings as plain values."""
        return asdict(self)


@dataclass
class SemiRealPlate:
    """A composed plate and its truth.

    Attributes
    ----------
    frames : (n_frames, height, width) uint8
        The video.
    labels : (n_frames, height, width) uint8
        0 background, ``k + 1`` where worm ``k`` is (later worms drawn over earlier ones where they cross).
    still : (n_worms,) bool
        Worms that lie still.
    on_structure : (n_worms,) bool
        Still worms that were put on structure.
    background : (height, width) float32
        The true background (before flicker and noise).
    gain : (n_frames,) float32
        Per-frame flicker gain: a frame is ``gain[t] * background - worms + noise``.
    settings : PlateSettings
    background_name : str
        Which background crop, for the truth file.
    """

    frames: np.ndarray
    labels: np.ndarray
    still: np.ndarray
    on_structure: np.ndarray
    background: np.ndarray
    gain: np.ndarray
    settings: PlateSettings
    background_name: str = ""

    @property
    def masks(self) -> np.ndarray:
        """``(n_frames, height, width) bool``, true on worms."""
        return self.labels > 0

    @property
    def size(self) -> tuple[int, int]:
        """``(height, width)`` of the frames."""
        return self.frames.shape[1], self.frames.shape[2]

    @property
    def n_frames(self) -> int:
        """Number of frames."""
        return self.frames.shape[0]

    def to_dict(self) -> dict:
        """What made the plate, stored as attributes of its truth file."""
        return {**self.settings.to_dict(), "size": self.size, "background_name": self.background_name,
                "semireal": True}


def _posed(layer: np.ndarray, mask: np.ndarray, angle: float, scale: float, centre_xy) -> tuple:
    """Turn and scale one real posture about its mask's centre and put that centre at ``centre_xy``.

    Returns ``(darkness, mask, top, left)``: a small window (float32, bool) and its place in plate pixels.
    """
    rows, cols = np.nonzero(mask)
    source_centre = (float(cols.mean()), float(rows.mean()))
    side = int(np.hypot(*layer.shape) * scale) + 4
    left, top = int(np.floor(centre_xy[0])) - side // 2, int(np.floor(centre_xy[1])) - side // 2
    matrix = cv2.getRotationMatrix2D(source_centre, angle, scale)
    matrix[:, 2] += (centre_xy[0] - left - source_centre[0], centre_xy[1] - top - source_centre[1])
    if scale < 1:
        # Shrinking samples the layer sparsely; blur it first, as a camera of coarser pixels would.
        layer = cv2.GaussianBlur(layer, (0, 0), ANTIALIAS_SIGMA / scale)
    darkness = cv2.warpAffine(layer, matrix, (side, side), flags=cv2.INTER_LINEAR)
    coverage = cv2.warpAffine(mask.astype(np.float32), matrix, (side, side), flags=cv2.INTER_LINEAR)
    return darkness, coverage > 0.5, top, left


def _overlap(canvas_shape, window_shape, top: int, left: int):
    """Slices of a canvas and of a window placed at (top, left) on it, over the part where they overlap."""
    height, width = canvas_shape
    t, le = max(top, 0), max(left, 0)
    b, r = max(min(top + window_shape[0], height), t), max(min(left + window_shape[1], width), le)
    return (slice(t, b), slice(le, r)), (slice(t - top, b - top), slice(le - left, r - left))


def _paste(canvas: np.ndarray, window: np.ndarray, top: int, left: int, combine) -> None:
    """``combine(canvas_part, window_part)`` on the overlap of ``window`` placed at (top, left) with ``canvas``."""
    on_canvas, in_window = _overlap(canvas.shape, window.shape, top, left)
    combine(canvas[on_canvas], window[in_window])


def _bounce(position: np.ndarray, low: float, high: float) -> np.ndarray:
    """Fold positions into ``[low, high]`` by reflection at both ends (a worm turns back at the border)."""
    span = high - low
    folded = np.mod(position - low, 2 * span)
    return low + np.where(folded > span, 2 * span - folded, folded)


def _heading(mask: np.ndarray, angle: float) -> float:
    """The body axis of a posture (its mask's principal axis) in degrees of the image, after turning by ``angle``.

    Image rows point down, so a turn of ``angle`` degrees counter-clockwise on screen subtracts it from the
    axis' angle measured with y down.
    """
    moments = cv2.moments(mask.astype(np.uint8), binaryImage=True)
    axis = 0.5 * np.degrees(np.arctan2(2 * moments["mu11"], moments["mu20"] - moments["mu02"]))
    return axis - angle


def compose_plate(
    background: np.ndarray,
    layers: list[tuple[np.ndarray, np.ndarray]],
    n_worms: int = 10,
    still_fraction: float = 0.5,
    n_frames: int = 60,
    seed: int = 0,
    background_name: str = "",
    **options,
) -> SemiRealPlate:
    """Compose a semi-real plate: real worms crawling or lying still on a real background.

    Each frame is ``gain[t] * background - sum of the worms' darkness + noise``, rounded and clipped to uint8
    (the paper's additive image model). Each worm is the real worm turned by its own random angle and scaled to
    ``worm_length``. A moving worm starts at a random real posture and steps ``posture_step`` postures per frame
    while sliding ``speed`` pixels per frame along its body axis (turning back at the border). A still worm
    keeps one posture in one place; the first ``n_on_structure`` of them are placed where their body covers as
    much structure (:func:`structure_map` above :data:`STRUCTURE_LEVEL`, background still brighter than
    :data:`MIN_VISIBLE_LEVEL`) as the tries find, the others where their body covers none. Worms keep off
    places too dark to show them (:data:`SEEABLE_LEVEL`; see :func:`_crawl` and :func:`_place_still`). Still
    worms do not overlap each other; moving worms may cross anything.

    Parameters
    ----------
    background : (height, width) uint8 or float
        A worm-free real background (see :func:`load_background`).
    layers
        Real postures in time order, from :func:`real_worm_layers`.
    n_worms, still_fraction, n_frames, seed
        See :class:`PlateSettings`.
    background_name
        Stored with the truth.
    **options
        Other :class:`PlateSettings` fields (``worm_length``, ``speed``, ``noise_sigma``, ``flicker``...).

    Returns
    -------
    SemiRealPlate
    """
    settings = PlateSettings(n_worms=n_worms, still_fraction=still_fraction, n_frames=n_frames, seed=seed, **options)
    if not layers:
        raise SettingsError("no real worm layers to compose a plate from")
    background = np.asarray(background, np.float32)
    height, width = background.shape
    scale = settings.worm_length / REAL_WORM_LENGTH
    margin = settings.worm_length / 2
    if min(height, width) <= 2 * margin + 1:
        raise SettingsError(f"background {width}x{height} is too small for worms {settings.worm_length:g} px long")
    seeds = np.random.SeedSequence(settings.seed).spawn(3 + settings.n_worms)
    choice_rng, noise_rng, flicker_rng = (np.random.default_rng(s) for s in seeds[:3])
    worm_rngs = [np.random.default_rng(s) for s in seeds[3:]]

    still = np.zeros(settings.n_worms, bool)
    still[choice_rng.choice(settings.n_worms, settings.n_still, replace=False)] = True
    on_structure = np.zeros(settings.n_worms, bool)
    on_structure[np.nonzero(still)[0][:settings.n_on_structure]] = True
    wobble = np.clip(flicker_rng.standard_normal(settings.n_frames), -3, 3)
    gain = (1.0 + settings.flicker * wobble).astype(np.float32)

    structure = (structure_map(np.clip(background, 0, 255).astype(np.uint8), settings.worm_length) > STRUCTURE_LEVEL)
    structure &= background >= MIN_VISIBLE_LEVEL
    seeable = background >= SEEABLE_LEVEL
    taken = np.zeros((height, width), bool)
    # Per worm, per frame: (posture index, angle, centre x, centre y).
    poses = []
    for k, rng in enumerate(worm_rngs):
        angle = float(rng.uniform(0, 360))
        if still[k]:
            index, angle, centre = _place_still(rng, layers, scale, structure, seeable, taken, on_structure[k],
                                                margin)
            _, mask, top, left = _posed(*layers[index], angle, scale, centre)
            _paste(taken, cv2.dilate(mask.astype(np.uint8), np.ones((5, 5), np.uint8)).view(bool), top, left,
                   lambda part, body: np.logical_or(part, body, out=part))
            poses.append([(index, angle, centre)] * settings.n_frames)
            continue
        indices, xs, ys = _crawl(rng, layers, scale, seeable, settings, angle, margin)
        poses.append([(int(i), angle, (float(x), float(y))) for i, x, y in zip(indices, xs, ys, strict=True)])

    frames = np.empty((settings.n_frames, height, width), np.uint8)
    labels = np.zeros((settings.n_frames, height, width), np.uint8)
    for t in range(settings.n_frames):
        canvas = gain[t] * background
        for k in range(settings.n_worms):
            index, angle, centre = poses[k][t]
            darkness, mask, top, left = _posed(*layers[index], angle, scale, centre)
            _paste(canvas, settings.contrast * darkness, top, left,
                   lambda part, dark: np.subtract(part, dark, out=part))
            _paste(labels[t], np.where(mask, k + 1, 0).astype(np.uint8), top, left,
                   lambda part, window: np.copyto(part, window, where=window > 0))
        if settings.noise_sigma > 0:
            canvas += noise_rng.normal(0.0, settings.noise_sigma, canvas.shape).astype(np.float32)
        frames[t] = np.clip(np.rint(canvas), 0, 255).astype(np.uint8)
    return SemiRealPlate(frames, labels, still, on_structure, background, gain, settings, background_name)


def _on(region: np.ndarray, layer_and_mask, angle: float, scale: float, centre) -> tuple[float, np.ndarray]:
    """The fraction of a posed worm's body that lies on ``region`` (bool), and its body on the canvas (bool
    window with its canvas slices) as ``(fraction, (body, on_canvas))``."""
    _, mask, top, left = _posed(*layer_and_mask, angle, scale, centre)
    on_canvas, in_window = _overlap(region.shape, mask.shape, top, left)
    body = mask[in_window]
    return (float(region[on_canvas][body].mean()) if body.any() else 0.0), (body, on_canvas)


def _crawl(rng, layers, scale: float, seeable: np.ndarray, settings: PlateSettings, angle: float, margin: float):
    """A moving worm's postures and centres, ``(indices, xs, ys)`` per frame: the first of the tried paths on
    which at least :data:`MIN_SEEN_MOVING` of its body is seeable in every frame, else the best tried."""
    height, width = seeable.shape
    frames = np.arange(settings.n_frames)
    best, best_seen = None, -1.0
    for _ in range(PLACEMENT_TRIES):
        start = int(rng.integers(len(layers)))
        heading = np.radians(_heading(layers[start][1], angle)) + (np.pi if rng.random() < 0.5 else 0.0)
        origin = rng.uniform((margin, margin), (width - margin, height - margin))
        xs = _bounce(origin[0] + settings.speed * frames * np.cos(heading), margin, width - margin)
        ys = _bounce(origin[1] + settings.speed * frames * np.sin(heading), margin, height - margin)
        indices = (start + settings.posture_step * frames) % len(layers)
        # Every third frame is enough: a worm moves a few pixels per frame.
        seen = min(_on(seeable, layers[indices[t]], angle, scale, (xs[t], ys[t]))[0] for t in frames[::3])
        if seen > best_seen:
            best, best_seen = (indices, xs, ys), seen
        if seen >= MIN_SEEN_MOVING:
            break
    return best


def _place_still(rng, layers, scale, structure, seeable, taken, on_structure: bool, margin: float):
    """Choose a still worm's posture, angle and centre, never over another still worm. On structure: the most
    structure under its body among the tries with at least :data:`MIN_SEEN_STILL` of it seeable. Off: no
    structure and all seeable (the first such try, else the best). Returns ``(index, angle, (x, y))``."""
    height, width = structure.shape
    if on_structure:
        rows, cols = np.nonzero(structure[int(margin):height - int(margin), int(margin):width - int(margin)])
        if not len(rows):
            raise SettingsError("the background has no structure to put a still worm on")
    best, best_score = None, -np.inf
    for _ in range(PLACEMENT_TRIES):
        index, angle = int(rng.integers(len(layers))), float(rng.uniform(0, 360))
        if on_structure:
            pick = int(rng.integers(len(rows)))
            centre = (float(cols[pick] + margin), float(rows[pick] + margin))
        else:
            centre = tuple(rng.uniform((margin, margin), (width - margin, height - margin)))
        covered, (body, on_canvas) = _on(structure, layers[index], angle, scale, centre)
        if np.any(taken[on_canvas][body]):
            continue
        seen = float(seeable[on_canvas][body].mean()) if body.any() else 0.0
        if on_structure and seen < MIN_SEEN_STILL:
            continue
        score = covered if on_structure else seen - covered
        if score > best_score:
            best, best_score = (index, angle, centre), score
        if not on_structure and covered == 0 and seen == 1:
            break
    if best is None:
        raise SettingsError("no free place for a still worm; use fewer worms or a larger background")
    return best


def write_plate(
    out_path: str | os.PathLike,
    plate: SemiRealPlate,
    overwrite: bool = False,
    encoder: EncoderSettings | None = None,
) -> Path:
    """Write a plate as a grey video and its truth as ``OUT.truth.h5`` beside it (both atomically).

    The truth file has the simulator's layout (:mod:`wormclean.sim.truth`; ``immobile`` holds the still worms),
    so :func:`~wormclean.sim.truth.read_truth` reads it.

    Parameters
    ----------
    out_path
        The video file; its extension picks the container.
    plate
        What to write.
    overwrite
        Replace existing files.
    encoder
        Codec settings; default the simulator's (H.264, CRF 18, preset ultrafast).

    Returns
    -------
    Path
        The video's path.
    """
    video, truth = check_simulation_outputs(out_path, overwrite)
    with atomic_output(video, overwrite) as video_part, atomic_output(truth, overwrite) as truth_part:
        with (
            VideoWriter(video_part, plate.settings.fps, encoder or SIMULATION_ENCODER) as writer,
            FailSafeFile(truth_part) as truth_file,  # HDF5 crashes the process when it cannot write
            TruthWriter(truth_file, plate, plate.background, plate.still, plate.gain) as labels,
        ):
            for index in range(plate.n_frames):
                writer.write(plate.frames[index])
                labels.write(index, plate.labels[index])
                truth_file.check()
    log.info("wrote %s and %s", video, truth_path(video))
    return video
