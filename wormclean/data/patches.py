"""An endless, memory-bounded stream of patch pairs cut from lagged frame pairs of many videos."""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import IterableDataset, get_worker_info

from wormclean.data.pairs import VideoKeyFrames, load_key_frames
from wormclean.data.shards import stream_shard
from wormclean.errors import WormcleanError
from wormclean.padding import pad_image
from wormclean.units import FrameSpan

log = logging.getLogger(__name__)


def augment(patches: Sequence[np.ndarray], rng: np.random.Generator) -> list[np.ndarray]:
    """Apply one random flip and 90-degree rotation (the 8 symmetries of the square) to every patch alike."""
    k = int(rng.integers(4))
    flip = bool(rng.integers(2))
    out = []
    for patch in patches:
        patch = np.rot90(patch, k, axes=(-2, -1))
        if flip:
            patch = patch[..., ::-1]
        out.append(np.ascontiguousarray(patch))
    return out


def pad_to(frame: np.ndarray, size: int) -> np.ndarray:
    """Reflect-pad a ``(..., H, W)`` frame so both sides are at least ``size``."""
    pad_h = max(0, size - frame.shape[-2])
    pad_w = max(0, size - frame.shape[-1])
    if not pad_h and not pad_w:
        return frame
    return pad_image(frame, (0, pad_h), (0, pad_w), axes=(-2, -1))


class LaggedPatchDataset(IterableDataset):
    """Endless ``(input, target)`` patch pairs from lagged frame pairs of ``videos``.

    Each yielded item is two float32 tensors ``(1, patch_size, patch_size)`` of raw pixel values (the trainer
    normalises them with the model's :class:`~wormclean.model.modelfile.Normalisation`): the same crop of
    two frames of one video at least a lag apart, equally flipped and rotated, input and target swapped at
    random. Each DataLoader worker (of each training process, :func:`~wormclean.data.shards.stream_shard`) takes
    its own share of the videos and its own random stream. A worker keeps the key frames of at most
    ``videos_in_memory`` videos; every ``refresh_every`` patches it decodes the next
    video (or new frames of the same one) and drops the oldest, so memory does not grow with the number of
    videos.

    Parameters
    ----------
    videos : paths of videos (anything :func:`wormclean.io.open_video` reads)
    lag : lag as frames or seconds; None for the automatic lag (see :func:`~wormclean.data.pairs.resolve_lag`);
        or, per video, the lag in frames already resolved
    change_fraction : fraction of patches centred on where the pair changed most (moving worms)
    min_change : pairs whose smoothed change stays below this many grey levels are dropped
    excluded : per video, bool ``(H, W)`` regions left out of the loss (the immobile worms, which both frames
        of a pair show): the target is NaN there, and the trainer's loss skips NaN targets
    """

    def __init__(
        self,
        videos: Sequence[Path],
        patch_size: int = 256,
        lag: FrameSpan | Mapping[Path, int] | None = None,
        seed: int = 0,
        n_key_frames: int = 8,
        videos_in_memory: int = 4,
        refresh_every: int = 256,
        min_change: float = 0.0,
        change_fraction: float = 0.0,
        excluded: Mapping[Path, np.ndarray] | None = None,
    ):
        super().__init__()
        self.videos = [Path(v) for v in videos]
        self.patch_size = patch_size
        self.lag = lag
        self.seed = seed
        self.n_key_frames = n_key_frames
        self.videos_in_memory = videos_in_memory
        self.refresh_every = refresh_every
        self.min_change = min_change
        self.change_fraction = change_fraction
        self.excluded = {Path(path): mask for path, mask in (excluded or {}).items() if mask is not None}

    def _worker_share(self) -> tuple[list[Path], np.random.Generator]:
        info = get_worker_info()
        shard, n_shards = stream_shard(*((info.id, info.num_workers) if info else (0, 1)))
        share = self.videos[shard::n_shards] if len(self.videos) >= n_shards else list(self.videos)
        return share, np.random.default_rng([self.seed, shard])

    def _load(self, path: Path, rng: np.random.Generator) -> VideoKeyFrames | None:
        try:
            video = load_key_frames(
                path,
                self.lag[path] if isinstance(self.lag, Mapping) else self.lag,
                self.n_key_frames,
                rng,
                min_change=self.min_change,
                change_points=64 if self.change_fraction > 0 else 0,
            )
        except WormcleanError as error:
            log.warning("skipping %s: %s", path, error)
            return None
        return video if len(video.pairs) else None

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        share, rng = self._worker_share()
        order: deque[Path] = deque(rng.permutation(np.array(share, dtype=object)).tolist())
        cache: deque[VideoKeyFrames] = deque()
        for _ in range(len(order)):
            if len(cache) >= self.videos_in_memory:
                break
            video = self._load(order[0], rng)
            order.rotate(-1)
            if video is not None:
                cache.append(video)
        if not cache:
            raise WormcleanError("no video gave a usable frame pair (all too short for the lag, or static)")
        produced = 0
        while True:
            yield self._sample(cache[int(rng.integers(len(cache)))], rng)
            produced += 1
            if produced % self.refresh_every == 0:
                video = self._load(order[0], rng)
                order.rotate(-1)
                if video is not None:
                    cache.append(video)
                    if len(cache) > self.videos_in_memory:
                        cache.popleft()

    def _sample(self, video: VideoKeyFrames, rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        pair_index = int(rng.integers(len(video.pairs)))
        i, j = video.pairs[pair_index]
        frame_a, frame_b = pad_to(video.frames[i], self.patch_size), pad_to(video.frames[j], self.patch_size)
        height, width = frame_a.shape
        size = self.patch_size
        if video.changes and rng.random() < self.change_fraction:
            centre_y, centre_x = video.changes[pair_index][int(rng.integers(len(video.changes[pair_index])))]
            top = int(np.clip(centre_y - size // 2, 0, height - size))
            left = int(np.clip(centre_x - size // 2, 0, width - size))
        else:
            top = int(rng.integers(height - size + 1))
            left = int(rng.integers(width - size + 1))
        window = (slice(top, top + size), slice(left, left + size))
        excluded = self.excluded.get(video.path)
        extra = [pad_to(excluded.astype(np.uint8), size)[window]] if excluded is not None else []
        patches = augment([frame_a[window], frame_b[window], *extra], rng)
        pair = patches[:2]
        if rng.integers(2):
            pair.reverse()
        source, target = (torch.from_numpy(p[None].astype(np.float32)) for p in pair)
        if extra:
            target[0][torch.from_numpy(patches[2].astype(bool))] = float("nan")  # left out of the loss
        return source, target
