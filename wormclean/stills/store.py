"""The CROPS_DIR layout: writing it atomically, reading it back.

::

    CROPS_DIR/
        crops.json                   what the folder holds (below)
        <class>/<image stem>_<n>.png one object: raw pixels as RGB(A) at the source bit depth (grey sources
                                     repeat their value in R, G, B); alpha 255 on the object, 0 around it
        background/<image stem>_<n>.png
                                     a background patch: alpha 255 where the background shows, 0 where objects
                                     were cleared (the pair generator fills those with a random constant)

``crops.json``::

    format "wormclean-crops", format_version 1, wormclean_version
    method       "points" | "boxes" | "focus"
    colour       "grey" | "invert" | "rgb";  inverted (bool): working images are complements
    bit_depth    8 | 16
    settings     the CropSettings used
    counts       {class: n, ..., "background": n};  dropped: {reason: n}
    images       {file name: {"shape": [H, W], "background_level": [per working channel]}}
    crops        [{"file", "class", "image", "box": [xmin, ymin, xmax, ymax]}, ...]
    backgrounds  [{"file", "image", "box"}, ...]

The folder is built under a hidden temporary name beside CROPS_DIR and renamed when complete, so a reader
never sees half a crops folder.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from wormclean._version import __version__
from wormclean.errors import OutputError, SettingsError
from wormclean.io.atomic import (
    check_folder_writable,
    output_lock,
    partial_path,
    remove_partial,
    remove_stale_partials,
    write_failure,
)
from wormclean.io.images import encode_image
from wormclean.stills.colour import ColourSpace

FORMAT = "wormclean-crops"
FORMAT_VERSION = 1
INDEX_NAME = "crops.json"
BACKGROUND = "background"


def check_class_name(name: str) -> str:
    """A class name usable as a folder name; ``background`` is reserved for background patches."""
    if not name or name.startswith(".") or any(c in name for c in '/\\:*?"<>|') or name == BACKGROUND:
        raise SettingsError(f"class name {name!r} cannot be used (empty, reserved or not a valid folder name)")
    return name


def _encode(pixels: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """Raw ``(h, w)`` grey or ``(h, w, 3)`` RGB plus an ``(h, w)`` bool alpha to an OpenCV BGRA array."""
    rgb = np.repeat(pixels[..., None], 3, axis=2) if pixels.ndim == 2 else pixels
    top = np.iinfo(pixels.dtype).max
    rgb = np.where(alpha[..., None], rgb, 0).astype(pixels.dtype)
    bgra = np.concatenate([rgb[..., ::-1], (alpha.astype(pixels.dtype) * top)[..., None]], axis=2)
    return np.ascontiguousarray(bgra)


class CropsWriter:
    """Builds a CROPS_DIR under a temporary name; :meth:`finish` writes ``crops.json`` and renames it.

    Use as a context manager: leaving the block by an exception removes the temporary folder.
    """

    def __init__(self, path: str | os.PathLike, colour_space: ColourSpace, overwrite: bool = False):
        self.path = Path(path)
        if self.path.exists():
            if not overwrite:
                raise OutputError(f"{self.path} exists; use --overwrite to replace it")
            if self.path.is_file() or (any(self.path.iterdir()) and not (self.path / INDEX_NAME).is_file()):
                raise OutputError(f"{self.path} exists and is not a crops folder; it will not be replaced")
        check_folder_writable(self.path.parent)
        self.colour_space = colour_space
        self._lock = contextlib.ExitStack()
        self._lock.enter_context(output_lock(self.path))
        remove_stale_partials(self.path)
        self.temporary = partial_path(self.path)
        try:
            self.temporary.mkdir()
        except OSError as error:
            self._lock.close()
            raise write_failure(self.path, error) from None
        self.images: dict[str, dict] = {}
        self.crops: list[dict] = []
        self.backgrounds: list[dict] = []
        self._numbers: Counter = Counter()

    def __enter__(self) -> CropsWriter:
        return self

    def __exit__(self, kind, error, trace) -> None:
        remove_partial(self.temporary)
        self._lock.close()

    def _write(self, folder: str, image_name: str, pixels: np.ndarray, alpha: np.ndarray) -> str:
        stem = Path(image_name).stem
        number = self._numbers[(folder, stem)]
        self._numbers[(folder, stem)] += 1
        relative = f"{folder}/{stem}_{number:03d}.png"
        data = encode_image(_encode(pixels, alpha), relative)
        try:
            (self.temporary / folder).mkdir(exist_ok=True)
            (self.temporary / relative).write_bytes(data)
        except OSError as error:
            raise write_failure(self.path, error) from None
        return relative

    def add_image(self, image_name: str, shape: tuple[int, int], background_level: np.ndarray) -> None:
        """Record a source image and its working-space background level (one value per working channel)."""
        self.images[image_name] = {
            "shape": [int(shape[0]), int(shape[1])],
            "background_level": [round(float(v), 3) for v in np.ravel(background_level)],
        }

    def add_crop(self, label: str, image_name: str, pixels: np.ndarray, mask: np.ndarray, box) -> None:
        """Save one object: raw ``(h, w)`` or ``(h, w, 3)`` pixels, ``(h, w)`` bool mask, its box in the image."""
        relative = self._write(check_class_name(label), image_name, pixels, mask)
        self.crops.append({"file": relative, "class": label, "image": image_name, "box": [int(v) for v in box]})

    def add_background(self, image_name: str, pixels: np.ndarray, visible: np.ndarray, box) -> None:
        """Save one background patch: raw pixels and the ``(h, w)`` bool mask of where background shows."""
        relative = self._write(BACKGROUND, image_name, pixels, visible)
        self.backgrounds.append({"file": relative, "image": image_name, "box": [int(v) for v in box]})

    def counts(self) -> dict[str, int]:
        """Crops per class so far, and background patches under ``background``."""
        counts = Counter(crop["class"] for crop in self.crops)
        return {**dict(sorted(counts.items())), BACKGROUND: len(self.backgrounds)}

    def finish(self, method: str, settings: dict, dropped: dict[str, int]) -> Path:
        """Write ``crops.json`` and move the folder into place (replacing an older crops folder)."""
        index = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "wormclean_version": __version__,
            "method": method,
            "colour": self.colour_space.mode,
            "inverted": self.colour_space.inverted,
            "bit_depth": self.colour_space.bit_depth,
            "settings": settings,
            "counts": self.counts(),
            "dropped": dropped,
            "images": self.images,
            "crops": self.crops,
            "backgrounds": self.backgrounds,
        }
        old = partial_path(self.path.with_name(f"{self.path.name}.old"))
        try:
            (self.temporary / INDEX_NAME).write_text(json.dumps(index, indent=1))
            if self.path.exists():
                os.replace(self.path, old)
            os.replace(self.temporary, self.path)
        except OSError as error:
            raise write_failure(self.path, error) from None
        remove_partial(old)
        return self.path


@dataclass(frozen=True)
class CropsCatalogue:
    """A CROPS_DIR opened for reading: its index and how to load each entry.

    Attributes
    ----------
    path : Path
    index : dict
        The parsed ``crops.json``.
    colour_space : ColourSpace
        The working space the crops were extracted in.
    """

    path: Path
    index: dict
    colour_space: ColourSpace

    @property
    def classes(self) -> list[str]:
        """Object classes with at least one crop, sorted."""
        return sorted({crop["class"] for crop in self.index["crops"]})

    def background_level(self, image_name: str) -> np.ndarray:
        """Working-space background level ``(C,)`` float32 of a source image."""
        return np.asarray(self.index["images"][image_name]["background_level"], dtype=np.float32)

    def load(self, entry: dict) -> tuple[np.ndarray, np.ndarray]:
        """Raw ``(h, w, 3)`` RGB pixels and ``(h, w)`` bool alpha of a crop or background entry."""
        file = self.path / entry["file"]
        bgra = cv2.imread(str(file), cv2.IMREAD_UNCHANGED)
        if bgra is None or bgra.ndim != 3 or bgra.shape[2] != 4:
            raise SettingsError(f"{file} is missing or not an RGBA crop")
        return np.ascontiguousarray(bgra[..., 2::-1]), bgra[..., 3] > 0


def read_catalogue(path: str | os.PathLike) -> CropsCatalogue:
    """Open a CROPS_DIR written by ``wormclean crops``; a clear :class:`SettingsError` if it is not one."""
    path = Path(path)
    index_path = path / INDEX_NAME
    if not index_path.is_file():
        raise SettingsError(f"{path} is not a crops folder (no {INDEX_NAME}); make one with 'wormclean crops'")
    try:
        with open(index_path) as handle:
            index = json.load(handle)
    except (OSError, json.JSONDecodeError) as error:
        raise SettingsError(f"{index_path} cannot be read ({error})") from None
    if index.get("format") != FORMAT or index.get("format_version") != FORMAT_VERSION:
        raise SettingsError(f"{index_path} is not a crops index of format version {FORMAT_VERSION}")
    colour_space = ColourSpace.from_mode(index["colour"], bool(index["inverted"]), int(index["bit_depth"]))
    return CropsCatalogue(path, index, colour_space)
