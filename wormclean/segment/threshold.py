"""From a frame and its background to a worm mask (numpy and OpenCV; no torch).

The worm signal is the difference between the background and the frame, signed so that worms are positive:
``background - frame`` when worms are darker than the background (bright-field, the usual case) and
``frame - background`` when they are brighter (fluorescence, dark background). Before subtracting, the
background is scaled by the frame's global brightness relative to it (:func:`brightness_gain`), so lamp
flicker between the frame the background came from and the current frame does not turn into worms.
"""

from __future__ import annotations

import cv2
import numpy as np
from skimage.filters import threshold_otsu

from wormclean.errors import SettingsError
from wormclean.segment.blobs import mask_pixels, outer_contours
from wormclean.settings import DEFAULT_MIN_AREA, THRESHOLD_METHODS, default_delta

# Pixels sampled per frame for the brightness gain: a median over ~65k pixels is stable to well under a
# grey level and costs about a millisecond.
_GAIN_SAMPLES = 65536

# Pixels per strip in which the worm signal of a float frame is made and thresholded: its float32 signal (512 kB)
# stays in the cache. At 2048x2048 (2 loaded cores) the signal and its comparison took 3.3 ms of CPU per frame in
# strips of 64 rows, against 5.6 ms for the whole frame at once. (Integer frames, the usual case, take the bound.)
_STRIP_PIXELS = 131072

# Integer frames are compared with an integer bound made from the background (see worm_pixels): a bound within
# this many grey levels above (dark worms; below, bright worms) a whole level is taken as that level, so a frame
# value at a thousandth of a grey level from the threshold may fall on either side.
_BOUND_ROUNDING = 1e-3


def brightness_gain(frame: np.ndarray, background: np.ndarray, background_level: float | None = None) -> float:
    """Global brightness of ``frame`` relative to ``background``: ratio of their medians over a pixel grid.

    Worms cover a few percent of the field, so the medians are the background's level in both images; the
    ratio corrects multiplicative flicker of the illumination or camera gain. Returns 1 when the background's
    median is zero (nothing to scale). ``background_level``, the background's :func:`background_level` when it
    is known already (one background serves many frames), saves measuring it again.
    """
    step = _grid_step(frame)
    if background_level is None:
        background_level = _median(background[::step, ::step])
    if background_level <= 0:
        return 1.0
    return _median(frame[::step, ::step]) / background_level


def background_level(background: np.ndarray) -> float:
    """The background's median over the pixel grid :func:`brightness_gain` uses: what it divides by."""
    step = _grid_step(background)
    return _median(background[::step, ::step])


def _grid_step(image: np.ndarray) -> int:
    """Every this many rows and columns: about ``_GAIN_SAMPLES`` pixels of ``image``."""
    return max(1, int(np.sqrt(image.size / _GAIN_SAMPLES)))


def _median(values: np.ndarray) -> float:
    """``np.median`` of an array; for 8- and 16-bit integers the same value, counted from a histogram in a
    fraction of the time."""
    if values.dtype not in (np.uint8, np.uint16):
        return float(np.median(values))
    counts = np.cumsum(np.bincount(values.ravel()))
    # The middle order statistics (one, or two for an even count), averaged as np.median does.
    low, high = np.searchsorted(counts, [(values.size - 1) // 2, values.size // 2], side="right")
    return (float(low) + float(high)) / 2


def worm_signal(
    frame: np.ndarray, background: np.ndarray, dark_worms: bool = True, compensate_flicker: bool = True
) -> np.ndarray:
    """Difference image, positive where worms are: float32 ``(H, W)`` in grey levels.

    Parameters
    ----------
    frame : np.ndarray
        ``(H, W)`` frame in raw pixel units.
    background : np.ndarray
        ``(H, W)`` background in the same units (float32 from the net).
    dark_worms : bool
        True when worms are darker than the background (``background - frame``).
    compensate_flicker : bool
        Scale the background by :func:`brightness_gain` first.
    """
    background, gain = _scaled_background(frame, background, compensate_flicker)
    return _difference(frame, background, gain, dark_worms)


def worm_pixels(
    frame: np.ndarray,
    background: np.ndarray,
    level: float,
    dark_worms: bool = True,
    compensate_flicker: bool = True,
    background_level: float | None = None,
) -> np.ndarray:
    """Where :func:`worm_signal` exceeds ``level``: uint8 ``(H, W)``, nonzero on worm pixels.

    An integer frame (8 or 16 bits) is compared with an integer bound: with dark worms a pixel
    is a worm where ``frame < gain * background - level``, which for whole numbers is ``frame <
    ceil(gain * background - level)`` (bright worms: ``frame > floor(gain * background + level)``). The bound
    is one conversion of the background, and the comparison one of integers: 1.4 ms at 2048x2048, against 5.7
    ms for making and comparing the float32 signal. The two agree except within a thousandth of a grey level
    of the threshold; a dark-worm bound beyond the largest value (a background over ``level`` above it) is
    taken as the largest value. The parameters are those of :func:`worm_signal`; ``background_level`` as
    in :func:`brightness_gain`. Other frames are thresholded strip by strip of rows, so that each strip's
    float32 signal stays in the processor's cache instead of going out to memory and back.
    """
    background, gain = _scaled_background(frame, background, compensate_flicker, background_level)
    if frame.dtype in (np.uint8, np.uint16) and frame.size > 1:  # OpenCV takes a 1x1 array for a scalar
        # Rounding to the nearest integer, moved by half a level (less the rounding margin), gives the ceiling
        # (dark worms) or the floor (bright worms) of the exact bound. Whole frames: the bound is no larger
        # than the frame, and one call each is cheaper than strips.
        offset = 0.5 - level - _BOUND_ROUNDING if dark_worms else level - 0.5 + _BOUND_ROUNDING
        depth = cv2.CV_8U if frame.dtype == np.uint8 else cv2.CV_16U
        bound = cv2.addWeighted(background, gain, background, 0.0, offset, dtype=depth)
        return cv2.compare(frame, bound, cv2.CMP_LT if dark_worms else cv2.CMP_GT)
    pixels = np.empty(frame.shape, dtype=np.uint8)
    rows = max(1, _STRIP_PIXELS // max(1, frame.shape[1]))
    for top in range(0, frame.shape[0], rows):
        strip = slice(top, top + rows)
        _above(_difference(frame[strip], background[strip], gain, dark_worms), level, out=pixels[strip])
    return pixels


def _scaled_background(
    frame: np.ndarray, background: np.ndarray, compensate_flicker: bool, background_level: float | None = None
) -> tuple[np.ndarray, float]:
    """The background as float32, and the gain by which it is scaled to the frame's brightness."""
    if frame.shape != background.shape:
        raise SettingsError(f"frame {frame.shape} and background {background.shape} differ in shape")
    background = background.astype(np.float32, copy=False)
    return background, brightness_gain(frame, background, background_level) if compensate_flicker else 1.0


def _difference(frame: np.ndarray, background: np.ndarray, gain: float, dark_worms: bool) -> np.ndarray:
    """The worm signal of (part of) a frame against its float32 background scaled by ``gain``."""
    # One multithreaded pass with mixed input types (3 ms at 2048^2, against 16 ms for numpy).
    if dark_worms:
        return cv2.addWeighted(background, gain, frame, -1.0, 0.0, dtype=cv2.CV_32F)
    return cv2.addWeighted(frame, 1.0, background, -gain, 0.0, dtype=cv2.CV_32F)


def otsu_level(signal: np.ndarray) -> float:
    """Otsu's threshold of a worm signal, never below three noise standard deviations.

    With worms covering a few percent of the frame, Otsu alone can split the noise around zero; the floor
    (3 x 1.4826 x the median absolute deviation) keeps it above the noise.
    """
    step = max(1, int(np.sqrt(signal.size / _GAIN_SAMPLES)))
    sample = signal[::step, ::step]
    noise = 1.4826 * float(np.median(np.abs(sample - np.median(sample))))
    if float(signal.max()) <= float(signal.min()):
        return float(signal.max()) + 1.0
    return max(float(threshold_otsu(signal)), 3.0 * noise)


def otsu_threshold(values: np.ndarray, n_bins: int = 256) -> float:
    """Otsu's threshold of an array of any range (values above it form the bright class).

    :func:`skimage.filters.threshold_otsu` over ``n_bins`` bins of the array's own range, so it behaves the same
    on 8-bit, 16-bit and log values, moved from the centre to the upper edge of the dark class's last bin (the
    whole bin falls on the dark side). A constant array returns its value.
    """
    values = np.asarray(values, dtype=np.float64).ravel()
    half_bin = (float(values.max()) - float(values.min())) / (2 * n_bins)
    return float(threshold_otsu(values, nbins=n_bins)) + half_bin


def label_stats(mask: np.ndarray) -> tuple[int, np.ndarray, np.ndarray]:
    """8-connected components of a boolean mask, with OpenCV's statistics.

    Returns
    -------
    n_labels : int
        Number of labels including the background label 0.
    labels : np.ndarray
        int32 ``(H, W)``, 0 for background.
    stats : np.ndarray
        ``(n_labels, 5)`` int32 rows ``(x, y, width, height, area)`` (``cv2.CC_STAT_*``).
    """
    n_labels, labels, stats, _ = cv2.connectedComponentsWithStats(
        mask.astype(np.uint8, copy=False), connectivity=8, ltype=cv2.CV_32S
    )
    return n_labels, labels, stats


def label_components(mask: np.ndarray) -> tuple[int, np.ndarray, np.ndarray]:
    """8-connected components of a boolean mask: ``(n_labels, labels, areas)`` as :func:`label_stats` gives
    them, with the pixel count of each label, ``(n_labels,)``, in place of the statistics."""
    n_labels, labels, stats = label_stats(mask)
    return n_labels, labels, stats[:, cv2.CC_STAT_AREA]


def clean_mask(
    mask: np.ndarray,
    min_area: int,
    max_area: int | None = None,
    max_hole: int | None = None,
    with_contours: bool = False,
) -> np.ndarray | tuple[np.ndarray, list[np.ndarray]]:
    """Keep blobs of ``min_area`` to ``max_area`` pixels and fill their holes of up to ``max_hole`` pixels.

    Works on outer contours, which is fast on sparse masks (a millisecond at 2048^2, against 40 ms for
    labelling every pixel): a blob's pixel count follows from its contour by Pick's theorem (polygon area plus
    half the boundary pixels plus one), counting its holes as filled. Only the holes are labelled, to measure
    them, each blob's inside its own bounding box (the same labels as over the whole frame: a hole lies inside
    its blob, and the filled blobs do not touch).

    Parameters
    ----------
    mask : np.ndarray
        bool ``(H, W)``, or uint8 ``(H, W)`` nonzero on worm pixels.
    min_area, max_area : int
        Blob size limits in pixels, holes counted in (``max_area`` None: no upper limit).
    max_hole : int, optional
        Largest hole filled (a worm curled into a loop); larger ones (the inside of a ring) stay open. None fills
        every hole.
    with_contours : bool
        Also return the blobs' outer contours.

    Returns
    -------
    np.ndarray
        bool ``(H, W)``; with ``with_contours``, also the outer contours of its blobs, the same as
        :func:`~wormclean.segment.blobs.outer_contours` of it would find (holes are filled or opened inside a
        blob, so its outline stays), which saves finding them again.
    """
    pixels = mask_pixels(mask)
    contours = outer_contours(pixels)
    # A contour of n points encloses at most n^2 / (2 pi) + n / 2 + 1 pixels (the isoperimetric inequality, for
    # a closed path of n steps at most sqrt(2) long, then Pick's theorem): specks of noise too short for
    # min_area, most of the contours, are dropped before they are measured (with a pixel to spare for rounding).
    lengths = _lengths(contours)
    contours = [contours[i] for i in np.flatnonzero(lengths**2 / (2 * np.pi) + lengths / 2 + 2 >= min_area)]
    areas = blob_areas(contours)
    chosen = np.flatnonzero((areas >= min_area) & (max_area is None or areas <= max_area))
    kept = [contours[i] for i in chosen]
    filled = np.zeros(mask.shape, dtype=np.uint8)
    cv2.drawContours(filled, kept, -1, 1, thickness=cv2.FILLED)
    if max_hole is not None:
        # A blob's holes are at most its area less its outline's pixels, and an 8-connected outline passes each
        # of its pixels at most 4 times: blobs too small for a hole over max_hole are not looked into.
        roomy = areas[chosen] - _lengths(kept) / 4 > max_hole
        _open_large_holes(filled, pixels, [contour for contour, large in zip(kept, roomy) if large], max_hole)
    return (filled.view(bool), kept) if with_contours else filled.view(bool)


def _lengths(contours: list[np.ndarray]) -> np.ndarray:
    """The number of points of each contour: float64 ``(n_contours,)``."""
    return np.fromiter(map(len, contours), dtype=np.float64, count=len(contours))


def _open_large_holes(filled: np.ndarray, pixels: np.ndarray, blobs: list[np.ndarray], max_hole: int) -> None:
    """Clear, in ``filled``, the holes of over ``max_hole`` pixels of the blobs (outer contours ``blobs``) of
    ``pixels``."""
    for contour in blobs:
        x, y, width, height = cv2.boundingRect(contour)
        box = (slice(y, y + height), slice(x, x + width))
        blob = np.zeros((height, width), dtype=np.uint8)
        cv2.drawContours(blob, [contour], -1, 1, thickness=cv2.FILLED, offset=(-x, -y))
        holes = cv2.bitwise_and(blob, blob, mask=cv2.inRange(pixels[box], 0, 0))  # a third of numpy's time
        if not cv2.hasNonZero(holes):
            continue
        _, labels, stats, _ = cv2.connectedComponentsWithStats(holes, connectivity=4, ltype=cv2.CV_32S)
        large = np.flatnonzero(stats[1:, cv2.CC_STAT_AREA] > max_hole) + 1
        if len(large):
            filled[box][np.isin(labels, large)] = 0


def blob_areas(contours: tuple[np.ndarray, ...]) -> np.ndarray:
    """Pixel counts of the blobs whose outer contours (``cv2.CHAIN_APPROX_NONE``) are given, holes counted in:
    float64 ``(n_contours,)``.

    Pick's theorem: the polygon's area (``cv2.contourArea``, here by the shoelace formula over all contours at
    once, in integers, so exactly the same) plus half the boundary pixels plus one.
    """
    if not contours:
        return np.zeros(0)
    lengths = np.fromiter(map(len, contours), dtype=np.int64, count=len(contours))
    points = np.concatenate(contours).reshape(-1, 2).astype(np.int64)
    starts = np.cumsum(lengths) - lengths
    previous = np.roll(points, 1, axis=0)
    previous[starts] = points[starts + lengths - 1]  # each contour closes on itself
    cross = previous[:, 0] * points[:, 1] - previous[:, 1] * points[:, 0]
    return np.abs(np.add.reduceat(cross, starts)) * 0.5 + lengths / 2 + 1


def segment(
    frame: np.ndarray,
    background: np.ndarray,
    dark_worms: bool = True,
    method: str = "delta",
    delta: float | None = None,
    min_area: int = DEFAULT_MIN_AREA,
    bit_depth: int = 8,
    compensate_flicker: bool = True,
    max_area: int | None = None,
    max_hole: int | None = None,
    background_level: float | None = None,
    with_contours: bool = False,
) -> np.ndarray | tuple[np.ndarray, list[np.ndarray]]:
    """Worm mask of one frame against its background: bool ``(H, W)`` (and its blobs' outer contours, with
    ``with_contours``: see :func:`clean_mask`).

    Parameters
    ----------
    frame, background : np.ndarray
        ``(H, W)`` frame and background in raw pixel units.
    dark_worms : bool
        Worms darker than the background (light background) if True.
    method : {"delta", "otsu"}
        ``"delta"``: a worm pixel differs from the background by more than ``delta`` grey levels.
        ``"otsu"``: Otsu's threshold of the difference (:func:`otsu_level`).
    delta : float, optional
        Threshold in grey levels; default :func:`default_delta` of ``bit_depth``.
    min_area, max_area : int
        Blobs of fewer (more) pixels are removed; ``max_area`` None: no upper limit.
    bit_depth : int
        Bit depth of the video (8 to 16), used for the default ``delta``.
    compensate_flicker : bool
        Scale the background to the frame's brightness first.
    max_hole : int, optional
        Largest hole in a blob that is filled (None: all); see :func:`clean_mask`.
    background_level : float, optional
        The background's :func:`background_level`, when it is known already (see :func:`brightness_gain`).
    """
    if method == "delta":
        level = default_delta(bit_depth) if delta is None else delta
        pixels = worm_pixels(frame, background, level, dark_worms, compensate_flicker, background_level)
    elif method == "otsu":
        signal = worm_signal(frame, background, dark_worms, compensate_flicker)
        pixels = _above(signal, otsu_level(signal))
    else:
        raise SettingsError(f"unknown threshold method {method!r}; use one of {', '.join(THRESHOLD_METHODS)}")
    return clean_mask(pixels, min_area, max_area, max_hole, with_contours)


def _above(values: np.ndarray, level: float, out: np.ndarray | None = None) -> np.ndarray:
    """uint8 mask (into ``out`` if given), nonzero where float32 ``values`` exceed ``level``, compared in
    float32 as numpy compares a float32 array with a Python float."""
    if values.size == 1:  # OpenCV takes a 1x1 array for a scalar
        out = np.empty(values.shape, dtype=np.uint8) if out is None else out
        out[...] = values > float(level)
        return out
    return cv2.compare(values, float(level), cv2.CMP_GT, dst=out)


def dilate(mask: np.ndarray, radius: int) -> np.ndarray:
    """Grow a boolean mask by ``radius`` pixels with a disc (no change for radius 0): bool ``(H, W)``.

    Each blob is dilated inside its own bounding box grown by ``radius``, which gives the same result as
    dilating the whole frame (every output pixel lies in the grown box of the blob it comes from) at a
    fraction of the cost on sparse masks.
    """
    if radius <= 0:
        return mask
    pixels = mask_pixels(mask)
    contours = outer_contours(pixels)
    disc = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))
    grown = np.zeros_like(pixels)
    for box in grown_boxes(contours, radius, mask.shape):
        grown[box] |= cv2.dilate(pixels[box], disc)
    return grown.view(bool)


def grown_boxes(
    contours: tuple[np.ndarray, ...], radius: int, shape: tuple[int, int]
) -> list[tuple[slice, slice]]:
    """Each contour's bounding box grown by ``radius`` pixels on every side, inside a frame of ``shape``: the
    (rows, columns) slices that hold the blob dilated by :func:`dilate`."""
    height, width = shape
    boxes = []
    for contour in contours:
        x, y, box_width, box_height = cv2.boundingRect(contour)
        rows = slice(max(0, y - radius), min(height, y + box_height + radius))
        cols = slice(max(0, x - radius), min(width, x + box_width + radius))
        boxes.append((rows, cols))
    return boxes
