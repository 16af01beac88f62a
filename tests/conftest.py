"""Shared fixtures. Test data: tiny files made in tmp_path, and small real clips in tests/data (its README.md)."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
TEST_DATA = REPO_ROOT / "tests" / "data"


@pytest.fixture(scope="session")
def test_data() -> Path:
    """``tests/data``: the small real clips and images that ship with the repository, with their licences."""
    return TEST_DATA


@pytest.fixture(autouse=True)
def _few_threads():
    """Tests run on 2-core machines next to each other: keep torch from oversubscribing."""
    try:
        import torch
    except ImportError:
        yield
        return
    threads = torch.get_num_threads()
    torch.set_num_threads(min(threads, 2))
    yield
    torch.set_num_threads(threads)


# Time-lapse videos (1 frame/s) of small worms: half a video apart, every moving worm has moved on.
TINY_VIDEO = dict(size=96, n_frames=24, fps=1.0, n_worms=5, worm_length=28.0, worm_width=4.0, contrast=60.0,
                  noise_sigma=1.0, n_dust=3, n_fibres=1)
TINY_NET = dict(width=8, depth=3, batch_size=8, learning_rate=2e-3)


@pytest.fixture(scope="session")
def tiny_video_settings() -> dict:
    """SimulationSettings keywords for tiny synthetic videos at the scale of ``trained_video_model``."""
    return dict(TINY_VIDEO)


@pytest.fixture(scope="session")
def tiny_videos(tmp_path_factory) -> Path:
    """A folder of three tiny synthetic videos of moving worms (seeds 0-2), for training tests."""
    from wormclean.sim import SimulationSettings, write_simulation

    folder = tmp_path_factory.mktemp("videos")
    for seed in range(3):
        settings = SimulationSettings(seed=seed, immobile_fraction=0.0, **TINY_VIDEO)
        write_simulation(folder / f"plate{seed}.mp4", settings)
    return folder


@pytest.fixture(scope="session")
def trained_video_model(tmp_path_factory) -> Path:
    """A tiny net (width 8, depth 3) really trained on four tiny synthetic videos with moving worms only."""
    from wormclean.data.videos import video_training_data
    from wormclean.sim import SimulationSettings, write_simulation
    from wormclean.train.fit import TrainSettings, train

    folder = tmp_path_factory.mktemp("trained_model")
    for seed in range(4):
        settings = SimulationSettings(seed=100 + seed, immobile_fraction=0.0, **TINY_VIDEO)
        write_simulation(folder / f"train{seed}.mp4", settings)
    data = video_training_data([folder], patch_size=48, seed=0, val_fraction=0.25, val_batches=2)
    result = train(data, TrainSettings(steps=400, validate_every=100, **TINY_NET), folder / "tiny.pt")
    return result.best_path
