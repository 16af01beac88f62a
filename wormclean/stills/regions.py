"""Foreground masks and connected components of working images (objects bright): Otsu thresholds, labels, boxes.

Pure numpy/OpenCV functions with no torch, shared by crop extraction and by detection on filtered images.
Boxes are ``(xmin, ymin, xmax, ymax)`` in pixel coordinates with exclusive ends (a one-pixel component at
column 3 spans x from 3 to 4).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from scipy import ndimage


def otsu_threshold(values: np.ndarray, n_bins: int = 256) -> float:
    """Otsu's threshold of a float array of any range (values above it form the bright class).

    Histogram-based over the array's own range, so it behaves the same on 8-bit, 16-bit and log values.
    A constant array returns its value.
    """
    values = np.asarray(values, dtype=np.float64).ravel()
    low, high = float(values.min()), float(values.max())
    if high <= low:
        return low
    counts, edges = np.histogram(values, bins=n_bins, range=(low, high))
    centres = (edges[:-1] + edges[1:]) / 2
    weight_low = np.cumsum(counts)
    weight_high = weight_low[-1] - weight_low
    sum_low = np.cumsum(counts * centres)
    mean_low = sum_low / np.maximum(weight_low, 1)
    mean_high = (sum_low[-1] - sum_low) / np.maximum(weight_high, 1)
    between = weight_low * weight_high * (mean_low - mean_high) ** 2
    return float(edges[int(np.argmax(between[:-1])) + 1])


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


def label_components(mask: np.ndarray, min_area: int = 1) -> tuple[np.ndarray, list[Component]]:
    """8-connected components of an ``(H, W)`` bool mask of at least ``min_area`` pixels.

    Returns the ``(H, W)`` int32 label image (0 = none; smaller components are cleared) and the components.
    """
    count, labels, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    components = []
    for label in range(1, count):
        x, y, width, height, area = (int(v) for v in stats[label])
        if area >= min_area:
            components.append(Component(label, (x, y, x + width, y + height), area))
        else:
            labels[labels == label] = 0
    return labels.astype(np.int32), components


def largest_component(mask: np.ndarray) -> np.ndarray:
    """The largest 8-connected component of an ``(H, W)`` bool mask, holes filled; all False if empty."""
    labels, components = label_components(mask)
    if not components:
        return np.zeros(mask.shape, dtype=bool)
    biggest = max(components, key=lambda component: component.area)
    return ndimage.binary_fill_holes(labels == biggest.label)


def grow(mask: np.ndarray, pixels: int) -> np.ndarray:
    """Dilate an ``(H, W)`` bool mask by a disc of radius ``pixels`` (0 returns it unchanged)."""
    if pixels <= 0:
        return mask
    disc = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * pixels + 1, 2 * pixels + 1))
    return cv2.dilate(mask.astype(np.uint8), disc).astype(bool)


def clip_box(box: tuple[float, float, float, float], height: int, width: int) -> tuple[int, int, int, int]:
    """Round a box outwards to whole pixels and clip it to an image of ``height`` x ``width``."""
    xmin, ymin, xmax, ymax = box
    return (
        max(0, int(np.floor(xmin))),
        max(0, int(np.floor(ymin))),
        min(width, int(np.ceil(xmax))),
        min(height, int(np.ceil(ymax))),
    )
