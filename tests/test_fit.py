"""Training: a tiny net really learns the background; model files, resume, interruption and the fit CLI."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from conftest import TINY_NET

from wormclean.cli import cli
from wormclean.data.videos import video_training_data
from wormclean.model.modelfile import load_model
from wormclean.train.fit import TrainSettings, output_paths, train


def test_training_learns_far_better_than_the_identity(tiny_videos, tmp_path):
    data = video_training_data([tiny_videos], patch_size=48, seed=0, val_fraction=0.34)
    assert len(data.metadata["validation_videos"]) == 1
    result = train(data, TrainSettings(steps=200, validate_every=100, **TINY_NET), tmp_path / "m.pt")
    assert result.best_val_loss < 0.8 * result.identity_val_loss
    model = load_model(result.best_path)
    assert model.metadata["kind"] == "video"
    assert model.metadata["dark_worms"] is True
    assert model.metadata["steps"] == 200
    assert model.config.width == 8
    with open(result.log_path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [int(r["step"]) for r in rows] == [100, 200]
    assert result.plot_path.stat().st_size > 1000


def test_resume_continues_from_the_saved_step(tiny_videos, tmp_path):
    data = video_training_data([tiny_videos], patch_size=32, seed=1, val_fraction=0.34, val_batches=1)
    settings = TrainSettings(steps=6, validate_every=3, **TINY_NET)
    first = train(data, settings, tmp_path / "m.pt")
    checkpoint = load_model(first.last_path)
    assert checkpoint.training["step"] == 6
    resumed = train(data, TrainSettings(steps=10, validate_every=2, **TINY_NET), tmp_path / "m.pt",
                    resume=first.last_path)
    assert resumed.step == 10
    state = load_model(resumed.last_path).training
    assert state["step"] == 10
    # Adam's own step count carried on from the checkpoint instead of restarting.
    assert all(int(s["step"]) == 10 for s in state["optimizer"]["state"].values())
    with open(resumed.log_path, newline="") as handle:
        assert [int(r["step"]) for r in csv.DictReader(handle)] == [3, 6, 8, 10]


def test_interruption_keeps_the_last_checkpoint(tiny_videos, tmp_path):
    data = video_training_data([tiny_videos], patch_size=32, seed=2, val_fraction=0.34, val_batches=1)

    def stop_at_four(update):
        if update.step == 4:
            raise KeyboardInterrupt

    result = train(data, TrainSettings(steps=50, validate_every=10, **TINY_NET), tmp_path / "m.pt",
                   progress=stop_at_four)
    assert result.interrupted and result.step == 4
    assert load_model(result.last_path).training["step"] == 4
    assert load_model(result.best_path).net is not None
    assert not list(tmp_path.glob(".*partial*"))


def test_init_fine_tunes_an_existing_model(tiny_videos, tmp_path):
    data = video_training_data([tiny_videos], patch_size=32, seed=3, val_fraction=0.34, val_batches=1)
    base = train(data, TrainSettings(steps=2, validate_every=2, **TINY_NET), tmp_path / "base.pt")
    tuned = train(data, TrainSettings(steps=2, validate_every=2, **TINY_NET), tmp_path / "tuned.pt",
                  init=base.best_path)
    before, after = load_model(base.best_path), load_model(tuned.best_path)
    assert after.normalisation == before.normalisation
    assert after.metadata["initialised_from"] == str(base.best_path)
    weight = "output.weight"
    assert not torch.equal(before.net.state_dict()[weight], after.net.state_dict()[weight])


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def test_fit_cli_writes_model_log_and_plot(tiny_videos, tmp_path):
    out = tmp_path / "model.pt"
    result = run("fit", tiny_videos, "-o", out, "--steps", 4, "--validate-every", 2, "--patch-size", 32,
                 "--width", 8, "--depth", 3, "--batch-size", 4, "-q")
    assert result.exit_code == 0, result.output
    paths = output_paths(out)
    assert all(paths[name].exists() for name in ("best", "last", "log", "plot"))
    # Fitting again without --overwrite refuses and leaves the model alone.
    before = out.stat().st_mtime_ns
    again = run("fit", tiny_videos, "-o", out, "--steps", 2)
    assert again.exit_code == 2
    assert "exists" in again.output and "--overwrite" in again.output
    assert out.stat().st_mtime_ns == before
    # --resume with another architecture is refused with a reason.
    other = run("fit", tiny_videos, "-o", out, "--resume", paths["last"], "--steps", 8, "--width", 16)
    assert other.exit_code == 2
    assert "width 8" in other.output and "--width 16" in other.output


@pytest.mark.parametrize(
    "make_args, message",
    [
        (lambda tmp, videos: [tmp, "-o", tmp / "m.pt"], "no videos found"),
        (lambda tmp, videos: [videos, "-o", tmp / "missing" / "m.pt"], "does not exist"),
        (lambda tmp, videos: [videos, "-o", tmp / "m.pt", "--lag", "30"], "not more than the lag"),
        (lambda tmp, videos: [videos, "-o", tmp / "m.pt", "--lag", "soon"], "frames"),
        (lambda tmp, videos: [tmp / "nothing.mp4", "-o", tmp / "m.pt"], "no such file"),
    ],
)
def test_fit_cli_bad_input_is_one_line_and_exit_2(tiny_videos, tmp_path, make_args, message):
    result = run("fit", *make_args(tmp_path, tiny_videos))
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert "Traceback" not in result.output
    assert not (tmp_path / "m.pt").exists()


def test_mixed_bit_depths_are_refused(tmp_path):
    import cv2

    for name, dtype, top in (("eight", np.uint8, 255), ("sixteen", np.uint16, 65535)):
        folder = tmp_path / "videos" / name
        folder.mkdir(parents=True)
        for index in range(4):
            cv2.imwrite(str(folder / f"{index:03d}.png"), np.full((32, 32), top // 2 + index, dtype))
    result = run("fit", tmp_path / "videos", "-o", tmp_path / "m.pt")
    assert result.exit_code == 2
    assert "different bit depths" in result.output


@pytest.mark.parametrize(
    "options, message",
    [
        (["--targets", "WBC"], "--targets: for training on crops, only with --crops"),
        (["--mode", "remove", "--log-scale"], "--mode, --log-scale: for training on crops, only with --crops"),
        (["--crops", "{tmp}", "--lag", "5"], "--lag: for training on videos, not with --crops"),
        (["--crops", "{tmp}", "--val-fraction", "0.2", "--include-immobile"],
         "--val-fraction, --exclude-immobile: for training on videos, not with --crops"),
    ],
)
def test_fit_refuses_the_options_of_the_other_kind_of_training(tiny_videos, tmp_path, options, message):
    videos = [] if "--crops" in options else [tiny_videos]
    result = run("fit", *videos, "-o", tmp_path / "m.pt", *[str(o).format(tmp=tmp_path) for o in options])
    assert result.exit_code == 2, result.output
    assert result.output.strip().splitlines()[-1] == f"Error: {message}"
    assert not (tmp_path / "m.pt").exists()
