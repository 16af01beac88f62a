"""The working space of still images: which channels, and whether objects are made bright by a complement.

Everything in the stills mode (thresholds, crops, the additive image model, the net) works on images in which
**objects are brighter than their background**, so that an image is a sum of non-negative object layers over a
background layer. Fluorescence and dark-field images are already like that. In brightfield and stained smears
the objects absorb light and are darker than the bright background; there the working image is the complement
``top - pixels`` (``top = 2 ** bit_depth - 1``): the background becomes nearly zero and every object a positive
bump on it, and overlapping absorbers add up (approximately; exactly in optical density).

Three colour modes, as in ``wormclean crops --colour``:

- ``grey``: the luminance, as it is (bright objects);
- ``invert``: the complement of the luminance (dark objects);
- ``rgb``: the three channels, complemented when the objects are dark (``inverted``).

Images in the library are ``(H, W)`` grey or ``(H, W, 3)`` **RGB** arrays (the readers convert from OpenCV's
BGR); working images are always ``(H, W, C)`` float32 with ``C`` 1 or 3.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from wormclean.errors import SettingsError
from wormclean.segment.threshold import otsu_threshold
from wormclean.settings import COLOUR_MODES

# ITU-R BT.601 luma weights, as OpenCV's RGB2GRAY; applied in float so 16-bit data keeps its precision.
LUMA_WEIGHTS = np.array([0.299, 0.587, 0.114], dtype=np.float32)


def luminance(image: np.ndarray) -> np.ndarray:
    """Grey values ``(H, W)`` float32 of an ``(H, W)`` grey, ``(H, W, 1)`` or ``(H, W, 3)`` RGB image."""
    image = np.asarray(image)
    if image.ndim == 2:
        return image.astype(np.float32)
    if image.shape[2] == 1:
        return image[..., 0].astype(np.float32)
    return image.astype(np.float32) @ LUMA_WEIGHTS


@dataclass(frozen=True)
class ColourSpace:
    """How raw images map to working images and back.

    Parameters
    ----------
    channels : {"grey", "rgb"}
        One luminance channel, or the three colour channels.
    inverted : bool
        Work on the complement ``top - pixels`` (objects darker than their background).
    bit_depth : int
        8 or 16; ``top = 2 ** bit_depth - 1``.
    """

    channels: str = "grey"
    inverted: bool = False
    bit_depth: int = 8

    def __post_init__(self):
        if self.channels not in ("grey", "rgb"):
            raise SettingsError(f"channels must be 'grey' or 'rgb', got {self.channels!r}")
        if self.bit_depth not in (8, 16):
            raise SettingsError(f"bit depth must be 8 or 16, got {self.bit_depth}")

    @classmethod
    def from_mode(cls, colour: str, dark_objects: bool, bit_depth: int) -> ColourSpace:
        """The space of a ``--colour`` mode; ``dark_objects`` decides the complement for ``rgb`` only."""
        if colour not in COLOUR_MODES:
            raise SettingsError(f"--colour must be one of {', '.join(COLOUR_MODES)}, got {colour!r}")
        if colour == "rgb":
            return cls("rgb", dark_objects, bit_depth)
        return cls("grey", colour == "invert", bit_depth)

    @property
    def mode(self) -> str:
        """The ``--colour`` name of this space: ``grey``, ``invert`` or ``rgb``."""
        if self.channels == "rgb":
            return "rgb"
        return "invert" if self.inverted else "grey"

    @property
    def n_channels(self) -> int:
        return 3 if self.channels == "rgb" else 1

    @property
    def top(self) -> float:
        """Largest raw value, ``2 ** bit_depth - 1``."""
        return float(2**self.bit_depth - 1)

    def to_working(self, image: np.ndarray) -> np.ndarray:
        """Raw ``(H, W)`` grey or ``(H, W, 3)`` RGB pixels to the working ``(H, W, C)`` float32 image."""
        image = np.asarray(image)
        if self.channels == "grey":
            values = luminance(image)[..., None]
        else:
            if image.ndim != 3 or image.shape[2] != 3:
                raise SettingsError("--colour rgb needs colour images; use grey or invert for grey images")
            values = image.astype(np.float32)
        return self.top - values if self.inverted else values

    def from_working(self, values: np.ndarray) -> np.ndarray:
        """Working ``(H, W, C)`` values back to raw pixels: ``(H, W)`` grey or ``(H, W, 3)`` RGB, clipped and
        rounded to ``uint8`` or ``uint16``."""
        values = np.asarray(values, dtype=np.float32)
        if self.inverted:
            values = self.top - values
        values = np.clip(np.rint(values), 0, self.top)
        dtype = np.uint8 if self.bit_depth == 8 else np.uint16
        return (values[..., 0] if self.channels == "grey" else values).astype(dtype)


def objects_are_dark(grey: np.ndarray) -> bool:
    """Guess from one grey image ``(H, W)`` whether its objects are darker than their background.

    Otsu's threshold splits the pixels in two classes; the background is the class with the higher histogram
    peak, taking each class as roughly Gaussian (pixel count over standard deviation): it is usually both the
    larger and the flatter class (medium, plasma or agar is uniform, objects are textured), and this still
    decides when objects crowd and cover half of the field.
    """
    grey = np.asarray(grey, dtype=np.float32)
    threshold = otsu_threshold(grey)
    dark, bright = grey[grey <= threshold], grey[grey > threshold]
    if dark.size == 0 or bright.size == 0:
        return False
    floor = 1e-3 * (float(grey.max()) - float(grey.min()))
    return bright.size / (float(bright.std()) + floor) > dark.size / (float(dark.std()) + floor)
