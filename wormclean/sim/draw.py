"""Rasterise tapered tubes (worm bodies, fibres) into small anti-aliased coverage windows.

A tube is a centreline of points with a radius at each point: the union of a disc at every point and a
quadrilateral joining each pair of neighbours. It is drawn supersampled in a window just big enough to hold it
and averaged down, so the result is the fraction of each pixel that the tube covers. Drawing in a window, not
the full frame, keeps the cost proportional to the tube's size.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

SUPERSAMPLE = 4
_SHIFT = 4  # fractional bits of cv2's fixed-point coordinates
_ONE = 1 << _SHIFT


def tube_coverage(
    centreline: np.ndarray,
    radii: np.ndarray,
    frame_shape: tuple[int, int],
    margin: int = 1,
) -> tuple[np.ndarray, tuple[slice, slice]] | None:
    """The fraction of each pixel covered by a tube, in a window of the frame.

    Parameters
    ----------
    centreline
        ``(n_points, 2)`` float, ``(x, y)`` pixel coordinates (pixel centres at integers).
    radii
        ``(n_points,)`` float, the tube's radius in pixels at each point.
    frame_shape
        ``(height, width)`` of the frame; the window is clipped to it.
    margin
        Extra pixels around the tube (room for a later blur).

    Returns
    -------
    coverage, window
        ``coverage`` is ``(h, w) float32`` in [0, 1]; ``window`` the ``(rows, columns)`` slices of the frame it
        belongs to. ``None`` if the tube lies outside the frame.
    """
    centreline = np.asarray(centreline, dtype=np.float64)
    radii = np.asarray(radii, dtype=np.float64)
    reach = float(radii.max()) + margin + 1
    height, width = frame_shape
    x0 = max(0, math.floor(centreline[:, 0].min() - reach))
    y0 = max(0, math.floor(centreline[:, 1].min() - reach))
    x1 = min(width, math.ceil(centreline[:, 0].max() + reach) + 1)
    y1 = min(height, math.ceil(centreline[:, 1].max() + reach) + 1)
    if x1 <= x0 or y1 <= y0:
        return None
    canvas = np.zeros(((y1 - y0) * SUPERSAMPLE, (x1 - x0) * SUPERSAMPLE), np.uint8)
    # Supersampled pixel k covers frame coordinates [k/S - 0.5, (k+1)/S - 0.5): its centre maps as below.
    points = (centreline - (x0, y0) + 0.5) * SUPERSAMPLE - 0.5
    # cv2 fills every supersampled pixel that the outline touches, which widens shapes by about half a
    # supersampled pixel; shrinking the radii by as much keeps the covered area true.
    scaled_radii = np.maximum(radii * SUPERSAMPLE - 0.5, 0.0)
    fixed_points = np.round(points * _ONE).astype(np.int32)
    fixed_radii = np.maximum(np.round(scaled_radii * _ONE), 0).astype(np.int32)
    for (x, y), radius in zip(fixed_points, fixed_radii, strict=True):
        cv2.circle(canvas, (int(x), int(y)), int(radius), 255, -1, cv2.LINE_8, _SHIFT)
    segments = np.diff(points, axis=0)
    lengths = np.hypot(segments[:, 0], segments[:, 1])
    keep = lengths > 1e-9
    normals = np.zeros_like(segments)
    normals[keep] = np.stack([-segments[keep, 1], segments[keep, 0]], axis=1) / lengths[keep, None]
    for i in np.flatnonzero(keep):
        start, end = points[i], points[i + 1]
        offset_start, offset_end = normals[i] * scaled_radii[i], normals[i] * scaled_radii[i + 1]
        quad = np.array([start + offset_start, end + offset_end, end - offset_end, start - offset_start])
        cv2.fillConvexPoly(canvas, np.round(quad * _ONE).astype(np.int32), 255, cv2.LINE_8, _SHIFT)
    coverage = cv2.resize(canvas, (x1 - x0, y1 - y0), interpolation=cv2.INTER_AREA).astype(np.float32)
    coverage *= 1 / 255
    return coverage, (slice(y0, y1), slice(x0, x1))
