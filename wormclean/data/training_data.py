"""What a training run needs from a data source, whatever the source (lagged video frames or synthetic stills)."""

from __future__ import annotations

from dataclasses import dataclass, field

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
