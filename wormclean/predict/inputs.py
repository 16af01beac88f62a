"""The one check of the arrays that reach the Python API (:class:`~wormclean.predict.cleaner.Cleaner`): a frame
or a background that the net and the thresholds cannot use is refused here, in one line, rather than turned
into a background of NaN or a mask of nothing."""

from __future__ import annotations

import math

import numpy as np

from wormclean.errors import ArrayError

FRAME_DTYPES = (np.uint8, np.uint16, np.float16, np.float32, np.float64)
"""What a frame or a background may be: 8- or 16-bit grey levels, or floats in those units."""


def check_image(image: np.ndarray, what: str = "frame") -> np.ndarray:
    """Return ``image`` if it is a usable ``(H, W)`` frame or background; raise :class:`ArrayError` if not.

    Parameters
    ----------
    image : np.ndarray
        ``(H, W)`` grey levels: uint8, uint16 or float (see :data:`FRAME_DTYPES`), at least one pixel, and
        every value a finite number.
    what : str
        What the array is, for the message (``"frame"``, ``"background"``).

    Raises
    ------
    ArrayError
        (a :class:`ValueError` too) naming what is wrong: not an array, a dtype such as bool or int8, not two
        dimensions, no pixel, or NaN or infinity in it.
    """
    if not isinstance(image, np.ndarray):
        raise ArrayError(f"the {what} must be a numpy array, got {type(image).__name__}")
    if image.dtype not in FRAME_DTYPES:
        raise ArrayError(f"the {what} must be uint8, uint16 or float grey levels, got dtype {image.dtype}")
    if image.ndim != 2:
        raise ArrayError(f"the {what} must be one grey image of shape (height, width), got shape {image.shape}")
    if image.size == 0:
        raise ArrayError(f"the {what} has no pixel (shape {image.shape})")
    # One pass, no temporary array: the float64 sum is NaN or infinite exactly when a value is.
    if image.dtype.kind == "f" and not math.isfinite(float(image.sum(dtype=np.float64))):
        raise ArrayError(f"the {what} holds values that are not finite numbers (NaN or infinity)")
    return image
