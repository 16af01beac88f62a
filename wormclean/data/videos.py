"""Training data from videos: find them, check them, hold some out, and build the lagged patch streams."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np
import torch

from wormclean.data.pairs import resolve_lag
from wormclean.data.patches import LaggedPatchDataset
from wormclean.data.training_data import TrainingData, fixed_batches, hold_out
from wormclean.errors import SettingsError
from wormclean.io import find_videos, open_video
from wormclean.model.modelfile import Normalisation
from wormclean.settings import VideoFitSettings

log = logging.getLogger(__name__)


def split_videos(
    videos: list[Path], val_fraction: float, seed: int
) -> tuple[list[Path], list[Path]]:
    """Hold out ``val_fraction`` of the videos (at least one when there are two or more) for validation."""
    if len(videos) < 2 or val_fraction == 0:
        return list(videos), []
    n_val = min(len(videos) - 1, max(1, round(val_fraction * len(videos))))
    kept, held_out = hold_out(videos, n_val, np.random.default_rng(seed))
    return kept, sorted(held_out)


def video_training_data(
    inputs: Iterable[str | Path],
    settings: VideoFitSettings | None = None,
    seed: int = 0,
    excluded: Callable[[Path], np.ndarray | None] | None = None,
    **options,
) -> TrainingData:
    """Check the videos named by ``inputs`` (files, folders, globs) and build the training and validation data.

    ``settings`` (or, without them, ``options``: the keywords of :class:`~wormclean.settings.VideoFitSettings`)
    say how; ``seed`` seeds the split and the patch streams. Every video is opened once here so that a bad one
    (unreadable, shorter than the lag, of another bit depth) is reported before training starts. With a single
    video nothing can be held out: validation then uses other frame pairs of the training video, which is logged.
    ``excluded(path)``, if given, says per video which pixels to leave out of the loss (see
    :class:`~wormclean.data.patches.LaggedPatchDataset`).
    """
    if settings is not None and options:
        raise TypeError("give settings or their keywords, not both")
    settings = settings or VideoFitSettings(**options)
    lag = settings.lag_span
    videos = find_videos(inputs)
    bit_depths: dict[int, Path] = {}
    lags: dict[Path, int] = {}
    for path in videos:
        with open_video(path) as reader:
            lag_frames = resolve_lag(lag, reader.n_frames, reader.fps)
            if reader.n_frames <= lag_frames:
                raise SettingsError(
                    f"{path} has {reader.n_frames} frames, not more than the lag of {lag_frames} frames; "
                    "use a shorter --lag"
                )
            bit_depths.setdefault(reader.bit_depth, path)
            lags[path] = lag_frames
    if len(bit_depths) > 1:
        examples = ", ".join(f"{path.name} is {bits}-bit" for bits, path in sorted(bit_depths.items()))
        raise SettingsError(f"videos of different bit depths cannot train one model ({examples})")
    bit_depth = next(iter(bit_depths))
    train_videos, val_videos = split_videos(videos, settings.val_fraction, seed)
    if not val_videos and settings.val_batches:
        log.info("one video only: validation uses other frame pairs of the training video")
    regions = {path: excluded(path) for path in videos} if excluded is not None else None
    common = dict(
        patch_size=settings.patch_size,
        lag=lags,  # resolved once per video, here
        n_key_frames=settings.n_key_frames,
        min_change=settings.min_change,
        change_fraction=settings.change_fraction,
        excluded=regions,
    )
    dataset = LaggedPatchDataset(train_videos, seed=seed, **common)
    validation_source = LaggedPatchDataset(val_videos or train_videos, seed=seed + 7919, **common)
    validation = (
        fixed_batches(validation_source, settings.val_batches, settings.val_batch_size) if settings.val_batches else []
    )
    samples = validation or fixed_batches(LaggedPatchDataset(train_videos, seed=seed + 1, **common), 2, 8)
    normalisation = Normalisation.from_samples(torch.cat([source for source, _ in samples]).numpy(), bit_depth)
    metadata = {
        "kind": "video",
        "lag": str(lag) if lag is not None else "auto",
        "lag_frames": int(np.median(list(lags.values()))),
        "bit_depth": bit_depth,
        "training_videos": [str(p) for p in train_videos],
        "validation_videos": [str(p) for p in val_videos],
        "patch_size": settings.patch_size,
    }
    if regions is not None:
        # Recorded, so that a run (and --dry-run) shows what it left out of the loss (None: nothing could be found).
        metadata["excluded_pixels"] = {
            str(path): int(np.count_nonzero(mask)) if mask is not None else None for path, mask in regions.items()
        }
    return TrainingData(dataset=dataset, validation=validation, normalisation=normalisation, metadata=metadata)
