"""A background from the video, with the worms that never moved filled in (numpy and OpenCV; no torch).

Wherever a worm has moved on, the video shows its own background exactly: the per-pixel median of frames spread
over time (:func:`temporal_background`), which keeps every static thing (lawn rims, rings, fibres, text) as it
is. What that median also keeps is a worm that never moved. The worm filter (:mod:`wormclean.predict.worm_filter`)
says where those are, as a probability per pixel; :func:`fuse_backgrounds` takes its regions of a worm's size
(:func:`worm_regions`, sized by the worms this very video shows moving: :func:`calibrate_worms`) and fills the
plate in there from around them. Everywhere else the temporal background is used as it is.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass

import cv2
import numpy as np
from skimage.morphology import skeletonize

from wormclean.segment.blobs import outer_contours
from wormclean.segment.threshold import blob_areas, brightness_gain, label_components, worm_signal
from wormclean.settings import MIN_MOVING_BLOBS, NOISY, REGION_AREAS, REGION_LEVELS

_LEVEL_SAMPLES = 65536


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
    """Size, thickness and darkness of the blobs of one mask: ``(n_blobs,)`` float64 each, one entry per blob."""

    area: np.ndarray
    width: np.ndarray  # median thickness along the centreline, pixels
    length: np.ndarray  # centreline (skeleton) pixels
    contrast: np.ndarray  # the upper quartile of the worm signal inside the blob


def blob_features(mask: np.ndarray, signal: np.ndarray, min_area: int = 1) -> BlobFeatures:
    """Measure the 8-connected blobs of ``mask`` (bool ``(H, W)``) with at least ``min_area`` pixels, against
    ``signal`` (float32 ``(H, W)``, the worm signal, positive where worms are, grey levels)."""
    n_labels, labels, stats, _ = cv2.connectedComponentsWithStats(
        mask.astype(np.uint8, copy=False), connectivity=8, ltype=cv2.CV_32S
    )
    areas = stats[:, cv2.CC_STAT_AREA]
    keep = np.flatnonzero(areas[1:] >= min_area) + 1
    widths, lengths, contrasts = [], [], []
    for label, (left, top, box_w, box_h) in zip(keep.tolist(), stats[keep, :4].tolist()):
        box = (slice(top, top + box_h), slice(left, left + box_w))
        blob = np.pad(labels[box] == label, 1)
        distance = cv2.distanceTransform(blob.astype(np.uint8), cv2.DIST_L2, 3)
        skeleton = skeletonize(blob)
        # A body's thickness along its centreline: the distance to the edge is half the width there.
        widths.append(2.0 * float(np.median(distance[skeleton])) if skeleton.any() else 2.0 * float(distance.max()))
        lengths.append(_skeleton_length(skeleton))
        contrasts.append(float(np.percentile(signal[box][blob[1:-1, 1:-1]], 75)))
    return BlobFeatures(areas[keep].astype(np.float64), np.array(widths), np.array(lengths), np.array(contrasts))


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

    features = [blob_features(signal > delta, signal, min_area=8) for signal in signals()]
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


@dataclass(frozen=True)
class Fusion:
    """A fused background and how it was made."""

    background: np.ndarray  # float32 (H, W)
    regions: np.ndarray  # bool (H, W): the still worms the filter found, grown: where the plate is filled in
    n_candidates: int  # regions where the filter sees something of a worm
    n_worms: int  # of those, the ones of a worm's size (the still worms): there the plate is filled in


def worm_regions(probability: np.ndarray, stats: WormStats) -> tuple[np.ndarray, int, int]:
    """The worms the filter sees in an image: bool ``(H, W)``, with the number of candidate regions and of those
    kept.

    Candidates are :func:`hysteresis` of ``probability`` at :data:`REGION_LEVELS`; those of
    :data:`REGION_AREAS` times ``stats.area`` are kept.
    """
    n_labels, labels, areas = label_components(hysteresis(probability, *REGION_LEVELS))
    low, high = (factor * stats.area for factor in REGION_AREAS)
    keep = (areas >= low) & (areas <= high)
    keep[0] = False
    return keep[labels], n_labels - 1, int(np.count_nonzero(keep))


def median_region_area(probability: np.ndarray) -> float | None:
    """The area of the filter's candidate region (:data:`REGION_LEVELS`) that the median candidate pixel lies in,
    pixels (None if there is none): worms, not the many specks of a few pixels each, hold most candidate pixels."""
    areas = np.sort(label_components(hysteresis(probability, *REGION_LEVELS))[2][1:])
    if not len(areas):
        return None
    return float(areas[np.searchsorted(np.cumsum(areas), areas.sum() / 2)])


def fuse_backgrounds(temporal: np.ndarray, probability: np.ndarray, stats: WormStats) -> Fusion:
    """The temporal background with the still worms the filter sees in it filled in from around them.

    Parameters
    ----------
    temporal : np.ndarray
        float32 ``(H, W)``, :func:`temporal_background` of the video (or of a window of it).
    probability : np.ndarray
        float32 ``(H, W)``, the worm filter's probability on ``temporal``.
    stats : WormStats
        What a worm looks like in this video (:func:`calibrate_worms`, else :meth:`WormStats.prior`).
    """
    worms, n_candidates, n_worms = worm_regions(probability, stats)
    grow = _fill_radius(stats)
    disc = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * grow + 1, 2 * grow + 1))
    # Grown by half a worm's width: the worm's blurred edge, under the filter's level, would come back as a rim.
    region = cv2.dilate(worms.view(np.uint8), disc).view(bool)
    return Fusion(fill_worm_regions(temporal, region, stats), region, n_candidates, n_worms)


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
