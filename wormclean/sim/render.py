"""Render a synthetic video frame by frame, with its true labels.

A frame is ``gain[t] * (background + s * contrast * coverage) + noise``, rounded to uint8, where ``coverage``
is the fraction of each pixel under a worm (after the optics' blur), ``s`` is -1 for dark worms and +1 for
bright ones, ``gain`` is the flicker and the noise is Gaussian. The background is drawn once; worms are drawn in
small windows around them; noise comes from a small pool of noise fields read at random offsets, which costs one
addition per frame instead of generating millions of normal numbers.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator

import cv2
import numpy as np

from wormclean.sim.draw import tube_coverage
from wormclean.sim.scene import make_background
from wormclean.sim.settings import SimulationSettings
from wormclean.sim.worms import Crawler

log = logging.getLogger(__name__)

LABEL_THRESHOLD = 0.5  # a pixel is labelled as a worm where the worm covers more than half of it
NOISE_POOL = 4
NOISE_PAD = 64
MOBILE_SPEED_SPREAD = 0.3


class Simulation:
    """A synthetic video: the truth that holds for every frame up front, the frames on demand.

    Parameters
    ----------
    settings
        What to simulate.

    Attributes
    ----------
    background : (height, width) float32
        The noise-free background without worms and before flicker.
    immobile : (n_worms,) bool
        Which worms never move.
    gain : (n_frames,) float32
        Per-frame multiplicative brightness (flicker).
    """

    def __init__(self, settings: SimulationSettings):
        self.settings = settings
        seeds = np.random.SeedSequence(settings.seed).spawn(4 + settings.n_worms)
        self._scene_seed, choice_seed, self._noise_seed, flicker_seed = seeds[:4]
        self._worm_seeds = seeds[4:]
        self.background = make_background(np.random.default_rng(self._scene_seed), settings)
        self.immobile = np.zeros(settings.n_worms, bool)
        chosen = np.random.default_rng(choice_seed).choice(settings.n_worms, settings.n_immobile, replace=False)
        self.immobile[chosen] = True
        wobble = np.clip(np.random.default_rng(flicker_seed).standard_normal(settings.n_frames), -3, 3)
        self.gain = (1.0 + settings.flicker * wobble).astype(np.float32)

    def frames(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Render the video from its first frame.

        Yields
        ------
        frame : (height, width) uint8
        labels : (height, width) uint8
            0 for background, ``k + 1`` where worm ``k`` covers more than half the pixel (a later worm wins
            where worms overlap).
        """
        settings = self.settings
        shape = settings.size
        crawlers = [self._crawler(k) for k in range(settings.n_worms)]
        still = {k: self._coverage(crawlers[k]) for k in np.flatnonzero(self.immobile)}
        noise = _NoisePool(np.random.default_rng(self._noise_seed), shape, settings.noise_sigma)
        worm_shift = (-1.0 if settings.dark_worms else 1.0) * settings.contrast
        coverage_sum = np.zeros(shape, np.float32)
        canvas = np.empty(shape, np.float32)
        for index in range(settings.n_frames):
            gain = float(self.gain[index])
            labels = np.zeros(shape, np.uint8)
            windows = []
            for k, crawler in enumerate(crawlers):
                if k in still:
                    drawn = still[k]
                else:
                    if index > 0:
                        crawler.step()
                    drawn = self._coverage(crawler)
                if drawn is None:
                    continue
                coverage, window = drawn
                # Overlapping worms are not darker than one worm.
                np.maximum(coverage_sum[window], coverage, out=coverage_sum[window])
                labels[window][coverage > LABEL_THRESHOLD] = k + 1
                windows.append(window)
            np.multiply(self.background, gain, out=canvas)
            for window in windows:
                canvas[window] = gain * (self.background[window] + worm_shift * coverage_sum[window])
            noise.add_to(canvas)
            canvas += 0.5
            np.clip(canvas, 0.0, 255.0, out=canvas)
            for window in windows:
                coverage_sum[window] = 0.0
            yield canvas.astype(np.uint8), labels

    def _crawler(self, k: int) -> Crawler:
        settings = self.settings
        rng = np.random.default_rng(self._worm_seeds[k])
        factor = rng.uniform(1 - MOBILE_SPEED_SPREAD, 1 + MOBILE_SPEED_SPREAD)
        speed = 0.0 if self.immobile[k] else settings.speed * settings.length_px * factor / settings.fps
        return Crawler(rng, settings.length_px, settings.width_px, speed, settings.fps, settings.size)

    def _coverage(self, crawler: Crawler) -> tuple[np.ndarray, tuple[slice, slice]] | None:
        blur = self.settings.blur_sigma
        drawn = tube_coverage(
            crawler.centreline(), crawler.radii, self.settings.size, margin=math.ceil(3 * blur) + 1
        )
        if drawn is None or blur == 0:
            return drawn
        coverage, window = drawn
        return cv2.GaussianBlur(coverage, (0, 0), blur), window


class _NoisePool:
    """Gaussian noise fields, a few generated once, read at a random offset for each frame."""

    def __init__(self, rng: np.random.Generator, shape: tuple[int, int], sigma: float):
        self.rng = rng
        self.shape = shape
        self.fields = [
            sigma * rng.standard_normal((shape[0] + NOISE_PAD, shape[1] + NOISE_PAD), dtype=np.float32)
            for _ in range(NOISE_POOL if sigma > 0 else 0)
        ]

    def add_to(self, canvas: np.ndarray) -> None:
        if not self.fields:
            return
        which, dy, dx = self.rng.integers([0, 0, 0], [len(self.fields), NOISE_PAD + 1, NOISE_PAD + 1])
        canvas += self.fields[which][dy : dy + self.shape[0], dx : dx + self.shape[1]]


def render_video(settings: SimulationSettings) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Render a synthetic video frame by frame.

    Yields
    ------
    frame : (height, width) uint8
    labels : (height, width) uint8
        0 for background, ``k + 1`` for worm ``k``.
    """
    return Simulation(settings).frames()
