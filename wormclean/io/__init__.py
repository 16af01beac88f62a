"""Video, image and HDF5 input/output.

:func:`open_video` picks the reader for a path: a folder of frame images, a TIFF stack, a single image, a
Tierpsy MaskedVideos HDF5 file, or any video file FFmpeg decodes. :func:`find_videos` turns file names,
folders and glob patterns into the list of videos they name.
"""

from __future__ import annotations

import glob
import logging
from collections.abc import Iterable
from pathlib import Path

from wormclean.errors import VideoError
from wormclean.io.images import (
    IMAGE_SUFFIXES,
    TIFF_SUFFIXES,
    ImageSequenceReader,
    TiffStackReader,
    is_tiff_stack,
    list_folder,
)
from wormclean.io.tierpsy import HDF5_SUFFIXES, TierpsyReader, is_masked_video
from wormclean.io.video import CONTAINER_SUFFIXES, PyAVReader, VideoInfo, VideoReader

log = logging.getLogger(__name__)

VIDEO_SUFFIXES = CONTAINER_SUFFIXES | HDF5_SUFFIXES | TIFF_SUFFIXES
"""Suffixes of files that are videos by themselves (TIFF files may be stacks; folders of frames are videos too)."""

__all__ = ["VIDEO_SUFFIXES", "VideoInfo", "VideoReader", "find_videos", "open_video"]


def open_video(path: str | Path) -> VideoReader:
    """Open a video for reading, choosing the reader by what ``path`` is.

    A folder is an image sequence; ``.tif``/``.tiff`` a TIFF stack; ``.png``/``.jpg``/``.jpeg`` a one-frame
    video; ``.hdf5``/``.h5``/``.hdf`` a Tierpsy MaskedVideos file; anything else a video file for FFmpeg.

    Raises :class:`~wormclean.errors.VideoError` if the path is missing, unreadable, or not a video with at
    least one decodable frame.
    """
    path = Path(path)
    if not path.exists():
        raise VideoError(f"{path}: no such file or folder")
    if path.is_dir():
        return ImageSequenceReader.from_folder(path)
    suffix = path.suffix.lower()
    if suffix in HDF5_SUFFIXES:
        return TierpsyReader(path)
    if suffix in TIFF_SUFFIXES:
        return TiffStackReader(path)
    if suffix in IMAGE_SUFFIXES:
        return ImageSequenceReader.from_image(path)
    return PyAVReader(path)


def find_videos(inputs: Iterable[str | Path]) -> list[Path]:
    """The videos named by ``inputs``: files, folders (searched recursively) and glob patterns.

    Files are kept whatever their suffix. In folders, files with a video suffix are videos, and a folder
    whose frame images (png, jpg, tif) are not beside video files is one video (an image sequence); TIFF files
    that hold several pages are videos each; HDF5 files only if they hold frames (Tierpsy's ``/mask`` or
    ``/full_data``). Hidden files and folders are skipped, and so are sub-folders that
    cannot be read (with a warning).

    Returns
    -------
    Sorted paths without repeats. Raises :class:`~wormclean.errors.VideoError` for a missing path, or if
    nothing is found.
    """
    inputs = [str(item) for item in inputs]
    found: list[Path] = []
    for text in inputs:
        path = Path(text)
        if path.exists():
            found += _search(path) if path.is_dir() else [path]
        elif any(char in text for char in "*?["):
            for match in sorted(glob.glob(text, recursive=True)):
                found += _search(Path(match)) if Path(match).is_dir() else [Path(match)]
        else:
            raise VideoError(f"{path}: no such file or folder")
    unique = {path.resolve(): path for path in found}
    if not unique:
        raise VideoError(f"no videos found in {', '.join(inputs) or 'no inputs'}")
    return sorted(unique.values())


def _search(folder: Path, top: bool = True) -> list[Path]:
    """Videos in ``folder`` and below; see :func:`find_videos`."""
    try:
        files, folders = list_folder(folder)
    except VideoError as error:
        if top:
            raise
        log.warning("skipped: %s", error)
        return []
    videos = [file for file in files if file.suffix.lower() in VIDEO_SUFFIXES - TIFF_SUFFIXES - HDF5_SUFFIXES]
    videos += [file for file in files if file.suffix.lower() in HDF5_SUFFIXES and is_masked_video(file)]
    images = [file for file in files if file.suffix.lower() in IMAGE_SUFFIXES]
    tiffs = [file for file in images if file.suffix.lower() in TIFF_SUFFIXES]
    if tiffs and is_tiff_stack(tiffs[0]):
        videos += tiffs
    elif images and not videos:
        videos.append(folder)
    for sub_folder in folders:
        videos += _search(sub_folder, top=False)
    return videos
