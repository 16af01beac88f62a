"""``wormclean adapt``: the worm filter adapted once to videos recorded alike, saved, and used by ``mask``."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest
from click.testing import CliRunner

from wormclean.cli import cli
from wormclean.model.modelfile import load_model
from wormclean.predict.cleaner import Cleaner
from wormclean.predict.worm_filter import WormFilter, new_filter
from wormclean.sim import SimulationSettings, read_truth, write_simulation

PLATE = dict(size=192, n_frames=30, fps=1.0, n_worms=6, worm_length=28.0, worm_width=4.0, contrast=60.0,
             noise_sigma=1.0, n_dust=3, n_fibres=3, immobile_fraction=0.5, n_rings=1, n_marks=1, text=True)  # fmt: skip
"""A structured plate, half its worms still, at the scale of the tests' tiny videos (as test_fused's)."""


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """Two plates recorded alike (seeds 15 and 16) and a 5-frame clip, which has no temporal background."""
    folder = tmp_path_factory.mktemp("lab")
    for seed in (15, 16):
        write_simulation(folder / f"plate{seed}.mp4", SimulationSettings(**PLATE, seed=seed))
    write_simulation(folder / "clip.mp4", SimulationSettings(**{**PLATE, "n_frames": 5}, seed=17))
    return folder


def run(*args):
    return CliRunner().invoke(cli, [str(arg) for arg in args])


def test_a_videos_still_worms_are_found_as_the_job_finds_them(lab):
    # What `adapt` leaves out of the loss: the plate under the still worms, so they are not taught as plate.
    made = Cleaner.load(device="cpu", adapt_steps=8).video_plate(lab / "plate15.mp4")
    truth = read_truth(lab / "plate15.mp4", in_memory=True)
    still = np.isin(truth.labels[0], np.nonzero(truth.immobile)[0] + 1)
    assert still.sum() > 100 and made.still_worms is not None
    assert made.still_worms[still].mean() > 0.9
    assert made.still_worms.mean() < 0.1  # grown as the fusion fills them in; the rest of the plate is trained on
    assert len(made.layers) >= 3  # moving worms to paste
    assert Cleaner.load(device="cpu").video_plate(lab / "clip.mp4") is None


def test_adapt_writes_a_filter_that_mask_uses_without_adapting_again(lab, tmp_path):
    output = tmp_path / "lab_filter.pt"
    result = run("adapt", lab, "-o", output, "--steps", 12, "--adapt-steps", 4, "--device", "cpu", "-q")
    assert result.exit_code == 0, result.output
    assert result.stderr.strip() == f"Warning: {lab / 'clip.mp4'}: no temporal background, not used"
    model = load_model(output)
    adapted = model.metadata["adapted"]
    assert adapted["steps"] == 12 and adapted["prior"] == "the shipped prior"
    assert [video["video"] for video in adapted["videos"]] == ["clip.mp4", "plate15.mp4", "plate16.mp4"]
    assert adapted["videos"][0]["moving_worms"] is None
    assert all(video["moving_worms"] >= 3 and video["still_worm_pixels"] > 100 for video in adapted["videos"][1:])
    assert (tmp_path / "lab_filter.loss.png").stat().st_size > 1000
    prior = WormFilter.load()
    assert any(not np.array_equal(a.detach().numpy(), b.detach().numpy())
               for a, b in zip(WormFilter.load(output).nets[0].parameters(), prior.nets[0].parameters()))  # fmt: skip

    masks = tmp_path / "masks.hdf5"
    result = run("mask", lab / "plate16.mp4", "-o", masks, "--worm-filter", output, "--adapt-steps", 0,
                 "--device", "cpu", "-q")  # fmt: skip
    assert result.exit_code == 0, result.output
    with h5py.File(masks, "r") as file:
        assert json.loads(file.attrs["settings"])["worm_filter"] == str(output)
        assert file["mask"].shape[0] == PLATE["n_frames"]

    again = run("adapt", lab / "plate15.mp4", "-o", output, "--steps", 2, "--device", "cpu", "-q")
    assert again.exit_code == 2 and again.output.strip().splitlines()[-1].startswith("Error:")
    assert "exists" in again.output and load_model(output).metadata["adapted"]["steps"] == 12


def test_adapt_learns(lab, tmp_path):
    # From an untrained filter, at training's learning rate: the loss falls (the shipped prior starts low).
    untrained = tmp_path / "untrained.pt"
    new_filter().save(untrained, {"data": "none: untrained"})
    output = tmp_path / "learnt.pt"
    result = run("adapt", lab / "plate15.mp4", lab / "plate16.mp4", "-o", output, "--worm-filter", untrained,
                 "--steps", 60, "--learning-rate", 1e-3, "--adapt-steps", 0, "--device", "cpu", "-q")  # fmt: skip
    assert result.exit_code == 0, result.output
    adapted = load_model(output).metadata["adapted"]
    assert adapted["loss_last_10"] < 0.7 * adapted["loss_first_10"]


def test_adapt_refuses_videos_with_nothing_to_learn_from(lab, tmp_path):
    result = run("adapt", lab / "clip.mp4", "-o", tmp_path / "none.pt", "--steps", 2, "--device", "cpu", "-q")
    assert result.exit_code == 2
    assert result.output.strip().splitlines()[-1].startswith("Error: no video shows worms moving")
    assert not (tmp_path / "none.pt").exists()
