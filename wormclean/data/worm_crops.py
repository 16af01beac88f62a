"""Crop synthesis for the worm filter: worms pasted on a plate, with where they are as the target (numpy only).

The paper's semantic filtering, fed by a video itself. Its moving worms are measured against its temporal
background (:func:`worm_layers`): each is a *layer*, how much darker than the plate the worm makes each pixel.
Crops of the same video's temporal background (its rings, lines, text, specks and lawn edges as they are) get
some of those layers pasted on by the image model ``x = background - worms`` (:func:`synthesize_crop`); the
target is where the pasted worms are. A net trained on such crops says of any image of that plate where its
worms are, the ones that never moved among them, and nothing of the plate's own structure.

Everything here is in *worm units*: ``(image - level) / contrast`` with dark worms, ``(level - image) / contrast``
with light ones (:func:`to_worm_units`), so that a worm is about -1 at its core whatever the camera, the bit depth
or the polarity, and one filter serves every video.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from wormclean.padding import pad_image
from wormclean.segment.threshold import background_level, worm_signal

MAX_LAYERS = 400
"""Worm layers kept per video: many postures and looks, while a 2048x2048 video's stay a few MB."""

LAYER_AREA_RANGE = (0.5, 2.0)
"""A moving-worm blob is a layer when its area is within these factors of the video's typical worm (whole worms,
not a head out of the lawn nor two worms touching)."""

LAYER_MARGIN = 2
"""Pixels around a blob that its layer takes in: the worm's blurred edge, fainter than the threshold."""


@dataclass(frozen=True)
class WormLayer:
    """One worm as it darkens the plate: ``values`` float32 ``(h, w)`` in worm units (>= 0, about 1 at the core)
    and ``mask`` bool ``(h, w)``, the worm's pixels."""

    values: np.ndarray
    mask: np.ndarray


@dataclass(frozen=True)
class Plate:
    """A plate to paste worms on: ``image`` float32 ``(H, W)`` in worm units; ``floor``, the darkest value the
    camera records there in worm units (its black, for dark worms), below which a pasted worm is clipped as the
    camera clips it; ``weight``, float32 ``(H, W)`` loss weights of its pixels (a fold), or None for all;
    ``hard``, int ``(n, 2)`` rows and columns of pixels a filter took for worms on this worm-free plate, where a
    share of the crops is centred (:attr:`CropSettings.hard`), or None."""

    image: np.ndarray
    floor: float = -np.inf
    weight: np.ndarray | None = None
    hard: np.ndarray | None = None


VISIBLE = 0.5
"""A pasted worm pixel is a target where at least this fraction of its darkness shows once the camera's floor has
clipped it: a worm on a black rim cannot be seen, in training as in the frames."""


@dataclass(frozen=True)
class CropSettings:
    """How training crops are made (:func:`synthesize_crop`).

    Attributes
    ----------
    size : int
        Side of a crop, pixels.
    worms : tuple of float
        Probabilities of pasting 0, 1, 2, ... worms on a crop.
    contrast : tuple of float
        Range of the factor on a layer's darkness (a worm fainter or darker than those measured).
    on_structure : float
        Probability that a worm is pasted where the plate is darkest in the crop (a ring, a line, a speck), so that
        still worms lying on structure are seen as often as structure alone.
    noise : float
        Largest standard deviation of the Gaussian noise added, worm units.
    hard : float
        Share of the crops centred on a plate's ``hard`` pixels, where it has them (hard-negative mining): the
        structure a filter takes for worms is seen as often as the worms, alone and with worms pasted on it.
    """

    size: int = 96
    worms: tuple[float, ...] = (0.25, 0.4, 0.35)
    contrast: tuple[float, float] = (0.6, 1.3)
    on_structure: float = 0.5
    noise: float = 0.15
    hard: float = 0.3


def to_worm_units(image: np.ndarray, level: float, contrast: float, dark_worms: bool) -> np.ndarray:
    """``image`` (raw pixel units) in worm units: float32, 0 at ``level``, -1 a worm's ``contrast`` darker (dark
    worms) or brighter (light worms) than it."""
    sign = 1.0 if dark_worms else -1.0
    return ((image.astype(np.float32) - np.float32(level)) * np.float32(sign / contrast)).astype(np.float32)


def worm_layers(
    frames: Sequence[np.ndarray],
    temporal: np.ndarray,
    dark_worms: bool,
    delta: float,
    typical_area: float,
    contrast: float,
    max_layers: int = MAX_LAYERS,
) -> list[WormLayer]:
    """The moving worms of sample ``frames``, as layers: where a frame is darker (brighter, for light worms) than
    the ``temporal`` background by more than ``delta``, in blobs of a whole worm's area that do not touch the
    frame's edge. ``contrast`` (grey levels) makes the worm units; at most ``max_layers``, spread over the frames.
    """
    layers: list[WormLayer] = []
    per_frame = max(1, max_layers // max(1, len(frames)))
    low, high = (factor * typical_area for factor in LAYER_AREA_RANGE)
    height, width = temporal.shape
    for frame in frames:
        signal = worm_signal(frame, temporal, dark_worms)
        n_labels, labels, stats, _ = cv2.connectedComponentsWithStats(
            (signal > delta).view(np.uint8), connectivity=8, ltype=cv2.CV_32S
        )
        taken = 0
        for label in range(1, n_labels):
            left, top, box_w, box_h, area = stats[label].tolist()
            if not low <= area <= high or left == 0 or top == 0 or left + box_w == width or top + box_h == height:
                continue
            rows = slice(max(0, top - LAYER_MARGIN), min(height, top + box_h + LAYER_MARGIN))
            cols = slice(max(0, left - LAYER_MARGIN), min(width, left + box_w + LAYER_MARGIN))
            blob = (labels[rows, cols] == label).astype(np.uint8)
            around = cv2.dilate(blob, np.ones((2 * LAYER_MARGIN + 1,) * 2, np.uint8)).view(bool)
            values = np.where(around, np.maximum(signal[rows, cols], 0.0) / contrast, 0.0).astype(np.float32)
            layers.append(WormLayer(values, blob.view(bool)))
            taken += 1
            if taken >= per_frame:
                break
    return layers[:max_layers]


def plate_in_worm_units(image: np.ndarray, dark_worms: bool, contrast: float, top: float = 255.0) -> Plate:
    """A whole background image (raw units, ``top`` the camera's white) as a :class:`Plate` in worm units around
    its own level (:func:`background_level`)."""
    level = background_level(image.astype(np.float32))
    floor = to_worm_units(np.array([0.0 if dark_worms else top]), level, contrast, dark_worms)[0]
    return Plate(to_worm_units(image, level, contrast, dark_worms), float(floor))


def _transformed(layer: WormLayer, rng: np.random.Generator, contrast: tuple[float, float]) -> WormLayer:
    """A layer turned by a multiple of 90 degrees, maybe mirrored, its darkness scaled."""
    turns, mirror = int(rng.integers(4)), bool(rng.integers(2))
    values, mask = np.rot90(layer.values, turns), np.rot90(layer.mask, turns)
    if mirror:
        values, mask = values[:, ::-1], mask[:, ::-1]
    return WormLayer(values * np.float32(rng.uniform(*contrast)), mask)


def _centre(crop: np.ndarray, rng: np.random.Generator, on_structure: bool) -> tuple[int, int]:
    """Where a pasted worm is centred: anywhere, or among the crop's darkest twentieth of pixels."""
    if on_structure:
        threshold = np.percentile(crop, 5)
        rows, cols = np.nonzero(crop <= threshold)
        k = int(rng.integers(len(rows)))
        return int(rows[k]), int(cols[k])
    return int(rng.integers(crop.shape[0])), int(rng.integers(crop.shape[1]))


def _square(image: np.ndarray, top: int, left: int, size: int) -> np.ndarray:
    """The ``size`` square of ``image`` at ``top``, ``left`` (maybe outside it), the image reflected past its
    edges as inference pads it: a new float32 array."""
    height, width = image.shape
    rows = slice(max(0, top), min(height, top + size))
    cols = slice(max(0, left), min(width, left + size))
    pads = (rows.start - top, top + size - rows.stop), (cols.start - left, left + size - cols.stop)
    return pad_image(image[rows, cols], *pads).astype(np.float32, copy=True)


def synthesize_crop(
    plate: Plate, layers: Sequence[WormLayer], settings: CropSettings, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One training crop: a square of ``plate`` with worms of ``layers`` pasted on.

    The square may hang off the plate's edge, which is then reflected as inference pads it, so that the frame's
    edge looks to the net in training as it does in use. Pasted worms may hang off the crop's edge.

    Parameters
    ----------
    plate : Plate
        In worm units (:func:`plate_in_worm_units`); its ``weight`` (a fold, see
        :mod:`wormclean.train.worm_filter`) says how much each pixel counts in the loss, pasted worms included: a
        fold's worms and plate are learnt together, so that no structure of the other fold is seen under worms
        alone and learnt as a sign of one.
    layers : sequence of WormLayer
        The worms to paste (none: a crop of plate alone).
    settings : CropSettings
    rng : np.random.Generator

    Returns
    -------
    image, target, weight : np.ndarray
        float32 ``(size, size)`` each: the crop with worms, 1 where a pasted worm is (else 0), the loss weight.
    """
    size = settings.size
    if plate.hard is not None and len(plate.hard) and rng.random() < settings.hard:
        row, col = plate.hard[int(rng.integers(len(plate.hard)))]
        top, left = int(row) - size // 2, int(col) - size // 2
    else:
        top = int(rng.integers(plate.image.shape[0])) - size // 2
        left = int(rng.integers(plate.image.shape[1])) - size // 2
    image = _square(plate.image, top, left, size)
    bare = image.copy()
    weight = np.ones((size, size), np.float32) if plate.weight is None else _square(plate.weight, top, left, size)
    target = np.zeros((size, size), np.float32)
    n_worms = int(rng.choice(len(settings.worms), p=np.asarray(settings.worms) / sum(settings.worms)))
    if layers:
        for _ in range(n_worms):
            layer = _transformed(layers[int(rng.integers(len(layers)))], rng, settings.contrast)
            row, col = _centre(image, rng, rng.random() < settings.on_structure)
            h, w = layer.mask.shape
            top_l, left_l = row - h // 2, col - w // 2
            # The part of the layer inside the crop.
            r0, c0 = max(0, top_l), max(0, left_l)
            r1, c1 = min(size, top_l + h), min(size, left_l + w)
            if r1 <= r0 or c1 <= c0:
                continue
            inner = (slice(r0 - top_l, r1 - top_l), slice(c0 - left_l, c1 - left_l))
            image[r0:r1, c0:c1] -= layer.values[inner]
            target[r0:r1, c0:c1] = np.maximum(target[r0:r1, c0:c1], layer.mask[inner])
    darkening = bare - image
    np.maximum(image, np.float32(plate.floor), out=image)
    target[bare - image < VISIBLE * darkening] = 0.0
    sigma = rng.uniform(0.0, settings.noise)
    if sigma > 0:
        image += rng.normal(0.0, sigma, image.shape).astype(np.float32)
    return image, target, weight


def synthesize_batch(
    plates: Sequence[Plate], layers: Sequence[WormLayer], settings: CropSettings, rng: np.random.Generator,
    n_crops: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``n_crops`` crops (:func:`synthesize_crop`) from plates chosen at random (in proportion to their area):
    float32 ``(n_crops, 1, size, size)`` images, targets and loss weights."""
    areas = np.array([plate.image.size for plate in plates], np.float64)
    which = rng.choice(len(plates), size=n_crops, p=areas / areas.sum())
    crops = [synthesize_crop(plates[k], layers, settings, rng) for k in which]
    return tuple(np.stack([crop[part] for crop in crops])[:, None] for part in range(3))


def checkerboard(shape: tuple[int, int], block: int) -> np.ndarray:
    """Two folds of a plate: bool ``(H, W)``, True on the odd squares of a checkerboard of ``block`` pixels."""
    rows = (np.arange(shape[0]) // block)[:, None]
    cols = (np.arange(shape[1]) // block)[None, :]
    return ((rows + cols) % 2).astype(bool)
