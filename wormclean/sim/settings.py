"""What a synthetic worm video looks like: one frozen, validated settings object."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields, replace

import numpy as np

from wormclean.errors import SettingsError

REFERENCE_SIZE = 2048  # pixels across a 3 cm field, where an adult (1 mm) is about 80 pixels long
REFERENCE_LENGTH = 80.0
LENGTH_TO_WIDTH = 12.0  # adult C. elegans: about 1 mm by 80 um
MIN_LENGTH = 16.0
MAX_WORMS = 254  # labels are uint8, 0 is background


@dataclass(frozen=True)
class SimulationSettings:
    """Settings of a synthetic worm video; everything random follows from ``seed``.

    Parameters
    ----------
    size
        ``(height, width)`` in pixels, each at least 16.
    n_frames
        Number of frames.
    fps
        Frames per second.
    n_worms
        Number of worms (at most 254).
    immobile_fraction
        Fraction of the worms that never move (rounded to a whole number of worms): exactly the same pixels
        every frame apart from noise and flicker, which a median projection takes for background.
    worm_length
        Body length in pixels; ``None``: 80 pixels per 2048 (a 1 mm adult in a 3 cm field), at least 16.
        At most half the smaller frame side.
    worm_width
        Widest body diameter in pixels; ``None``: a twelfth of the length, at least 2. At most a quarter of the
        length.
    contrast
        Grey levels between a worm's interior and the background under it.
    speed
        Forward crawling speed in body lengths per second (C. elegans: about 0.1-0.3); each worm varies it by
        up to 30 %. Reversals go at 70 % of it.
    noise_sigma
        Standard deviation of the Gaussian sensor noise, grey levels.
    flicker
        Standard deviation of the per-frame multiplicative brightness gain around 1 (0.01 = 1 %).
    blur_sigma
        Gaussian blur of the optics in pixels (0: sharp); applied to background and worms, not to the noise.
    lawn
        Draw a bacterial lawn (darker patch with a darker rim).
    n_dust
        Number of dust specks.
    n_fibres
        Number of static fibres or scratches: thin dark curves about as long as worms.
    n_rings
        Number of thin dark circles (a chemotaxis ring, a plate marker), 15-45 % of the frame across.
    n_marks
        Number of marker-pen lines: straight, dark, one to three worms wide, across much of the frame.
    n_tracks
        Number of old worm tracks in the lawn: faint, thin, winding lines many worms long.
    dish_edge
        Draw the dish wall: a dark rim and a darker outside where the dish ends inside the frame.
    text
        Write a dark label or watermark (letters about half a worm high).
    dark_worms
        True: dark worms on a light background (bright field). False: the negative (dark field).
    seed
        Seed of every random choice; the same settings give the same video.
    """

    size: tuple[int, int] = (2048, 2048)
    n_frames: int = 250
    fps: float = 25.0
    n_worms: int = 10
    immobile_fraction: float = 0.3
    worm_length: float | None = None
    worm_width: float | None = None
    contrast: float = 40.0
    speed: float = 0.2
    noise_sigma: float = 3.0
    flicker: float = 0.01
    blur_sigma: float = 0.0
    lawn: bool = True
    n_dust: int = 30
    n_fibres: int = 3
    n_rings: int = 0
    n_marks: int = 0
    n_tracks: int = 0
    dish_edge: bool = False
    text: bool = False
    dark_worms: bool = True
    seed: int = 0

    def __post_init__(self):
        size = self.size
        if isinstance(size, int | np.integer):
            size = (int(size), int(size))
        try:
            size = tuple(int(side) for side in size)
        except (TypeError, ValueError):
            raise SettingsError(f"size must be (height, width) in pixels, got {self.size!r}") from None
        if len(size) != 2 or min(size) < 16:
            raise SettingsError(f"size must be (height, width), each at least 16 pixels; got {self.size!r}")
        object.__setattr__(self, "size", size)
        _check_whole(self.n_frames, "n_frames", 1)
        _check_whole(self.n_worms, "n_worms", 0, MAX_WORMS)
        _check_whole(self.n_dust, "n_dust", 0)
        _check_whole(self.n_fibres, "n_fibres", 0)
        for name in ("n_rings", "n_marks", "n_tracks"):
            _check_whole(getattr(self, name), name, 0, 100)
        _check_whole(self.seed, "seed", 0)
        _check_range(self.fps, "fps", 0, math.inf, low_open=True)
        _check_range(self.immobile_fraction, "immobile_fraction", 0, 1)
        _check_range(self.contrast, "contrast", 0, 255, low_open=True)
        _check_range(self.speed, "speed", 0, 5)
        _check_range(self.noise_sigma, "noise_sigma", 0, 50)
        _check_range(self.flicker, "flicker", 0, 0.3)
        _check_range(self.blur_sigma, "blur_sigma", 0, 20)
        if self.worm_length is not None:
            _check_range(self.worm_length, "worm_length", 4, math.inf)
        if self.worm_width is not None:
            _check_range(self.worm_width, "worm_width", 0.5, self.length_px / 4)
        elif self.width_px > self.length_px / 4:
            raise SettingsError(f"worm_length {self.length_px:g} is too short for the default width")
        if self.n_worms > 0 and self.length_px > min(size) / 2:
            raise SettingsError(
                f"worms of {self.length_px:g} pixels do not fit in {size[0]}x{size[1]} frames; "
                "set worm_length to at most half the smaller side"
            )
        for name in ("lawn", "dark_worms", "dish_edge", "text"):
            if not isinstance(getattr(self, name), bool | np.bool_):
                raise SettingsError(f"{name} must be true or false, got {getattr(self, name)!r}")

    @property
    def length_px(self) -> float:
        """Worm length in pixels, with the default resolved."""
        if self.worm_length is not None:
            return float(self.worm_length)
        return max(MIN_LENGTH, REFERENCE_LENGTH * min(self.size) / REFERENCE_SIZE)

    @property
    def width_px(self) -> float:
        """Widest worm diameter in pixels, with the default resolved."""
        if self.worm_width is not None:
            return float(self.worm_width)
        return max(2.0, self.length_px / LENGTH_TO_WIDTH)

    @property
    def n_immobile(self) -> int:
        """How many worms never move."""
        return round(self.immobile_fraction * self.n_worms)

    def to_dict(self) -> dict:
        """The settings as plain values, worm size resolved to pixels (so it can be stored and rebuilt)."""
        values = asdict(self)
        values["size"] = list(self.size)
        values["worm_length"] = self.length_px
        values["worm_width"] = self.width_px
        return values

    @classmethod
    def from_dict(cls, values: dict) -> SimulationSettings:
        """Rebuild settings from :meth:`to_dict` output (unknown keys are an error)."""
        names = {field.name for field in fields(cls)}
        unknown = set(values) - names
        if unknown:
            raise SettingsError(f"unknown simulation settings: {', '.join(sorted(unknown))}")
        return cls(**values)

    @classmethod
    def randomised(
        cls, seed: int, size: int | tuple[int, int] = (256, 256), n_frames: int = 100, **fixed
    ) -> SimulationSettings:
        """Draw varied settings from ``seed``, for training on many different videos.

        Worm sizes cover magnifications from a whole plate to a close-up (30-160 pixels long, capped at 45 % of
        the smaller frame side), and contrast, noise, flicker, blur, clutter, polarity and motion vary widely.
        Settings named in ``fixed`` override the drawn ones (the others are drawn the same either way).

        Parameters
        ----------
        seed
            Seed of the draw, also used as the video's seed.
        size
            ``(height, width)`` or one side of a square frame.
        n_frames
            Number of frames.
        **fixed
            Any other :class:`SimulationSettings` field, to hold fixed.
        """
        names = {field.name for field in fields(cls)}
        unknown = set(fixed) - names
        if unknown:
            raise SettingsError(f"unknown simulation settings: {', '.join(sorted(unknown))}")
        base = cls(size=size, n_frames=n_frames, seed=seed, n_worms=0, worm_length=16.0, worm_width=2.0)
        height, width = base.size
        rng = np.random.default_rng(np.random.SeedSequence([seed, 0x5E77]))
        length = min(float(np.exp(rng.uniform(np.log(30), np.log(160)))), 0.45 * min(height, width))
        worm_width = length / rng.uniform(9.0, 15.0)
        room = height * width / length**2
        area = height * width / 1024**2
        drawn = dict(
            n_worms=int(rng.integers(1, int(np.clip(0.3 * room, 1, 40)) + 1)),
            immobile_fraction=float(rng.choice([0.0, 0.25, 0.5, 0.75, 1.0])),
            worm_length=round(length, 2),
            worm_width=round(max(worm_width, 1.5), 2),
            contrast=round(float(rng.uniform(12.0, 90.0)), 1),
            speed=round(float(rng.uniform(0.05, 0.35)), 3),
            noise_sigma=round(float(rng.uniform(0.5, 6.0)), 2),
            flicker=round(float(rng.uniform(0.0, 0.03)), 4),
            blur_sigma=round(float(rng.uniform(0.3, 1.5)) if rng.random() < 0.5 else 0.0, 2),
            lawn=bool(rng.random() < 0.6),
            n_dust=int(rng.poisson(40 * area)),
            n_fibres=int(rng.poisson(3 * max(area, 0.25))),
            dark_worms=bool(rng.random() < 0.8),
        )
        drawn.update(fixed)
        return replace(base, **drawn)


def _check_whole(value, name: str, low: int, high: float = math.inf) -> None:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or not low <= value <= high:
        bound = f"between {low} and {high}" if high < math.inf else f">= {low}"
        raise SettingsError(f"{name} must be a whole number {bound}, got {value!r}")


def _check_range(value, name: str, low: float, high: float, low_open: bool = False) -> None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise SettingsError(f"{name} must be a number, got {value!r}") from None
    if not (math.isfinite(number) and (number > low if low_open else number >= low) and number <= high):
        bound = f"> {low:g}" if low_open else f">= {low:g}"
        upper = "" if high == math.inf else f" and <= {high:g}"
        raise SettingsError(f"{name} must be {bound}{upper}, got {value!r}")

