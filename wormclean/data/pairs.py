"""Lagged frame pairs: which frames of a video to decode, and which pairs of them to train on.

Frames of one video taken at least ``lag`` apart form a pair: the worms have moved between the two, the
background has not, so a net trained to map one to the other with an L1 loss learns the per-pixel median, the
background. A few key frames per video are decoded in one forward pass and every pair of them that is at least a
lag apart is used, so training never seeks per sample.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from wormclean.errors import SettingsError, VideoError
from wormclean.io import open_video
from wormclean.units import FrameSpan

log = logging.getLogger(__name__)

AUTO_LAG_MAX_SECONDS = 60.0


def resolve_lag(lag: FrameSpan | None, n_frames: int, fps: float) -> int:
    """The lag in frames for one video.

    ``None`` is the automatic lag: half the video, at most 60 s. Worms crawl about a body length in a few
    seconds, so a minute apart they have left their place in a tracking video; a 10-second clip gets 5 s.
    """
    if lag is None:
        return max(1, min(n_frames // 2, round(AUTO_LAG_MAX_SECONDS * fps)))
    return lag.frames(fps)


def key_frame_times(n_frames: int, lag_frames: int, n_key_frames: int, rng: np.random.Generator) -> np.ndarray:
    """Indices of the frames to decode from a video: spread over it, with a random phase.

    Returns a sorted ``(k,)`` int array with ``2 <= k <= n_key_frames`` and first and last at least
    ``lag_frames`` apart. Raises :class:`SettingsError` if the video is not longer than the lag.
    """
    if n_frames <= lag_frames:
        raise SettingsError(f"the video has {n_frames} frames, not more than the lag of {lag_frames} frames")
    k = max(2, min(n_key_frames, n_frames))
    span = n_frames - 1
    # A random sub-range at least lag long, so that reloading a video later shows other frames.
    length = int(rng.integers(lag_frames, span + 1)) if span > lag_frames else span
    start = int(rng.integers(0, span - length + 1))
    times = np.unique(np.round(np.linspace(start, start + length, k)).astype(int))
    return times


def valid_pairs(times: np.ndarray, lag_frames: int) -> np.ndarray:
    """All ``(i, j)`` index pairs into ``times`` with ``times[j] - times[i] >= lag_frames``; ``(n, 2)`` int."""
    i, j = np.triu_indices(len(times), k=1)
    keep = times[j] - times[i] >= lag_frames
    return np.stack([i[keep], j[keep]], axis=1)


def change_map(frame_a: np.ndarray, frame_b: np.ndarray, smoothing_sigma: float = 2.0) -> np.ndarray:
    """Smoothed absolute difference of two frames after matching their mean brightness, float32 ``(H, W)``.

    Brightness flicker changes every pixel a little; worms that moved change a few pixels a lot.
    """
    a = frame_a.astype(np.float32)
    b = frame_b.astype(np.float32)
    b *= (np.median(a) + 1e-6) / (np.median(b) + 1e-6)
    return cv2.GaussianBlur(np.abs(a - b), (0, 0), smoothing_sigma)


@dataclass
class VideoKeyFrames:
    """Decoded key frames of one video and the pairs to draw from them.

    Attributes
    ----------
    frames : (k, H, W) uint8 or uint16
    times : (k,) frame indices in the video
    pairs : (n, 2) indices into ``frames`` of pairs at least a lag apart (and changed enough)
    changes : per pair, the ``(y, x)`` pixel coordinates where the pair changed most, to centre patches on
    """

    path: Path
    frames: np.ndarray
    times: np.ndarray
    pairs: np.ndarray
    changes: list[np.ndarray] = field(default_factory=list)

    @property
    def n_bytes(self) -> int:
        return self.frames.nbytes


def load_key_frames(
    path: Path,
    lag: FrameSpan | int | None,
    n_key_frames: int,
    rng: np.random.Generator,
    min_change: float = 0.0,
    change_points: int = 0,
) -> VideoKeyFrames:
    """Decode a few frames of ``path`` in one forward pass and list the pairs to train on.

    Pairs whose largest smoothed change is below ``min_change`` (grey levels) are dropped: nothing moved in
    them, so they teach only the identity. ``change_points`` > 0 keeps that many pixel positions per pair where
    it changed most, for patches centred on moving worms.
    """
    with open_video(path) as reader:
        # An int is the lag already resolved for this video (by video_training_data): it is not resolved again.
        lag_frames = lag if isinstance(lag, int) else resolve_lag(lag, reader.n_frames, reader.fps)
        times = key_frame_times(reader.n_frames, lag_frames, n_key_frames, rng)
        decoded = dict(reader.read(times.tolist()))
    times = np.array([t for t in times if t in decoded])
    if len(times) < 2:
        raise VideoError(f"{path}: fewer than two frames could be decoded")
    frames = np.stack([decoded[t] for t in times])
    pairs = valid_pairs(times, lag_frames)
    changes: list[np.ndarray] = []
    if min_change > 0 or change_points > 0:
        kept = []
        for i, j in pairs:
            change = change_map(frames[i], frames[j])
            if change.max() < min_change:
                continue
            kept.append((i, j))
            if change_points > 0:
                flat = np.argpartition(change.ravel(), -change_points)[-change_points:]
                changes.append(np.stack(np.unravel_index(flat, change.shape), axis=1))
        pairs = np.array(kept, dtype=int).reshape(-1, 2)
    if len(pairs) == 0:
        log.warning("%s: no pair of frames %d apart changed by %.1f grey levels", path, lag_frames, min_change)
    return VideoKeyFrames(path=path, frames=frames, times=times, pairs=pairs, changes=changes)
