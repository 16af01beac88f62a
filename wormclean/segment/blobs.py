"""Worm blobs of one binary mask: where each worm is, how big and how long, for trackers to link.

Blobs are the 8-connected regions of the worm mask, found by their outer contours (about a millisecond for a
sparse 2048 x 2048 mask, where labelling every pixel takes some 30 ms), so a blob's holes count as part of it.
"""

from __future__ import annotations

import cv2
import numpy as np

BLOB_DTYPE = np.dtype(
    [
        ("frame_number", np.int32),
        ("label", np.int32),
        ("coord_x", np.float32),
        ("coord_y", np.float32),
        ("area", np.int32),
        ("bounding_box_xmin", np.int32),
        ("bounding_box_xmax", np.int32),
        ("bounding_box_ymin", np.int32),
        ("bounding_box_ymax", np.int32),
        ("length", np.float32),
    ]
)
"""One row per blob: ``frame_number``; ``label``, the blob's number within its frame (1, 2, ...; not an identity
across frames); ``coord_x``/``coord_y``, the centroid of its pixels (x is the column, pixels from the top-left
pixel's centre); ``area``, its pixel count (holes included); the bounding box, inclusive pixel indices; and
``length``, the long side of the smallest rotated rectangle around its outline, in pixels (a straight worm's
length; shorter than the body for a coiled worm)."""


def mask_pixels(mask: np.ndarray) -> np.ndarray:
    """A bool or uint8 ``(H, W)`` mask as the uint8 image OpenCV takes: a view of a bool mask, not a copy."""
    pixels = mask.view(np.uint8) if mask.dtype == bool else mask.astype(np.uint8, copy=False)
    return np.ascontiguousarray(pixels)


def outer_contours(mask: np.ndarray) -> tuple[np.ndarray, ...]:
    """The outer contour of each 8-connected blob of a bool or uint8 ``(H, W)`` mask, every boundary pixel
    (``cv2.RETR_EXTERNAL``, ``cv2.CHAIN_APPROX_NONE``): ``(n_points, 1, 2)`` int32 (x, y) each."""
    contours, _ = cv2.findContours(mask_pixels(mask), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    return contours


def measure_blobs(
    worm_mask: np.ndarray, frame_number: int = 0, contours: tuple[np.ndarray, ...] | None = None
) -> np.ndarray:
    """The blobs of a binary worm mask, as rows of :data:`BLOB_DTYPE`.

    Parameters
    ----------
    worm_mask : np.ndarray
        bool or uint8 ``(H, W)``, nonzero on worm pixels.
    frame_number : int
        Written into every row.
    contours : tuple of np.ndarray, optional
        :func:`outer_contours` of ``worm_mask``, when they are known already.

    Returns
    -------
    np.ndarray
        ``(n_blobs,)`` structured array, blobs in the order of their topmost pixel (then leftmost).
    """
    if contours is None:
        contours = outer_contours(worm_mask)
    rows = np.zeros(len(contours), dtype=BLOB_DTYPE)
    if not contours:
        return rows
    boxes = np.array([cv2.boundingRect(contour) for contour in contours], dtype=np.int64)
    starts = np.array([contour[0, 0, 0] for contour in contours], dtype=np.int64)
    order = np.lexsort((starts, boxes[:, 1]))  # stable: ties keep the contours' order
    boxes = boxes[order]
    measures = np.zeros((len(order), 4))  # m00, m10, m01, length
    for measure, index, (x, y, width, height) in zip(measures, order, boxes):
        contour = contours[index]
        filled = np.zeros((height, width), dtype=np.uint8)
        cv2.drawContours(filled, [contour], -1, 1, thickness=cv2.FILLED, offset=(-x, -y))
        moments = cv2.moments(filled, binaryImage=True)
        measure[:] = moments["m00"], moments["m10"], moments["m01"], max(cv2.minAreaRect(contour)[1])
    x, y, width, height = boxes.T
    rows["coord_x"] = x + measures[:, 1] / measures[:, 0]
    rows["coord_y"] = y + measures[:, 2] / measures[:, 0]
    rows["area"] = measures[:, 0]
    rows["bounding_box_xmin"], rows["bounding_box_xmax"] = x, x + width - 1
    rows["bounding_box_ymin"], rows["bounding_box_ymax"] = y, y + height - 1
    rows["length"] = measures[:, 3]
    rows["frame_number"] = frame_number
    rows["label"] = np.arange(1, len(rows) + 1)
    return rows
