"""Objects in still images (objects bright): points, boxes, Otsu foreground masks and connected components.

Pure numpy/OpenCV functions with no torch, shared by crop extraction and by detection on filtered images; the
thresholds and the labelling are those of :mod:`wormclean.segment.threshold`. Boxes are
``(xmin, ymin, xmax, ymax)`` in pixel coordinates with exclusive ends (a one-pixel component at column 3 spans x
from 3 to 4).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from wormclean.segment.threshold import label_stats, otsu_threshold


@dataclass(frozen=True)
class Point:
    """A point annotation: pixel position and class."""

    x: float
    y: float
    label: str


@dataclass(frozen=True)
class Box:
    """A box annotation or detection; ends exclusive. ``score`` is None for ground truth."""

    xmin: float
    ymin: float
    xmax: float
    ymax: float
    label: str = ""
    score: float | None = None

    @property
    def corners(self) -> tuple[float, float, float, float]:
        """``(xmin, ymin, xmax, ymax)``."""
        return (self.xmin, self.ymin, self.xmax, self.ymax)


def box_array(boxes) -> np.ndarray:
    """Corners of a :class:`Box`, of a sequence of them, or an ``(n, 4)`` array as it is: float64 ``(n, 4)``."""
    if isinstance(boxes, Box):
        boxes = [boxes]
    if isinstance(boxes, np.ndarray):
        return boxes.reshape(-1, 4)
    return np.asarray([box.corners for box in boxes], dtype=np.float64).reshape(-1, 4)


def intensity(working: np.ndarray) -> np.ndarray:
    """One value per pixel of a working image ``(H, W, C)``: the channel mean, ``(H, W)`` float32."""
    return np.asarray(working, dtype=np.float32).mean(axis=2)


def foreground_mask(working: np.ndarray, log: bool = True, within: np.ndarray | None = None) -> np.ndarray:
    """Otsu foreground of a working image ``(H, W, C)`` (objects bright): ``(H, W)`` bool.

    Parameters
    ----------
    working : ndarray
        ``(H, W, C)`` working image, non-negative.
    log : bool
        Threshold ``log1p`` of the values: objects spanning a wide range of brightness (a dim cytoplasm and a
        dense nucleus) then fall on the same side.
    within : ndarray of bool, optional
        ``(H, W)``: only these pixels set the threshold and can be foreground (a box).
    """
    values = intensity(working)
    if log:
        values = np.log1p(np.maximum(values, 0))
    region = values if within is None else values[within]
    if region.size == 0:
        return np.zeros(values.shape, dtype=bool)
    mask = values > otsu_threshold(region)
    return mask if within is None else mask & within


@dataclass(frozen=True)
class Component:
    """A connected region of a mask.

    Attributes
    ----------
    label : int
        Its value in the label image.
    box : (int, int, int, int)
        ``(xmin, ymin, xmax, ymax)``, exclusive ends.
    area : int
        Number of pixels.
    """

    label: int
    box: tuple[int, int, int, int]
    area: int


def find_components(mask: np.ndarray, min_area: int = 1) -> tuple[np.ndarray, list[Component]]:
    """8-connected components of an ``(H, W)`` bool mask of at least ``min_area`` pixels.

    Returns the ``(H, W)`` int32 label image (0 = none; smaller components are cleared) and the components.
    """
    count, labels, stats = label_stats(mask)
    components = []
    for label in range(1, count):
        x, y, width, height, area = (int(v) for v in stats[label])
        if area >= min_area:
            components.append(Component(label, (x, y, x + width, y + height), area))
        else:
            labels[labels == label] = 0
    return labels, components


def largest_component(mask: np.ndarray) -> np.ndarray:
    """The largest 8-connected component of an ``(H, W)`` bool mask, holes filled; all False if empty."""
    labels, components = find_components(mask)
    if not components:
        return np.zeros(mask.shape, dtype=bool)
    biggest = max(components, key=lambda component: component.area)
    return ndimage.binary_fill_holes(labels == biggest.label)


def clip_box(box: tuple[float, float, float, float], height: int, width: int) -> tuple[int, int, int, int]:
    """Round a box outwards to whole pixels and clip it to an image of ``height`` x ``width``."""
    xmin, ymin, xmax, ymax = box
    return (
        max(0, int(np.floor(xmin))),
        max(0, int(np.floor(ymin))),
        min(width, int(np.ceil(xmax))),
        min(height, int(np.ceil(ymax))),
    )
