"""Synthetic training pairs for still images (Javer & Rittscher, "semantic filtering through deep source
separation").

A still image gives no second view of the same scene, so pairs are built from crops, with an additive model in
the working space (objects bright over a dark background, see :mod:`wormclean.stills.colour`)::

    image = background + sum of target objects + sum of other objects

A pair shares one layer and differs in the rest:

- ``mode="keep"``: the **target objects** (same crops, same transforms, same places) are the shared layer; the
  other objects and the background patch are drawn afresh for each image. A net trained with an L1 loss to
  map one image of the pair to the other learns the per-pixel median of the second image given the first:
  the shared targets, plus the median of the varying part, which tends to a constant background level
  (other objects are sparse, so at any pixel most draws have none). Output: the targets on a flat background.
- ``mode="remove"``: the **other objects and the background** are shared and the target objects vary; the net
  learns the image with the targets removed.

Both images of a pair are Noise2Noise views of the same clean image (``input = first``, ``target = second``).
With ``clean_target`` the target is the shared layer itself (keep: targets on zero; remove: background and
others), a supervised variant possible because the layers are known.

Each placed crop gets a random rotation (any angle), a random flip, a zoom, an intensity scale and offset.
Crops may hang over the patch edge. Overlaps are limited: no object may have more than ``max_overlap`` of its
visible area covered by others in either image (so no object is ever hidden completely); a crop that finds no
such place in ``placement_tries`` attempts is left out. The varying objects stop at ``max_coverage`` of the
image, so that the median of the varying part stays the background whatever the crop and patch sizes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import cv2
import numpy as np

from wormclean.errors import SettingsError
from wormclean.settings import SynthesisSettings


@dataclass(frozen=True)
class ObjectCrop:
    """One object in working units.

    ``pixels`` ``(h, w, C)`` (any numeric dtype; kept as integers in a bank to bound memory), ``mask``
    ``(h, w)`` bool, ``level`` ``(C,)`` the background level of its source image, subtracted so that the
    object adds onto any background.
    """

    pixels: np.ndarray
    mask: np.ndarray
    level: np.ndarray | float = 0.0

    @property
    def values(self) -> np.ndarray:
        """``(h, w, C)`` float32: pixels minus the background level, zero outside the mask."""
        values = self.pixels.astype(np.float32) - np.asarray(self.level, dtype=np.float32)
        return values * self.mask[..., None]


@dataclass(frozen=True)
class BackgroundPatch:
    """A background patch in working units: ``pixels`` ``(h, w, C)`` and ``visible`` ``(h, w)`` bool, False
    where objects were cleared."""

    pixels: np.ndarray
    visible: np.ndarray

    @cached_property
    def quartiles(self) -> np.ndarray:
        """``(2, C)`` float32: the lower and upper quartiles of the visible pixels (zeros if none shows)."""
        shown = self.pixels[self.visible]
        if not shown.size:
            return np.zeros((2, self.pixels.shape[2]), dtype=np.float32)
        return np.quantile(shown, [0.25, 0.75], axis=0).astype(np.float32)


@dataclass
class CropBank:
    """What pairs are drawn from: target crops, other crops, background patches.

    ``top`` is the largest working value (``2 ** bit_depth - 1``); images are clipped to ``[0, top]``.
    """

    targets: list[ObjectCrop]
    others: list[ObjectCrop]
    backgrounds: list[BackgroundPatch]
    top: float
    n_channels: int

    def __post_init__(self):
        if not self.targets:
            raise SettingsError("no crop of the target classes to build pairs from")


@dataclass(frozen=True)
class Placement:
    """Where one crop went: ``mask`` is the part of the transformed crop inside the image, its top-left corner
    at (``row``, ``column``)."""

    layer: str
    index: int
    row: int
    column: int
    mask: np.ndarray

    @property
    def window(self) -> tuple[slice, slice]:
        return (slice(self.row, self.row + self.mask.shape[0]), slice(self.column, self.column + self.mask.shape[1]))


@dataclass
class SyntheticPair:
    """Two images with a shared layer, in working units, each ``(P, P, C)`` float32.

    Attributes
    ----------
    first, second : ndarray
        ``clip(shared + varying[i], 0, top)``: the net's input and (Noise2Noise) target.
    shared : ndarray
        The layer both contain (keep: target objects; remove: background and other objects).
    varying : (ndarray, ndarray)
        What differs (keep: background and other objects; remove: target objects).
    placements : (list of Placement, list of Placement)
        Every object in each image, shared ones included.
    """

    first: np.ndarray
    second: np.ndarray
    shared: np.ndarray
    varying: tuple[np.ndarray, np.ndarray]
    placements: tuple[list[Placement], list[Placement]] = field(default_factory=lambda: ([], []))


def transform_crop(
    crop: ObjectCrop, settings: SynthesisSettings, top: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Randomly flip, rotate, zoom and rescale a crop; returns ``(h', w', C)`` values and ``(h', w')`` mask."""
    values, mask = crop.values, crop.mask
    if rng.random() < 0.5:
        values, mask = values[:, ::-1], mask[:, ::-1]
    height, width = mask.shape
    angle, scale = rng.uniform(0, 360), rng.uniform(*settings.zoom)
    matrix = cv2.getRotationMatrix2D(((width - 1) / 2, (height - 1) / 2), angle, scale)
    cos, sin = abs(matrix[0, 0]), abs(matrix[0, 1])
    new_width = max(1, int(np.ceil(height * sin + width * cos)))
    new_height = max(1, int(np.ceil(height * cos + width * sin)))
    matrix[0, 2] += (new_width - width) / 2
    matrix[1, 2] += (new_height - height) / 2
    channels = values.shape[2]
    warped = cv2.warpAffine(np.ascontiguousarray(values), matrix, (new_width, new_height), flags=cv2.INTER_LINEAR,
                            borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    warped = warped.reshape(new_height, new_width, channels)
    weights = cv2.warpAffine(np.ascontiguousarray(mask, dtype=np.float32), matrix, (new_width, new_height),
                             flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    offset = rng.uniform(*settings.intensity_offset) * top
    warped = warped * rng.uniform(*settings.intensity_scale) + offset * weights[..., None]
    return warped.astype(np.float32), weights > 0.5


class _Canvas:
    """One image's object layer being built: values, how many objects cover each pixel, what was placed."""

    def __init__(self, size: int, channels: int):
        self.values = np.zeros((size, size, channels), dtype=np.float32)
        self.count = np.zeros((size, size), dtype=np.int16)
        self.placements: list[Placement] = []

    def copy(self) -> _Canvas:
        twin = _Canvas.__new__(_Canvas)
        twin.values, twin.count, twin.placements = self.values.copy(), self.count.copy(), list(self.placements)
        return twin

    def try_place(self, layer: str, index: int, values: np.ndarray, mask: np.ndarray, max_overlap: float,
                  rng: np.random.Generator) -> bool:
        """Put an object with its centre at a random pixel if every object stays under ``max_overlap``."""
        size = self.count.shape[0]
        height, width = mask.shape
        row = int(rng.integers(0, size)) - height // 2
        column = int(rng.integers(0, size)) - width // 2
        top, left = max(row, 0), max(column, 0)
        bottom, right = min(row + height, size), min(column + width, size)
        if bottom <= top or right <= left:
            return False
        visible = mask[top - row:bottom - row, left - column:right - column]
        area = int(visible.sum())
        if area == 0:
            return False
        count = self.count[top:bottom, left:right]
        if np.count_nonzero(count[visible]) > max_overlap * area:
            return False
        new = Placement(layer, index, top, left, visible)
        for old in self.placements:
            if not _covered_after(old, new, self.count) <= max_overlap:
                return False
        self.values[top:bottom, left:right] += values[top - row:bottom - row, left - column:right - column]
        count += visible
        self.placements.append(new)
        return True


def _covered_after(old: Placement, new: Placement, count: np.ndarray) -> float:
    """Fraction of ``old``'s visible area covered by other objects once ``new`` is added."""
    top, left = max(old.row, new.row), max(old.column, new.column)
    bottom = min(old.row + old.mask.shape[0], new.row + new.mask.shape[0])
    right = min(old.column + old.mask.shape[1], new.column + new.mask.shape[1])
    if bottom <= top or right <= left:
        return 0.0
    rows, columns = old.window
    covered = old.mask & (count[rows, columns] >= 2)
    extra = old.mask[top - old.row:bottom - old.row, left - old.column:right - old.column] & new.mask[
        top - new.row:bottom - new.row, left - new.column:right - new.column]
    # pixels newly covered: ``old`` alone there until now (count 1) and ``new`` arrives
    alone = count[top:bottom, left:right] == 1
    return (int(covered.sum()) + int((extra & alone).sum())) / int(old.mask.sum())


def _fill_objects(canvas: _Canvas, layer: str, crops: list[ObjectCrop], count_range: tuple[int, int],
                  settings: SynthesisSettings, top: float, rng: np.random.Generator,
                  max_coverage: float = 1.0) -> None:
    """Place up to a random number of crops of ``layer``, until they cover ``max_coverage`` of the image."""
    if not crops:
        return
    covered = np.zeros(canvas.count.shape, dtype=bool)
    for _ in range(int(rng.integers(count_range[0], count_range[1] + 1))):
        if covered.mean() >= max_coverage:
            break
        index = int(rng.integers(len(crops)))
        values, mask = transform_crop(crops[index], settings, top, rng)
        for _ in range(settings.placement_tries):
            if canvas.try_place(layer, index, values, mask, settings.max_overlap, rng):
                placed = canvas.placements[-1]
                covered[placed.window] |= placed.mask
                break


def background_layer(bank: CropBank, settings: SynthesisSettings, rng: np.random.Generator) -> np.ndarray:
    """A ``(P, P, C)`` background: a random patch, randomly turned and flipped, enlarged if smaller than the
    patch, cut to size, its cleared pixels filled with a random constant (between the quartiles of what shows)
    and rescaled. Zeros when the bank holds no background."""
    size = settings.patch_size
    if not bank.backgrounds:
        return np.zeros((size, size, bank.n_channels), dtype=np.float32)
    patch = bank.backgrounds[int(rng.integers(len(bank.backgrounds)))]
    turns, flip = int(rng.integers(4)), rng.random() < 0.5
    values, visible = (np.rot90(array, turns) for array in (patch.pixels, patch.visible))
    if flip:
        values, visible = values[:, ::-1], visible[:, ::-1]
    height, width = visible.shape
    if min(height, width) < size:
        factor = size / min(height, width)
        height, width = max(size, int(np.ceil(height * factor))), max(size, int(np.ceil(width * factor)))
        values = cv2.resize(np.ascontiguousarray(values), (width, height), interpolation=cv2.INTER_LINEAR)
        visible = cv2.resize(np.ascontiguousarray(visible, dtype=np.uint8), (width, height),
                             interpolation=cv2.INTER_NEAREST) > 0
    row, column = int(rng.integers(0, height - size + 1)), int(rng.integers(0, width - size + 1))
    window = (slice(row, row + size), slice(column, column + size))
    low, high = patch.quartiles
    fill = low + rng.uniform() * (high - low)
    cut = values[window].reshape(size, size, bank.n_channels).astype(np.float32)
    cut = np.where(visible[window][..., None], cut, fill)
    return cut * np.float32(rng.uniform(*settings.intensity_scale))


def synthesize_pair(bank: CropBank, settings: SynthesisSettings, rng: np.random.Generator) -> SyntheticPair:
    """Draw one synthetic pair (see the module docstring); deterministic given the state of ``rng``."""
    size, top = settings.patch_size, bank.top
    keep = settings.mode == "keep"
    shared = _Canvas(size, bank.n_channels)
    shared_kind, shared_crops, shared_range = ("target", bank.targets, settings.n_targets) if keep else (
        "other", bank.others, settings.n_others)
    varying_kind, varying_crops, varying_range = ("other", bank.others, settings.n_others) if keep else (
        "target", bank.targets, settings.n_targets)
    _fill_objects(shared, shared_kind, shared_crops, shared_range, settings, top, rng)
    shared_values = shared.values if keep else shared.values + background_layer(bank, settings, rng)
    images, varying, placements = [], [], []
    for _ in range(2):
        canvas = shared.copy()
        canvas.values[:] = 0
        _fill_objects(canvas, varying_kind, varying_crops, varying_range, settings, top, rng,
                      settings.max_coverage)
        layer = canvas.values + background_layer(bank, settings, rng) if keep else canvas.values
        varying.append(layer)
        images.append(np.clip(shared_values + layer, 0, top))
        placements.append(canvas.placements)
    return SyntheticPair(images[0], images[1], shared_values, (varying[0], varying[1]),
                         (placements[0], placements[1]))
