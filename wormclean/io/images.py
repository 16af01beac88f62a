"""Images in and out: image sources read as videos (folders of frame images, single images and multi-page TIFF
stacks), still images read and written one by one (8 or 16 bits, grey or RGB: OpenCV's BGR is converted here and
nowhere else, an alpha channel is dropped), and the encoding of the images wormclean writes.

Images carry no frame rate; they play at :data:`~wormclean.io.video.DEFAULT_FPS` (25 frames per second).
"""

from __future__ import annotations

import logging
import math
import os
import re
import threading
from collections.abc import Iterable
from pathlib import Path

import cv2
import numpy as np
import tifffile

from wormclean.errors import SettingsError, VideoError
from wormclean.io.atomic import atomic_output
from wormclean.io.video import DEFAULT_FPS, IndexedReader, VideoInfo

log = logging.getLogger(__name__)

TIFF_SUFFIXES = frozenset({".tif", ".tiff"})
IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp"}) | TIFF_SUFFIXES
"""Suffixes of image files: frames in an image-sequence folder, still images."""


def bit_depth_of(image: np.ndarray, source: str | os.PathLike | None = None) -> int:
    """8 for ``uint8`` pixels, 16 for ``uint16``; anything else is refused.

    With ``source`` (the file read as a video) the refusal is a :class:`VideoError` naming it, else a
    :class:`SettingsError`.
    """
    if image.dtype == np.uint8:
        return 8
    if image.dtype == np.uint16:
        return 16
    if source is not None:
        raise VideoError(f"{source}: pixels of type {image.dtype} are not supported (only 8- and 16-bit unsigned)")
    raise SettingsError(f"only 8- and 16-bit integer images are supported, got {image.dtype}")


def check_image_name(path: str | os.PathLike) -> Path:
    """Check, before any work, that OpenCV can write an image under ``path``'s extension (.png, .tif, .jpg...).

    Raises :class:`SettingsError` naming the extension otherwise.
    """
    path = Path(path)
    if not path.suffix or not cv2.haveImageWriter(f"x{path.suffix}"):
        raise SettingsError(f"{path}: cannot write images as '{path.suffix}' (use a .png file name)")
    return path


def encode_image(image: np.ndarray, path: str | os.PathLike) -> bytes:
    """An OpenCV-ordered (grey, BGR or BGRA) ``uint8``/``uint16`` image encoded as ``path``'s extension picks.

    Encoding in memory and writing the bytes with Python's file calls makes a failed write (a full disk) an
    :class:`OSError` with its cause, where ``cv2.imwrite`` only returns False. Raises :class:`SettingsError`
    if the format cannot hold the image (16 bits in JPEG, for example).
    """
    suffix = check_image_name(path).suffix
    try:
        encoded, data = cv2.imencode(suffix, image)
    except cv2.error:
        encoded = False
    if not encoded:
        raise SettingsError(f"{Path(path).name}: '{suffix}' images cannot hold {image.dtype} {image.shape} pixels")
    return data.tobytes()


def natural_key(path: Path) -> list:
    """Sort key that orders ``frame2.png`` before ``frame10.png``."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", path.name.lower())]


def list_folder(folder: Path) -> tuple[list[Path], list[Path]]:
    """The files and sub-folders of ``folder``, hidden ones left out, files in natural order.

    Raises :class:`VideoError` if the folder cannot be listed.
    """
    files, folders = [], []
    try:
        with os.scandir(folder) as entries:
            for entry in entries:
                if entry.name.startswith("."):
                    continue
                try:
                    kind = files if entry.is_file() else folders if entry.is_dir() else None
                except OSError as error:  # a link to itself, a file gone since the listing: that entry only
                    log.warning("skipped: %s (%s)", entry.path, error.strerror or error)
                    continue
                if kind is not None:
                    kind.append(Path(entry.path))
    except OSError as error:
        raise VideoError(f"{folder}: cannot read the folder ({error.strerror or error})") from None
    return sorted(files, key=natural_key), sorted(folders)


def is_tiff_stack(path: Path) -> bool:
    """Whether the TIFF file ``path`` holds more than one frame (an unreadable one counts as a single frame)."""
    try:
        with tifffile.TiffFile(path) as tiff:
            return _tiff_layout(tiff)[1] > 1
    except (OSError, ValueError, IndexError, tifffile.TiffFileError):
        return False


def _tiff_layout(tiff: tifffile.TiffFile) -> tuple[list[tuple[int, int]], int]:
    """Where each frame of a TIFF file is, as ``(series, frame in series)``, and how many frames it declares.

    Every series is read (files written one page at a time hold one series per page). A series declares its
    frames by its shape (all axes but the image's: Y, X and samples); ImageJ files also by their ``images``
    entry. A file cut short declares more frames than it still holds: only those it holds are listed.
    """
    located = []
    declared = 0
    for number, series in enumerate(tiff.series):
        frames = math.prod(size for size, axis in zip(series.shape, series.axes) if axis not in "YXS")
        declared += frames
        held = frames if len(series.pages) >= frames else len(series.pages)
        located.extend((number, frame) for frame in range(held))
    if tiff.is_imagej:
        declared = max(declared, int((tiff.imagej_metadata or {}).get("images", 0)))
    return located, max(declared, len(located))


def to_grey(image: np.ndarray, channel_order: str) -> np.ndarray:
    """An image as grey ``(height, width)``: colour by luma (ITU-R 601), alpha dropped.

    Parameters
    ----------
    image : ``(height, width)`` or ``(height, width, channels)``, 1 to 4 channels
    channel_order : ``"BGR"`` (OpenCV) or ``"RGB"`` (tifffile), for 3 and 4 channels
    """
    if image.ndim == 2:
        return image
    channels = image.shape[2]
    if channels <= 2:  # grey, or grey with alpha
        return image[:, :, 0]
    code = {
        ("BGR", 3): cv2.COLOR_BGR2GRAY,
        ("BGR", 4): cv2.COLOR_BGRA2GRAY,
        ("RGB", 3): cv2.COLOR_RGB2GRAY,
        ("RGB", 4): cv2.COLOR_RGBA2GRAY,
    }[channel_order, min(channels, 4)]
    return cv2.cvtColor(np.ascontiguousarray(image[:, :, :4]), code)


class ImageSequenceReader(IndexedReader):
    """Frames stored as one image file each (png, jpg, tif), in the natural order of their names.

    Every image must have the size and type of the first; the video breaks at the first one that does not.
    """

    def __init__(self, files: list[Path], path: Path, codec: str) -> None:
        self._files = files
        first = self._load(0)
        height, width = first.shape
        info = VideoInfo(path, len(files), DEFAULT_FPS, height, width, bit_depth_of(first, files[0]), codec)
        super().__init__(info)

    @classmethod
    def from_folder(cls, folder: str | Path) -> ImageSequenceReader:
        """The frame images (see :data:`IMAGE_SUFFIXES`) in ``folder``; other files are ignored."""
        folder = Path(folder)
        files, _ = list_folder(folder)
        frames = [file for file in files if file.suffix.lower() in IMAGE_SUFFIXES]
        if not frames:
            kinds = ", ".join(sorted(suffix.lstrip(".") for suffix in IMAGE_SUFFIXES))
            state = "is empty" if not files else f"holds no frame images ({kinds})"
            raise VideoError(f"{folder} {state}")
        return cls(frames, folder, _codec_name(frames))

    @classmethod
    def from_image(cls, path: str | Path) -> ImageSequenceReader:
        """A single image as a one-frame video."""
        path = Path(path)
        return cls([path], path, _codec_name([path]))

    def close(self) -> None:
        """Nothing to release: each image is opened while it is read."""

    def _load(self, index: int) -> np.ndarray:
        path = self._files[index]
        image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        if image is None:
            raise VideoError(f"{path} is not a readable image")
        return to_grey(image, "BGR")


def _codec_name(files: list[Path]) -> str:
    """``"png-sequence"``, ``"jpeg-sequence"``, ``"tiff-sequence"``, or ``"image-sequence"`` when mixed."""
    kinds = {file.suffix.lower().replace("jpg", "jpeg").replace("tiff", "tif") for file in files}
    names = {".png": "png", ".jpeg": "jpeg", ".tif": "tiff"}
    return f"{names[kinds.pop()]}-sequence" if len(kinds) == 1 else "image-sequence"


class TiffStackReader(IndexedReader):
    """A TIFF file whose pages are the frames (a single-page file is a one-frame video), read page by page.

    The pages of every series are frames, in file order. A file that declares more frames than it holds (cut
    short) breaks at the first missing one.

    Pages are read with tifffile, or with OpenCV when they are compressed in a way tifffile cannot decode
    without the optional imagecodecs package (LZW, as OpenCV and some microscopes write).
    """

    def __init__(self, path: str | Path) -> None:
        path = Path(path)
        self._filename = str(path)
        try:
            self._tiff = tifffile.TiffFile(path)
            self._frames, n_frames = _tiff_layout(self._tiff)
        except (OSError, ValueError, IndexError, tifffile.TiffFileError) as error:
            raise VideoError(f"{path} is not a readable TIFF file ({error})") from None
        if not self._frames:
            self._tiff.close()
            raise VideoError(f"{path} is not a readable TIFF file (it holds no image)")
        self._lock = threading.Lock()  # the file handle is shared: one page at a time
        self._with_opencv = False
        try:
            first = self._load(0)
        except VideoError:
            self._with_opencv = True
            try:
                first = self._load(0)
            except VideoError as error:
                self._tiff.close()
                raise VideoError(f"{path}: {error}") from None
        height, width = first.shape
        info = VideoInfo(path, n_frames, DEFAULT_FPS, height, width, bit_depth_of(first, path), "tiff-stack")
        super().__init__(info)
        held = len(self._frames)
        if held < n_frames:
            self._mark_broken(held, f"the file declares {n_frames} frames but ends after {held}")

    def close(self) -> None:
        self._tiff.close()

    def _load(self, index: int) -> np.ndarray:
        if self._with_opencv:
            read, pages = cv2.imreadmulti(self._filename, start=index, count=1, flags=cv2.IMREAD_UNCHANGED)
            if not read or not pages:
                raise VideoError(f"page {index} cannot be read")
            return to_grey(pages[0], "BGR")
        if index >= len(self._frames):
            raise VideoError(f"page {index} is missing (the file ends early)")
        series, frame = self._frames[index]
        try:
            with self._lock:
                page = self._tiff.asarray(key=frame, series=series)
        except (OSError, ValueError, IndexError, tifffile.TiffFileError) as error:
            raise VideoError(f"page {index} cannot be read ({error})") from None
        return to_grey(page, "RGB")


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
        raise SettingsError("no images found (looked for " + ", ".join(sorted(IMAGE_SUFFIXES)) + ")")
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
