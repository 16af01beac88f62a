"""Semi-real plates: real worm layers, real backgrounds, and composed plates checked against their known truth."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import cv2
import h5py
import numpy as np
import pytest

from wormclean.errors import SettingsError
from wormclean.io import open_video
from wormclean.sim import read_truth
from wormclean.sim.semireal import (
    REAL_WORM_LENGTH,
    REPORT,
    TUNE,
    VALIDATE,
    BackgroundCrop,
    compose_plate,
    load_background,
    plate_of,
    real_worm_layers,
    structure_map,
    worm_like_blobs,
    write_plate,
)

# 20 consecutive real frames of the wormpose worm (tests/data/wormpose_sample/README.txt).
SAMPLE = Path(__file__).parent / "data" / "wormpose_sample"
SMALL = dict(n_frames=10, worm_length=30.0, speed=3.0, noise_sigma=0.0, on_structure_fraction=0.0)


@pytest.fixture(scope="module")
def layers():
    return real_worm_layers(SAMPLE)


@pytest.fixture(scope="module")
def sample_features():
    with h5py.File(SAMPLE / "features.h5", "r") as features:
        return features["skeletons"][...], features["width"][...]


def flat(level: float = 170.0, size: int = 192) -> np.ndarray:
    return np.full((size, size), level, np.uint8)


def test_layers_are_the_real_worm(layers, sample_features):
    skeletons, widths = sample_features
    assert len(layers) == 20
    for (layer, mask), skeleton, width in zip(layers, skeletons, widths, strict=True):
        length = np.linalg.norm(np.diff(skeleton, axis=0), axis=1).sum()
        assert abs(length - REAL_WORM_LENGTH) < 0.2 * REAL_WORM_LENGTH
        # A tube of the real worm's length and mean width, plus its round ends.
        expected = length * width.mean()
        assert 0.85 * expected < mask.sum() < 1.35 * expected
        columns, rows = np.round(skeleton).astype(int).T
        assert mask[rows.clip(0, mask.shape[0] - 1), columns.clip(0, mask.shape[1] - 1)].all()
        assert layer.dtype == np.float32 and layer.min() >= 0
        # The real worm is about 90 grey levels darker than the agar at its darkest; its edge is faint.
        assert np.median(layer[mask]) > 30 and layer.max() > 60
        # Darkness lies in the tube or just outside it (the grown edge), nowhere else.
        near = cv2.dilate(mask.astype(np.uint8), np.ones((7, 7), np.uint8)).view(bool)
        assert not layer[~near].any()


def test_true_masks_cover_where_the_frame_is_darkened(layers):
    plate = compose_plate(flat(), layers, n_worms=5, still_fraction=0.4, seed=1, **SMALL)
    darkened = plate.background[None] - plate.frames.astype(np.float32)
    clearly = darkened > 15
    assert clearly.any()
    assert (plate.masks[clearly]).mean() > 0.97
    assert np.median(darkened[plate.masks]) > 25
    assert plate.frames.shape == plate.labels.shape == (10, 192, 192) and plate.frames.dtype == np.uint8
    assert set(np.unique(plate.labels)) <= set(range(6))


def test_still_worms_stay_and_moving_worms_crawl(layers):
    plate = compose_plate(flat(), layers, n_worms=4, still_fraction=0.5, seed=2, **SMALL)
    assert plate.still.sum() == 2
    for k in range(4):
        masks = plate.labels == k + 1
        rows, cols = np.nonzero(masks[0])
        first = np.array([rows.mean(), cols.mean()])
        rows, cols = np.nonzero(masks[-1])
        moved = np.hypot(*(np.array([rows.mean(), cols.mean()]) - first))
        if plate.still[k]:
            assert (masks == masks[0]).all() and moved == 0
        else:
            assert moved > 5
            assert not (masks[1] == masks[0]).all()


def test_a_still_worm_on_structure_lies_on_it(layers):
    background = flat()
    # A dark band (still bright enough for a dark worm on it to show) across plain agar.
    cv2.line(background, (0, 96), (191, 96), 110, thickness=9)
    plate = compose_plate(background, layers, n_worms=4, still_fraction=1.0, seed=3,
                          **{**SMALL, "on_structure_fraction": 0.5})
    structure = structure_map(background, 30.0) > 20
    assert plate.on_structure.sum() == 2
    for k in range(4):
        body = plate.labels[0] == k + 1
        overlap = structure[body].mean()
        if plate.on_structure[k]:
            assert overlap > 0.2
        else:
            assert overlap == 0


def test_worms_keep_off_places_too_dark_to_show_them(layers):
    background = flat()
    background[:, :80] = 0  # a black rim: a dark worm there would be clipped away, yet be in the truth
    plate = compose_plate(background, layers, n_worms=4, still_fraction=0.5, seed=7, **SMALL)
    assert plate.masks[:, :, :80].sum() < 0.05 * plate.masks.sum()


def test_same_seed_same_plate(layers):
    first = compose_plate(flat(), layers, n_worms=3, seed=4, **{**SMALL, "noise_sigma": 1.0, "flicker": 0.01})
    again = compose_plate(flat(), layers, n_worms=3, seed=4, **{**SMALL, "noise_sigma": 1.0, "flicker": 0.01})
    other = compose_plate(flat(), layers, n_worms=3, seed=5, **{**SMALL, "noise_sigma": 1.0, "flicker": 0.01})
    assert np.array_equal(first.frames, again.frames) and np.array_equal(first.labels, again.labels)
    assert not np.array_equal(first.labels, other.labels)


def test_bad_settings_are_refused(layers):
    with pytest.raises(SettingsError, match="still_fraction"):
        compose_plate(flat(), layers, still_fraction=1.5)
    with pytest.raises(SettingsError, match="too small"):
        compose_plate(flat(size=40), layers, worm_length=50)
    with pytest.raises(SettingsError, match="no structure"):
        compose_plate(flat(), layers, n_worms=2, still_fraction=1.0, **{**SMALL, "on_structure_fraction": 1.0})


def test_written_plate_reads_back(layers, tmp_path):
    plate = compose_plate(flat(), layers, n_worms=3, seed=6, background_name="flat", **SMALL)
    video = write_plate(tmp_path / "plate.mp4", plate)
    truth = read_truth(video, in_memory=True)
    assert np.array_equal(truth.labels, plate.labels)
    assert np.array_equal(truth.immobile, plate.still)
    assert truth.settings["seed"] == 6
    with open_video(video) as reader:
        frames = np.stack([frame for _, frame in reader.frames()])
    assert np.abs(frames.astype(int) - plate.frames).mean() < 1.5


def test_named_backgrounds_are_apart_and_of_plate_size():
    names = [crop.name for crop in TUNE + VALIDATE + REPORT]
    assert len(set(names)) == len(names)
    plates = [{plate_of(crop.source) for crop in crops} for crops in (TUNE, VALIDATE, REPORT)]
    assert not plates[0] & plates[1] and not plates[0] & plates[2] and not plates[1] & plates[2]
    assert len(VALIDATE) in (2, 3)
    for crop in TUNE + VALIDATE + REPORT:
        _, _, width, height = crop.box
        assert 512 <= max(width, height) <= 1024
        assert all(x + w <= width and y + h <= height for x, y, w, h in crop.paint)


def test_a_plate_is_its_folder_whichever_scan():
    assert plate_of("quantworm_lifespan/8__1/assembled.jpeg") == plate_of("quantworm_lifespan/8/assembled.jpeg")
    assert plate_of("quantworm_lifespan/1/assembled.jpeg") != plate_of("quantworm_lifespan/10/assembled.jpeg")


def test_the_prior_never_trains_on_validate_or_report_plates():
    path = Path(__file__).resolve().parents[1] / "examples" / "train_worm_filter.py"
    spec = importlib.util.spec_from_file_location("train_worm_filter", path)
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)  # runs its check_held_out() on WHOLE_PLATES
    used = {plate_of(image) for plate in example.WHOLE_PLATES for image in plate[:2] if image is not None}
    assert not used & {plate_of(crop.source) for crop in VALIDATE + REPORT}
    second_scan = (f"{Path(REPORT[-1].source).parent}__1/assembled.jpeg", None, 60.0, 120)
    with pytest.raises(ValueError, match="held-out"):
        example.check_held_out(example.WHOLE_PLATES + (second_scan,))


# A 400x480 cut of a real chemotaxis plate (tests/data/README.md): the end of a marker-pen line in the rim's
# shadow, and four real worms: three on open agar, one in the shadow that the detector cannot separate from it.
REAL_PLATE = BackgroundCrop("chemo1 line end", "chemo1_line_rim.png", (0, 0, 400, 480),
                            "marker-pen line ending in the rim's shadow, tile seam", paint=((342, 412, 42, 34),))


def test_a_real_background_loses_its_worms_and_keeps_its_structure(test_data):
    raw = cv2.imread(str(test_data / "realplate" / REAL_PLATE.source), cv2.IMREAD_GRAYSCALE)
    background = load_background(REAL_PLATE, test_data / "realplate")
    assert background.dtype == np.uint8 and background.shape == raw.shape == (480, 400)
    assert cv2.connectedComponents(worm_like_blobs(raw).astype(np.uint8))[0] - 1 >= 3
    assert not worm_like_blobs(background).any()
    # The worm in the shadow, painted out by its box: no fine dark detail is left there.
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (15, 15))
    x, y, w, h = REAL_PLATE.paint[0]
    before, after = (cv2.morphologyEx(image, cv2.MORPH_BLACKHAT, kernel)[y:y + h, x:x + w].max()
                     for image in (raw, background))
    assert before > 80 and after < 20
    # The line is untouched and the structure a worm can lie on is kept.
    assert np.array_equal(background[100:140], raw[100:140])
    assert (structure_map(background, 50.0) > 20).sum() > 0.8 * (structure_map(raw, 50.0) > 20).sum()
