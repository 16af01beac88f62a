"""Batches of videos: several at once (--jobs), on a Dask cluster (--scheduler), resumed, with a report."""

from __future__ import annotations

import csv
from pathlib import Path

import h5py
import pytest
import torch
from click.testing import CliRunner

from wormclean.cli import cli
from wormclean.model.modelfile import Normalisation, save_model
from wormclean.model.unet import UNet, UNetConfig
from wormclean.predict.batch import BATCH_REPORT, BatchStatus, WorkerFrames, threads_per_job
from wormclean.sim import SimulationSettings, write_simulation


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    net = UNet(UNetConfig(width=4, depth=2))
    return save_model(tmp_path_factory.mktemp("model") / "tiny.pt", net, Normalisation(), {"kind": "video"})


@pytest.fixture(scope="module")
def videos(tmp_path_factory) -> Path:
    """Three tiny videos and one that is no video at all."""
    folder = tmp_path_factory.mktemp("videos")
    for seed in range(3):
        write_simulation(folder / f"plate{seed}.mp4", SimulationSettings(size=(48, 64), n_frames=10, n_worms=2,
                                                                         seed=seed))
    (folder / "corrupt.mp4").write_bytes(b"\x00\x01 no video here" * 50)
    return folder


def run(*args):
    return CliRunner().invoke(cli, [str(arg) for arg in args])


def report(out: Path) -> dict[str, dict]:
    with open(out / BATCH_REPORT, newline="") as handle:
        return {Path(row["video"]).name: row for row in csv.DictReader(handle)}


def outputs(out: Path) -> dict[str, int]:
    """Each output's modification time, in nanoseconds."""
    return {path.name: path.stat().st_mtime_ns for path in sorted(out.glob("*.hdf5"))}


def test_two_jobs_write_every_output_and_a_rerun_skips_them(tmp_path, videos, model):
    out = tmp_path / "out"
    result = run("mask", videos, "-o", out, "--model", model, "--jobs", "2", "-q")
    assert result.exit_code == 2, result.output  # the corrupt video
    assert sorted(outputs(out)) == ["plate0.hdf5", "plate1.hdf5", "plate2.hdf5"]
    for name in outputs(out):
        with h5py.File(out / name, "r") as file:
            assert file.attrs["n_frames"] == 10
    rows = report(out)
    assert {name: row["status"] for name, row in rows.items()} == {
        "plate0.mp4": "done", "plate1.mp4": "done", "plate2.mp4": "done", "corrupt.mp4": "failed"
    }
    assert rows["corrupt.mp4"]["attempts"] == "1" and "cannot be opened" in rows["corrupt.mp4"]["error"]
    assert rows["plate0.mp4"]["frames"] == "10" and float(rows["plate0.mp4"]["seconds"]) > 0
    assert "corrupt.mp4" in result.stderr and result.stderr.count("Error:") == 1

    before = outputs(out)
    again = run("mask", videos, "-o", out, "--model", model, "--jobs", "2")
    assert again.exit_code == 2
    assert outputs(out) == before  # nothing rewritten
    assert {name: row["status"] for name, row in report(out).items()}["plate1.mp4"] == "skipped"
    assert "4 videos: 0 done, 3 skipped (complete already), 1 failed" in again.stdout


def test_resume_redoes_incomplete_outputs_and_overwrite_redoes_all(tmp_path, videos, model):
    out = tmp_path / "out"
    out.mkdir()
    (out / "plate0.hdf5").write_bytes(b"a copy that broke off")
    with h5py.File(out / "plate1.hdf5", "w") as file:
        file.attrs["n_frames"] = 0  # never finished
    single = [videos / "plate0.mp4", videos / "plate1.mp4"]
    result = run("mask", *single, "-o", out, "--model", model, "-q")
    assert result.exit_code == 0, result.output
    assert {row["status"] for row in report(out).values()} == {"done"}
    before = outputs(out)
    redone = run("mask", *single, "-o", out, "--model", model, "-q", "--overwrite")
    assert redone.exit_code == 0 and all(outputs(out)[name] > before[name] for name in before)
    # One video into a file keeps the single job's rule: an existing output is an error.
    existing = run("mask", videos / "plate0.mp4", "-o", out / "plate0.hdf5", "--model", model, "-q")
    assert existing.exit_code == 2 and "exists; use --overwrite" in existing.stderr


def test_a_dask_cluster_runs_a_folder(tmp_path, videos, model):
    from distributed import LocalCluster

    out = tmp_path / "out"
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address=":0", memory_limit=0) as cluster:
        result = run("mask", *sorted(videos.glob("plate*.mp4")), "-o", out, "--model", model,
                     "--scheduler", cluster.scheduler_address, "-q")
    assert result.exit_code == 0, result.output
    assert {name: row["status"] for name, row in report(out).items()} == dict.fromkeys(
        ["plate0.mp4", "plate1.mp4", "plate2.mp4"], "done"
    )
    with h5py.File(out / "plate2.hdf5", "r") as file:
        assert file.attrs["n_frames"] == 10


def test_scheduler_and_jobs_together_are_refused(tmp_path, videos, model):
    result = run("mask", videos, "-o", tmp_path, "--model", model, "--jobs", "2", "--scheduler", "tcp://127.0.0.1:1")
    assert result.exit_code == 2 and "--jobs is for this machine" in result.stderr


def test_threads_share_the_cores():
    assert [threads_per_job(jobs, 16) for jobs in (1, 2, 3, 16, 40)] == [16, 8, 5, 1, 1]


def test_batch_status_rate_and_eta():
    status = BatchStatus(n_videos=12, n_skipped=2, n_done=4, finished_frames=400, elapsed_s=100.0)
    status.workers["a"] = WorkerFrames("a", Path("v.mp4"), 50, 100)
    assert status.frames == 450 and status.frames_per_s == 4.5
    assert status.n_finished == 6
    assert status.eta_s == pytest.approx(100 / 4.5 * 5.5)  # 4.5 of the 10 to do took 100 s
