"""A background from the video and the net together (numpy and OpenCV; no torch).

Wherever a worm has moved on, the video shows its own background exactly: the per-pixel median of frames spread
over time (:func:`temporal_background`), which keeps every static thing (lawn rims, rings, fibres, text) as it
is. What that median also keeps is a worm that never moved. The net removes such worms, but it also blurs static
structure it never saw in training. So the two are fused (:func:`fuse_backgrounds`): the net says where the
temporal background holds something dark (bright, for light worms) that it removes, the region is kept if it
looks like the worms this very video shows moving (:func:`calibrate_worms`), and there the plate is filled in
from around the worm; everywhere else the temporal background is used as it is.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass

import cv2
import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from skimage.morphology import skeletonize

from wormclean.segment.blobs import outer_contours
from wormclean.segment.threshold import blob_areas, brightness_gain, label_components, worm_signal

_LEVEL_SAMPLES = 65536

CORE_OVER_REGION = 1.4
"""A worm's dark core on a longer region the net removes is where the net removed this many times the region's
median, when that is above 0.7 of a worm's contrast (worms lying along a ring they are as dark as: 1.6 times the
ring, on plate 10503)."""

CORE_OVER_HOST = 1.3
"""A worm lying partly on a ring or a line as dark as itself: the net removed this many times as much where it
lies on it as on the rest of it (1.39-1.63 on the tuning plates; a letter crossed by a track: 1.24)."""

REMOVED_OVER_HOST = 1.5
"""A region on a long structure as dark as itself stays if the net removed this many times what it removed of the
rest of the structure (and the region is curved and a worm long; see :func:`_removed_more_than_its_host`)."""

MIN_DARK_WIDTH = 0.6
"""An immobile worm is as thick in the temporal background as a moving worm is in the frames (0.9-1.2 times on the
tuning plates); a fibre the net removes, blurred into a region as wide as a worm, is half as thick there."""

MAX_EDGE_DEPTH = 1.5
"""A region along the frame's edge that reaches no deeper into the frame than this many worm widths is no worm."""

NARROW_TOP_HAT = 0.8
"""Radius, in worm widths, of the top-hat that takes a marker line or a bar broader than a worm off a worm lying on
it (:func:`_off_broad_structure`): the disc is wider than a worm's body and narrower than such a line."""

HOST_MEDIAN = 2.5
"""Side, in worm widths, of the square over which the median of the net's removal is taken to find a worm lying half on
a structure broader than itself (:func:`_above_its_host`): the median keeps a structure broader than half of it."""

HOST_RESIDUE = 0.15
"""The level, in worm contrasts, above which the net's removal less that median is a worm (hysteresis to twice it)."""

MIN_ON_HOST = 1 / 3
"""The part of a worm found so that must lie on the structure (where the median is half a worm's contrast or more)."""

MIN_MOVING_BLOBS = 3
"""Fewer moving-worm blobs than this in a window's sample frames: the worm statistics come from the priors."""

MOVING_STAGE_FRACTION = 0.2
"""A sample frame differing from the temporal background over more than this fraction of its pixels means the
camera or the stage moved (or the light changed): the temporal background does not hold and the net is used."""


@dataclass(frozen=True)
class WormStats:
    """What this video's worms look like, measured on the blobs of its moving worms (upper quartiles over blobs).

    Attributes
    ----------
    n_blobs : int
        Moving-worm blobs measured (0 for priors).
    area : float
        Pixels per worm blob.
    width : float
        Body thickness, pixels (twice the median distance from the edge along the centreline).
    length : float
        Centreline length, pixels (skeleton links, a diagonal counted as sqrt(2)).
    contrast : float
        Difference from the background inside the blob, grey levels (a high percentile, the body's core).
    source : str
        ``"video"`` or ``"prior"``.
    """

    n_blobs: int
    area: float
    width: float
    length: float
    contrast: float
    source: str

    @classmethod
    def prior(cls, shape: tuple[int, int], delta: float) -> WormStats:
        """Worm statistics assumed when no worm moves: an adult across a plate filmed whole (80 x 7 pixels per
        2048, at least 20 x 2), as dark as twice the threshold."""
        length = max(20.0, 80.0 * min(shape) / 2048)
        width = max(2.0, length / 12)
        return cls(0, length * width * 0.8, width, length, 2.0 * delta, "prior")

    def to_dict(self) -> dict:
        """Plain values, for the output file."""
        return {key: (round(value, 3) if isinstance(value, float) else value) for key, value in asdict(self).items()}

    @property
    def min_area(self) -> int:
        """Smallest blob that is a worm (a quarter of a worm: heads poking out of the lawn still count)."""
        return max(5, round(0.25 * self.area))

    @property
    def max_area(self) -> int:
        """Largest blob that is worms: a clump of about ten touching worms; larger dark things are not worms."""
        return max(self.min_area + 1, round(10 * self.area))

    @property
    def max_hole(self) -> int:
        """Largest hole in a blob that is filled (a worm curled into a loop); a ring's inside is never filled."""
        return max(1, round(self.area))


def flicker_levels(frames: Sequence[np.ndarray]) -> np.ndarray:
    """Brightness level of each frame (median over a pixel grid): float64 ``(n_frames,)``."""
    step = max(1, int(math.sqrt(frames[0].size / _LEVEL_SAMPLES)))
    return np.array([float(np.median(frame[::step, ::step])) for frame in frames])


def temporal_background(frames: Sequence[np.ndarray]) -> np.ndarray:
    """Per-pixel median of frames spread over a video, each first scaled to the frames' common brightness.

    Scaling by each frame's level (:func:`flicker_levels`) keeps lamp flicker out of the median; the median is
    ranked in place (:func:`kth_smallest`), with no stacked copy of the frames.

    Parameters
    ----------
    frames : sequence of np.ndarray
        ``(H, W)`` frames of one video, all of one type (uint8 or uint16); at least one.

    Returns
    -------
    np.ndarray
        float32 ``(H, W)`` in the frames' units, at the median brightness of the frames.
    """
    levels = flicker_levels(frames)
    reference = float(np.median(levels))
    gains = np.where(levels > 0, reference / np.maximum(levels, 1e-6), 1.0)
    # Scaled in the frames' own integer type (rounding costs half a grey level), then ranked bit by bit. By an
    # array of ones with a scale, since OpenCV takes a 1x1 frame times a number for two scalars (a (4, 1) result).
    scaled = [frame if abs(gain - 1) < 1e-6 else cv2.multiply(frame, np.ones_like(frame), scale=float(gain))
              for frame, gain in zip(frames, gains)]
    low, high = (len(scaled) - 1) // 2, len(scaled) // 2
    background = kth_smallest(scaled, low).astype(np.float32)
    if high != low:
        background += kth_smallest(scaled, high)
        background *= 0.5
    return background


def hysteresis(image: np.ndarray, low: float, high: float) -> np.ndarray:
    """Pixels over ``low`` 4-connected to a pixel over ``high``: bool, as ``skimage.filters.apply_hysteresis_threshold``
    gives, with OpenCV's labelling (a tenth of the time at 2048x2048)."""
    n_labels, labels = cv2.connectedComponents((image > low).astype(np.uint8), connectivity=4, ltype=cv2.CV_32S)
    strong = np.zeros(n_labels, bool)
    strong[labels[image > high]] = True
    strong[0] = False
    return strong[labels]


def kth_smallest(frames: Sequence[np.ndarray], k: int) -> np.ndarray:
    """Per pixel, the ``k``-th smallest (from 0) of ``frames``, unsigned-integer images of one shape and type.

    Found bit by bit from the highest: a bit is set where fewer than ``k + 1`` frames lie below the value with
    it set. That is ``bits x len(frames)`` comparisons of whole frames, with no stacked copy: three times faster
    than ``np.partition`` on a stack of 21 frames of 2048x2048, 8-bit, and the same result.
    """
    dtype = frames[0].dtype
    if dtype.kind != "u" or not 0 <= k < len(frames) <= 255:
        raise ValueError(f"kth_smallest needs up to 255 unsigned frames and 0 <= k < {len(frames)}, got {dtype}, {k}")
    result = np.zeros(frames[0].shape, dtype)
    count = np.empty(frames[0].shape, np.uint8)
    below = np.empty(frames[0].shape, bool)
    for bit in range(8 * dtype.itemsize - 1, -1, -1):
        candidate = result | dtype.type(1 << bit)
        count.fill(0)
        for frame in frames:
            np.less(frame, candidate, out=below)
            count += below.view(np.uint8)
        np.copyto(result, candidate, where=count <= k)
    return result


def changed_fraction(frame: np.ndarray, background: np.ndarray, delta: float) -> float:
    """Fraction of pixels where ``frame`` differs from ``background`` (flicker-compensated) by more than ``delta``
    in either direction."""
    gain = brightness_gain(frame, background)
    # Every other pixel of every other row: the fraction to well under a percent, at a quarter of the work.
    difference = cv2.absdiff(frame[::2, ::2].astype(np.float32), background[::2, ::2] * np.float32(gain))
    return float(np.count_nonzero(difference > delta)) / difference.size


MAX_GHOST_RATIO = 0.6
"""Where worms have moved less than their own length over the samples, the median still holds them, and the
frames are lighter than it where a worm has just left (a ghost) about as often as darker where a worm is. Over
this ratio of ghost to worm pixels the median is no background (measured: 0.98 for a 3-second clip of crawling
worms, 0.0-0.4 for clips where the median works, 0.42 for the real deeptangle plate)."""


def ghost_ratio(frames: Sequence[np.ndarray], temporal: np.ndarray, dark_worms: bool, delta: float) -> float:
    """Pixels where sample frames are lighter than the temporal background (darker, for light worms) by more than
    ``delta``, over those where they are darker: 0 for a clean median, about 1 when it holds the moving worms.

    Only what is at least two pixels across on both counts: specks of sensor noise over ``delta`` fall on either
    side of the median and are no worm and no ghost. With noise of 5 grey levels (half of the default delta), on
    a blurred plate, they made the ratio 5.1 for a median that shows the plate (0.04 without the specks)."""
    square = np.ones((2, 2), np.uint8)
    worm = ghost = 0
    for frame in frames:
        signal = worm_signal(frame, temporal, dark_worms)
        worm += cv2.countNonZero(cv2.morphologyEx((signal > delta).view(np.uint8), cv2.MORPH_OPEN, square))
        ghost += cv2.countNonZero(cv2.morphologyEx((signal < -delta).view(np.uint8), cv2.MORPH_OPEN, square))
    return ghost / worm if worm else 0.0


@dataclass(frozen=True)
class BlobFeatures:
    """Shape and darkness of the blobs of one mask; arrays of ``(n_blobs,)`` float64, one entry per blob."""

    area: np.ndarray
    width: np.ndarray  # median thickness along the centreline, pixels
    length: np.ndarray  # centreline (skeleton) pixels
    ends: np.ndarray  # centreline ends, spurs pruned: 2 for a lone worm, 0 for a ring, more for X, T and crossings
    straightness: np.ndarray  # longest side of the centreline's bounding rectangle over its length: 1 for a line
    contrast: np.ndarray
    boxes: np.ndarray  # (n_blobs, 4) int: top, left, bottom, right (exclusive) of each blob
    labels: np.ndarray | None  # int32 (H, W), blob k has label k + 1 (None when not asked for)


def blob_features(mask: np.ndarray, signal: np.ndarray, min_area: int = 1, labelled: bool = True) -> BlobFeatures:
    """Measure the 8-connected blobs of ``mask`` with at least ``min_area`` pixels.

    Parameters
    ----------
    mask : np.ndarray
        bool ``(H, W)``.
    signal : np.ndarray
        float32 ``(H, W)``, the worm signal (positive where worms are), grey levels.
    min_area : int
        Smaller blobs are left out (their label set to 0).
    labelled : bool
        False leaves ``labels`` None, which saves relabelling the whole frame when small blobs are dropped.
    """
    n_labels, labels, stats, _ = cv2.connectedComponentsWithStats(
        mask.astype(np.uint8, copy=False), connectivity=8, ltype=cv2.CV_32S
    )
    areas = stats[:, cv2.CC_STAT_AREA]
    keep = np.flatnonzero(areas[1:] >= min_area) + 1
    boxes = [
        (slice(top, top + height), slice(left, left + width))
        for left, top, width, height in stats[keep, :4].tolist()
    ]
    widths, lengths, ends, straightness, contrasts = [], [], [], [], []
    for label, box in zip(keep.tolist(), boxes):
        blob = np.pad(labels[box] == label, 1)
        distance = cv2.distanceTransform(blob.astype(np.uint8), cv2.DIST_L2, 3)
        skeleton = skeletonize(blob)
        # A body's thickness along its centreline: the distance to the edge is half the width there.
        widths.append(2.0 * float(np.median(distance[skeleton])) if skeleton.any() else 2.0 * float(distance.max()))
        lengths.append(_skeleton_length(skeleton))
        ends.append(_count_ends(skeleton, spur=round(widths[-1])))
        points = cv2.findNonZero(skeleton.astype(np.uint8))
        straightness.append(max(cv2.minAreaRect(points)[1]) / lengths[-1] if points is not None else 0.0)
        contrasts.append(float(np.percentile(signal[box][blob[1:-1, 1:-1]], 75)))
    if not labelled:
        labels = None
    elif len(keep) < n_labels - 1:
        relabel = np.zeros(n_labels, np.int32)
        relabel[keep] = np.arange(1, len(keep) + 1, dtype=np.int32)
        labels = relabel[labels]
    return BlobFeatures(
        areas[keep].astype(np.float64),
        np.array(widths),
        np.array(lengths),
        np.array(ends),
        np.array(straightness),
        np.array(contrasts),
        np.array([[r.start, c.start, r.stop, c.stop] for r, c in boxes], dtype=np.int64).reshape(-1, 4),
        labels,
    )


_NEIGHBOURS = np.array([[1, 1, 1], [1, 0, 1], [1, 1, 1]], np.float32)


def _skeleton_length(skeleton: np.ndarray) -> float:
    """Length of a one-pixel-wide skeleton in pixels: the links between neighbouring pixels, a diagonal one
    counted as sqrt(2), except a diagonal whose two pixels are also joined through an orthogonal neighbour (the
    corner of a staircase step, which the path takes by its two orthogonal links)."""
    padded = np.pad(skeleton.astype(bool), 1)
    centre = padded[1:-1, 1:-1]

    def shifted(dy: int, dx: int) -> np.ndarray:
        return padded[1 + dy : padded.shape[0] - 1 + dy, 1 + dx : padded.shape[1] - 1 + dx]

    orthogonal = np.count_nonzero(centre & shifted(0, 1)) + np.count_nonzero(centre & shifted(1, 0))
    diagonal = 0
    for dx in (1, -1):
        linked = centre & shifted(1, dx)
        diagonal += np.count_nonzero(linked & ~(shifted(0, dx) | shifted(1, 0)))
    return max(1.0, orthogonal + math.sqrt(2) * diagonal)


def _count_ends(skeleton: np.ndarray, spur: int) -> int:
    """End points of a skeleton once its spurs of up to ``spur`` pixels are pruned (by taking the end pixels
    off ``spur`` times); a lone skeleton pixel counts as two ends, as the short line it stands for."""
    skeleton = skeleton.astype(np.uint8)
    for _ in range(max(0, spur)):
        neighbours = cv2.filter2D(skeleton, -1, _NEIGHBOURS, borderType=cv2.BORDER_CONSTANT)
        tips = (skeleton == 1) & (neighbours == 1)
        if np.count_nonzero(skeleton) - np.count_nonzero(tips) < 2:
            break
        skeleton[tips] = 0
    neighbours = cv2.filter2D(skeleton, -1, _NEIGHBOURS, borderType=cv2.BORDER_CONSTANT)
    if np.count_nonzero(skeleton) == 1:
        return 2
    return int(np.count_nonzero((skeleton == 1) & (neighbours == 1)))


NOISY = 1 / 3
"""Sensor noise over this fraction of ``delta`` puts one pixel in a few hundred over ``delta`` in a single frame:
specks enough to grow spurs on every moving worm's edge, which make the worms look longer than the candidates the
fusion measures on the temporal background (a median of many frames, nearly free of noise). Measured: 2.4-2.9 grey
levels on plates of noise 2.5-3, 1.5 on the real deeptangle plate, 4.5 on a blurred plate of noise 5, whose worms
looked 41 % longer (55.8 pixels against 39.5)."""


def sensor_noise(frames: Sequence[np.ndarray], temporal: np.ndarray, dark_worms: bool) -> float:
    """Standard deviation of the noise of single frames against the temporal background, grey levels: the median
    absolute deviation of their worm signal (worms are too few pixels to move it), on a grid of pixels."""
    step = max(1, int(math.sqrt(temporal.size / _LEVEL_SAMPLES)))
    grid = np.ascontiguousarray(temporal[::step, ::step])
    spreads = []
    for frame in frames:
        sample = worm_signal(np.ascontiguousarray(frame[::step, ::step]), grid, dark_worms)
        spreads.append(1.4826 * float(np.median(np.abs(sample - np.median(sample)))))
    return float(np.median(spreads))


def calibrate_worms(
    frames: Sequence[np.ndarray], temporal: np.ndarray, dark_worms: bool, delta: float
) -> WormStats | None:
    """What the moving worms of a video look like: upper quartiles of their blobs' features, or None if too few.

    A moving worm is where a sample frame is darker (brighter, for light worms) than the temporal background by
    more than ``delta``: there the median holds the plate, the frame the worm. Specks of under 8 pixels are noise.
    Where worms have not moved far over the samples (a short clip, slow worms), the median still holds part of
    them and many blobs are slivers of a worm: the upper quartile is the whole worms', the median would not be.
    Frames whose noise is over :data:`NOISY` of ``delta`` are median-filtered (3x3) first.
    """
    noisy = sensor_noise(frames, temporal, dark_worms) > NOISY * delta

    def signals() -> Iterator[np.ndarray]:  # one frame's at a time: a 2048x2048 signal is 16 MB
        for frame in frames:
            signal = worm_signal(frame, temporal, dark_worms)
            yield cv2.medianBlur(signal, 3) if noisy else signal

    features = [blob_features(signal > delta, signal, min_area=8, labelled=False) for signal in signals()]
    area = np.concatenate([f.area for f in features])
    if len(area) < MIN_MOVING_BLOBS:
        return None
    width = np.concatenate([f.width for f in features])
    length = np.concatenate([f.length for f in features])
    contrast = np.concatenate([f.contrast for f in features])
    return WormStats(
        len(area),
        *(float(np.percentile(values, 75)) for values in (area, width, length, contrast)),
        "video",
    )


def is_worm_like(features: BlobFeatures, stats: WormStats) -> np.ndarray:
    """Which blobs look like the worms of ``stats``: bool ``(n_blobs,)``.

    A worm, part of one (a head out of the lawn) or a few touching: an area from a quarter of a worm to five
    worms, a body from 0.75 to 1.4 times a worm's thickness, as slender as a third of a worm or more, a centreline at
    most three worms long, and as dark as half a worm to 2.5 times. A blob of less than one and a half worms' area
    must also have a centreline with two ends, as a lone worm has (one, for a worm curled onto itself), once
    spurs shorter than a body width are pruned; a larger one of other shape (worms touching, which overlap) must
    be nearly as dark as a worm (three quarters). A straight one longer than one and a half worms is a line.
    Rings, rims and marker lines are too long, fibres and scratches too thin, lawn patches too wide or faint,
    letters too thick, stubby, branched (X) or closed (O); letters of worm-like strokes are told by their rows
    (:func:`in_text_rows`).
    """
    slender = stats.length / max(stats.width, 1.0)
    return (
        (features.area >= 0.25 * stats.area)
        & (features.area <= 5.0 * stats.area)
        & (features.width >= 0.75 * stats.width)
        & (features.width <= max(1.4 * stats.width, stats.width + 1.0))
        & (features.length >= 0.35 * slender * features.width)
        & (features.length <= 3.0 * stats.length)
        & ((features.straightness < 0.9) | (features.length <= 1.5 * stats.length))
        & (
            ((features.ends >= 1) & (features.ends <= 2))
            | ((features.area >= 1.5 * stats.area) & (features.contrast >= 0.75 * stats.contrast))
        )
        & (features.contrast >= 0.5 * stats.contrast)
        & (features.contrast <= 2.5 * stats.contrast)
    )


def in_text_rows(features: BlobFeatures, stats: WormStats) -> np.ndarray:
    """Which blobs stand in a row of letters, as the text of a label or watermark does: bool ``(n_blobs,)``.

    Letters are blobs of at least a quarter of a worm's area and a centreline at most four worms long (the long arc
    of a ring, however it lines up with others, is none). Two are neighbours in a row when their heights differ by at
    most a factor of two, their vertical centres by less than a third of the taller one's height, and the gap
    between them is less than that height. A row is three or more such blobs, or two that line up as a font's
    letters do and worms by chance hardly ever: tops and bottoms within a tenth of their height.
    """
    n_blobs = len(features.area)
    if not n_blobs:
        return np.zeros(0, bool)
    top, left, bottom, right = features.boxes.T.astype(np.float64)
    height, centre = bottom - top, (top + bottom) / 2
    big = np.flatnonzero((features.area >= 0.25 * stats.area) & (features.length <= 4.0 * stats.length))
    if not len(big):
        return np.zeros(n_blobs, bool)
    # A sweep down the frame: each blob is compared with those whose centre is close enough below it.
    order = big[np.argsort(centre[big], kind="stable")]
    reach = float(height[order].max()) / 3
    firsts, seconds = [], []
    aligned = np.zeros(n_blobs, bool)
    for position, first in enumerate(order):
        stop = np.searchsorted(centre[order], centre[first] + reach, side="left")
        others = order[position + 1 : stop]
        if not len(others):
            continue
        tall = np.maximum(height[first], height[others])
        gap = np.maximum(left[others] - right[first], left[first] - right[others])
        row = (np.minimum(height[first], height[others]) * 2 >= tall) & (
            np.abs(centre[first] - centre[others]) < tall / 3
        ) & (gap < tall)
        lined_up = row & (
            np.maximum(np.abs(top[first] - top[others]), np.abs(bottom[first] - bottom[others]))
            <= np.maximum(1.0, tall / 10)
        )
        firsts.append(np.full(np.count_nonzero(row), first))
        seconds.append(others[row])
        if lined_up.any():
            aligned[first] = True
            aligned[others[lined_up]] = True
    edges = (np.concatenate(firsts), np.concatenate(seconds)) if firsts else (np.zeros(0, int), np.zeros(0, int))
    graph = coo_matrix((np.ones(len(edges[0])), edges), shape=(n_blobs, n_blobs))
    _, groups = connected_components(graph, directed=False)
    sizes = np.bincount(groups)
    in_rows = np.zeros(n_blobs, bool)
    in_rows[big] = True
    return in_rows & ((sizes[groups] >= 3) | aligned)


@dataclass(frozen=True)
class Fusion:
    """A fused background and how it was made."""

    background: np.ndarray  # float32 (H, W)
    regions: np.ndarray  # bool (H, W): the immobile worms the net found (and specks), grown: the plate filled in
    n_candidates: int  # regions where the net removes something dark that the temporal background holds
    n_worms: int  # of those, the ones that look like worms (the immobile worms): there the plate is filled in


def fuse_backgrounds(
    temporal: np.ndarray, net: np.ndarray, dark_worms: bool, delta: float, stats: WormStats
) -> Fusion:
    """The temporal background, filled in from around them in the worm-like regions that only the net removes.

    Parameters
    ----------
    temporal : np.ndarray
        float32 ``(H, W)``, :func:`temporal_background` of the video (or of a window of it).
    net : np.ndarray
        float32 ``(H, W)``, the net's background of ``temporal`` (or of a frame at the same brightness).
    dark_worms : bool
        Worms darker than the background.
    delta : float
        The worm threshold in grey levels: a candidate region is where the net's background is lighter (darker,
        for light worms) than the temporal one by more than ``delta``, grown to where it is by half as much.
    stats : WormStats
        What a worm looks like in this video (:func:`calibrate_worms`, else :meth:`WormStats.prior`).
    """
    raw_removed = worm_signal(temporal, net, dark_worms, compensate_flicker=False)  # > 0 where the net removes
    # Only what is narrow, as a worm is: a broad difference (the net blurring a dish edge or a lawn rim) is taken
    # off by a top-hat wider than a worm, so that a worm lying on it stands out on its own.
    broad = max(2, math.ceil(1.5 * stats.width))
    disc = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * broad + 1, 2 * broad + 1))
    removed = cv2.morphologyEx(raw_removed, cv2.MORPH_TOPHAT, disc)
    candidates = hysteresis(removed, 0.5 * delta, delta)
    # A worm touching a fibre or a track joins it into one region too long to be a worm: opened with a disc
    # thinner than a worm, the thin structure comes off and the pieces are looked at again. Letters touching a
    # line come apart the same way, so rows of letters are looked for among the opened pieces too.
    radius = max(1, round(0.35 * stats.width))
    thin = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))
    opened = cv2.morphologyEx(candidates.astype(np.uint8), cv2.MORPH_OPEN, thin).view(bool)
    pieces = blob_features(opened, removed)
    letters = in_text_rows(pieces, stats)
    text = np.isin(pieces.labels, np.flatnonzero(letters) + 1)
    features = blob_features(candidates, removed)
    on_text = np.zeros(len(features.area) + 1, bool)
    on_text[np.unique(features.labels[text])] = True
    letters_whole = in_text_rows(features, stats) | on_text[1:]
    chosen = np.isin(features.labels, np.flatnonzero(is_worm_like(features, stats) & ~letters_whole) + 1)
    worm_pieces = is_worm_like(pieces, stats) & ~letters
    on_letters = np.isin(features.labels, np.flatnonzero(letters_whole) + 1)
    # A worm-like piece of a region with letters on it is looked at as any other (a worm joined to a label by a
    # faint line, on tuning plate 10404); a piece of a letter that is not in its row on its own is in the row
    # of the letters found (:func:`_off_text_rows`).
    chosen |= np.isin(pieces.labels, np.flatnonzero(worm_pieces) + 1)
    # A worm lying across a fainter structure the net also removes (an old track as wide as a worm) makes one
    # region too long to be a worm, but the worm is darker than the track: its dark core, grown back by a third
    # of a worm's width, is looked at on its own. It must be a whole worm, not the darker stretch of a fibre, and
    # no longer than a worm and a half (the net removed arcs of a ring nearly whole, 2.4 worms long, on 20301).
    # On a region that is mostly a ring or a line as dark as 0.7 of a worm, the core is what is clearly darker
    # than the region's own median: the worm lying on it, not the whole structure.
    rejected = candidates & ~on_letters & ~cv2.dilate(chosen.astype(np.uint8), thin).view(bool)
    back_disc = _back_disc(stats)
    level = np.zeros(len(features.area) + 1, np.float32)
    if len(features.area):
        level[1:] = label_medians(removed, features.labels, len(features.area))
    core_level = np.maximum(0.7 * stats.contrast, CORE_OVER_REGION * level)[features.labels]
    core = cv2.dilate((rejected & (removed > core_level)).astype(np.uint8), back_disc).view(bool)
    cores = blob_features(core & rejected, removed)
    worm_cores = _whole_worms(cores, stats) & (cores.length <= 1.5 * stats.length)
    chosen |= np.isin(cores.labels, np.flatnonzero(worm_cores) + 1)
    # What is dark and narrow in the temporal background alone: the static structures the chosen regions may lie on.
    dark = cv2.morphologyEx(temporal, cv2.MORPH_BLACKHAT if dark_worms else cv2.MORPH_TOPHAT, disc)
    structure = hysteresis(dark, 0.5 * delta, delta)
    chosen = _off_long_structure(chosen, dark, structure, stats, disc, removed)
    # A worm touching a ring or a line as dark and thick as itself, by its head or its tail, is a limb of the
    # region's centreline: cut off at the junction, it is looked at on its own (it need not be darker than what
    # it touches, but it must be as dark as a worm, curved, and whole).
    # (A region with letters on it is not left out: only the letters are.)
    merged = candidates & ~cv2.dilate((chosen | text).astype(np.uint8), thin).view(bool)
    limb_regions, short_limbs, straight_limbs = _limbs(merged, stats, ((0.6, 1.5), (0.15, 0.6)), straight=True)
    limbs = blob_features(limb_regions, removed)
    # (The end of a line beyond where it crosses a ring is a limb too, and straight.)
    worm_limbs = _curved_worms(limbs, stats, 0.75)
    worm_limbs[np.unique(limbs.labels[straight_limbs & limb_regions]) - 1] = False
    limb_bodies = np.isin(limbs.labels, np.flatnonzero(worm_limbs) + 1)
    # Limbs that meet at a junction make one blob of their bodies, which may be worm-like as a few touching worms
    # are: one longer than a worm and a half is looked at limb by limb (a worm with its head on a line, and the
    # line's stretch from there to the frame's edge, on an untuned plate).
    long_limbs = worm_limbs & (limbs.length > 1.5 * stats.length)
    if long_limbs.any():
        apart = _limbs(merged, stats, apart=True)[0] & np.isin(limbs.labels, np.flatnonzero(long_limbs) + 1)
        parts = blob_features(apart, removed)
        limb_bodies = (np.isin(limbs.labels, np.flatnonzero(worm_limbs & ~long_limbs) + 1)
                       | np.isin(parts.labels, np.flatnonzero(_curved_worms(parts, stats, 0.75)) + 1))
    stretches = _stretches(limb_bodies, structure, stats)
    # A worm lying partly on such a structure, across it or with its head in it: the part on the structure is its
    # dark core (the net removed the worm and the structure there), and what sticks out is a limb, maybe too
    # short to be a worm. Joined, limbs and core are the whole worm.
    limb_pixels = (limb_regions | short_limbs) & ~stretches
    on_structure = core & rejected
    square = np.ones((3, 3), np.uint8)
    bridges = (cv2.dilate(limb_pixels.astype(np.uint8), square).view(bool)
               & cv2.dilate(on_structure.astype(np.uint8), square).view(bool) & candidates)  # where they touch
    joined = (limb_pixels | on_structure | bridges) & ~cv2.dilate(chosen.astype(np.uint8), thin).view(bool)
    wholes = blob_features(joined, removed)
    with_limb = np.zeros(len(wholes.area) + 1, bool)
    with_limb[np.unique(wholes.labels[limb_pixels & joined])] = True
    with_core = np.zeros(len(wholes.area) + 1, bool)
    with_core[np.unique(wholes.labels[on_structure & joined])] = True
    worm_wholes = with_limb[1:] & with_core[1:] & _curved_worms(wholes, stats)
    for k in np.flatnonzero(worm_wholes).tolist():
        worm_wholes[k] = _on_a_host(wholes.labels == k + 1, features.labels, limb_pixels, on_structure, removed,
                                    stats, disc)
    whole_bodies = np.isin(wholes.labels, np.flatnonzero(worm_wholes) + 1)
    chosen |= (limb_bodies & ~stretches) | (whole_bodies & ~_stretches(whole_bodies, structure, stats))
    rest = candidates & ~on_letters & ~cv2.dilate((chosen | text).astype(np.uint8), thin).view(bool)
    chosen |= _off_broad_structure(rest, removed, delta, stats, back_disc)
    chosen |= _above_its_host(rest & ~cv2.dilate(chosen.astype(np.uint8), thin).view(bool), raw_removed, stats,
                              back_disc)
    chosen = _off_text_rows(chosen, text | on_letters, removed, stats)
    unchosen_letters = on_letters & ~cv2.dilate(chosen.astype(np.uint8), thin).view(bool)
    chosen |= _limbs_off_letters(unchosen_letters, text, removed, stats)
    chosen = _off_thin_lines(chosen, dark, delta, stats)
    chosen = _off_the_frame_edge(chosen, stats)
    n_worms = label_components(chosen)[0] - 1
    # A region smaller than the smallest worm blob, that the net removes as it removes a worm, is filled in too:
    # alone it cannot come back as a blob, and it may be a worm's ghost in the temporal background (part of a
    # worm that lay there in most sampled frames), where a worm crawling over it would be cut in two.
    specks = np.flatnonzero((features.area < stats.min_area) & (features.contrast >= 0.5 * stats.contrast))
    filled = chosen | np.isin(features.labels, specks + 1)
    grow = _fill_radius(stats)
    disc = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * grow + 1, 2 * grow + 1))
    # Grown by half a worm's width to take in its blurred edge, but not into static structure beside it (over the
    # worm threshold in the temporal background, and not removed as a worm is): a ring's pixels filled in there
    # come back in every frame as a stub of the worm, or a bridge between two worms side by side across it (9603).
    grown = cv2.dilate(filled.astype(np.uint8), disc).view(bool)
    region = filled | (grown & ((dark <= delta) | (removed >= 0.75 * stats.contrast)))
    return Fusion(fill_worm_regions(temporal, region, stats), region, len(features.area), n_worms)


def label_medians(values: np.ndarray, labels: np.ndarray, n_labels: int) -> np.ndarray:
    """The median of ``values`` over each label 1 to ``n_labels`` of ``labels`` (0: none), the mean of the two
    middle values for an even count: float64 ``(n_labels,)``, 0 for a label with no pixels. For the labels with
    pixels, what ``scipy.ndimage.median`` gives, from one sort of the labelled pixels (10 ms against 1 s for 70
    regions of a 2048x2048 frame)."""
    inside = labels > 0
    label, value = labels[inside], values[inside].astype(np.float64)
    order = np.lexsort((value, label))
    label, value = label[order], value[order]
    counts = np.bincount(label, minlength=n_labels + 1)[1 : n_labels + 1]
    starts = np.cumsum(counts) - counts
    medians = np.zeros(n_labels)
    some = counts > 0
    low = value[starts[some] + (counts[some] - 1) // 2]
    high = value[starts[some] + counts[some] // 2]
    medians[some] = (low + high) / 2
    return medians


def _fill_radius(stats: WormStats) -> int:
    """How far the immobile worms are grown before they are filled in: half a worm's width."""
    return max(1, math.ceil(stats.width / 2))


def fill_worm_regions(temporal: np.ndarray, regions: np.ndarray, stats: WormStats) -> np.ndarray:
    """The temporal background with the immobile worms' ``regions`` (bool ``(H, W)``, :attr:`Fusion.regions`)
    filled in from the plate around them: float32 ``(H, W)``, a new array."""
    fused = temporal.copy()
    if regions.any():
        # Filled in from the plate around each worm (Navier-Stokes inpainting): 0.66 grey levels from the true
        # background inside the immobile worms of the 2048x2048 tuning plate, where the shipped net's own
        # background is 2-3.6 away.
        fused[regions] = _fill_in(temporal, regions, max(3, _fill_radius(stats)))[regions]
    return fused


def worm_sized_change(temporal: np.ndarray, reference: np.ndarray, delta: float, stats: WormStats) -> bool:
    """Whether a temporal background differs from an earlier one (``reference``, flicker-compensated) by more
    than half of ``delta``, either way, over a blob of at least half the smallest worm (``stats.min_area``).

    Where it does not, the earlier fusion's decisions hold for the new background: nothing a worm's size has come
    or gone (an immobile worm that moved off, a worm that stopped, a drop of condensation). The noise of a median
    of 21 frames leaves single pixels over the bound, not blobs; on a noisy video it may, and the answer is then
    "changed", which only costs the full fusion.
    """
    gain = np.float32(brightness_gain(temporal, reference))
    difference = cv2.absdiff(temporal.astype(np.float32, copy=False), reference.astype(np.float32) * gain)
    changed = cv2.compare(difference, 0.5 * delta, cv2.CMP_GT)
    return bool((blob_areas(outer_contours(changed)) >= max(1.0, 0.5 * stats.min_area)).any())


def _stretches(regions: np.ndarray, structure: np.ndarray, stats: WormStats) -> np.ndarray:
    """The regions that are a stretch of a longer static ``structure`` (bool ``(H, W)``, see
    :func:`_off_long_structure`) by :func:`_goes_on`: bool ``(H, W)``."""
    stretches = np.zeros(regions.shape, bool)
    n_regions, labels, region_stats, _ = cv2.connectedComponentsWithStats(regions.astype(np.uint8), connectivity=8,
                                                                          ltype=cv2.CV_32S)
    margin = max(2, round(2 * stats.width))
    height, width = regions.shape
    for label in range(1, n_regions):
        left, top, box_width, box_height, _ = region_stats[label].tolist()
        box = (slice(max(0, top - margin), min(height, top + box_height + margin)),
               slice(max(0, left - margin), min(width, left + box_width + margin)))
        region = labels[box] == label
        if _goes_on(region, structure[box], stats):
            stretches[box] |= region
    return stretches


def _goes_on(region: np.ndarray, structure: np.ndarray, stats: WormStats) -> bool:
    """Whether ``structure`` goes on past both ends of ``region`` (bool images of one box, with two worm widths
    of room around the region), as it does past a stretch of itself.

    A worm touching a ring by its head meets the ring at that end only, and a worm lying across a track meets it
    on both sides but a few worm widths apart; a stretch of the ring goes on at both of its ends. So the structure
    is looked for in a shell around the region (:func:`_crossings`): it goes on when it crosses the shell at two
    places further apart than three quarters of the region's length.
    """
    centres = _crossings(region, structure, stats)
    if len(centres) < 2:
        return False
    apart = float(np.sqrt(((centres[:, None] - centres[None]) ** 2).sum(axis=-1)).max())
    return apart > 0.75 * blob_features(region, region.astype(np.float32), labelled=False).length[0]


def _crossings(region: np.ndarray, structure: np.ndarray, stats: WormStats) -> np.ndarray:
    """The centres of the places where ``structure`` crosses a shell around ``region`` one to two worm widths out
    (bool images of one box, with two worm widths of room around the region): float64 ``(n, 2)``, x and y."""
    inner, outer = max(1, round(stats.width)), max(2, round(2 * stats.width))
    pixels = region.astype(np.uint8)
    shell = (cv2.dilate(pixels, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * outer + 1, 2 * outer + 1))).view(bool)
             & ~cv2.dilate(pixels, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * inner + 1, 2 * inner + 1)))
             .view(bool))  # fmt: skip
    _, _, _, centres = cv2.connectedComponentsWithStats((structure & shell).astype(np.uint8), connectivity=8,
                                                        ltype=cv2.CV_32S)
    return centres[1:]


def _fill_in(image: np.ndarray, region: np.ndarray, radius: int) -> np.ndarray:
    """``image`` with ``region`` inpainted from around it (Navier-Stokes), the frame edges mirrored first.

    Mirrored, a region at the edge of the frame is filled from the plate on every side of it, not from whatever
    lies past the edge.
    """
    pad = 2 * radius
    mirrored = cv2.copyMakeBorder(image, pad, pad, pad, pad, cv2.BORDER_REFLECT)
    unknown = cv2.copyMakeBorder(region.astype(np.uint8), pad, pad, pad, pad, cv2.BORDER_REFLECT)
    filled = cv2.inpaint(mirrored, unknown, radius, cv2.INPAINT_NS)
    return filled[pad:-pad, pad:-pad]


def _limbs(mask: np.ndarray, stats: WormStats, lengths: tuple[tuple[float, float], ...] = ((0.6, 1.5),),
           apart: bool = False, straight: bool = False) -> list[np.ndarray]:
    """The regions of ``mask`` up to a worm and a half, and the bodies of the limbs of the larger ones: one bool
    ``(H, W)`` per range of ``lengths``, each centreline found once; with ``straight``, one more: the bodies of the
    limbs whose own centreline is straight (0.9, as :class:`BlobFeatures` measures it).

    A limb is a stretch of a region's centreline from a free end to the first junction, of a range of lengths in
    worms (about a worm's length: 0.6 to 1.5 worms); its body is the part of the region nearer to it than to the
    rest of the centreline. (The body's own centreline may hook where it was cut off at the junction, and look
    curved where the limb is the straight end of a line.)
    """
    n_labels, labels, blob_stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8,
                                                                       ltype=cv2.CV_32S)
    large = blob_stats[:, cv2.CC_STAT_AREA] >= 1.5 * stats.area
    large[0] = True
    small = ~large[labels]
    bodies = [small.copy() for _ in lengths]
    straight_bodies = np.zeros(mask.shape, bool)
    for label in np.flatnonzero(large).tolist():
        if label == 0:
            continue
        left, top, width, height = blob_stats[label, :4].tolist()
        box = (slice(top, top + height), slice(left, left + width))
        blob = np.pad(labels[box] == label, 1)
        skeleton = skeletonize(blob).astype(np.uint8)
        neighbours = cv2.filter2D(skeleton, -1, _NEIGHBOURS, borderType=cv2.BORDER_CONSTANT) * skeleton
        junctions = neighbours >= 3
        if not junctions.any():
            continue
        cut = skeleton & ~cv2.dilate(junctions.astype(np.uint8), np.ones((3, 3), np.uint8))
        _, stretches = cv2.connectedComponents(cut, connectivity=8, ltype=cv2.CV_32S)
        for stretch in np.unique(stretches[neighbours == 1]).tolist():
            if stretch == 0:
                continue
            limb = stretches == stretch
            length = _skeleton_length(limb)
            within = [low * stats.length <= length <= high * stats.length for low, high in lengths]
            if not any(within):
                continue
            to_limb = cv2.distanceTransform((~limb).astype(np.uint8), cv2.DIST_L2, 3)
            to_rest = cv2.distanceTransform((~(skeleton.view(bool) & ~limb)).astype(np.uint8), cv2.DIST_L2, 3)
            body = (blob & (to_limb < to_rest))[1:-1, 1:-1]
            if straight:
                points = cv2.findNonZero(limb.astype(np.uint8))
                if max(cv2.minAreaRect(points)[1]) >= 0.9 * length:
                    straight_bodies[box] |= body
            for found, inside in zip(bodies, within):
                if inside and apart:  # a pixel from the limbs of this region found so far
                    found[box] |= body & ~cv2.dilate((found[box] & (labels[box] == label)).astype(np.uint8),
                                                     np.ones((3, 3), np.uint8)).view(bool)
                elif inside:
                    found[box] |= body
    return bodies + [straight_bodies] if straight else bodies


def _whole_worms(features: BlobFeatures, stats: WormStats) -> np.ndarray:
    """Which blobs are a whole worm of ``stats``, not a piece of one: worm-like (:func:`is_worm_like`), in no row of
    letters, at least 0.7 of a worm long and half a worm's area. Bool ``(n_blobs,)``."""
    return (
        is_worm_like(features, stats)
        & ~in_text_rows(features, stats)
        & (features.length >= 0.7 * stats.length)
        & (features.area >= 0.5 * stats.area)
    )


def _curved_worms(features: BlobFeatures, stats: WormStats, contrast: float = 0.0) -> np.ndarray:
    """Which blobs are a whole worm (:func:`_whole_worms`) that is curved, as a lying worm is and a stretch of a
    line is not, and at least ``contrast`` times as dark as a worm: bool ``(n_blobs,)``."""
    return (_whole_worms(features, stats) & (features.straightness < 0.9)
            & (features.contrast >= contrast * stats.contrast))


def _off_text_rows(chosen: np.ndarray, letters: np.ndarray, removed: np.ndarray, stats: WormStats) -> np.ndarray:
    """``chosen`` less the regions that stand in a row with the ``letters`` found (bool ``(H, W)`` each): a letter
    that a ring or a line crosses is no letter on its own (it is joined to the ring, or darker than the rest
    of it where they cross), but it stands in its label's row (:func:`in_text_rows`)."""
    if not letters.any() or not chosen.any():
        return chosen
    blobs = blob_features(chosen | letters, removed)
    in_rows = np.zeros(len(blobs.area) + 1, bool)
    in_rows[1:] = in_text_rows(blobs, stats)
    return chosen & ~in_rows[blobs.labels]


def _limbs_off_letters(letters: np.ndarray, text: np.ndarray, removed: np.ndarray, stats: WormStats) -> np.ndarray:
    """The worms touching a label's letter: bool ``(H, W)``.

    A worm lying with its head or tail on a letter makes one region with it, and the region stands in the label's
    row (tuning plate 9201). The worm is a limb of the region's centreline (:func:`_limbs`, about a worm long): a
    whole curved worm as dark as one, in no row with the letters found (``text``, bool ``(H, W)``), and mostly
    outside their band (the rows the letters beside it span, from the 5th to the 95th percentile). A letter's
    stroke can be as long as a worm where the letters are as big, but it lies in their band.

    Parameters
    ----------
    letters : np.ndarray
        bool ``(H, W)``, the candidate regions with letters on them, less those chosen already.
    text, removed : np.ndarray
        The letters found in rows, and what the net removed (float32), ``(H, W)``.
    stats : WormStats
        What a worm looks like here.
    """
    if not letters.any():
        return letters
    limbs = blob_features(_limbs(letters, stats)[0], removed)
    worms = np.isin(limbs.labels, np.flatnonzero(_curved_worms(limbs, stats, 0.75)) + 1)
    if not worms.any():
        return worms
    others = text & ~cv2.dilate(worms.astype(np.uint8), np.ones((3, 3), np.uint8)).view(bool)  # a pixel apart
    worms = _off_text_rows(worms, others, removed, stats)
    n_worms, labels, worm_stats, _ = cv2.connectedComponentsWithStats(worms.astype(np.uint8), connectivity=8,
                                                                      ltype=cv2.CV_32S)
    keep = np.ones(n_worms, bool)
    keep[0] = False
    for label in range(1, n_worms):
        left, top, width, height, _ = worm_stats[label].tolist()
        # The letters beside it: within its own height of its box.
        near = (slice(max(0, top - height), top + 2 * height), slice(max(0, left - height), left + width + height))
        rows = np.flatnonzero(others[near].any(axis=1)) + near[0].start
        if not len(rows):
            continue
        limb_rows = np.nonzero(labels[top : top + height, left : left + width] == label)[0] + top
        within = (limb_rows >= np.percentile(rows, 5)) & (limb_rows <= np.percentile(rows, 95))
        keep[label] = np.mean(within) <= 0.5  # most of it sticks out of the letters' band
    return keep[labels]


def _off_thin_lines(chosen: np.ndarray, dark: np.ndarray, delta: float, stats: WormStats) -> np.ndarray:
    """``chosen`` less the regions whose body in the temporal background is thinner than :data:`MIN_DARK_WIDTH`
    of a worm: a fibre or a scratch, however wide the net's blurred removal of it looks.

    The body is where the temporal background's darkness ``dark`` (float32 ``(H, W)``, see
    :func:`_off_long_structure`) exceeds ``delta``, as a moving worm's body is where a frame is darker than the
    temporal background by ``delta`` (:func:`calibrate_worms`); its width is measured as a worm's is. A region with
    no such body is kept (there is nothing to judge it by)."""
    n_chosen, regions = cv2.connectedComponents(chosen.astype(np.uint8), connectivity=8, ltype=cv2.CV_32S)
    if n_chosen < 2:
        return chosen
    body = chosen & (dark > delta)
    # Where a fainter structure crosses the region (a worm across an old track), the body is the region's own
    # darkness, not the track's arms, which would make it look thin.
    level = np.zeros(n_chosen, np.float32)
    level[1:] = label_medians(dark, np.where(body, regions, 0), n_chosen - 1)
    body &= dark > np.maximum(delta, 0.5 * level)[regions]
    bodies = blob_features(body, dark)
    inside = bodies.labels > 0
    region_of = np.zeros(len(bodies.area) + 1, np.int64)
    region_of[bodies.labels[inside]] = regions[inside]  # each body lies in one region
    body_width = np.full(n_chosen, np.inf)  # the width of each region's largest body
    largest = np.zeros(n_chosen)
    for index, region in enumerate(region_of[1:].tolist()):
        if bodies.area[index] > largest[region]:
            largest[region], body_width[region] = bodies.area[index], bodies.width[index]
    thin = body_width < MIN_DARK_WIDTH * stats.width
    thin[0] = False
    return chosen & ~thin[regions]


def _off_broad_structure(rest: np.ndarray, removed: np.ndarray, delta: float, stats: WormStats,
                         back_disc: np.ndarray) -> np.ndarray:
    """The whole worms in the regions not yet chosen (``rest``, bool ``(H, W)``) that lie on a structure broader
    than a worm, which the net removed with them: bool ``(H, W)``.

    A worm lying along the edge of a thick marker line, or looped off it with both ends on it, makes one region with
    the line; where it sticks out it is no darker than the line the net removed, so it has no core of its own, and
    no limb (tuning plates 10402, 12002 and quick plate 9501). A top-hat of ``removed`` with a disc of
    :data:`NARROW_TOP_HAT` worm widths takes off what is broader than that and leaves the worm; where it lay against
    the line the top-hat also takes a strip of its side, so what is left is grown back by ``back_disc`` inside
    ``rest`` before it is judged. It must be a whole worm, curved and as dark as one."""
    if not rest.any():
        return rest
    radius = max(2, round(NARROW_TOP_HAT * stats.width))
    disc = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))
    narrow = cv2.morphologyEx(removed, cv2.MORPH_TOPHAT, disc)
    worms = cv2.dilate((hysteresis(narrow, 0.5 * delta, delta) & rest).astype(np.uint8), back_disc).view(bool) & rest
    pieces = blob_features(worms, narrow)
    whole = _curved_worms(pieces, stats, 0.75)
    return np.isin(pieces.labels, np.flatnonzero(whole) + 1)


def _above_its_host(rest: np.ndarray, removed: np.ndarray, stats: WormStats, back_disc: np.ndarray) -> np.ndarray:
    """The worms lying half on a structure broader than themselves in the regions not yet chosen (``rest``, bool
    ``(H, W)``), found above the structure by a median of what the net removed (``removed``, float32 ``(H, W)``,
    before any top-hat): bool ``(H, W)``.

    A worm lying along the edge of a marker line three times as thick as itself, half on it (report plate 10203),
    makes one region with the line. The top-hats cannot take the line off: where the worm widens the line their
    disc fits, so they cut a disc out of both, and the narrow one leaves the line's texture. Only the worm's head
    is clearly darker than the line. A median over a square of :data:`HOST_MEDIAN` worm widths keeps a structure
    broader than half the square, straight edges and all, and not a worm: what the net removed above it is the
    worm, on the line or off it, with the line's texture well under a worm's contrast. That residue, above
    :data:`HOST_RESIDUE` of a worm's contrast (by hysteresis to twice that), grown back inside ``rest`` by
    ``back_disc``, must be a whole, curved worm as dark as one, and :data:`MIN_ON_HOST` of it must lie on the
    structure (where the median is half a worm's contrast or more). The median takes off whatever is narrower than
    half its square, not only worms: a thin fibre curving across a line (report plate 10103, three worms long) and
    the bowl of a bold letter lie on the structure where they cross it or not at all (a fifth of the bowl).
    (The median is taken of ``removed`` in 64ths of a worm's contrast, up to four contrasts: OpenCV takes a square of
    any size for 8-bit images.)"""
    if not rest.any():
        return rest
    contrast = max(stats.contrast, 1e-6)
    size = 2 * round(HOST_MEDIAN * stats.width / 2) + 1
    scaled = np.clip(removed * (64 / contrast), 0, 255).astype(np.uint8)
    host = cv2.medianBlur(scaled, max(3, size)).astype(np.float32) * (contrast / 64)
    residue = removed - host
    low = HOST_RESIDUE * contrast
    worms = cv2.dilate((hysteresis(residue, low, 2 * low) & rest).astype(np.uint8), back_disc).view(bool) & rest
    pieces = blob_features(worms, residue)
    on_host = np.bincount(pieces.labels[host > 0.5 * contrast], minlength=len(pieces.area) + 1)[1:]
    whole = _curved_worms(pieces, stats, 0.75) & (on_host >= MIN_ON_HOST * pieces.area)
    return np.isin(pieces.labels, np.flatnonzero(whole) + 1)


def _off_the_frame_edge(chosen: np.ndarray, stats: WormStats) -> np.ndarray:
    """``chosen`` less the regions that lie along the frame's edge, reaching no deeper into the frame than
    :data:`MAX_EDGE_DEPTH` of a worm's width: the net's own edge effect (its background lighter in a strip where
    a dark dish rim or vignette meets the edge, report plate 10202), not a worm. A worm cut by the edge crosses it
    and reaches in by its length; one lying along it, within a worm's width of it, is mostly outside the frame."""
    n_chosen, regions, boxes, _ = cv2.connectedComponentsWithStats(chosen.astype(np.uint8), connectivity=8,
                                                                   ltype=cv2.CV_32S)
    if n_chosen < 2:
        return chosen
    height, width = chosen.shape
    x, y = boxes[:, cv2.CC_STAT_LEFT], boxes[:, cv2.CC_STAT_TOP]
    right, bottom = x + boxes[:, cv2.CC_STAT_WIDTH], y + boxes[:, cv2.CC_STAT_HEIGHT]
    deepest = MAX_EDGE_DEPTH * stats.width
    along = (((x == 0) & (right <= deepest)) | ((right == width) & (width - x <= deepest))
             | ((y == 0) & (bottom <= deepest)) | ((bottom == height) & (height - y <= deepest)))
    along[0] = False
    return chosen if not along.any() else chosen & ~along[regions]


def _on_a_host(whole: np.ndarray, regions: np.ndarray, limbs: np.ndarray, cores: np.ndarray, removed: np.ndarray,
               stats: WormStats, disc: np.ndarray) -> bool:
    """Whether a ``whole`` (bool ``(H, W)``) joined from ``limbs`` and ``cores`` is a worm lying on a structure:
    what sticks out is as dark as half a worm, and the part on the structure is :data:`CORE_OVER_HOST` times as
    dark as the rest of the structure (the rest of its candidate region in ``regions``, labels ``(H, W)``), as a
    worm adds its own darkness. A letter crossed by a fainter track, or a fibre crossing one, is joined the same
    way, but the letter's core is hardly darker than the other letters (1.24 times, on a tuning plate), and a
    fibre is faint."""
    ys, xs = np.nonzero(whole)
    pad = 2 * disc.shape[0]
    box = (slice(max(0, ys.min() - pad), ys.max() + pad + 1), slice(max(0, xs.min() - pad), xs.max() + pad + 1))
    whole = whole[box]
    region = regions[box] == np.bincount(regions[box][whole]).argmax()
    host = region & ~cv2.dilate(whole.astype(np.uint8), disc).view(bool)
    if not host.any() or np.median(removed[box][whole & limbs[box]]) < 0.5 * stats.contrast:
        return False
    return bool(np.median(removed[box][whole & cores[box]]) >= CORE_OVER_HOST * np.median(removed[box][host]))


def _from_past_the_edge(piece: np.ndarray, dark: np.ndarray, box: tuple[slice, slice], shape) -> bool:
    """Whether a region at the frame's edge grows darker towards it, as a dish rim or a vignetted corner coming
    into the frame does (a worm cut by the edge is as dark there as along its body)."""
    edges = np.zeros(piece.shape, bool)
    rows, cols = box
    if rows.start == 0:
        edges[0] = True
    if rows.stop == shape[0]:
        edges[-1] = True
    if cols.start == 0:
        edges[:, 0] = True
    if cols.stop == shape[1]:
        edges[:, -1] = True
    on_edge = piece & edges
    if not on_edge.any():
        return False
    return bool(np.percentile(dark[on_edge], 90) > 1.5 * np.median(dark[piece]))


def _removed_more_than_its_host(piece: np.ndarray, rest: np.ndarray, removed: np.ndarray, stats: WormStats) -> bool:
    """Whether the net removed a curved ``piece`` of a worm's length :data:`REMOVED_OVER_HOST` times as much as the
    ``rest`` of the structure it lies on (bool images and the float32 ``removed`` of one box).

    The net removes a worm whole and blurs a ring or a line only partly. A crisp stretch of a thin line along a
    pixel row is removed more than the rest of the line too (twice as much on a tuning plate), but it is straight
    and it need not be a worm long.
    """
    ratio = np.median(removed[piece]) / max(float(np.median(removed[rest])), 1e-6)
    if ratio < REMOVED_OVER_HOST:
        return False
    shape = blob_features(piece, removed, labelled=False)
    return bool(shape.straightness[0] < 0.85 and shape.length[0] >= 0.7 * stats.length)


def _a_stretch(piece: np.ndarray, ratio: float, others: np.ndarray, dark: np.ndarray, stats: WormStats) -> bool:
    """Whether a ``piece`` of a long structure, ``ratio`` times as dark as the rest of it, is a stretch of it: the
    structure (``others``) goes on past both its ends (:func:`_goes_on`) and it is less than 1.6 times as dark, or
    straight and shorter than 0.8 of a worm. A crisp stretch of a ring where it runs along a pixel row is straight
    and can be dark: 2.2 times the rest and 0.55 of a worm long on an unseen plate, 1.77 times and 0.70 long on
    a tuning plate (9601). A worm lying along a line is whole, and one lying partly on it curves."""
    if not _goes_on(piece, others, stats):
        return False
    if ratio < 1.6:
        return True
    shape = blob_features(piece, dark, labelled=False)
    return bool(shape.straightness[0] >= 0.9 and shape.length[0] < 0.8 * stats.length)


def _hangs_off(piece: np.ndarray, others: np.ndarray, dark: np.ndarray, stats: WormStats) -> bool:
    """Whether a ``piece`` of a long structure is a worm touching it by its head or its tail: the structure
    (``others``) crosses a shell around it at one place only (:func:`_crossings`) and lies along less than a
    quarter of its edge (one worm width out), and in the temporal background's darkness it is a whole, curved worm
    (:func:`_curved_worms`). (A worm lying along a ring, with a stretch of the ring in its piece, meets the ring
    at several places: five on tuning plate 10503. Around a stretch of a broad dish edge the edge goes on on
    either side: along 0.52-0.56 of its edge on untuned plate 10804, 0.03 around the worm of 20201.)"""
    if len(_crossings(piece, others, stats)) != 1:
        return False
    width = max(1, round(stats.width))
    edge = cv2.dilate(piece.astype(np.uint8), cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * width + 1,
                                                                                          2 * width + 1))).view(bool)
    edge &= ~piece
    if np.count_nonzero(others & edge) >= 0.25 * np.count_nonzero(edge):
        return False
    return bool(_curved_worms(blob_features(piece, dark, labelled=False), stats)[0])


def _off_long_structure(
    chosen: np.ndarray, dark: np.ndarray, structure: np.ndarray, stats: WormStats, disc: np.ndarray,
    removed: np.ndarray,
) -> np.ndarray:
    """``chosen`` less the regions that are a stretch of a longer static structure and no darker than the rest of it,
    and those that come into the frame from past its edge (:func:`_from_past_the_edge`).

    The net may remove part of a fibre or a line as thick and dark as a worm, and that part can look like a worm.
    In the temporal background the whole structure shows: where the region's structure (its dark connected
    surroundings, found as the candidates are but in the temporal background alone) is more than one and a half
    worms long and half as large again as the region, the region must be clearly darker than the rest of it (a
    worm lying across an old track is; a stretch of a fibre is not) to stay: 1.4 times the rest's median darkness,
    or 1.6 times (and curved or 0.8 of a worm long) where the structure goes on past both of the region's ends
    (:func:`_a_stretch`). A thin line's darkness varies along it with how it falls on the pixel grid, crisp where
    it runs along a row and smeared where it runs diagonally (a crisp stretch of a tuning plate's ring: 1.43 times
    the rest), while a worm lying on a line adds its own (1.95 and 2.79 on the tuning plates). ``dark`` is the
    temporal background's darkness (its black top-hat by ``disc``; white, for light worms) and ``structure`` where
    it exceeds the worm threshold (by hysteresis), both float32 or bool ``(H, W)``.

    A worm can be as dark and thick as the ring it lies along, so that the temporal background alone cannot tell
    them apart: then what the net removed (``removed``, float32 ``(H, W)``) is looked at too, and a curved region
    of a worm's length that the net removed half as much again as the rest of the structure stays
    (:func:`_removed_more_than_its_host`), and so does a whole, curved worm that touches the structure at one place
    only, by its head or its tail (:func:`_hangs_off`).
    """
    structure = structure | chosen
    _, hosts, host_stats, _ = cv2.connectedComponentsWithStats(structure.astype(np.uint8), connectivity=8,
                                                               ltype=cv2.CV_32S)
    n_chosen, pieces, piece_stats, _ = cv2.connectedComponentsWithStats(chosen.astype(np.uint8), connectivity=8,
                                                                        ltype=cv2.CV_32S)
    kept = chosen.copy()
    host_lengths: dict[int, float] = {}
    for label in range(1, n_chosen):
        left, top, width, height, area = piece_stats[label].tolist()
        box = (slice(top, top + height), slice(left, left + width))
        if _from_past_the_edge(pieces[box] == label, dark[box], box, chosen.shape):
            kept[box][pieces[box] == label] = False
            continue
        host_label = int(np.bincount(hosts[box][pieces[box] == label]).argmax())
        host_left, host_top, host_width, host_height, host_area = host_stats[host_label].tolist()
        if host_area <= 1.5 * area:
            continue
        host_box = (slice(host_top, host_top + host_height), slice(host_left, host_left + host_width))
        host = hosts[host_box] == host_label
        piece = pieces[host_box] == label
        rest = host & ~cv2.dilate(piece.astype(np.uint8), disc).view(bool)
        if host_label not in host_lengths:  # measured once per host, however many pieces lie on it
            host_lengths[host_label] = blob_features(host, dark[host_box], labelled=False).length[0]
        if not rest.any() or host_lengths[host_label] <= 1.5 * stats.length:
            continue
        rest_darkness = max(float(np.median(dark[host_box][rest])), 1e-6)
        ratio = np.median(dark[host_box][piece]) / rest_darkness
        others = structure[host_box] & ~piece
        if ratio < 1.4 or _a_stretch(piece, ratio, others, dark[host_box], stats):
            if (_removed_more_than_its_host(piece, rest, removed[host_box], stats)
                    or _hangs_off(piece, others, dark[host_box], stats)):
                continue
            kept[host_box][piece] = False
            kept[host_box] |= _dark_worm_in(piece, dark[host_box], 1.4 * rest_darkness, stats)
    return kept


def _back_disc(stats: WormStats) -> np.ndarray:
    """The disc by which a worm's dark core or narrow remnant is grown back to its edge: a third of its width."""
    back = max(1, round(0.3 * stats.width))
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * back + 1, 2 * back + 1))


def _dark_worm_in(piece: np.ndarray, dark: np.ndarray, level: float, stats: WormStats) -> np.ndarray:
    """The part of a ``piece`` (bool ``(H, W)``) where the temporal background's darkness ``dark`` (float32
    ``(H, W)``) exceeds ``level``, above that of the structure it lies on, grown back by a third of a worm's width
    inside the piece to take in its edge, when that part is a whole, curved worm: bool ``(H, W)``, else nothing.
    A worm lying along a ring half as dark as itself is one region with a stretch of the ring, and over the whole
    region it is no darker than the ring (tuning plate 10503); where it lies, the worm adds its own darkness. A part
    of over three quarters of the piece is the piece itself, which was found to be a stretch of its structure (a
    dish edge where a line joins it, 0.82 of its piece on unlike-suite plate 20104; 0.49 for the worm of 10503)."""
    back_disc = _back_disc(stats)
    core = cv2.dilate((piece & (dark > level)).astype(np.uint8), back_disc).view(bool) & piece
    if not core.any() or np.count_nonzero(core) > 0.75 * np.count_nonzero(piece):
        return np.zeros_like(core)
    cores = blob_features(core, dark)
    whole = _curved_worms(cores, stats)
    return np.isin(cores.labels, np.flatnonzero(whole) + 1)


