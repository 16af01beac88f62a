"""Tile geometry for frames larger than what the net should see at once (pure numpy, no torch).

A frame of any size is reflect-padded once, at the bottom and right, to a multiple of ``multiple`` (the net's
``2 ** depth``). Input windows of one common size, with origins on the ``multiple`` grid, are cut from the padded
frame; each window keeps only its part that lies at least ``halo`` pixels from any of its edges that are not
also an edge of the padded frame. With ``halo`` at least the receptive-field radius, every kept pixel sees the
same inputs as in a whole-frame pass, so the stitched output equals the whole-frame output.

Along each axis the kept regions partition the padded frame: every pixel is written by exactly one window.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from wormclean.errors import SettingsError
from wormclean.padding import pad_image


@dataclass(frozen=True)
class Tile:
    """One window of a :class:`TileGrid`.

    Attributes
    ----------
    window : tuple of slice
        ``(rows, cols)`` of the input window in the padded frame; its shape is the grid's ``tile_shape``.
    keep : tuple of slice
        ``(rows, cols)`` of the original (unpadded) frame that this tile writes.
    crop : tuple of slice
        ``(rows, cols)`` inside the window's output that go to ``keep`` (same shape as ``keep``).
    """

    window: tuple[slice, slice]
    keep: tuple[slice, slice]
    crop: tuple[slice, slice]


@dataclass(frozen=True)
class TileGrid:
    """How one frame size is cut into equal tiles; build it with :func:`plan_tiles`.

    Attributes
    ----------
    frame_shape : (int, int)
        Height and width of the original frame.
    padded_shape : (int, int)
        Frame shape rounded up to multiples of ``multiple``.
    tile_shape : (int, int)
        Shape of every input window (the tile size, or the padded frame where that is smaller).
    halo : int
        Context kept around every interior tile edge, in pixels.
    multiple : int
        Grid on which padded sizes, window origins and window sizes lie (``2 ** depth``).
    tiles : tuple of Tile
        Row-major list of windows.
    """

    frame_shape: tuple[int, int]
    padded_shape: tuple[int, int]
    tile_shape: tuple[int, int]
    halo: int
    multiple: int
    tiles: tuple[Tile, ...]

    def pad(self, frame: np.ndarray) -> np.ndarray:
        """Reflect-pad ``frame`` (``(H, W)`` or ``(H, W, C)``) at the bottom and right to ``padded_shape``.

        Falls back to edge replication where the frame is too short to reflect (:mod:`wormclean.padding`).
        """
        if frame.shape[:2] != self.frame_shape:
            raise ValueError(f"frame shape {frame.shape[:2]} does not match the grid's {self.frame_shape}")
        pad_h = self.padded_shape[0] - self.frame_shape[0]
        pad_w = self.padded_shape[1] - self.frame_shape[1]
        if not (pad_h or pad_w):
            return frame
        return pad_image(frame, (0, pad_h), (0, pad_w))

    def windows(self, padded: np.ndarray) -> np.ndarray:
        """All input windows of a padded frame stacked: ``(n_tiles, tile_h, tile_w, ...)`` (a copy)."""
        return np.stack([padded[tile.window] for tile in self.tiles])

    def stitch(self, outputs, out: np.ndarray | None = None) -> np.ndarray:
        """Assemble per-tile outputs (each ``tile_shape`` + trailing dims) into a frame of ``frame_shape``.

        Parameters
        ----------
        outputs : sequence of np.ndarray
            One output per tile, in the order of ``tiles``.
        out : np.ndarray, optional
            Array of shape ``frame_shape`` + trailing dims to write into; allocated (float32) if absent.
        """
        if len(outputs) != len(self.tiles):
            raise ValueError(f"expected {len(self.tiles)} tile outputs, got {len(outputs)}")
        if out is None:
            out = np.empty(self.frame_shape + outputs[0].shape[2:], dtype=np.float32)
        for tile, output in zip(self.tiles, outputs):
            out[tile.keep] = output[tile.crop]
        return out


def round_up(value: int, multiple: int) -> int:
    """Smallest multiple of ``multiple`` that is at least ``value``."""
    return -(-value // multiple) * multiple


def halo_for(receptive_field_radius: int, multiple: int) -> int:
    """The halo for a net: its receptive-field radius rounded up to the ``multiple`` grid."""
    return round_up(receptive_field_radius, multiple)


def min_tile_size(receptive_field_radius: int, multiple: int) -> int:
    """Smallest tile size that keeps a non-empty interior: two halos and one grid step."""
    return 2 * halo_for(receptive_field_radius, multiple) + multiple


def check_tile_size(tile_size: int, receptive_field_radius: int, multiple: int) -> None:
    """Raise :class:`SettingsError` if tiles of ``tile_size`` pixels (rounded down to ``multiple``) keep nothing
    inside their halo, so that a frame larger than one tile cannot be cut into them."""
    smallest = min_tile_size(receptive_field_radius, multiple)
    if int(tile_size) // multiple * multiple < smallest:
        raise SettingsError(
            f"tile size {tile_size} is too small for this net: tiles need at least {smallest} pixels "
            f"(a halo of {halo_for(receptive_field_radius, multiple)} on each side)"
        )


def _axis_windows(length: int, tile: int, halo: int, multiple: int) -> tuple[int, list[tuple[int, int, int]]]:
    """Windows along one axis of a padded length.

    Returns the window size actually used and, per window, ``(origin, keep_start, keep_stop)`` in padded
    coordinates. The fewest windows of at most ``tile`` pixels are used, then shrunk to the smallest size on
    the grid that still covers the axis, so little is computed twice.
    """
    if tile >= length:
        return length, [(0, 0, length)]
    n_windows = 1 + math.ceil((length - tile) / (tile - 2 * halo))
    # n windows of size t keep 2 * (t - halo) + (n - 2) * (t - 2 * halo) pixels: solve for the smallest t.
    tile = round_up(math.ceil((length + 2 * halo * (n_windows - 1)) / n_windows), multiple)
    core, span = tile - 2 * halo, length - tile
    # Origins spread evenly over [0, span], floored to the grid: consecutive origins are at most
    # ceil(span / (n - 1) / multiple) * multiple <= core apart, so the kept regions leave no gap.
    origins = [(i * span // (n_windows - 1)) // multiple * multiple for i in range(n_windows)]
    origins[-1] = span
    assert all(right - left <= core for left, right in zip(origins[:-1], origins[1:]))
    # Boundary between windows i and i + 1: on the grid, at least `halo` inside both windows.
    boundaries = [0]
    for left, right in zip(origins[:-1], origins[1:]):
        lowest, highest = right + halo, left + tile - halo
        middle = (lowest + highest) // 2 // multiple * multiple
        boundaries.append(min(max(middle, lowest), highest))
    boundaries.append(length)
    return tile, [(origin, boundaries[i], boundaries[i + 1]) for i, origin in enumerate(origins)]


def plan_tiles(
    frame_shape: tuple[int, int], tile_size: int | tuple[int, int], receptive_field_radius: int, multiple: int
) -> TileGrid:
    """Cut a frame into equal tiles whose stitched outputs equal a whole-frame pass.

    Parameters
    ----------
    frame_shape : (int, int)
        Height and width of the frame, in pixels (any size, odd included).
    tile_size : int or (int, int)
        Largest input window, in pixels; rounded down to a multiple of ``multiple``. A frame smaller than the
        tile is one tile (the padded frame). Otherwise the fewest windows of at most this size are used, each
        shrunk to the smallest grid size that still covers the frame.
    receptive_field_radius : int
        How far an output pixel sees, in pixels (``UNet.receptive_field_radius()``).
    multiple : int
        Input sizes must be multiples of this (``2 ** depth``).

    Returns
    -------
    TileGrid

    Raises
    ------
    SettingsError
        If the tile is too small to keep anything inside its halo while still being smaller than the frame.
    """
    height, width = (int(size) for size in frame_shape)
    if height < 1 or width < 1:
        raise ValueError(f"frame shape must be positive, got {frame_shape}")
    asked_h, asked_w = (tile_size, tile_size) if np.isscalar(tile_size) else tile_size
    tile_h, tile_w = int(asked_h) // multiple * multiple, int(asked_w) // multiple * multiple
    halo = halo_for(receptive_field_radius, multiple)
    padded = (round_up(height, multiple), round_up(width, multiple))
    for asked, tile, length in ((asked_h, tile_h, padded[0]), (asked_w, tile_w, padded[1])):
        if tile < length:
            check_tile_size(asked, receptive_field_radius, multiple)
    tile_h, rows = _axis_windows(padded[0], tile_h, halo, multiple)
    tile_w, cols = _axis_windows(padded[1], tile_w, halo, multiple)
    tile_shape = (tile_h, tile_w)
    tiles = []
    for row_origin, row_start, row_stop in rows:
        for col_origin, col_start, col_stop in cols:
            # Kept regions are clipped to the original frame: the reflected pad is thrown away.
            row_stop, col_stop = min(row_stop, height), min(col_stop, width)
            tiles.append(
                Tile(
                    window=(
                        slice(row_origin, row_origin + tile_shape[0]),
                        slice(col_origin, col_origin + tile_shape[1]),
                    ),
                    keep=(slice(row_start, row_stop), slice(col_start, col_stop)),
                    crop=(
                        slice(row_start - row_origin, row_stop - row_origin),
                        slice(col_start - col_origin, col_stop - col_origin),
                    ),
                )
            )
    return TileGrid(
        frame_shape=(height, width),
        padded_shape=padded,
        tile_shape=tile_shape,
        halo=halo,
        multiple=multiple,
        tiles=tuple(tiles),
    )
