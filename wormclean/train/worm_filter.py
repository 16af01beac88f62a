"""Training the worm filter on synthesized crops, and adapting it to one video.

The filter is a small U-Net whose output is, per pixel, the logit that a worm is there
(:mod:`wormclean.predict.worm_filter`). It is trained with a weighted binary cross-entropy on crops of plates with
worms pasted on (:mod:`wormclean.data.worm_crops`): a shipped prior on composites of many plates and worms, then,
for each video, a short adaptation on crops of that video's temporal background with its own moving worms.

The temporal background of a video holds the worms that never moved: unlabelled positives. Taught as plate, they
would be learned as plate, and the filter would miss exactly the worms it is there to find. So adaptation is
cross-fitted (:func:`adapt_filter`): the plate is cut into two folds of a checkerboard, one filter is adapted on
each fold's crops alone, and each fold is judged by the filter that never saw it. Rings, lines and specks recur
across the plate, so each filter learns them from its own fold; a worm lying still in one fold is, to the filter
that judges it, a worm like those pasted, never a piece of plate it was told to keep.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable, Sequence
from dataclasses import replace

import numpy as np
import torch
import torch.nn.functional as F

from wormclean.data.worm_crops import CropSettings, Plate, WormLayer, checkerboard, synthesize_batch
from wormclean.model.unet import UNet

log = logging.getLogger(__name__)

POSITIVE_WEIGHT = 5.0
"""Weight of a worm pixel in the loss: worms are a few percent of a crop's pixels, and a filter that misses part of
a still worm leaves it in the background (lost in every frame), while a false pixel is cut off by the blob sizes."""


ADAPT_LEARNING_RATE = 1e-4
"""Adaptation starts from a trained filter with a fresh optimiser, whose first steps move every weight by about the
learning rate whatever its gradient: a tenth of training's keeps them from undoing the prior."""


def weighted_bce(logits: torch.Tensor, target: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy of ``logits`` against ``target``, worm pixels weighted by :data:`POSITIVE_WEIGHT`,
    each pixel by ``weight`` (0 leaves it out), averaged over the weight."""
    pixel_weight = weight * (1.0 + (POSITIVE_WEIGHT - 1.0) * target)
    losses = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
    return (losses * pixel_weight).sum() / pixel_weight.sum().clamp_min(1.0)


def train_filter(
    net: UNet,
    plates: Sequence[Plate],
    layers: Sequence[WormLayer],
    steps: int,
    rng: np.random.Generator,
    crops: CropSettings = CropSettings(),
    batch_size: int = 8,
    learning_rate: float = 1e-3,
    on_step: Callable[[int, float], None] | None = None,
    device: torch.device = torch.device("cpu"),
) -> list[float]:
    """Train ``net`` (in place) for ``steps`` Adam steps on crops synthesized from ``plates`` and ``layers``.

    Parameters
    ----------
    net : UNet
        One channel in (worm units) and one out (logits).
    plates : sequence of Plate
        Backgrounds in worm units.
    layers : sequence of WormLayer
        The worms pasted on.
    steps, batch_size, learning_rate :
        The optimisation.
    rng : np.random.Generator
        Drives the crops; the same seed gives the same crops.
    crops : CropSettings
    on_step : callable, optional
        ``on_step(step, loss)`` after each step.

    Returns
    -------
    list of float
        The loss of each step.
    """
    net.to(device).train()
    optimiser = torch.optim.Adam(net.parameters(), lr=learning_rate)
    losses = []
    for step in range(steps):
        images, targets, pixel_weights = (
            torch.from_numpy(part).to(device)
            for part in synthesize_batch(plates, layers, crops, rng, batch_size)
        )
        loss = weighted_bce(net(images), targets, pixel_weights)
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        losses.append(float(loss.detach()))
        if on_step is not None:
            on_step(step, losses[-1])
    net.eval()
    return losses


def adapt_filter(
    prior: UNet,
    plate: Plate,
    layers: Sequence[WormLayer],
    steps: int,
    block: int,
    rng: np.random.Generator,
    crops: CropSettings = CropSettings(),
    batch_size: int = 8,
    learning_rate: float = ADAPT_LEARNING_RATE,
    device: torch.device = torch.device("cpu"),
) -> tuple[list[UNet], np.ndarray]:
    """Two copies of ``prior``, each adapted on one fold of ``plate`` (a video's temporal background).

    Returns
    -------
    nets : list of UNet
        ``nets[k]`` was trained on fold ``k`` and judges fold ``1 - k``.
    odd : np.ndarray
        bool ``(H, W)``: the fold 1 pixels (:func:`~wormclean.data.worm_crops.checkerboard` of ``block``).
    """
    odd = checkerboard(plate.image.shape, block)
    nets = []
    for fold in (False, True):
        net = copy.deepcopy(prior)
        folded = replace(plate, weight=(odd == fold).astype(np.float32))
        losses = train_filter(net, [folded], layers, steps, rng, crops, batch_size, learning_rate, device=device)
        log.debug("fold %d adapted: loss %.3f -> %.3f", int(fold), np.mean(losses[:10]), np.mean(losses[-10:]))
        nets.append(net)
    return nets, odd
