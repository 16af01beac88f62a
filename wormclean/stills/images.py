"""Reading, listing and writing still images (PNG, TIFF, JPEG, BMP) at 8 or 16 bits.

Images are returned as ``(H, W)`` grey or ``(H, W, 3)`` RGB arrays of ``uint8`` or ``uint16`` (OpenCV's BGR is
converted here and nowhere else; an alpha channel is dropped).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

import cv2
import numpy as np

from wormclean.errors import SettingsError
from wormclean.io.atomic import atomic_output
from wormclean.io.images import encode_image
from wormclean.stills.colour import bit_depth_of

IMAGE_SUFFIXES = (".png", ".tif", ".tiff", ".jpg", ".jpeg", ".bmp")


def find_images(inputs: Iterable[str | os.PathLike]) -> list[Path]:
    """Image files among ``inputs`` (files, or folders whose image files are taken, not recursively).

    Raises :class:`SettingsError` for a missing input or when no image is found.
    """
    found: list[Path] = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            found.extend(sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()))
        elif path.is_file():
            found.append(path)
        else:
            raise SettingsError(f"{path} does not exist")
    if not found:
        raise SettingsError("no images found (looked for " + ", ".join(IMAGE_SUFFIXES) + ")")
    return found


def read_image(path: str | os.PathLike) -> np.ndarray:
    """Read an image as ``(H, W)`` grey or ``(H, W, 3)`` RGB, ``uint8`` or ``uint16``."""
    path = Path(path)
    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if image is None:
        raise SettingsError(f"{path} is not a readable image")
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[..., 0]
    elif image.ndim == 3:
        image = cv2.cvtColor(image[..., :3], cv2.COLOR_BGR2RGB)
    bit_depth_of(image)
    return image


def write_image(path: str | os.PathLike, image: np.ndarray, overwrite: bool = False) -> Path:
    """Write an ``(H, W)`` grey, ``(H, W, 3)`` RGB or ``(H, W, 4)`` RGBA image atomically; the suffix picks the
    format (16 bits need PNG or TIFF)."""
    if image.ndim == 3:
        code = cv2.COLOR_RGB2BGR if image.shape[2] == 3 else cv2.COLOR_RGBA2BGRA
        image = cv2.cvtColor(image, code)
    data = encode_image(image, path)
    with atomic_output(path, overwrite) as temporary:
        temporary.write_bytes(data)
    return Path(path)
