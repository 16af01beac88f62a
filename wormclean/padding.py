"""The one rule for padding an image at its edges: reflection, or edge replication where the image is too short
to reflect (numpy's and torch's reflection need fewer pad pixels than the side has)."""

from __future__ import annotations

import numpy as np


def reflects(height: int, width: int, pad_h: int, pad_w: int) -> bool:
    """Whether an image of ``height`` x ``width`` is padded by reflection (else by edge replication) when up to
    ``pad_h`` rows and ``pad_w`` columns are added on a side."""
    return pad_h < height and pad_w < width


def pad_image(
    image: np.ndarray, rows: tuple[int, int], cols: tuple[int, int], axes: tuple[int, int] = (0, 1)
) -> np.ndarray:
    """Pad the image axes ``axes`` (rows, columns) of ``image`` by ``rows`` and ``cols`` pixels
    ``(before, after)``, by the rule of :func:`reflects`; other axes are left as they are."""
    widths = [(0, 0)] * image.ndim
    widths[axes[0]], widths[axes[1]] = rows, cols
    height, width = image.shape[axes[0]], image.shape[axes[1]]
    return np.pad(image, widths, mode="reflect" if reflects(height, width, max(rows), max(cols)) else "edge")
