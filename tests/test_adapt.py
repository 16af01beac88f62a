"""Fine-tuning on a lab's videos leaves their immobile worms out of the loss, so the net does not learn to keep
them (``wormclean fit --init``, ``--exclude-immobile``, the default)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from wormclean.data.patches import LaggedPatchDataset
from wormclean.data.videos import video_training_data
from wormclean.predict.cleaner import Cleaner
from wormclean.segment.metrics import MaskScores
from wormclean.sim import SimulationSettings, read_truth, write_simulation
from wormclean.train.fit import TrainSettings, l1_loss, train


def test_the_loss_skips_nan_targets():
    output = torch.zeros(1, 1, 2, 2)
    target = torch.tensor([[[[1.0, float("nan")], [3.0, float("nan")]]]])
    assert l1_loss(output, target).item() == pytest.approx(2.0)
    assert l1_loss(output, torch.full_like(target, float("nan"))).item() == 0.0


@pytest.fixture(scope="module")
def still_worms(tmp_path_factory, tiny_video_settings):
    """A plate where half the worms never move (that of test_mask_accuracy, where the tiny net removes them)."""
    video = tmp_path_factory.mktemp("adapt") / "still.mp4"
    write_simulation(video, SimulationSettings(**{**tiny_video_settings, "n_worms": 4, "immobile_fraction": 0.5,
                                                  "seed": 0}))
    return video, read_truth(video, in_memory=True)


def test_immobile_worms_are_found_and_masked_out_of_the_targets(trained_video_model, still_worms):
    video, truth = still_worms
    regions = Cleaner.load(trained_video_model, device="cpu").immobile_worm_regions(video)
    immobile = np.isin(truth.labels[0], np.nonzero(truth.immobile)[0] + 1)
    assert regions[immobile].mean() > 0.95  # every immobile worm is covered
    # Little else is: a margin around them, and the slow worms that the median over this short clip still holds
    # (left out of the loss too, rightly: a net that learns to keep them keeps slow worms).
    never_a_worm = ~(truth.labels > 0).any(axis=0)
    assert regions.mean() < 0.15 and regions[never_a_worm].mean() < 0.1
    dataset = LaggedPatchDataset([video], patch_size=48, seed=0, excluded={video: regions})
    stream = iter(dataset)
    blanked = [torch.isnan(target).float().mean().item() for target in (next(stream)[1] for _ in range(40))]
    assert 0 < np.mean(blanked) < 0.2 and all(not torch.isnan(next(stream)[0]).any() for _ in range(10))


def immobile_recall(model, video, truth) -> float:
    cleaner = Cleaner.load(model, device="cpu", background="net")
    scores = MaskScores()
    for index, _, worms in cleaner.iter_masks(video, bgnd_interval=4):
        scores.add(worms, truth.labels[index], list(np.nonzero(truth.immobile)[0] + 1))
    return scores.tracked_recall


def test_fine_tuning_with_immobile_worms_keeps_removing_them(trained_video_model, still_worms, tmp_path):
    video, truth = still_worms
    before = immobile_recall(trained_video_model, video, truth)
    finder = Cleaner.load(trained_video_model, device="cpu")
    results = {}
    for name, excluded in (("excluded", finder.immobile_worm_regions), ("included", None)):
        data = video_training_data([video], patch_size=48, seed=0, val_batches=2, excluded=excluded)
        settings = TrainSettings(steps=100, validate_every=100, batch_size=8, learning_rate=2e-3)
        fitted = train(data, settings, tmp_path / f"{name}.pt", init=trained_video_model)
        results[name] = immobile_recall(fitted.best_path, video, truth)
    print(before, results)
    assert before >= 0.9
    assert results["excluded"] >= 0.9
    assert results["excluded"] >= results["included"]


def test_fit_leaves_the_immobile_worms_out_unless_asked_not_to(trained_video_model, still_worms, tmp_path):
    from click.testing import CliRunner

    from wormclean.cli import cli

    video, _ = still_worms
    common = ["fit", str(video), "-o", str(tmp_path / "m.pt"), "--init", str(trained_video_model), "--dry-run",
              "--device", "cpu", "--patch-size", "48"]
    default = CliRunner().invoke(cli, common)
    assert default.exit_code == 0, default.output
    said = [line for line in default.output.splitlines() if line.startswith("leaving the immobile worms out")]
    assert len(said) == 1 and " in 1 of 1 videos" in said[0]
    assert int(said[0].split(": ")[1].split()[0]) > 100
    assert "excluded_pixels" in default.output
    included = CliRunner().invoke(cli, common + ["--include-immobile"])
    assert included.exit_code == 0, included.output
    assert "leaving the immobile" not in included.output and "excluded_pixels" not in included.output
