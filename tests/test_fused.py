"""The background from the video and the net together (``--background fused``), against the net alone."""

from __future__ import annotations

import logging
from pathlib import Path

import cv2
import numpy as np
import pytest

from wormclean.io import open_video
from wormclean.predict.cleaner import Cleaner
from wormclean.predict.windows import plan_windows
from wormclean.segment.background import (
    WormStats,
    blob_features,
    calibrate_worms,
    fuse_backgrounds,
    hysteresis,
    is_worm_like,
    kth_smallest,
    temporal_background,
)
from wormclean.segment.metrics import MaskScores
from wormclean.segment.threshold import clean_mask, label_components
from wormclean.sim import SimulationSettings, read_truth, write_simulation


def test_windows_sample_keyframes_when_there_are_enough():
    keyframes = list(range(0, 10000, 250))  # 40 keyframes, x264's default GOP
    windows = plan_windows(10000, 1000, keyframes, span_frames=7500, n_samples=21)
    assert [w.start for w in windows] == list(range(0, 10000, 1000)) and windows[-1].stop == 10000
    for window in windows:
        assert set(window.samples) <= set(keyframes) and len(window.samples) == 21
        assert min(window.samples) <= window.start and max(window.samples) >= window.stop - 250
    # Few keyframes (a short clip): frames spread over the span, the whole video here.
    short = plan_windows(80, 1000, [0, 24, 48, 72], span_frames=7500, n_samples=21)
    assert len(short) == 1 and short[0].samples[0] == 0 and short[0].samples[-1] == 79 and len(short[0].samples) == 21
    # Every frame cheap (image folders): the span around each window, inside the video.
    folder = plan_windows(100, 10, None, span_frames=30, n_samples=5)
    assert folder[0].samples == (0, 7, 14, 22, 29) and folder[-1].samples[-1] == 99


def test_temporal_background_keeps_the_plate_and_drops_moving_worms_and_flicker():
    rng = np.random.default_rng(0)
    plate = np.full((64, 64), 180.0, np.float32)
    plate[30:34, :] = 120.0  # a static line: must stay
    frames = []
    for index in range(9):
        frame = plate * (1 + 0.05 * rng.standard_normal())  # flicker
        frame[5:9, 6 * index: 6 * index + 6] = 60.0  # a worm crawling along
        frames.append(np.clip(frame + rng.normal(0, 1, plate.shape), 0, 255).astype(np.uint8))
    background = temporal_background(frames)
    assert np.abs(background - plate * np.median([np.median(f) for f in frames]) / 180.0).max() < 6


def _shape(draw, size=160) -> np.ndarray:
    image = np.zeros((size, size), np.uint8)
    draw(image)
    return image.astype(bool)


@pytest.mark.parametrize("dtype, n_frames", [(np.uint8, 21), (np.uint8, 6), (np.uint16, 7), (np.uint16, 2)])
def test_kth_smallest_ranks_every_pixel_as_a_sort_does(dtype, n_frames):
    rng = np.random.default_rng(n_frames)
    top = np.iinfo(dtype).max
    # Ties and the extremes of the type included.
    frames = [rng.choice([0, 1, 7, top // 2, top - 1, top], (33, 47)).astype(dtype) for _ in range(n_frames)]
    frames += [rng.integers(0, top, (33, 47), dtype=dtype, endpoint=True)]
    ranked = np.sort(np.stack(frames), axis=0)
    for k in range(len(frames)):
        result = kth_smallest(frames, k)
        assert result.dtype == dtype
        np.testing.assert_array_equal(result, ranked[k])
    with pytest.raises(ValueError):
        kth_smallest(frames, len(frames))


def test_hysteresis_is_skimages():
    from skimage.filters import apply_hysteresis_threshold

    rng = np.random.default_rng(3)
    for _ in range(4):
        image = cv2.GaussianBlur(rng.normal(0, 18, (300, 400)).astype(np.float32), (0, 0), 2)
        np.testing.assert_array_equal(hysteresis(image, 5, 10), apply_hysteresis_threshold(image, 5, 10))


def test_worm_like_regions_are_worms_and_rings_lines_and_letters_are_not():
    def worm(image):
        points = np.array([[20 + 2 * t, 48 + 6 * np.sin(t / 4)] for t in range(28)], np.int32)
        cv2.polylines(image, [points], False, 1, thickness=5)

    regions = {
        "worm": _shape(worm),
        "ring": _shape(lambda image: cv2.circle(image, (48, 48), 30, 1, thickness=5)),
        "marker line": _shape(lambda image: cv2.line(image, (2, 10), (158, 150), 1, thickness=5)),
        "fibre": _shape(lambda image: cv2.line(image, (10, 20), (70, 40), 1, thickness=1)),
        "letter X": _shape(lambda image: cv2.putText(image, "X", (30, 70), cv2.FONT_HERSHEY_SIMPLEX, 1.6, 1, 5)),
        "letter O": _shape(lambda image: cv2.putText(image, "O", (30, 70), cv2.FONT_HERSHEY_SIMPLEX, 1.6, 1, 5)),
    }
    reference = blob_features(regions["worm"], regions["worm"] * 40.0)
    stats = WormStats(1, reference.area[0], reference.width[0], reference.length[0], 40.0, "video")
    verdicts = {}
    for name, region in regions.items():
        features = blob_features(region, region * 40.0)
        assert len(features.area) == 1, name
        verdicts[name] = bool(is_worm_like(features, stats)[0])
    assert verdicts == {name: name == "worm" for name in regions}
    faint = blob_features(regions["worm"], regions["worm"] * 10.0)  # a quarter as dark: a lawn patch, a shadow
    assert not is_worm_like(faint, stats)[0]


def test_blob_cleaning_keeps_a_ring_open_and_fills_a_curled_worm():
    ring = _shape(lambda image: cv2.circle(image, (48, 48), 30, 1, thickness=3))
    curl = _shape(lambda image: cv2.circle(image, (48, 48), 5, 1, thickness=3))
    assert not clean_mask(ring, 10, max_hole=200)[48, 48]
    assert clean_mask(curl, 10, max_hole=200)[48, 48]
    assert clean_mask(ring, 10)[48, 48]  # without a limit, every hole is filled
    assert not clean_mask(ring, 10, max_area=1000).any()  # and a largest blob drops it


@pytest.fixture(scope="module")
def structured_plate(tmp_path_factory, tiny_video_settings):
    """Tiny-net scale: a plate with a ring, a marker line, fibres and text, half its worms immobile. The seed is
    the first (of 0-39) where no immobile worm comes within 4 pixels of a structure (a worm lying on a ring is
    not told apart from it) and the true background scores F1 and immobile recall above 0.96 (no worms touching;
    the test checks it)."""
    video = tmp_path_factory.mktemp("fused") / "plate.mp4"
    settings = {**tiny_video_settings, "size": 192, "n_frames": 30, "n_worms": 6, "immobile_fraction": 0.5,
                "n_rings": 1, "n_marks": 1, "n_fibres": 3, "text": True, "seed": 15}  # fmt: skip
    write_simulation(video, SimulationSettings(**settings))
    return video, read_truth(video, in_memory=True)


def scores(cleaner: Cleaner, video, truth, report=None) -> MaskScores:
    immobile = list(np.nonzero(truth.immobile)[0] + 1)
    result = MaskScores()
    for index, _, worms in cleaner.iter_masks(video, report=report):
        result.add(worms, truth.labels[index], immobile)
    return result


def test_fused_keeps_static_structure_out_and_finds_the_immobile_worms(trained_video_model, structured_plate):
    video, truth = structured_plate
    report: dict = {}
    fused = scores(Cleaner.load(trained_video_model, device="cpu"), video, truth, report)
    net = scores(Cleaner.load(trained_video_model, device="cpu", background="net"), video, truth)
    ceiling = Cleaner.load(trained_video_model, device="cpu")
    with open_video(video) as reader:
        stats = ceiling.video_backgrounds(reader, [0])[0].stats
        true = MaskScores()
        for index, frame in reader.frames():
            true.add(ceiling.segment(frame, truth.background, stats), truth.labels[index],
                     list(np.nonzero(truth.immobile)[0] + 1))
    assert true.f1 > 0.95 and true.tracked_recall > 0.95  # the plate allows it
    assert report["background"] == "fused" and report["windows"][0]["worm_stats"]["source"] == "video"
    assert report["windows"][0]["immobile_worm_regions"] >= 3
    assert fused.tracked_recall >= 0.9
    assert fused.precision >= 0.9 and fused.f1 >= 0.9
    # The tiny net never saw rings, lines or text: they come back as worms from its background alone.
    assert net.precision <= fused.precision - 0.2


def test_temporal_alone_loses_the_immobile_worms(trained_video_model, structured_plate):
    video, truth = structured_plate
    temporal = scores(Cleaner.load(trained_video_model, device="cpu", background="temporal"), video, truth)
    assert temporal.tracked_recall <= 0.1 and temporal.precision >= 0.9


def test_too_few_frames_fall_back_to_the_net_with_one_warning(trained_video_model, tmp_path, caplog,
                                                              tiny_video_settings):
    video = tmp_path / "short.mp4"
    write_simulation(video, SimulationSettings(**{**tiny_video_settings, "n_frames": 5}))
    report: dict = {}
    with caplog.at_level(logging.WARNING):
        masks = list(Cleaner.load(trained_video_model, device="cpu").iter_masks(video, report=report))
    assert len(masks) == 5 and report["background"] == "net" and "5 frames" in report["fallback"]
    warnings = [record.getMessage() for record in caplog.records if record.levelno == logging.WARNING]
    assert len(warnings) == 1 and "using the net's background alone" in warnings[0]


def test_a_moving_stage_falls_back_to_the_net(trained_video_model, tmp_path, caplog):
    rng = np.random.default_rng(1)
    scene = cv2.GaussianBlur(rng.uniform(0, 255, (400, 400)).astype(np.float32), (0, 0), 1.5)
    folder = tmp_path / "tracking"
    folder.mkdir()
    for index in range(12):  # the stage follows a worm: the field slides by 8 pixels a frame
        cv2.imwrite(str(folder / f"{index:03d}.png"), scene[100:228, 8 * index: 8 * index + 128].astype(np.uint8))
    report: dict = {}
    with caplog.at_level(logging.WARNING):
        list(Cleaner.load(trained_video_model, device="cpu").iter_masks(folder, report=report))
    assert report["background"] == "net" and "moving stage" in report["fallback"]


def test_fusion_uses_the_net_only_in_worm_like_regions():
    temporal = np.full((80, 80), 200.0, np.float32)
    net = temporal.copy()
    temporal[20:24, 10:40] = 150.0  # an immobile worm the net removes
    temporal[50:53, 0:80] = 150.0  # a scratch across the field the net blurs away
    moving = [temporal.copy() for _ in range(3)]
    for index, frame in enumerate(moving):
        frame[60 + 5 * index: 64 + 5 * index, 30:60] = 150.0  # moving worms, as the calibration sees them
    stats = calibrate_worms([frame.astype(np.uint8) for frame in moving], temporal, True, 10.0)
    assert stats is not None and stats.source == "video" and 100 <= stats.area <= 130
    fusion = fuse_backgrounds(temporal, net, True, 10.0, stats)
    assert fusion.n_worms == 1
    assert np.abs(fusion.background[20:24, 10:40] - 200.0).max() < 0.01  # the worm is gone from the background
    assert np.all(fusion.background[50:53, :] == 150.0)  # the scratch stays in it


def _calibrated(temporal):
    moving = [temporal.copy() for _ in range(3)]
    for index, frame in enumerate(moving):
        frame[100 + 5 * index: 104 + 5 * index, 10:40] = 150.0  # moving worms, 4 x 30, as the calibration sees them
    return calibrate_worms([frame.astype(np.uint8) for frame in moving], temporal, True, 10.0)


def test_a_worm_across_a_fainter_track_is_found_and_the_track_stays():
    temporal = np.full((120, 160), 200.0, np.float32)
    temporal[58:62, :] = 180.0  # an old track across the field, fainter than a worm
    temporal[45:75, 80:84] = 150.0  # an immobile worm lying across it
    net = np.full_like(temporal, 200.0)  # the net removes both
    fusion = fuse_backgrounds(temporal, net, True, 10.0, _calibrated(temporal))
    assert fusion.n_worms == 1
    assert np.all(fusion.regions[45:75, 80:84])
    assert np.abs(fusion.background[45:52, 80:84] - 200.0).max() < 1.0  # filled in from the plate around it
    assert np.all((fusion.background[58:62, 80:84] >= 179) & (fusion.background[58:62, 80:84] <= 201))
    assert np.all(fusion.background[58:62, :70] == 180.0) and np.all(fusion.background[58:62, 95:] == 180.0)


def test_a_worm_across_one_of_a_rings_arcs_side_by_side_is_no_letter():
    temporal = np.full((140, 380), 200.0, np.float32)
    arcs = np.zeros(temporal.shape, np.uint8)
    for left in (5, 125, 245):  # faint, thin arcs of a ring, over four worms long, in a row as letters are
        cv2.line(arcs, (left, 80), (left + 110, 16), 1, thickness=3)
    temporal[arcs > 0] = 180.0
    temporal[33:63, 178:182] = 150.0  # an immobile worm lying across the middle one, darker than it
    net = np.full_like(temporal, 200.0)  # the net removes all of it
    fusion = fuse_backgrounds(temporal, net, True, 10.0, _calibrated(temporal))
    assert fusion.n_worms == 1 and fusion.regions[33:63, 178:182].all()


def test_a_stretch_of_a_long_fibre_the_net_removes_is_no_worm():
    temporal = np.full((120, 160), 200.0, np.float32)
    temporal[40:44, 20:120] = 150.0  # a fibre as thick and dark as a worm, over three worms long
    net = temporal.copy()
    net[40:44, 60:90] = 200.0  # the net removes a worm-long stretch of it
    stats = _calibrated(temporal)
    assert is_worm_like(blob_features(net < temporal - 10, temporal - net), stats).all()  # the stretch looks like one
    fusion = fuse_backgrounds(temporal, net, True, 10.0, stats)
    assert fusion.n_worms == 0 and not fusion.regions.any()
    assert np.all(fusion.background[40:44, 20:120] == 150.0)


def test_a_fibre_thinner_than_a_worm_is_no_worm_however_thick_the_nets_removal_of_it():
    # A fibre two pixels thick with a faint blur either side, under the worm threshold: the net removes all of
    # it, a region as thick as a worm, but in the temporal background its body is half a worm's thickness. An
    # immobile worm beside it is found.
    temporal = np.full((120, 160), 200.0, np.float32)
    temporal[40:44, 20:50] = 193.0  # the fibre's blur
    temporal[41:43, 20:50] = 150.0  # its core, as dark as a worm
    temporal[70:74, 60:90] = 150.0  # an immobile worm, 4 pixels thick
    net = np.full_like(temporal, 200.0)  # the net removes both
    stats = _calibrated(temporal)
    removed = net - temporal
    fibre = np.zeros(temporal.shape, bool)
    fibre[30:55, 10:60] = True
    assert is_worm_like(blob_features((removed > 5) & fibre, removed), stats).all()  # removed, it looks like a worm
    fusion = fuse_backgrounds(temporal, net, True, 10.0, stats)
    assert fusion.n_worms == 1 and fusion.regions[70:74, 60:90].all() and not fusion.regions[fibre].any()
    assert np.all(fusion.background[41:43, 20:50] == 150.0)


def test_a_worm_whose_tail_runs_into_a_faint_track_thinner_than_itself_is_no_fibre():
    # Tuning plate 11602: the net's blurred removal of the track is as wide as a worm, so worm and track are one
    # worm-like region; in the temporal background the track is thin, and measured over both the body looked thin.
    temporal = np.full((120, 160), 200.0, np.float32)
    worm, track = np.zeros(temporal.shape, np.uint8), np.zeros(temporal.shape, np.uint8)
    x = np.arange(31)
    cv2.polylines(worm, [np.stack([70 + x, 30 + (3 * np.sin(x / 5.0)).astype(int)], 1).astype(np.int32)], False, 1, 4)
    x = np.arange(40)
    cv2.polylines(track, [np.stack([100 + x, 30 + (0.6 * x + 4 * np.sin(x / 7.0)).astype(int)], 1).astype(np.int32)],
                  False, 1, 1)
    temporal[track > 0] = 185.0  # a faint old track, a pixel wide, leading off the worm's tail
    temporal[worm > 0] = 150.0  # an immobile worm
    net = temporal + 3.0 * cv2.GaussianBlur((200.0 - temporal) * (track > 0), (0, 0), 1.2)  # blurred away, widened
    net[worm > 0] = 200.0
    fusion = fuse_backgrounds(temporal, net, True, 10.0, _calibrated(temporal))
    assert fusion.n_worms == 1 and np.all(fusion.regions[worm > 0])


def test_a_line_beside_an_immobile_worm_stays_in_the_background():
    # A worm lying beside a line as thick as itself (from tuning plate 9603: two worms side by side across a
    # ring): the worm's region is grown by half a worm's width before it is filled in, but the line's pixels in
    # that margin, darker than the worm threshold and not removed as a worm is, stay; filled in, they would come
    # back in every frame as a stub of the worm, or a bridge to the next.
    temporal = np.full((120, 160), 200.0, np.float32)
    temporal[60:63, :] = 175.0  # the line
    temporal[64:68, 60:90] = 150.0  # the worm, a pixel from it
    net = temporal.copy()
    net[64:68, 60:90] = 200.0  # the net removes the worm only
    fusion = fuse_backgrounds(temporal, net, True, 10.0, _calibrated(temporal))
    assert fusion.n_worms == 1 and fusion.regions[64:68, 60:90].all()
    assert np.all(fusion.background[60:63, :] == 175.0)


def test_a_speck_smaller_than_a_worm_the_net_removes_is_filled_in_and_is_no_worm():
    # From tuning plate 10902: part of a worm lay in one place in most sampled frames, a dark speck in the temporal
    # background that the net removes. Too small to be a worm, or to come back as a blob of its own, it is filled
    # in, so that a worm crawling over it is not cut in two.
    temporal = np.full((120, 160), 200.0, np.float32)
    temporal[30:36, 60:64] = 160.0  # 24 pixels, under a quarter of a worm
    net = np.full_like(temporal, 200.0)
    stats = _calibrated(temporal)
    assert 24 < stats.min_area
    fusion = fuse_backgrounds(temporal, net, True, 10.0, stats)
    assert fusion.n_worms == 0 and fusion.regions[30:36, 60:64].all()
    assert np.abs(fusion.background[30:36, 60:64] - 200.0).max() < 1.0


def test_two_immobile_worms_touching_are_found():
    temporal = np.full((120, 160), 200.0, np.float32)
    temporal[40:44, 20:50] = 150.0  # an immobile worm
    temporal[44:70, 33:37] = 150.0  # another, its head on the first one's middle: one region of three ends,
    net = np.full_like(temporal, 200.0)  # less than two worms' area (they overlap); the net removes both
    stats = _calibrated(temporal)
    assert 1.5 * stats.area < np.count_nonzero(temporal < 200) < 2 * stats.area
    fusion = fuse_backgrounds(temporal, net, True, 10.0, stats)
    assert fusion.n_worms == 1 and fusion.regions[temporal < 200].all()


def test_a_crisp_stretch_of_a_thin_line_is_no_worm_and_a_worm_lying_on_it_is():
    # A line's darkness varies along it with how it falls on the pixel grid: a crisp stretch of it, 1.5 times
    # as dark as the rest, that the net happens to remove is no worm; a worm lying along the line (twice as dark
    # as the rest) is.
    for stretch, is_worm in ((155.0, False), (140.0, True)):
        temporal = np.full((120, 160), 200.0, np.float32)
        temporal[40:44, 10:150] = 170.0  # a thin line, 30 grey levels dark
        temporal[40:44, 60:90] = stretch
        net = temporal.copy()
        net[40:44, 60:90] = 200.0  # the net removes that stretch only
        fusion = fuse_backgrounds(temporal, net, True, 10.0, _calibrated(temporal))
        assert fusion.n_worms == int(is_worm) and fusion.regions[40:44, 60:90].all() == is_worm
        assert np.all(fusion.background[40:44, 10:50] == 170.0)


@pytest.mark.parametrize("length", [15, 24])
def test_a_short_crisp_stretch_of_a_line_is_no_worm_however_dark(length):
    # Where a ring runs along a pixel row it can be over twice as dark as the rest of it; a straight stretch
    # shorter than most of a worm (a tuning plate's: 0.70 of a worm), with the line going on past both its ends,
    # is the line.
    temporal = np.full((120, 160), 200.0, np.float32)
    temporal[40:44, 10:150] = 170.0  # a thin line, 30 grey levels dark
    temporal[40:44, 70:70 + length] = 130.0  # a crisp stretch, 70 dark (a worm: 30 pixels long)
    net = temporal.copy()
    net[40:44, 70:70 + length] = 200.0  # the net removes that stretch only
    stats = _calibrated(temporal)
    stretch = np.zeros(temporal.shape, bool)
    stretch[40:44, 70:70 + length] = True
    assert blob_features(stretch, temporal).length[0] < (0.7 if length == 15 else 0.8) * stats.length
    fusion = fuse_backgrounds(temporal, net, True, 10.0, stats)
    assert fusion.n_worms == 0 and not fusion.regions.any()


def test_a_worm_touching_a_line_as_dark_as_itself_by_its_tail_is_found_and_the_line_stays():
    temporal = np.full((120, 160), 200.0, np.float32)
    temporal[58:62, :] = 150.0  # a marker line across the field, as dark and thick as a worm
    worm = np.zeros(temporal.shape, np.uint8)
    cv2.polylines(worm, [np.array([[80, 61], [86, 70], [78, 80], [86, 90]], np.int32)], False, 1, thickness=4)
    temporal[worm > 0] = 150.0  # an immobile worm, curved, its tail on the line
    net = np.full_like(temporal, 200.0)  # the net removes both
    fusion = fuse_backgrounds(temporal, net, True, 10.0, _calibrated(temporal))
    assert fusion.n_worms == 1 and fusion.regions[66:90][worm[66:90] > 0].all()
    assert np.all(fusion.background[58:62, :65] == 150.0) and np.all(fusion.background[58:62, 100:] == 150.0)


@pytest.mark.parametrize("path", [
    [[80, 44], [85, 52], [80, 60], [85, 68], [80, 75]],  # across the line, each end sticking out 0.4 of a worm
    [[68, 60], [73, 67], [67, 75], [73, 83]],  # its head in the line
])
def test_a_worm_lying_partly_on_a_line_as_dark_as_itself_is_found_and_the_line_stays(path):
    # What sticks out of the line is too short to be a worm; the part on the line is darker than the line (the
    # worm adds its own darkness), and the net removed both: joined, they are the whole worm.
    temporal = np.full((120, 160), 200.0, np.float32)
    temporal[58:62, :] = 150.0  # a marker line across the field, as dark and thick as a worm
    worm = np.zeros(temporal.shape, np.uint8)
    cv2.polylines(worm, [np.array(path, np.int32)], False, 1, thickness=4)
    temporal[worm > 0] = 150.0
    on_line = np.zeros(temporal.shape, bool)
    on_line[58:62] = True
    temporal[(worm > 0) & on_line] = 110.0
    net = np.full_like(temporal, 200.0)  # the net removes the line and the worm
    stats = _calibrated(temporal)
    fusion = fuse_backgrounds(temporal, net, True, 10.0, stats)
    assert fusion.n_worms == 1 and fusion.regions[worm > 0].all()
    assert np.all(fusion.background[58:62, :40] == 150.0) and np.all(fusion.background[58:62, 120:] == 150.0)


def _fused_crop(name: str):
    """A crop of a tuning plate's temporal and net backgrounds saved in ``tests/data/NAME.npz``, with the plate's
    worm statistics and delta, fused: ``(fusion, stats, worm)``; ``worm`` is the crop's truth worm (an empty mask
    where the file has none)."""
    data = np.load(Path(__file__).parent / "data" / f"{name}.npz")
    stats = WormStats(int(data["n_blobs"]), float(data["area"]), float(data["width"]), float(data["length"]),
                      float(data["contrast"]), "video")
    temporal, net = data["temporal"].astype(np.float32), data["net"].astype(np.float32)
    worm = data["worm"] if "worm" in data else np.zeros(temporal.shape, bool)
    dark_worms = bool(data["dark"]) if "dark" in data else True
    return fuse_backgrounds(temporal, net, dark_worms, float(data["delta"]), stats), stats, worm


def test_a_faint_fibre_crossing_a_track_is_no_worm():
    # From tuning plate 10501 (all worms moving): a faint curved fibre crosses a fainter track, and the net removes
    # both. Joined, the fibre's arms and the darker crossing look like a worm lying on the track, but the arms
    # are a quarter as dark as a worm.
    fusion, stats, _ = _fused_crop("fusion_fibre_across_track")
    assert fusion.n_worms == 0 and label_components(fusion.regions)[2][1:].max(initial=0) < stats.min_area  # specks


def _plate_with_a_label(shape, words: str, origin, darkness: float):
    """A plain plate (200 grey levels) with a label's letters ``darkness`` darker: temporal float32, letters uint8."""
    temporal = np.full(shape, 200.0, np.float32)
    text = np.zeros(shape, np.uint8)
    cv2.putText(text, words, origin, cv2.FONT_HERSHEY_SIMPLEX, 0.8, 1, 3)
    temporal[text > 0] = 200.0 - darkness
    return temporal, text


def test_a_letter_a_ring_crosses_is_no_worm_when_its_label_shows():
    # A label's letters, a ring as thick as a worm crossing one of them; the net removes most of both, and that
    # letter whole, so it stands out of the ring as a worm would. The label's other letters are found as letters,
    # and it stands in their row.
    temporal, text = _plate_with_a_label((160, 300), "LAB 2026", (20, 90), 40.0)
    ring = np.zeros(temporal.shape, np.uint8)
    cv2.circle(ring, (179, 181), 141, 1, 4)  # through the first "2"
    temporal[ring > 0] = np.minimum(temporal[ring > 0], 175.0)
    net = 200 - 0.4 * (200 - temporal)
    _, letters = cv2.connectedComponents(text)
    rows, cols = np.nonzero(text[:, 73:86])  # the first "2" stands in columns 73-85
    two = letters == letters[rows[0], cols[0] + 73]
    assert 100 < two.sum() < 200 and (ring > 0)[cv2.dilate(two.astype(np.uint8), np.ones((3, 3), np.uint8)) > 0].any()
    net[cv2.dilate(two.astype(np.uint8), np.ones((3, 3), np.uint8)) > 0] = 200.0
    fusion = fuse_backgrounds(temporal, net, True, 10.0, _calibrated(temporal))
    assert fusion.n_worms == 0 and not fusion.regions.any()


def test_a_worm_joined_to_a_label_by_a_faint_line_is_found_and_the_letters_are_not():
    # From tuning plate 10404: a faint thin line the net also removes joins an immobile worm to a label's letters
    # (fainter than it), all one region. Opened, the letters come off it and are text; the worm is a worm.
    temporal, text = _plate_with_a_label((140, 220), "LAB", (20, 40), 25.0)
    line = np.zeros(temporal.shape, np.uint8)
    ys, xs = np.nonzero(text)
    cv2.line(line, (int(xs.max()), int(np.median(ys[xs == xs.max()]))), (150, 101), 1, 1, cv2.LINE_4)  # from the B
    temporal[(line > 0) & (text == 0)] = 193.0  # under the worm threshold, but joined to darker things
    temporal[100:104, 150:180] = 150.0  # an immobile worm
    net = np.full_like(temporal, 200.0)  # the net removes all of it
    stats = _calibrated(temporal)
    regions = label_components(hysteresis(net - temporal, 5.0, 10.0))[1]
    assert (regions[text > 0] == regions[101, 160]).any()  # the worm and a letter: one region
    fusion = fuse_backgrounds(temporal, net, True, 10.0, stats)
    assert fusion.n_worms == 1 and fusion.regions[100:104, 150:180].all() and not fusion.regions[text > 0].any()


def test_a_worm_touching_a_labels_letter_is_found_and_the_letters_are_not():
    # From quick plate 9201: an immobile worm lies with its tail on a letter of a bold label ("20C"); worm and
    # letter are one region, which stands in the label's row. The worm is a limb of the region that sticks out
    # of the letters' band.
    fusion, stats, worm = _fused_crop("fusion_worm_on_a_letter")
    near_worm = cv2.dilate(worm.astype(np.uint8), np.ones((7, 7), np.uint8)).view(bool)
    assert fusion.n_worms == 1 and fusion.regions[worm].mean() > 0.9 and not fusion.regions[~near_worm].any()


@pytest.mark.parametrize("name", ["fusion_worm_along_a_thick_line", "fusion_worm_looped_off_a_thick_line"])
def test_a_worm_with_its_head_or_both_ends_on_a_thick_line_is_found_and_the_line_stays(name):
    # Crops of tuning plates 10402 and 12002: an immobile worm with its head hooked onto the edge of a marker line
    # twice as thick as itself (10402), or looped off it with both ends on it (12002). The net removed the line with
    # the worm, so they are one region, and the worm is no darker than the line where it sticks out.
    fusion, stats, worm = _fused_crop(name)
    near_worm = cv2.dilate(worm.astype(np.uint8), np.ones((9, 9), np.uint8)).view(bool)
    assert fusion.n_worms == 1 and fusion.regions[worm].mean() > 0.9 and not fusion.regions[~near_worm].any()


def test_a_worm_lying_along_a_ring_half_as_dark_as_itself_is_found_and_the_ring_stays():
    # A crop of tuning plate 10503: an immobile worm lies along a ring half as dark as itself, and the net removed a
    # stretch of the ring with it; over their one region the worm is no darker than the rest of the ring, but where
    # it lies it adds its own darkness. (Another immobile worm lies at the crop's edge.)
    fusion, stats, worm = _fused_crop("fusion_worm_along_a_ring")
    assert fusion.regions[worm].mean() > 0.9
    # Each region is one worm grown by its margin (about 2.2 worms' area here), with no stretch of the ring.
    n_regions, labels, regions, _ = cv2.connectedComponentsWithStats(fusion.regions.astype(np.uint8))
    assert n_regions - 1 == 2 and np.all(regions[1:, cv2.CC_STAT_AREA] < 2.5 * stats.area)


def test_a_worm_lying_half_on_the_edge_of_a_thick_line_is_found_and_the_line_stays():
    # A crop of report plate 10203: an immobile worm lies along the edge of a marker line three times as thick as
    # itself, half on it, its head on the line. The net removed the line and most of the worm, so they are one
    # region; the top-hats that take the line off cut into the worm where it widens the line, and only the head is
    # clearly darker than the line.
    fusion, stats, worm = _fused_crop("fusion_worm_on_a_line_edge")
    assert fusion.n_worms == 1
    n_regions, labels, regions, _ = cv2.connectedComponentsWithStats(fusion.regions.astype(np.uint8))
    on_worm = np.bincount(labels[worm], minlength=n_regions)
    found = int(on_worm[1:].argmax()) + 1
    # Most of the worm is filled in, and no stretch of the line: the region is the worm grown by its margin.
    assert on_worm[found] > 0.7 * worm.sum() and regions[found, cv2.CC_STAT_AREA] < 2.5 * stats.area


def test_a_worm_with_its_head_on_a_line_that_runs_out_of_the_frame_is_found_and_the_line_stays():
    # A crop of plate 10805 (dark field, light worms), at the frame's bottom edge: an immobile worm has its head on
    # a bright marker line that runs down out of the frame. The worm and the line's stretch from its head to the
    # edge are two limbs of their region's centreline; their bodies touch at the junction and make one blob, two
    # worms long and worm-like as a few touching worms are, which came back at the edge in every frame.
    fusion, stats, worm = _fused_crop("fusion_worm_on_a_line_to_the_edge")
    assert fusion.regions[worm].mean() > 0.9
    n_regions, labels, regions, _ = cv2.connectedComponentsWithStats(fusion.regions.astype(np.uint8))
    assert n_regions - 1 == 1 and regions[1, cv2.CC_STAT_AREA] < 2.5 * stats.area and not fusion.regions[-1].any()


def test_a_worm_touching_a_ring_by_its_tail_as_dark_as_the_ring_is_found_and_the_ring_stays():
    # A crop of unlike-suite plate 20201 (worms 70 pixels long): an immobile worm touches a ring by its tail and is
    # no darker than the ring, and the net removed both about as much. The ring does not go on past the worm's
    # head, as it would past a stretch of itself.
    fusion, stats, worm = _fused_crop("fusion_worm_touching_a_ring")
    assert fusion.n_worms == 1 and fusion.regions[worm].mean() > 0.9
    n_regions, labels, regions, _ = cv2.connectedComponentsWithStats(fusion.regions.astype(np.uint8))
    on_worm = np.bincount(labels[worm], minlength=n_regions)
    found = int(on_worm[1:].argmax()) + 1
    assert regions[found, cv2.CC_STAT_AREA] < 2.5 * stats.area  # the worm grown by its margin, no stretch of ring
    assert np.all(np.delete(regions[1:, cv2.CC_STAT_AREA], found - 1) < stats.area)  # the rest: specks, grown


def test_the_straight_end_of_a_line_past_where_it_crosses_a_ring_is_no_worm():
    # A crop of unlike-suite plate 20206 (dark field): a bright marker line crosses a ring and ends a worm and a
    # third further on. That end is a limb of their region's centreline, as a worm touching the ring would be, but
    # it is straight; the body around it hooks where it was cut off at the crossing and looked curved.
    fusion, stats, _ = _fused_crop("fusion_line_end_past_a_ring")
    assert fusion.n_worms == 0 and label_components(fusion.regions)[2][1:].max(initial=0) < stats.min_area


def test_a_stretch_of_a_structure_a_line_joins_is_no_worm_where_it_is_darker_all_along():
    # Unlike-suite plate 20104: where a line joins a dish's dark edge, a stretch of the edge worm-shaped and a worm
    # long is 1.46 times as dark as the rest of the edge, and over 1.4 times all along it: the "worm lying along
    # the structure" looked for inside such a stretch was the whole stretch, filled in and back in every frame.
    from wormclean.segment.background import _dark_worm_in

    stats = WormStats(90, 120.0, 3.6, 38.0, 39.0, "video")

    def curve(start: int, stop: int, thickness: int) -> np.ndarray:
        image = np.zeros((60, 100), np.uint8)
        x = np.arange(start, stop)
        cv2.polylines(image, [np.stack([x, 30 + (6 * np.sin(x / 6.0)).astype(int)], 1).astype(np.int32)], False, 1,
                      thickness)
        return image.view(bool)

    piece = curve(20, 60, 4)
    rest = 30.0  # the rest of the structure's darkness (a dish edge as dark as a worm)
    dark = np.where(piece, 1.46 * rest, 0.0).astype(np.float32)
    assert not _dark_worm_in(piece, dark, 1.4 * rest, stats).any()
    # A worm lying along a ring adds its own darkness where it lies (most along its centreline: its edge is
    # blurred), and its piece holds a stretch of the ring too.
    ring, worm = curve(5, 75, 9), curve(20, 60, 1)
    dark = np.where(worm, 3.0 * rest, np.where(ring, rest, 0.0)).astype(np.float32)
    found = _dark_worm_in(ring, dark, 1.4 * rest, stats)
    assert found[worm].all() and found.sum() < 0.5 * ring.sum()


def test_an_arc_of_a_ring_the_net_removes_more_than_the_rest_is_no_worm():
    # Unlike-suite plate 20301 (worms 70 pixels long): the net removed two arcs of a ring nearly whole and the rest
    # of it partly, so each arc, a third of the ring, was a dark curved core with two ends, and a worm by every
    # measure but its length: two and a half worms. A core longer than a worm and a half is no worm.
    stats = WormStats(64, 360.0, 5.7, 72.0, 41.0, "video")
    temporal = np.full((200, 200), 200.0, np.float32)
    ring = np.zeros(temporal.shape, np.uint8)
    cv2.circle(ring, (100, 100), 60, 1, 5)
    temporal[ring > 0] = 160.0
    net = 200 - 0.6 * (200 - temporal)
    arc = np.zeros(temporal.shape, np.uint8)
    cv2.ellipse(arc, (100, 100), (60, 60), 0, 0, 120, 1, 9)  # 126 pixels of the ring, 1.75 worms
    net[(arc > 0) & (ring > 0)] = 200.0
    fusion = fuse_backgrounds(temporal, net, True, 10.0, stats)
    assert fusion.n_worms == 0 and not fusion.regions.any()


def test_the_strokes_of_letters_as_big_as_worms_are_no_worms_touching_them():
    # A bold label whose letters are as tall as a worm is long, an immobile worm on top of two of them: limbs of
    # the letters (the arc of a "2") are as long as a worm, but they lie in the letters' band.
    temporal = np.full((160, 300), 200.0, np.float32)
    text = np.zeros(temporal.shape, np.uint8)
    cv2.putText(text, "LAB 26", (20, 75), cv2.FONT_HERSHEY_SIMPLEX, 1.2, 1, 6)
    temporal[text > 0] = 160.0
    top = int(np.nonzero(text)[0].min())
    worm = np.zeros(temporal.shape, np.uint8)
    x = np.arange(34)
    cv2.polylines(worm, [np.stack([62 + x, top + 2 - (0.45 * x + 4 * np.sin(x / 5.0)).astype(int)], 1)
                         .astype(np.int32)], False, 1, 4)
    temporal[worm > 0] = 150.0
    net = np.full_like(temporal, 200.0)  # the net removes all of it
    stats = _calibrated(temporal)
    assert np.ptp(np.nonzero(text)[0]) + 1 > 0.8 * stats.length  # letters about as tall as a worm is long
    fusion = fuse_backgrounds(temporal, net, True, 10.0, stats)
    near_worm = cv2.dilate(worm, np.ones((9, 9), np.uint8)).view(bool)
    assert fusion.regions[worm > 0].mean() > 0.8 and not fusion.regions[(text > 0) & ~near_worm].any()


def test_a_stretch_of_a_ring_cut_off_at_a_gap_the_net_left_is_no_worm():
    temporal = np.full((120, 160), 200.0, np.float32)
    ring = np.zeros(temporal.shape, np.uint8)
    cv2.circle(ring, (80, 50), 20, 1, thickness=-1)
    cv2.circle(ring, (80, 50), 16, 0, thickness=-1)  # a ring as thick and dark as a worm
    spoke = (int(80 + 20 * np.cos(np.deg2rad(110))), int(50 + 20 * np.sin(np.deg2rad(110))))
    cv2.line(ring, spoke, (int(80 + 28 * np.cos(np.deg2rad(110))), int(50 + 28 * np.sin(np.deg2rad(110)))), 1, 3)
    temporal[ring > 0] = 150.0
    net = np.full_like(temporal, 200.0)  # the net removes the ring, but for a short gap: the stretch from the
    net[47:54, 95:102][ring[47:54, 95:102] > 0] = 150.0  # gap to the spoke looks like a worm touching the rest
    fusion = fuse_backgrounds(temporal, net, True, 10.0, _calibrated(temporal))
    assert fusion.n_worms == 0 and not fusion.regions.any()
    assert np.all(fusion.background[ring > 0] == 150.0)


def test_a_worm_cut_by_the_frame_edge_stays_and_a_rim_coming_in_from_past_it_does_not():
    temporal = np.full((120, 160), 200.0, np.float32)
    temporal[30:34, 0:30] = 150.0  # an immobile worm, cut by the left edge
    temporal[70:74, 130:160] = np.linspace(185.0, 110.0, 30)  # a rim growing darker into the right edge
    net = np.full_like(temporal, 200.0)  # the net removes both
    fusion = fuse_backgrounds(temporal, net, True, 10.0, _calibrated(temporal))
    assert fusion.n_worms == 1 and np.all(fusion.regions[30:34, 0:30])
    assert not fusion.regions[70:74, 130:].any() and np.all(fusion.background[70:74, 130:] == temporal[70:74, 130:])


def test_a_strip_the_net_lightens_along_the_frame_edge_is_no_worm():
    temporal = np.full((120, 160), 200.0, np.float32)
    temporal[40:76, 150:] = np.linspace(200.0, 160.0, 10)  # a dark rim coming in at the right edge
    temporal[30:34, 60:90] = 150.0  # an immobile worm
    net = np.full_like(temporal, 200.0)
    net[40:76, 150:] = temporal[40:76, 150:]
    net[40:76, 156:] = 200.0  # the net's edge effect: the rim lightened in a worm-sized strip along the edge
    fusion = fuse_backgrounds(temporal, net, True, 10.0, _calibrated(temporal))
    assert fusion.n_worms == 1 and np.all(fusion.regions[30:34, 60:90])
    assert not fusion.regions[:, 140:].any() and np.all(fusion.background[:, 140:] == temporal[:, 140:])


def test_no_worm_found_is_said_once(trained_video_model, tmp_path, caplog, tiny_video_settings):
    from wormclean.predict.pipeline import mask_video
    from wormclean.settings import MaskSettings

    video = tmp_path / "empty.mp4"
    write_simulation(video, SimulationSettings(**{**tiny_video_settings, "n_worms": 0, "n_fibres": 0}))
    with caplog.at_level(logging.WARNING):
        result = mask_video(video, tmp_path / "empty.hdf5", MaskSettings(model=str(trained_video_model)))
    assert result.n_frames == 24
    warnings = [record.getMessage() for record in caplog.records if record.levelno == logging.WARNING]
    assert len(warnings) == 1 and "no worm found in any of its 24 frames" in warnings[0] and "--delta" in warnings[0]


@pytest.mark.parametrize("n_frames, fps, holds_the_worms", [(60, 1.0, False), (75, 25.0, True)])
def test_sensor_noise_is_no_ghost_of_a_worm(tmp_path, n_frames, fps, holds_the_worms):
    # A blurred plate with sensor noise of 5 grey levels, half the default delta: specks of noise over delta lie on
    # both sides of the median, and counted as ghosts they made a median that shows the plate (a minute of
    # crawling worms) look like one that holds the worms (3 seconds of them).
    from wormclean.segment.background import MAX_GHOST_RATIO, ghost_ratio

    video = tmp_path / "noisy.mp4"
    write_simulation(video, SimulationSettings(size=512, n_frames=n_frames, fps=fps, n_worms=8, immobile_fraction=0.0,
                                               noise_sigma=5.0, blur_sigma=1.2, seed=5))
    with open_video(video) as reader:
        frames = [frame for _, frame in reader.read(np.linspace(0, n_frames - 1, 21).round().astype(int).tolist())]
    assert (ghost_ratio(frames, temporal_background(frames), True, 10.0) > MAX_GHOST_RATIO) == holds_the_worms


def _sample_frames(video: Path, n_frames: int = 60) -> list[np.ndarray]:
    with open_video(video) as reader:
        return [frame for _, frame in reader.read(np.linspace(0, n_frames - 1, 21).round().astype(int).tolist())]


@pytest.mark.parametrize("noise", [1.5, 3.0, 5.0])
def test_sensor_noise_is_measured_against_the_temporal_background(tmp_path, noise):
    from wormclean.segment.background import sensor_noise

    video = tmp_path / "plate.mp4"
    write_simulation(video, SimulationSettings(size=384, n_frames=60, fps=1.0, n_worms=6, immobile_fraction=0.5,
                                               noise_sigma=noise, n_rings=1, n_marks=1, text=True, seed=3))
    frames = _sample_frames(video)
    temporal = temporal_background(frames)
    # H.264 smooths a little of the noise away; the median of 21 frames adds a little.
    assert 0.75 * noise < sensor_noise(frames, temporal, True) < 1.15 * noise


def test_sensor_noise_does_not_make_the_moving_worms_look_longer(tmp_path):
    # The same plate of crawling worms, sharp with little noise, then blurred with noise of 5 grey levels: specks
    # of noise over delta along a worm's edge grew its centreline spurs, and the worms looked 41 % longer (55.8
    # pixels against 39.5), so that the immobile ones, measured against that, were too short to be worms.
    lengths = []
    for noise, blur in ((2.5, 0.0), (5.0, 1.2)):
        video = tmp_path / f"plate_{noise}.mp4"
        write_simulation(video, SimulationSettings(size=512, n_frames=60, fps=1.0, n_worms=8, immobile_fraction=0.0,
                                                   worm_length=40, noise_sigma=noise, blur_sigma=blur, seed=7))
        frames = _sample_frames(video)
        lengths.append(calibrate_worms(frames, temporal_background(frames), True, 10.0).length)
    assert 0.8 < lengths[1] / lengths[0] < 1.2


def test_worms_that_barely_move_over_the_clip_fall_back_to_the_net(trained_video_model, tmp_path, caplog,
                                                                    tiny_video_settings):
    """A second of video: the worms move a fraction of their length, and their median still holds them."""
    video = tmp_path / "second.mp4"
    write_simulation(video, SimulationSettings(**{**tiny_video_settings, "n_frames": 25, "fps": 25.0,
                                                  "immobile_fraction": 0.0}))
    report: dict = {}
    with caplog.at_level(logging.WARNING):
        cleaner = Cleaner.load(trained_video_model, device="cpu")
        masks = [worms for _, _, worms in cleaner.iter_masks(video, report=report)]
    assert report["background"] == "net" and "moved too little" in report["fallback"]
    assert np.mean([mask.any() for mask in masks]) == 1.0  # the net still finds worms in every frame


def test_each_window_of_a_mask_job_gets_a_background_in_the_output(trained_video_model, structured_plate, tmp_path):
    import json

    import h5py

    from wormclean.predict.pipeline import mask_video
    from wormclean.settings import MaskSettings

    video, truth = structured_plate
    result = mask_video(video, tmp_path / "out.hdf5", MaskSettings(model=str(trained_video_model), bgnd_interval=8))
    assert result.n_frames == 30
    with h5py.File(result.output, "r") as file:
        assert file["bgnd"].shape[0] == 4 and file["bgnd"].attrs["save_interval"] == 8
        report = json.loads(file.attrs["backgrounds"])
        assert json.loads(file.attrs["settings"])["resolved"]["background"] == "fused"
    assert report["background"] == "fused" and [w["start"] for w in report["windows"]] == [0, 8, 16, 24]
    assert all(w["immobile_worm_regions"] >= 3 for w in report["windows"])


def test_12_bit_data_in_16_bit_files_at_the_default_delta_is_said(trained_video_model, structured_plate, tmp_path,
                                                                   caplog):
    """Issue 11 case 3: a 12-bit camera's frames in 16-bit files give no worm at the 16-bit default delta; the
    job says so, with the fix, instead of writing empty masks without a word."""
    from wormclean.predict.pipeline import mask_video
    from wormclean.settings import MaskSettings

    video, _ = structured_plate
    folder = tmp_path / "twelve_bit"
    folder.mkdir()
    with open_video(video) as reader:
        for index, frame in reader.frames():
            cv2.imwrite(str(folder / f"{index:03d}.png"), frame.astype(np.uint16) * 16)
    with caplog.at_level(logging.WARNING):
        result = mask_video(folder, tmp_path / "out.hdf5", MaskSettings(model=str(trained_video_model)))
    assert result.n_frames == 30
    warnings = [record.getMessage() for record in caplog.records if record.levelno == logging.WARNING]
    assert any("no worm found" in message and "--delta 160" in message for message in warnings), warnings


def test_a_worm_lying_along_a_ring_as_dark_as_itself_is_found_where_the_net_removes_the_ring_less():
    # In the temporal background the worm is as dark and thick as the ring it lies along; the net removes the
    # worm whole but only part of the ring, and that is what tells them apart.
    temporal = np.full((120, 160), 200.0, np.float32)
    ring = np.zeros(temporal.shape, np.uint8)
    cv2.circle(ring, (80, 50), 30, 1, thickness=4)
    worm = np.zeros(temporal.shape, np.uint8)
    cv2.polylines(worm, [np.array([[56, 86], [66, 91], [76, 85], [86, 91], [96, 86]], np.int32)], False, 1,
                  thickness=4)
    assert (cv2.dilate(worm, np.ones((3, 3), np.uint8)) & ring).any()  # the worm touches the ring
    temporal[(ring | worm) > 0] = 150.0
    net = np.full_like(temporal, 200.0)
    net[ring > 0] = 175.0  # the net takes half the ring's darkness away, and the whole worm
    net[worm > 0] = 200.0
    fusion = fuse_backgrounds(temporal, net, True, 10.0, _calibrated(temporal))
    assert fusion.n_worms == 1 and fusion.regions[worm > 0].all()
    far = ring.astype(bool) & (np.arange(120)[:, None] < 70)
    assert np.all(fusion.background[far] == 150.0)  # the ring stays


def test_a_change_of_a_worms_size_between_temporal_backgrounds_is_told_from_noise():
    from wormclean.segment.background import worm_sized_change

    rng = np.random.default_rng(4)
    plate = (170 + 20 * cv2.GaussianBlur(rng.normal(0, 1, (200, 200)), (0, 0), 6)).astype(np.float32)
    stats = WormStats(n_blobs=10, area=120.0, width=4.0, length=30.0, contrast=60.0, source="video")

    def median_of_noise(image):
        return (image + rng.normal(0, 1.0, image.shape)).astype(np.float32)

    reference = median_of_noise(plate)
    assert not worm_sized_change(1.1 * median_of_noise(plate), reference, 10, stats)  # noise and flicker
    specks = median_of_noise(plate)
    specks[rng.integers(0, 200, 60), rng.integers(0, 200, 60)] -= 40  # scattered pixels, no blob
    assert not worm_sized_change(specks, reference, 10, stats)
    stopped = median_of_noise(plate)
    cv2.line(stopped, (40, 50), (70, 60), 110.0, 4)  # a worm that stopped
    assert worm_sized_change(stopped, reference, 10, stats)
    assert worm_sized_change(reference, stopped, 10, stats)  # and one that moved off
    small = median_of_noise(plate)
    small[50:53, 50:54] -= 40  # 12 pixels: under half the smallest worm
    assert not worm_sized_change(small, reference, 10, stats)


def _plate_with_a_rod(path, n_frames: int, rod_until: int | None = None):
    """A plate at 0.1 frames/s, so that 30 frames span the 300 s a window's samples are taken over: four worms
    (dark rods) somewhere new in every frame, and a still one at the same place in the frames before
    ``rod_until`` (all when None)."""
    from wormclean.io.writer import EncoderSettings, VideoWriter

    rng = np.random.default_rng(5)
    plate = 170 + 15 * cv2.GaussianBlur(rng.normal(0, 1, (128, 128)), (0, 0), 5)
    with VideoWriter(path, 0.1, EncoderSettings(crf=0, preset="ultrafast")) as writer:
        for index in range(n_frames):
            frame = plate + rng.normal(0, 1.0, plate.shape)
            for _ in range(4):
                x, y = rng.uniform(20, 108, 2)
                angle = rng.uniform(0, np.pi)
                end = (int(x + 12 * np.cos(angle)), int(y + 12 * np.sin(angle)))
                cv2.line(frame, (int(x - 12 * np.cos(angle)), int(y - 12 * np.sin(angle))), end, 110.0, 4)
            if rod_until is None or index < rod_until:
                cv2.line(frame, (30, 40), (55, 50), 110.0, 4)
            writer.write(np.clip(np.rint(frame), 0, 255).astype(np.uint8))
    return path


def _net_runs(cleaner, monkeypatch) -> list[int]:
    """Count the cleaner's runs of the net over whole frames."""
    runs: list[int] = []
    backgrounds = cleaner.backgrounds

    def counted(frames):
        runs.append(len(frames))
        return backgrounds(frames)

    monkeypatch.setattr(cleaner, "backgrounds", counted)
    return runs


@pytest.mark.parametrize("rod_until, net_windows", [(None, [0, 0, 0]), (30, [0, 30, 30])])
def test_a_later_window_keeps_the_nets_immobile_worms_unless_something_of_a_worms_size_changed(
    trained_video_model, tmp_path, monkeypatch, rod_until, net_windows
):
    video = _plate_with_a_rod(tmp_path / "plate.mp4", 90, rod_until)
    cleaner = Cleaner.load(trained_video_model, device="cpu")
    runs = _net_runs(cleaner, monkeypatch)
    report: dict = {}
    masks = list(cleaner.iter_masks(video, 30, report=report))
    assert len(masks) == 90 and report["background"] == "fused"
    assert [w["start"] for w in report["windows"]] == [0, 30, 60]
    assert [w["net_run_at_window"] for w in report["windows"]] == net_windows
    assert len(runs) == len(set(net_windows))  # the net ran once per window it is said to have run for
    # The still rod is found as a worm in every frame while it is there, reused windows included, and not after.
    rod = np.zeros((128, 128), np.uint8)
    cv2.line(rod, (30, 40), (55, 50), 1, 2)
    rod = rod.view(bool)
    found = np.array([worms[rod].mean() > 0.8 for _, _, worms in masks])
    there = np.arange(90) < (90 if rod_until is None else rod_until)
    assert found[there].mean() >= 0.95 and found[~there].sum() <= 0.1 * (~there).sum()


def test_label_medians_are_scipys():
    from scipy import ndimage

    from wormclean.segment.background import label_medians

    rng = np.random.default_rng(6)
    labels = np.zeros((300, 300), np.int32)
    for label in range(1, 41):  # rectangles of odd and even pixel counts, some overlapping others
        top, left = rng.integers(0, 280, 2)
        labels[top : top + rng.integers(1, 20), left : left + rng.integers(1, 20)] = label
    values = rng.normal(0, 10, labels.shape).astype(np.float32)
    values[::7] = np.round(values[::7])  # ties
    present = np.unique(labels[labels > 0])
    assert len(present) > 30
    got = label_medians(values, labels, 45)
    assert np.allclose(got[present - 1], ndimage.median(values, labels, present), rtol=0, atol=1e-5)
    assert np.all(got[np.setdiff1d(np.arange(1, 46), present) - 1] == 0)
