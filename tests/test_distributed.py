"""Training on several processes: torchrun with the gloo backend on the CPU, and a resume on one process."""

from __future__ import annotations

import csv
import os
import subprocess
import sys

import pytest
from conftest import REPO_ROOT

from wormclean.data.shards import stream_shard
from wormclean.model.modelfile import load_model


def fit_command(*args: str) -> list[str]:
    return [*args, "--patch-size", "32", "--batch-size", "8", "--width", "8", "--depth", "2",
            "--learning-rate", "2e-3", "--validate-every", "20", "--val-fraction", "0.34", "--device", "cpu", "-q"]


def validation_losses(log_path) -> list[float]:
    with open(log_path, newline="") as handle:
        return [float(row["val_loss"]) for row in csv.DictReader(handle)]


@pytest.mark.slow
def test_torchrun_two_processes_train_one_model_that_resumes_on_one(tiny_videos, tmp_path):
    output = tmp_path / "model.pt"
    # Loopback only: the rendezvous (--standalone) and gloo's own connections.
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "GLOO_SOCKET_IFNAME": "lo", "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
               "-m", "wormclean", "fit", str(tiny_videos), "-o", str(output), "--steps", "60"]
    done = subprocess.run(fit_command(*command), capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    assert sorted(path.name for path in tmp_path.iterdir()) == [
        "model.last.pt", "model.log.csv", "model.loss.png", "model.pt"
    ]  # one set of files, no partial ones left by a second writer
    losses = validation_losses(tmp_path / "model.log.csv")
    assert len(losses) == 3 and losses[-1] < losses[0]
    model = load_model(output)
    assert model.metadata["steps"] == 60
    assert model.metadata["learning_rate"] == pytest.approx(2e-3)
    # The checkpoint of two processes continues on one.
    resumed = subprocess.run(
        fit_command(sys.executable, "-m", "wormclean", "fit", str(tiny_videos), "-o", str(output), "--steps", "80",
                    "--resume", str(tmp_path / "model.last.pt")),
        capture_output=True, text=True, env=env, timeout=120,
    )
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert load_model(tmp_path / "model.last.pt").training["step"] == 80
    assert len(validation_losses(tmp_path / "model.log.csv")) == 4


def test_each_worker_of_each_process_has_its_own_shard(monkeypatch):
    monkeypatch.delenv("RANK", raising=False)
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert [stream_shard(worker, 2) for worker in range(2)] == [(0, 2), (1, 2)]
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert [stream_shard(worker, 2) for worker in range(2)] == [(2, 4), (3, 4)]
