"""The shipped default model: registered, intact, and good at what it is for, on videos it never saw."""

from __future__ import annotations

import shutil

import cv2
import numpy as np
import pytest

from wormclean.errors import ModelFileError
from wormclean.io import open_video
from wormclean.model.modelfile import load_model
from wormclean.model.registry import file_sha256, models_folder, read_registry, resolve_model
from wormclean.predict.cleaner import Cleaner
from wormclean.segment.metrics import MaskScores
from wormclean.segment.threshold import segment
from wormclean.settings import DEFAULT_MIN_AREA
from wormclean.sim import SimulationSettings, read_truth, write_simulation


def test_default_model_is_registered_and_matches_its_hash():
    default, models = read_registry()
    assert default == "default"
    entry = models["default"]
    assert resolve_model() == entry.file == resolve_model("default")
    assert file_sha256(entry.file) == entry.sha256
    assert entry.file.stat().st_size < 5_000_000
    model = load_model(entry.file)
    assert model.metadata["kind"] == "video"
    assert model.metadata["dark_worms"] is True


def test_a_damaged_default_model_is_refused(tmp_path):
    for path in models_folder().iterdir():
        if path.is_file():
            shutil.copy(path, tmp_path / path.name)
    _, models = read_registry(tmp_path)
    damaged = tmp_path / models["default"].file.name
    data = bytearray(damaged.read_bytes())
    data[len(data) // 2] ^= 0xFF
    damaged.write_bytes(bytes(data))
    with pytest.raises(ModelFileError, match="damaged"):
        resolve_model(folder=tmp_path)


@pytest.fixture(scope="module")
def unseen_plate(tmp_path_factory):
    """A plate with a seed never used in training (those were 1000-1023), half its worms immobile."""
    video = tmp_path_factory.mktemp("shipped") / "plate.mp4"
    settings = SimulationSettings(size=(512, 512), n_frames=30, fps=2.0, n_worms=6, immobile_fraction=0.5,
                                  worm_length=100.0, seed=79)
    write_simulation(video, settings)
    return video, read_truth(video, in_memory=True)


def test_default_model_finds_immobile_worms_on_an_unseen_plate(unseen_plate):
    video, truth = unseen_plate
    net = scores_on_plate(video, truth, background="net")
    # Measured when the model was shipped: IoU 0.874, precision 0.72, recall 0.86, F1 0.78, immobile recall
    # 0.90; the true background (ceiling) 0.94 / 0.94 / 0.87 / 0.90 / 0.91.
    assert net.f1 >= 0.65 and net.precision >= 0.6 and net.recall >= 0.75
    assert net.iou >= 0.75


def test_default_settings_reach_the_ceiling_on_an_unseen_plate(unseen_plate):
    """The defaults (--background fused): the video's own background, the net's under the immobile worms."""
    video, truth = unseen_plate
    fused = scores_on_plate(video, truth)
    assert fused.f1 >= 0.85 and fused.precision >= 0.9


def test_default_8bit_model_serves_16bit_video(unseen_plate, tmp_path):
    """A 16-bit camera using part of its range (a 12-bit sensor): frames mapped into the model's units."""
    video, truth = unseen_plate
    folder = tmp_path / "deep"
    folder.mkdir()
    with open_video(video) as reader:
        for index, frame in reader.frames():
            cv2.imwrite(str(folder / f"{index:03d}.png"), (frame.astype(np.uint16) * 16 + 1000))
    with open_video(folder) as reader:
        assert reader.bit_depth == 16
    for background in ("net", "fused"):
        scores_on_plate(folder, truth, delta=160, background=background)  # 10 grey levels of the 8-bit plate


def scores_on_plate(video, truth, **settings) -> MaskScores:
    """Scores of the shipped model's masks; checks that it finds the immobile worms a median misses."""
    cleaner = Cleaner.load(device="cpu", **settings)
    immobile = list(np.nonzero(truth.immobile)[0] + 1)
    net, median, ceiling = MaskScores(), MaskScores(), MaskScores()
    frames = []
    for index, frame, worms in cleaner.iter_masks(video, bgnd_interval=10):
        frames.append(frame)
        net.add(worms, truth.labels[index], immobile)
        ceiling.add(cleaner.segment(frame, truth.background), truth.labels[index], immobile)
    projection = np.median(np.stack(frames), axis=0).astype(np.float32)
    for index, frame in enumerate(frames):
        median.add(segment(frame, projection, min_area=DEFAULT_MIN_AREA), truth.labels[index], immobile)
    # The median projection finds no immobile worm.
    assert ceiling.tracked_recall >= 0.85  # the plate allows it
    assert net.tracked_recall >= 0.8
    assert net.tracked_recall >= ceiling.tracked_recall - 0.1
    assert median.tracked_recall <= 0.2
    return net
