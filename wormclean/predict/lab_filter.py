"""A worm filter adapted once to a lab's videos, saved and reused (``wormclean adapt``).

The job adapts the worm filter's prior to each video on its own (:meth:`~wormclean.predict.cleaner.Cleaner.
adapt_filter`): a few seconds to a minute per video on a CPU, and one video's plate and worms only. Videos recorded
alike (the same plates, light, camera and strains) can teach one filter instead, the paper's workflow: adapt once to
many of them, then mask with that filter and ``--adapt-steps 0``.

Each video gives its temporal background (the plate, in worm units) and its moving worms, which are pasted on the
plates of every video of the batch (:func:`~wormclean.train.worm_filter.train_filter`). The plates also hold the
worms that lay still, and a filter taught that they are background would learn to drop them (positive and unlabelled
data). So each video's still worms are first found as the job finds them, by the prior adapted to that video alone
on cross-fitted folds (:meth:`~wormclean.predict.cleaner.Cleaner.video_plate`), and left out of the loss.
"""

from __future__ import annotations

import copy
import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from wormclean.errors import SettingsError
from wormclean.predict.cleaner import DEFAULT_CROPS, Cleaner
from wormclean.predict.worm_filter import WormFilter
from wormclean.train.worm_filter import ADAPT_LEARNING_RATE, train_filter

log = logging.getLogger(__name__)

DEFAULT_LAB_STEPS = 400
"""Training steps (of 8 crops) of ``wormclean adapt``: ten times what the job gives one video, for a batch of
videos. A step takes about 0.2 s on two quiet CPU cores, 1-3 s on two busy ones (measured). 800 did worse than 400
on the VALIDATE plates (models/README.md)."""


@dataclass(frozen=True)
class LabFilter:
    """The result of :func:`fit_lab_filter`.

    Attributes
    ----------
    worm_filter : WormFilter
        The adapted filter (one net), to save with :meth:`~wormclean.predict.worm_filter.WormFilter.save`.
    losses : list of float
        The training loss of each step.
    videos : list of dict
        Per video: ``video`` (its path), ``moving_worms`` (worm layers it gave), ``still_worm_pixels`` (left out of
        the loss); ``moving_worms`` is None for a video with no temporal background, which gave nothing.
    """

    worm_filter: WormFilter
    losses: list[float]
    videos: list[dict]

    def metadata(self, prior: str) -> dict:
        """What the model file says of this filter: the prior's training, then this adaptation."""
        return {
            **(self.worm_filter.metadata or {}),
            "adapted": {
                "prior": prior,
                "videos": [{**video, "video": Path(video["video"]).name} for video in self.videos],
                "steps": len(self.losses),
                "loss_first_10": float(np.mean(self.losses[:10])),
                "loss_last_10": float(np.mean(self.losses[-10:])),
            },
        }


def fit_lab_filter(
    cleaner: Cleaner,
    videos: Sequence[str | os.PathLike],
    steps: int = DEFAULT_LAB_STEPS,
    learning_rate: float = ADAPT_LEARNING_RATE,
    batch_size: int = 8,
    seed: int = 0,
    on_video: Callable[[Path], None] | None = None,
    on_step: Callable[[int, float], None] | None = None,
) -> LabFilter:
    """Adapt ``cleaner``'s worm filter to ``videos`` together.

    Parameters
    ----------
    cleaner : Cleaner
        Its worm filter is the prior; its settings (``delta``, ``dark_worms``, ``adapt_steps`` for finding each
        video's still worms) are the job's.
    videos : sequence of paths
        Videos recorded alike.
    steps, learning_rate, batch_size, seed :
        The training (:func:`~wormclean.train.worm_filter.train_filter`); the same seed gives the same filter.
    on_video : callable, optional
        ``on_video(path)`` after each video is read.
    on_step : callable, optional
        ``on_step(step, loss)`` after each training step.

    Raises
    ------
    SettingsError
        When no video shows moving worms to learn from.
    """
    if cleaner.worm_filter is None:
        raise SettingsError("the worm filter is not used with --background net: nothing to adapt")
    plates, layers, report = [], [], []
    for video in videos:
        made = cleaner.video_plate(video)
        if made is None:
            report.append({"video": str(video), "moving_worms": None, "still_worm_pixels": 0})
        else:
            still = made.still_worms
            n_still = 0 if still is None else int(np.count_nonzero(still))
            plates.append(made.plate if not n_still else replace(made.plate, weight=(~still).astype(np.float32)))
            layers.extend(made.layers)
            report.append({"video": str(video), "moving_worms": len(made.layers), "still_worm_pixels": n_still})
            log.info("%s: %d moving worms, %d still-worm pixels left out", video, len(made.layers), n_still)
        if on_video is not None:
            on_video(Path(video))
    if not layers:
        raise SettingsError(
            "no video shows worms moving over a temporal background (too short, a moving stage, or no worm), so "
            "there is nothing to adapt the worm filter to"
        )
    net = copy.deepcopy(cleaner.worm_filter.nets[0])
    torch.manual_seed(seed)
    losses = train_filter(net, plates, layers, steps, np.random.default_rng(seed), DEFAULT_CROPS, batch_size,
                          learning_rate, on_step=on_step, device=cleaner.device)  # fmt: skip
    net.eval()
    return LabFilter(WormFilter((net,), None, cleaner.worm_filter.metadata), losses, report)


def plot_losses(losses: Sequence[float], path: str | os.PathLike) -> None:
    """The training loss against step (and its running mean over 25 steps) in a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from wormclean.train.fit import save_plot

    figure, axes = plt.subplots(figsize=(6, 4), dpi=100)
    steps = np.arange(1, len(losses) + 1)
    axes.plot(steps, losses, color="lightgrey", label="step")
    window = min(25, len(losses))
    running = np.convolve(losses, np.ones(window) / window, mode="valid")
    axes.plot(steps[window - 1 :], running, label=f"mean of {window} steps")
    axes.set_xlabel("step")
    axes.set_ylabel("weighted cross-entropy")
    save_plot(figure, axes, Path(path))
