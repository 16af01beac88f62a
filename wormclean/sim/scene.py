"""The static background of a plate: light agar with vignetting, texture, a bacterial lawn, dust and fibres.

Everything here is drawn once per video. Values are grey levels as float32; the background of a dark-worm
video is light, and the bright-worm (dark-field) version is its negative.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from wormclean.sim.draw import tube_coverage


def make_background(
    rng: np.random.Generator,
    shape: tuple[int, int],
    worm_length: float,
    worm_width: float,
    contrast: float,
    lawn: bool,
    n_dust: int,
    n_fibres: int,
    dark_worms: bool,
    blur_sigma: float,
) -> np.ndarray:
    """Draw a plate's background.

    Parameters
    ----------
    rng
        Random generator; the background depends on nothing else.
    shape
        ``(height, width)`` in pixels.
    worm_length, worm_width
        Worm size in pixels; fibres and dust are scaled to it, so fibres look like worms.
    contrast
        Worm contrast in grey levels; fibres are drawn 30-90 % as dark.
    lawn
        Draw a bacterial lawn: a slightly darker patch with a darker rim.
    n_dust, n_fibres
        Numbers of dust specks and of thin fibres or scratches.
    dark_worms
        True: light background (worms will be darker). False: the negative, a dark background.
    blur_sigma
        Gaussian blur of the optics, pixels (0: none).

    Returns
    -------
    background : (height, width) float32, grey levels within [0, 255]
    """
    height, width = shape
    level = rng.uniform(160.0, 200.0)
    background = level * _vignetting(rng, shape)
    background += _smooth_noise(rng, shape, cells=6, amplitude=5.0)
    background += _smooth_noise(rng, shape, cells=max(8, min(height, width) // 32), amplitude=1.5)
    background += cv2.GaussianBlur(rng.standard_normal(shape, dtype=np.float32), (0, 0), 0.8)
    if lawn:
        background -= _lawn(rng, shape, worm_width)
    darkening = np.zeros(shape, np.float32)
    for _ in range(n_dust):
        _add_dust(rng, darkening, worm_width)
    for _ in range(n_fibres):
        _add_fibre(rng, darkening, worm_length, worm_width, contrast)
    background -= darkening
    if blur_sigma > 0:
        background = cv2.GaussianBlur(background, (0, 0), blur_sigma)
    if not dark_worms:
        background = 255.0 - background
    return np.clip(background, 0.0, 255.0).astype(np.float32)


def _vignetting(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    """Illumination falling off towards the corners: 1 at an off-centre point, 1 - strength at the far corner."""
    height, width = shape
    strength = rng.uniform(0.1, 0.3)
    centre_y = height * rng.uniform(0.35, 0.65)
    centre_x = width * rng.uniform(0.35, 0.65)
    rows = (np.arange(height, dtype=np.float32) - centre_y) ** 2
    columns = (np.arange(width, dtype=np.float32) - centre_x) ** 2
    squared = rows[:, None] + columns[None, :]
    return (1.0 - strength * squared / squared.max()).astype(np.float32)


def _smooth_noise(rng: np.random.Generator, shape: tuple[int, int], cells: int, amplitude: float) -> np.ndarray:
    """Random texture varying over about ``1 / cells`` of the frame, standard deviation about ``amplitude``."""
    height, width = shape
    coarse = rng.standard_normal((cells + 1, cells + 1)).astype(np.float32)
    return amplitude * cv2.resize(coarse, (width, height), interpolation=cv2.INTER_CUBIC)


def _lawn(rng: np.random.Generator, shape: tuple[int, int], worm_width: float) -> np.ndarray:
    """Darkening by a bacterial lawn: an irregular round patch, a little darker inside and darkest at its rim."""
    height, width = shape
    size = min(height, width)
    radius = size * rng.uniform(0.2, 0.4)
    centre_x = width / 2 + size * rng.uniform(-0.15, 0.15)
    centre_y = height / 2 + size * rng.uniform(-0.15, 0.15)
    y, x = np.ogrid[:height, :width]
    dx = (x - centre_x).astype(np.float32)
    dy = (y - centre_y).astype(np.float32)
    angle = np.arctan2(dy, dx)
    wobble = np.ones_like(angle)
    for harmonic in range(2, 6):
        wobble += rng.uniform(0, 0.04) * np.cos(harmonic * angle + rng.uniform(0, 2 * math.pi))
    edge_distance = np.sqrt(dx**2 + dy**2) - radius * wobble  # pixels, negative inside
    rim_width = max(2.0, worm_width * rng.uniform(0.5, 2.0))
    inside = rng.uniform(2.0, 8.0) / (1.0 + np.exp(np.clip(edge_distance / rim_width, -30, 30)))
    rim = rng.uniform(8.0, 20.0) * np.exp(-0.5 * (edge_distance / rim_width) ** 2)
    return (inside + rim).astype(np.float32)


def _add_dust(rng: np.random.Generator, darkening: np.ndarray, worm_width: float) -> None:
    """A dust speck: a small dark Gaussian blob."""
    height, width = darkening.shape
    sigma = max(0.5, worm_width * rng.uniform(0.05, 0.3))
    depth = rng.uniform(5.0, 60.0)
    x, y = rng.uniform(0, width), rng.uniform(0, height)
    reach = math.ceil(3 * sigma)
    x0, x1 = max(0, int(x) - reach), min(width, int(x) + reach + 1)
    y0, y1 = max(0, int(y) - reach), min(height, int(y) + reach + 1)
    if x1 <= x0 or y1 <= y0:
        return
    dy = np.arange(y0, y1, dtype=np.float32)[:, None] - y
    dx = np.arange(x0, x1, dtype=np.float32)[None, :] - x
    darkening[y0:y1, x0:x1] += depth * np.exp(-(dx**2 + dy**2) / (2 * sigma**2))


def _add_fibre(
    rng: np.random.Generator, darkening: np.ndarray, worm_length: float, worm_width: float, contrast: float
) -> None:
    """A fibre or scratch: a thin, gently curving dark line, as long as half to three worms."""
    height, width = darkening.shape
    length = worm_length * rng.uniform(0.5, 3.0)
    n_points = max(8, round(length / 2))
    bend = rng.uniform(-1.0, 1.0, size=3)
    heading = rng.uniform(-math.pi, math.pi) + np.polyval(bend, np.linspace(-1, 1, n_points))
    steps = np.stack([np.cos(heading), np.sin(heading)], axis=1) * (length / (n_points - 1))
    points = np.cumsum(steps, axis=0) + [rng.uniform(0, width), rng.uniform(0, height)] - steps[0]
    radii = np.full(n_points, 0.5 * max(0.8, worm_width * rng.uniform(0.2, 0.6)))
    drawn = tube_coverage(points, radii, (height, width))
    if drawn is not None:
        coverage, window = drawn
        darkening[window] += contrast * rng.uniform(0.3, 0.9) * coverage
