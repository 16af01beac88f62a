"""What a training run needs from a data source, whatever the source (lagged video frames or synthetic stills)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from itertools import islice

import numpy as np
import torch
from torch.utils.data import IterableDataset

from wormclean.model.modelfile import Normalisation


@dataclass
class TrainingData:
    """Training stream, fixed validation batches and how pixels were normalised.

    Attributes
    ----------
    dataset : IterableDataset
        Endless stream of ``(input, target)`` float32 tensors, each ``(channels, patch, patch)``, in raw pixel
        values (the trainer normalises them on its device); split across DataLoader workers by the dataset
        itself. It has a ``seed`` attribute, which the trainer sets (from the run's seed and the step it starts
        at) before iterating.
    validation : list of (Tensor, Tensor)
        Fixed held-out batches ``(batch, channels, patch, patch)``, raw pixel values.
    normalisation : Normalisation
        How to normalise this data for a new model (fine-tuning keeps the model's own); saved into the model
        file, and inference applies the same mapping.
    in_channels : int
        1 for grey, 3 for RGB stills.
    metadata : dict
        Source description saved into the model file (kind, lag, videos, ...).
    """

    dataset: IterableDataset
    validation: list[tuple[torch.Tensor, torch.Tensor]]
    normalisation: Normalisation
    in_channels: int = 1
    metadata: dict = field(default_factory=dict)


def fixed_batches(
    pairs: Iterable[tuple[torch.Tensor, torch.Tensor]], n_batches: int, batch_size: int
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Draw ``n_batches`` batches from a stream of ``(input, target)`` pairs once, in this process, to serve as
    a fixed validation set: tensors ``(batch_size, channels, patch, patch)``."""
    stream = iter(pairs)
    batches = []
    for _ in range(n_batches):
        items = list(islice(stream, batch_size))
        batches.append((torch.stack([a for a, _ in items]), torch.stack([b for _, b in items])))
    return batches


def hold_out(items: Sequence, n_held_out: int, rng: np.random.Generator) -> tuple[list, list]:
    """Split ``items`` at random into those kept for training and ``n_held_out`` held out for validation;
    both lists keep the order of ``items``."""
    chosen = set(rng.permutation(len(items))[:n_held_out].tolist())
    kept = [item for i, item in enumerate(items) if i not in chosen]
    return kept, [item for i, item in enumerate(items) if i in chosen]
