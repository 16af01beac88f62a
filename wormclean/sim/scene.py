"""The static background of a plate: light agar with vignetting, texture, a bacterial lawn, dust and fibres.

Everything here is drawn once per video. Values are grey levels as float32; the background of a dark-worm
video is light, and the bright-worm (dark-field) version is its negative.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from wormclean.sim.draw import tube_coverage
from wormclean.sim.settings import SimulationSettings


def make_background(rng: np.random.Generator, settings: SimulationSettings) -> np.ndarray:
    """Draw a plate's background.

    Parameters
    ----------
    rng
        Random generator; the background depends on nothing else.
    settings
        The video's settings: frame size, worm size (fibres, dust and the static structures are scaled to it, so
        that fibres look like worms), worm contrast (fibres are drawn 30-90 % as dark), the lawn, the numbers of
        dust specks, fibres, rings, marker lines and old tracks, the dish edge, text, polarity and blur.

    Returns
    -------
    background : (height, width) float32, grey levels within [0, 255]
    """
    shape = settings.size
    height, width = shape
    worm_length, worm_width, contrast = settings.length_px, settings.width_px, settings.contrast
    level = rng.uniform(160.0, 200.0)
    background = level * _vignetting(rng, shape)
    background += _smooth_noise(rng, shape, cells=6, amplitude=5.0)
    background += _smooth_noise(rng, shape, cells=max(8, min(height, width) // 32), amplitude=1.5)
    background += cv2.GaussianBlur(rng.standard_normal(shape, dtype=np.float32), (0, 0), 0.8)
    if settings.lawn:
        background -= _lawn(rng, shape, worm_width)
    darkening = np.zeros(shape, np.float32)
    for _ in range(settings.n_dust):
        _add_dust(rng, darkening, worm_width)
    for _ in range(settings.n_fibres):
        _add_fibre(rng, darkening, worm_length, worm_width, contrast)
    # Drawn last, from a generator of their own, so that plates without them are unchanged.
    structures = np.random.default_rng(rng.integers(2**63))
    for _ in range(settings.n_tracks):
        _add_track(structures, darkening, worm_length, worm_width, contrast)
    for _ in range(settings.n_rings):
        _add_ring(structures, darkening, worm_width, contrast)
    for _ in range(settings.n_marks):
        _add_mark(structures, darkening, worm_width, contrast)
    if settings.text:
        _add_text(structures, darkening, worm_length, contrast)
    if settings.dish_edge:
        _add_dish_edge(structures, darkening, worm_width, level)
    background -= darkening
    if settings.blur_sigma > 0:
        background = cv2.GaussianBlur(background, (0, 0), settings.blur_sigma)
    if not settings.dark_worms:
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
    _darken_along(rng, darkening, points, 0.5 * max(0.8, worm_width * rng.uniform(0.2, 0.6)), contrast, (0.3, 0.9))


def _add_track(
    rng: np.random.Generator, darkening: np.ndarray, worm_length: float, worm_width: float, contrast: float
) -> None:
    """An old worm track in the lawn: a faint, thin, winding line three to eight worms long."""
    height, width = darkening.shape
    length = worm_length * rng.uniform(3.0, 8.0)
    n_points = max(16, round(length / 2))
    phase = np.linspace(0, length / worm_length * 2 * math.pi, n_points)
    heading = rng.uniform(-math.pi, math.pi) + 0.6 * np.sin(phase) + np.cumsum(rng.normal(0, 0.05, n_points))
    steps = np.stack([np.cos(heading), np.sin(heading)], axis=1) * (length / (n_points - 1))
    points = np.cumsum(steps, axis=0) + [rng.uniform(0, width), rng.uniform(0, height)]
    _darken_along(rng, darkening, points, 0.5 * max(1.0, worm_width * rng.uniform(0.5, 1.0)), contrast, (0.2, 0.5))


def _add_ring(rng: np.random.Generator, darkening: np.ndarray, worm_width: float, contrast: float) -> None:
    """A thin dark circle drawn on the plate (a chemotaxis ring or marker), 15-45 % of the frame across."""
    height, width = darkening.shape
    size = min(height, width)
    radius = size * rng.uniform(0.15, 0.45) / 2
    centre = (width * rng.uniform(0.3, 0.7), height * rng.uniform(0.3, 0.7))
    n_points = max(32, round(2 * math.pi * radius / 2))
    angle = np.linspace(0, 2 * math.pi, n_points)
    points = np.stack([centre[0] + radius * np.cos(angle), centre[1] + radius * np.sin(angle)], axis=1)
    _darken_along(rng, darkening, points, 0.5 * max(1.0, worm_width * rng.uniform(0.5, 1.5)), contrast, (0.5, 1.2))


def _add_mark(rng: np.random.Generator, darkening: np.ndarray, worm_width: float, contrast: float) -> None:
    """A marker-pen line: straight and dark, one to three worms wide, across 30-80 % of the frame."""
    height, width = darkening.shape
    length = min(height, width) * rng.uniform(0.3, 0.8)
    heading = rng.uniform(-math.pi, math.pi)
    start = np.array([rng.uniform(0.1, 0.9) * width, rng.uniform(0.1, 0.9) * height])
    points = start + np.linspace(0, length, max(2, round(length / 4)))[:, None] * [math.cos(heading), math.sin(heading)]
    _darken_along(rng, darkening, points, 0.5 * max(1.5, worm_width * rng.uniform(1.0, 3.0)), contrast, (0.8, 1.5))


_LABELS = ("N2 day1 plate 3", "CTRL", "unc-54 20C", "LAB 2026-11", "x4 obj")


def _add_text(rng: np.random.Generator, darkening: np.ndarray, worm_length: float, contrast: float) -> None:
    """A dark label or watermark, letters about half a worm high, somewhere in the frame."""
    height, width = darkening.shape
    label = _LABELS[int(rng.integers(len(_LABELS)))]
    letter_height = max(6.0, worm_length * rng.uniform(0.3, 0.7))
    scale = letter_height / 22.0  # FONT_HERSHEY_SIMPLEX letters are about 22 pixels high at scale 1
    thickness = max(1, round(letter_height / 8))
    (text_width, _), _ = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, scale, thickness)
    x = rng.uniform(0, max(1.0, width - text_width))
    y = rng.uniform(letter_height, height)
    canvas = np.zeros(darkening.shape, np.uint8)
    cv2.putText(canvas, label, (int(x), int(y)), cv2.FONT_HERSHEY_SIMPLEX, scale, 255, thickness, cv2.LINE_AA)
    darkening += contrast * rng.uniform(0.6, 1.2) * (canvas.astype(np.float32) / 255.0)


def _add_dish_edge(rng: np.random.Generator, darkening: np.ndarray, worm_width: float, level: float) -> None:
    """The dish wall: a circle reaching past one side of the frame, dark at its rim and darker outside."""
    height, width = darkening.shape
    size = min(height, width)
    radius = size * rng.uniform(0.55, 0.75)
    side = rng.uniform(0, 2 * math.pi)
    centre_x = width / 2 + size * 0.25 * math.cos(side)
    centre_y = height / 2 + size * 0.25 * math.sin(side)
    y, x = np.ogrid[:height, :width]
    edge_distance = np.sqrt((x - centre_x) ** 2 + (y - centre_y) ** 2).astype(np.float32) - radius
    rim_width = max(2.0, worm_width * rng.uniform(1.0, 3.0))
    outside = level * rng.uniform(0.2, 0.5) / (1.0 + np.exp(np.clip(-edge_distance / rim_width, -30, 30)))
    rim = level * rng.uniform(0.25, 0.5) * np.exp(-0.5 * (edge_distance / rim_width) ** 2)
    darkening += (outside + rim).astype(np.float32)


def _darken_along(
    rng: np.random.Generator,
    darkening: np.ndarray,
    points: np.ndarray,
    radius: float,
    contrast: float,
    depth: tuple[float, float],
) -> None:
    """Darken along a centreline of ``(n, 2)`` points with a tube of ``radius``, by ``contrast`` times a factor
    drawn from ``depth`` (drawn only if the tube reaches into the frame)."""
    drawn = tube_coverage(points, np.full(len(points), radius), darkening.shape)
    if drawn is not None:
        coverage, window = drawn
        darkening[window] += contrast * rng.uniform(*depth) * coverage
