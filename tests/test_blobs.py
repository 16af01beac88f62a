"""Worm blobs measured from a binary mask against shapes drawn with known geometry."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from wormclean.segment.blobs import BLOB_DTYPE, measure_blobs


def test_blobs_of_drawn_shapes():
    mask = np.zeros((64, 96), np.uint8)
    mask[40:44, 10:40] = 1  # a straight worm, 30 x 4
    mask[5:15, 60:70] = 1  # a square with a hole, counted as filled
    mask[8:12, 63:67] = 0
    cv2.line(mask, (20, 5), (44, 29), 1, thickness=1)  # a diagonal line: 25 pixels, 24 * sqrt(2) long
    blobs = measure_blobs(mask.astype(bool), frame_number=7)
    assert blobs.dtype == BLOB_DTYPE and len(blobs) == 3
    assert (blobs["frame_number"] == 7).all() and list(blobs["label"]) == [1, 2, 3]
    line, square, worm = blobs  # ordered by their topmost, then leftmost pixel
    assert (square["area"], square["coord_x"], square["coord_y"]) == (100, 64.5, 9.5)
    assert (square["bounding_box_xmin"], square["bounding_box_xmax"]) == (60, 69)
    assert (square["bounding_box_ymin"], square["bounding_box_ymax"]) == (5, 14)
    assert (worm["area"], worm["coord_x"], worm["coord_y"]) == (120, 24.5, 41.5)
    assert worm["length"] == pytest.approx(29, abs=1)
    assert line["area"] == 25 and line["length"] == pytest.approx(24 * np.sqrt(2), abs=1)
    assert (line["coord_x"], line["coord_y"]) == (32, 17)


def test_no_blobs():
    blobs = measure_blobs(np.zeros((16, 16), bool))
    assert blobs.dtype == BLOB_DTYPE and len(blobs) == 0
