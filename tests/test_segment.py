"""Thresholds, blob cleaning, metrics on hand-made arrays, and the background schedule of Cleaner.iter_masks."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch
from scipy import ndimage

from wormclean.errors import ModelFileError, SettingsError
from wormclean.model.modelfile import ModelFile, Normalisation
from wormclean.model.unet import UNet, UNetConfig
from wormclean.predict.cleaner import Cleaner
from wormclean.segment.blobs import outer_contours
from wormclean.segment.metrics import MaskScores, box_iou, boxes_of, match_boxes, pooled_iou, score_masks
from wormclean.segment.threshold import (
    background_level,
    blob_areas,
    brightness_gain,
    clean_mask,
    default_delta,
    dilate,
    otsu_level,
    segment,
    worm_pixels,
    worm_signal,
)


def plate(height=96, width=128, level=200.0, noise=2.0, seed=0):
    """A light background with a gentle gradient, and a frame of it with Gaussian noise."""
    y, x = np.mgrid[0:height, 0:width]
    background = (level - 20 * x / width + 10 * y / height).astype(np.float32)
    noisy = background + np.random.default_rng(seed).normal(0, noise, background.shape)
    return background, noisy


def with_worms(frame, contrast=-40.0):
    """Draw two worm-like bars (one with a hole in its middle) and a 3-pixel speck; return frame and truth."""
    truth = np.zeros(frame.shape, bool)
    truth[20:26, 10:60] = True  # a straight worm
    truth[50:70, 80:100] = True  # a coiled worm: a ring ...
    ring_hole = np.zeros(frame.shape, bool)
    ring_hole[55:65, 85:95] = True
    truth &= ~ring_hole
    speck = np.zeros(frame.shape, bool)
    speck[80, 30:33] = True
    frame = frame + contrast * (truth | speck)
    return np.clip(np.rint(frame), 0, 255).astype(np.uint8), truth, ring_hole


def test_default_delta_scales_with_bit_depth():
    assert default_delta(8) == 10 and default_delta(16) == 10 * 256 and default_delta(12) == 160


def test_dark_worms_on_a_light_background():
    background, noisy = plate()
    frame, truth, hole = with_worms(noisy)
    mask = segment(frame, background, dark_worms=True, min_area=10)
    assert mask.dtype == bool and mask.shape == frame.shape
    np.testing.assert_array_equal(mask, truth | hole)  # speck removed, ring filled, noise (2 grey levels) out
    assert not segment(frame, background, dark_worms=False, min_area=10).any()


def test_light_worms_on_a_dark_background():
    background, noisy = plate(level=40.0)
    frame, truth, hole = with_worms(noisy, contrast=+60.0)
    np.testing.assert_array_equal(segment(frame, background, dark_worms=False, min_area=10), truth | hole)
    assert not segment(frame, background, dark_worms=True, min_area=10).any()


def test_delta_and_min_area_options():
    background, noisy = plate(noise=0.0)
    frame, truth, hole = with_worms(noisy, contrast=-15.0)
    assert segment(frame, background, delta=10).sum() == (truth | hole).sum()
    assert not segment(frame, background, delta=20).any()
    kept_speck = segment(frame, background, delta=10, min_area=3)
    assert kept_speck[80, 30:33].all()
    assert not segment(frame, background, delta=10, min_area=4)[80].any()


def test_16bit_default_delta():
    background, noisy = plate(noise=1.0)
    frame, truth, hole = with_worms(noisy, contrast=-40.0)
    frame16, background16 = frame.astype(np.uint16) * 256, background * 256
    np.testing.assert_array_equal(segment(frame16, background16, bit_depth=16, min_area=10), truth | hole)
    # The 8-bit default (10 levels) would take 16-bit noise (256 levels) for worms.
    assert segment(frame16, background16, delta=10, min_area=10).sum() > 5 * truth.sum()


def test_flicker_is_compensated():
    background, noisy = plate(noise=1.0)
    frame, truth, hole = with_worms(noisy * 1.1)  # the lamp is 10 % brighter than when the background was made
    assert abs(brightness_gain(frame, background) - 1.1) < 0.01
    np.testing.assert_array_equal(segment(frame, background, min_area=10), truth | hole)
    darker, _, _ = with_worms(noisy * 0.9)
    flat = segment(darker, background, min_area=10, compensate_flicker=False)
    assert flat.sum() > 0.5 * flat.size  # uncompensated, the whole darker frame looks like worm


def test_otsu_finds_the_worms_and_not_the_noise():
    background, noisy = plate(noise=3.0)
    frame, truth, hole = with_worms(noisy, contrast=-40.0)
    level = otsu_level(worm_signal(frame, background))
    assert 9 < level < 40
    mask = segment(frame, background, method="otsu", min_area=10)
    assert pooled_iou(mask, truth | hole) > 0.97
    _, blank = plate(noise=3.0, seed=1)
    assert otsu_level(worm_signal(blank.astype(np.uint8), background)) > 8  # never inside the noise


def test_unknown_method_is_a_settings_error():
    background, noisy = plate()
    with pytest.raises(SettingsError, match="unknown threshold method 'mean'"):
        segment(noisy.astype(np.uint8), background, method="mean")
    with pytest.raises(SettingsError, match="differ in shape"):
        segment(noisy.astype(np.uint8), background[:10])


def random_masks(rng, n_masks, shape):
    """Masks of random density, every other one of rounder blobs (opened after a dilation)."""
    for trial in range(n_masks):
        mask = rng.random(shape) < rng.uniform(0.05, 0.6)
        yield trial, ndimage.binary_opening(ndimage.binary_dilation(mask)) if trial % 2 else mask


def test_clean_mask_matches_label_fill_and_area_filter():
    rng = np.random.default_rng(7)
    for _, mask in random_masks(rng, 60, (40, 50)):
        min_area = int(rng.integers(1, 30))
        filled = ndimage.binary_fill_holes(mask)
        labels, _ = ndimage.label(filled, structure=np.ones((3, 3)))
        keep = np.bincount(labels.ravel()) >= min_area
        keep[0] = False
        np.testing.assert_array_equal(clean_mask(mask, min_area), keep[labels])


def test_worm_pixels_are_the_signal_over_the_threshold():
    # Frames of several strips (and a ragged last one), 8-bit, 16-bit and float, dark and bright worms. Integer
    # frames are compared with an integer bound: they may differ from the float32 signal within a thousandth
    # of a grey level of the threshold, nowhere else; float frames are thresholded as the signal is.
    rng = np.random.default_rng(9)
    cases = ((1100, 128, True, np.uint8), (700, 300, False, np.uint8), (5, 1, True, np.uint8),
             (600, 200, True, np.uint16), (300, 200, False, np.uint16), (400, 100, True, np.float32))
    for height, width, dark, dtype in cases:
        scale = 16 if dtype == np.uint16 else 1
        background = rng.uniform(60, 200, (height, width)).astype(np.float32) * scale
        frame = background * rng.uniform(0.95, 1.05) + rng.normal(0, 6 * scale, (height, width))
        frame[rng.random((height, width)) < 0.02] += (-40 if dark else 40) * scale
        frame = np.clip(np.rint(frame), 0, 255 * scale).astype(dtype)
        for delta in (10.0 * scale, 7.3 * scale):
            signal = worm_signal(frame, background, dark_worms=dark)
            pixels = worm_pixels(frame, background, delta, dark_worms=dark).astype(bool)
            differ = pixels != (signal > delta)
            if dtype == np.float32:
                assert not differ.any()
            else:
                assert np.all(np.abs(signal[differ] - delta) < 1e-3 * scale)
                assert np.array_equal(pixels[~differ], signal[~differ] > delta)
            assert frame.size < 100 or pixels.sum() > 0.01 * pixels.size  # worms are found


def test_clean_mask_fills_only_small_holes():
    # Reference: blobs by their area with every hole filled, then holes (4-connected) over max_hole opened.
    rng = np.random.default_rng(17)
    for trial, mask in random_masks(rng, 60, (50, 60)):
        min_area, max_hole = int(rng.integers(1, 20)), int(rng.integers(0, 12))
        max_area = None if trial % 3 else int(rng.integers(50, 600))
        filled = ndimage.binary_fill_holes(mask)
        labels, _ = ndimage.label(filled, structure=np.ones((3, 3)))
        areas = np.bincount(labels.ravel())
        keep = (areas >= min_area) & (areas <= (max_area or areas.max()))
        keep[0] = False
        expected = keep[labels]
        holes, _ = ndimage.label(expected & ~mask)
        large = np.flatnonzero(np.bincount(holes.ravel()) > max_hole)
        expected &= ~np.isin(holes, large[large > 0])
        np.testing.assert_array_equal(clean_mask(mask, min_area, max_area, max_hole), expected)


def test_clean_mask_returns_the_outer_contours_of_its_mask():
    rng = np.random.default_rng(29)
    for trial, mask in random_masks(rng, 40, (60, 70)):
        limits = dict(min_area=int(rng.integers(1, 30)))
        if trial % 3 == 0:
            limits.update(max_area=int(rng.integers(30, 400)), max_hole=int(rng.integers(0, 4)))
        cleaned, contours = clean_mask(mask, with_contours=True, **limits)
        np.testing.assert_array_equal(cleaned, clean_mask(mask, **limits))
        expected = outer_contours(cleaned)
        assert len(contours) == len(expected)
        for found, outline in zip(contours, expected):
            np.testing.assert_array_equal(found, outline)


def test_segment_cleans_the_worm_pixels():
    rng = np.random.default_rng(19)
    for height, width, dark in ((1100, 128, True), (700, 300, False)):
        background = rng.uniform(60, 200, (height, width)).astype(np.float32)
        frame = background * rng.uniform(0.95, 1.05) + rng.normal(0, 6, (height, width))
        frame[rng.random((height, width)) < 0.02] += -40 if dark else 40
        frame = np.clip(np.rint(frame), 0, 255).astype(np.uint8)
        for delta, limits in ((10.0, dict(min_area=3)), (7.3, dict(min_area=1, max_area=40, max_hole=2))):
            pixels = worm_pixels(frame, background, delta, dark_worms=dark)
            np.testing.assert_array_equal(
                segment(frame, background, dark_worms=dark, delta=delta, **limits), clean_mask(pixels, **limits)
            )
            level = background_level(background)
            np.testing.assert_array_equal(  # the background's level given, or measured: the same mask
                segment(frame, background, dark_worms=dark, delta=delta, background_level=level, **limits),
                clean_mask(pixels, **limits),
            )


def test_blob_areas_are_picks_areas_of_the_contours():
    mask = (np.random.default_rng(10).random((80, 90)) < 0.3).astype(np.uint8)
    contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    expected = [cv2.contourArea(contour) + len(contour) / 2 + 1 for contour in contours]
    np.testing.assert_array_equal(blob_areas(contours), expected)
    assert blob_areas(()).shape == (0,)


def test_brightness_gain_is_the_ratio_of_medians():
    rng = np.random.default_rng(11)
    for dtype, top, shape in ((np.uint8, 256, (600, 700)), (np.uint16, 4096, (333, 517)), (np.uint8, 256, (3, 5))):
        frame = rng.integers(0, top, shape).astype(dtype)
        background = rng.uniform(1, top, shape).astype(np.float32)
        step = max(1, int(np.sqrt(frame.size / 65536)))
        expected = float(np.median(frame[::step, ::step])) / float(np.median(background[::step, ::step]))
        assert brightness_gain(frame, background) == expected


def test_dilate_equals_whole_frame_dilation():
    rng = np.random.default_rng(8)
    for radius in (1, 3, 5):
        mask = rng.random((60, 70)) < 0.01
        disc = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))
        np.testing.assert_array_equal(dilate(mask, radius), cv2.dilate(mask.astype(np.uint8), disc).astype(bool))
    assert dilate(mask, 0) is mask


# --- metrics ----------------------------------------------------------------------------------------------
def test_boxes_and_box_iou():
    labels = np.zeros((10, 10), np.uint8)
    labels[1:3, 2:6] = 1
    labels[5:9, 5:7] = 3
    ids, boxes = boxes_of(labels)
    np.testing.assert_array_equal(ids, [1, 3])
    np.testing.assert_array_equal(boxes, [[1, 2, 3, 6], [5, 5, 9, 7]])
    iou = box_iou(np.array([[0, 0, 2, 2]]), np.array([[0, 0, 2, 2], [1, 1, 3, 3], [5, 5, 6, 6]]))
    np.testing.assert_allclose(iou, [[1.0, 1 / 7, 0.0]])


def test_matching_is_one_to_one_best_first():
    truth = np.array([[0, 0, 10, 10], [0, 0, 10, 12]])
    predicted = np.array([[0, 0, 10, 11]])
    assert match_boxes(predicted, truth) == [(0, 0)] or match_boxes(predicted, truth) == [(0, 1)]
    assert len(match_boxes(predicted, truth)) == 1
    assert match_boxes(np.array([[0, 0, 10, 4]]), truth) == []  # IoU 0.4: not a match


def test_scores_on_hand_made_frames():
    truth = np.zeros((2, 20, 20), np.uint8)
    truth[:, 2:4, 2:12] = 1  # worm 1, found in both frames
    truth[:, 10:18, 10:12] = 2  # worm 2 ("immobile"), found in frame 0 only
    predicted = np.zeros((2, 20, 20), bool)
    predicted[:, 2:4, 2:12] = True
    predicted[0, 10:18, 10:12] = True
    predicted[1, 15:19, 0:3] = True  # a false blob
    scores = score_masks(predicted, truth, tracked=[2])
    assert (scores.true_positives, scores.false_positives, scores.false_negatives) == (3, 1, 1)
    assert scores.precision == pytest.approx(0.75) and scores.recall == pytest.approx(0.75)
    assert scores.f1 == pytest.approx(0.75)
    assert scores.tracked_recall == pytest.approx(0.5)
    expected_iou = (36 + 20) / (36 + 20 + 16 + 12)  # frame 0 exact; frame 1 misses worm 2, adds a blob
    assert scores.iou == pytest.approx(expected_iou)
    assert pooled_iou(predicted, truth > 0) == pytest.approx(expected_iou)
    summary = scores.summary()
    assert set(summary) == {"iou", "precision", "recall", "f1", "tracked_recall"}


def test_touching_worms_found_as_one_blob_count_once():
    truth = np.zeros((20, 20), np.uint8)
    truth[5:7, 2:10] = 1
    truth[5:7, 10:18] = 2
    scores = MaskScores()
    scores.add(truth > 0, truth)
    assert (scores.true_positives, scores.false_positives, scores.false_negatives) == (0, 1, 2)
    scores = MaskScores()
    scores.add(truth > 0, truth > 0)  # a boolean truth: its blobs are the worms
    assert scores.true_positives == 1 and scores.iou == 1.0


def test_empty_frames_score_perfectly():
    scores = MaskScores()
    scores.add(np.zeros((5, 5), bool), np.zeros((5, 5), np.uint8), tracked=[1])
    assert scores.iou == 1.0 and scores.precision == 1.0 and scores.recall == 1.0
    assert np.isnan(scores.tracked_recall)


# --- Cleaner and the background schedule ---------------------------------------------------------------------
def tiny_model(kind="video", dark_worms=True) -> ModelFile:
    torch.manual_seed(0)
    return ModelFile(UNet(UNetConfig(width=8, depth=2)), Normalisation(), {"kind": kind, "dark_worms": dark_worms})


def test_cleaner_refuses_a_stills_model_and_bad_settings():
    with pytest.raises(ModelFileError, match="is a stills model; masking videos needs a video model"):
        Cleaner(tiny_model(kind="stills"), device="cpu")
    with pytest.raises(SettingsError, match="unknown threshold"):
        Cleaner(tiny_model(), device="cpu", threshold="mean")
    assert Cleaner(tiny_model(dark_worms=False), device="cpu").segmentation.dark_worms is False
    assert Cleaner(tiny_model(dark_worms=False), device="cpu", dark_worms=True).segmentation.dark_worms is True


class FakeReader:
    """A VideoReader stand-in: frames whose every pixel is the frame index."""

    def __init__(self, n_frames, path):
        self.n_frames, self.fps, self.height, self.width, self.path = n_frames, 25.0, 16, 24, path
        self.broken_at, self.bit_depth = None, 8

    def frames(self):
        for index in range(self.n_frames):
            yield index, np.full((self.height, self.width), index, np.uint8)

    def read(self, indices):
        return ((index, np.full((self.height, self.width), index, np.uint8)) for index in indices)

    def close(self):
        pass


@pytest.mark.parametrize("n_frames, interval", [(23, 1), (23, 4), (23, 5), (90, 40), (90, 100)])
def test_every_frame_gets_its_nearest_background(monkeypatch, tmp_path, n_frames, interval):
    """Backgrounds come from a second reader; each frame is segmented against the nearest, the earlier one on
    ties."""
    from wormclean.predict import cleaner as cleaner_module
    from wormclean.predict import windows

    reader = FakeReader(n_frames, tmp_path / "fake.avi")
    monkeypatch.setattr(cleaner_module, "VideoReader", FakeReader)
    monkeypatch.setattr(windows, "open_video", lambda path: FakeReader(n_frames, path))
    cleaner = Cleaner(tiny_model(), device="cpu", background="net")
    computed, used = [], {}
    monkeypatch.setattr(cleaner, "backgrounds", lambda frames: [frame.astype(np.float32) for frame in frames])

    def segment(frame, background, worms=None, background_level=None, with_contours=False):
        return np.full(frame.shape, background[0, 0]), []

    monkeypatch.setattr(cleaner, "segment", segment)
    for index, frame, mask in cleaner.iter_masks(reader, interval, lambda i, b: computed.append(i)):
        assert frame[0, 0] == index
        used[index] = int(mask[0, 0])
    assert computed == list(range(0, n_frames, interval))
    assert list(used) == list(range(n_frames))
    for index, background_index in used.items():
        best = min(computed, key=lambda b: (abs(b - index), b))
        assert background_index == best, (index, background_index, best)


def test_stopping_early_stops_the_background_thread(monkeypatch, tmp_path):
    import threading

    from wormclean.predict import cleaner as cleaner_module
    from wormclean.predict import windows

    monkeypatch.setattr(cleaner_module, "VideoReader", FakeReader)
    monkeypatch.setattr(windows, "open_video", lambda path: FakeReader(90, path))
    cleaner = Cleaner(tiny_model(), device="cpu", background="net")
    monkeypatch.setattr(cleaner, "backgrounds", lambda frames: [frame.astype(np.float32) for frame in frames])
    before = threading.active_count()
    masks = cleaner.iter_masks(FakeReader(90, tmp_path / "fake.avi"), bgnd_interval=40)
    assert [item[0] for _, item in zip(range(3), masks)] == [0, 1, 2]
    assert threading.active_count() == before + 1
    masks.close()
    assert threading.active_count() == before
