"""Objects in a filtered image: Otsu on the net's output, small components dropped, one box per component.

Pure numpy: the input is the working-space output of :func:`wormclean.predict.filtering.filter_image` (objects
bright over a flat background).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from wormclean.segment.regions import Box, find_components, intensity
from wormclean.segment.threshold import otsu_threshold
from wormclean.settings import DetectionSettings


def object_mask(working: np.ndarray, top: float, settings: DetectionSettings) -> np.ndarray:
    """``(H, W)`` bool objects of a working output ``(H, W, C)`` with full range ``top``."""
    values = intensity(working) / top
    threshold = max(otsu_threshold(values), float(np.median(values)) + settings.min_contrast)
    mask = values > threshold
    if settings.close_radius:
        radius = settings.close_radius
        disc = np.hypot(*np.mgrid[-radius:radius + 1, -radius:radius + 1]) <= radius
        mask = ndimage.binary_closing(np.pad(mask, radius), structure=disc)[radius:-radius, radius:-radius]
    labels, _ = find_components(ndimage.binary_fill_holes(mask), settings.min_area)
    return labels > 0


def detect_objects(working: np.ndarray, top: float, settings: DetectionSettings) -> tuple[np.ndarray, list[Box]]:
    """Mask and boxes of the objects in a working output ``(H, W, C)``.

    Returns the ``(H, W)`` bool mask and one :class:`Box` per component, scored by its mean contrast over the
    output's median, as a fraction of the full range (0 to 1).
    """
    mask = object_mask(working, top, settings)
    values = intensity(working) / top
    background = float(np.median(values))
    labels, components = find_components(mask, settings.min_area)
    boxes = []
    for component in components:
        xmin, ymin, xmax, ymax = component.box
        inside = labels[ymin:ymax, xmin:xmax] == component.label
        score = float(values[ymin:ymax, xmin:xmax][inside].mean()) - background
        boxes.append(Box(xmin, ymin, xmax, ymax, score=round(score, 4)))
    return mask, boxes
