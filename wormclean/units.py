"""Durations given in frames (``150``) or seconds (``200s``), as in ``--lag`` and ``--bgnd-interval``."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from wormclean.errors import SettingsError

_PATTERN = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|sec|seconds|f|frames)?\s*$", re.IGNORECASE)


@dataclass(frozen=True)
class FrameSpan:
    """A span of time in frames or seconds; converted to frames per video, since fps differs between videos."""

    value: float
    unit: str  # "frames" or "seconds"

    @classmethod
    def parse(cls, text: str | int | float) -> FrameSpan:
        """Parse ``"150"`` (frames), ``"200s"`` (seconds) or a number (frames)."""
        if isinstance(text, (int, float)):
            return cls(float(text), "frames")
        match = _PATTERN.match(str(text))
        if not match:
            raise SettingsError(f"expected frames (e.g. 150) or seconds (e.g. 20s), got {text!r}")
        value, unit = float(match.group(1)), (match.group(2) or "f").lower()
        if unit.startswith("s"):
            return cls(value, "seconds")
        if value != int(value):
            raise SettingsError(f"a number of frames must be whole, got {text!r}")
        return cls(value, "frames")

    def frames(self, fps: float) -> int:
        """This span in whole frames at ``fps`` (at least 1)."""
        if self.unit == "frames":
            return max(1, int(self.value))
        return max(1, math.ceil(self.value * fps - 1e-9))

    def __str__(self) -> str:
        return f"{self.value:g}s" if self.unit == "seconds" else f"{int(self.value)}"
