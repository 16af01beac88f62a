"""The worm filter: a small U-Net that says, per pixel of a plate image, how likely a worm is there.

It is the paper's semantic filtering by crop synthesis applied to the video itself: trained on plates with worms
pasted on (:mod:`wormclean.data.worm_crops`, :mod:`wormclean.train.worm_filter`), it keeps the worms and drops
the plate's rings, lines, text, specks and lawn edges. A shipped prior (``models/worm_filter.pt``) has seen many
plates and worms; each video adapts it to its own plate and worms (:meth:`WormFilter.adapted`). Run on a video's
temporal background it shows the worms that lay still; run on a frame, every worm.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
import torch

from wormclean.data.worm_crops import CropSettings, Plate, WormLayer
from wormclean.errors import ModelFileError
from wormclean.model.modelfile import ModelFile, Normalisation, load_model, save_model
from wormclean.model.registry import resolve_model
from wormclean.model.unet import UNet, UNetConfig
from wormclean.predict.inference import predict_backgrounds
from wormclean.train.worm_filter import adapt_filter

log = logging.getLogger(__name__)

KIND = "worm_filter"
"""``metadata["kind"]`` of a worm-filter model file."""

MODEL_NAME = "worm_filter"
"""The shipped prior's name in ``models/registry.json``."""

UNITS = Normalisation(offset=0.0, scale=1.0, bit_depth=8)
"""Inputs are already in worm units (:func:`~wormclean.data.worm_crops.to_worm_units`): no further mapping."""

DEFAULT_CONFIG = UNetConfig(width=16, depth=4)
"""A filter's net: the shipped background net's size, about 1 s per 2048x2048 image on two CPU cores, and a
receptive field of 64 pixels each way, which takes in most of a worm and the structure it lies on."""


@dataclass(frozen=True)
class WormFilter:
    """One net, or two cross-fitted ones with the fold each judges.

    Attributes
    ----------
    nets : tuple of UNet
        One net for the whole image, or two: ``nets[0]`` judges the ``odd`` pixels, ``nets[1]`` the others.
    odd : np.ndarray or None
        bool ``(H, W)``, with two nets.
    metadata : dict
        What the model file says of the prior (its training data and figures).
    """

    nets: tuple[UNet, ...]
    odd: np.ndarray | None = None
    metadata: dict | None = None

    @classmethod
    def load(cls, model: str | os.PathLike | None = None) -> WormFilter:
        """The filter of a model file, by path or registered name (None: the shipped prior)."""
        loaded = load_model(resolve_model(MODEL_NAME if model is None else model))
        check_filter_model(loaded)
        return cls((loaded.net,), None, loaded.metadata)

    def save(self, path: str | os.PathLike, metadata: dict, training: dict | None = None) -> None:
        """Write the (single) net as a worm-filter model file."""
        if len(self.nets) != 1:
            raise ValueError("only a single-net filter is saved; a cross-fitted one belongs to its video")
        save_model(path, self.nets[0], UNITS, {**metadata, "kind": KIND}, training)

    def probability(
        self, units: np.ndarray, tile_size: int | None = None, batch_size: int | None = None, device="cpu"
    ) -> np.ndarray:
        """Per pixel, the probability that a worm is there: float32 ``(H, W)`` in [0, 1], for an image in worm
        units (float32 ``(H, W)``)."""
        logits = [
            predict_backgrounds(net, UNITS, [units], tile_size, batch_size, device, raw=True)[0] for net in self.nets
        ]
        logit = logits[0] if len(logits) == 1 else np.where(self.odd, logits[0], logits[1])
        return (1.0 / (1.0 + np.exp(-np.clip(logit, -30.0, 30.0)))).astype(np.float32)

    def adapted(
        self,
        plate: Plate,
        layers: Sequence[WormLayer],
        steps: int,
        block: int,
        seed: int = 0,
        crops: CropSettings = CropSettings(),
        device="cpu",
    ) -> WormFilter:
        """This filter adapted to one video: ``plate`` its temporal background, ``layers`` its
        moving worms; cross-fitted on two folds of ``block`` pixels (:func:`~wormclean.train.worm_filter.
        adapt_filter`). Without layers or steps, the filter as it is."""
        if not layers or steps <= 0:
            return self
        torch.manual_seed(seed)
        nets, odd = adapt_filter(self.nets[0], plate, layers, steps, block, np.random.default_rng(seed), crops,
                                 device=torch.device(device) if isinstance(device, str) else device)
        return replace(self, nets=tuple(nets), odd=odd)


def check_filter_model(model: ModelFile) -> None:
    """Refuse a model file that is not a one-channel worm filter, with a clear :class:`ModelFileError`."""
    kind = model.metadata.get("kind", "video")
    if kind != KIND:
        raise ModelFileError(f"{model.path or 'the model'} is a {kind} model, not a worm filter")
    if model.config.in_channels != 1 or model.config.out_channels != 1:
        raise ModelFileError(f"{model.path or 'the model'} is not a one-channel worm filter")


def new_filter(config: UNetConfig = DEFAULT_CONFIG, seed: int = 0) -> WormFilter:
    """An untrained filter (for training a prior from scratch)."""
    torch.manual_seed(seed)
    return WormFilter((UNet(config),))
