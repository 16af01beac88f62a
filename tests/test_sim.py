"""Synthetic worm videos: the truth must be right, the video must decode to what was rendered."""

from __future__ import annotations

import dataclasses
import os

import av
import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from wormclean.cli import cli
from wormclean.errors import OutputError, SettingsError, VideoError
from wormclean.io.writer import EncoderSettings, VideoWriter
from wormclean.sim import Simulation, SimulationSettings, read_truth, render_video, truth_path, write_simulation
from wormclean.sim.draw import tube_coverage

SETTINGS = SimulationSettings(
    size=(96, 128),
    n_frames=30,
    n_worms=4,
    immobile_fraction=0.5,
    worm_length=36.0,
    worm_width=4.0,
    contrast=40.0,
    speed=0.3,
    noise_sigma=2.0,
    flicker=0.02,
    n_dust=5,
    n_fibres=1,
    seed=3,
)


def decode(path) -> np.ndarray:
    """All frames of a video as ``(n, height, width) uint8``, read the way other modules read videos."""
    with av.open(str(path)) as container:
        return np.stack([frame.to_ndarray(format="gray") for frame in container.decode(video=0)])


@pytest.fixture(scope="module")
def simulated(tmp_path_factory):
    """The standard simulation, rendered in memory and written to a video with its truth file."""
    rendered = list(render_video(SETTINGS))
    frames = np.stack([frame for frame, _ in rendered])
    labels = np.stack([label for _, label in rendered])
    video = write_simulation(tmp_path_factory.mktemp("sim") / "plate.mp4", SETTINGS)
    truth = read_truth(video, in_memory=True)
    return frames, labels, truth, video


def dilate(masks: np.ndarray, pixels: int) -> np.ndarray:
    kernel = np.ones((2 * pixels + 1, 2 * pixels + 1), np.uint8)
    return np.stack([cv2.dilate(mask.astype(np.uint8), kernel) > 0 for mask in masks])


def test_truth_file_holds_what_was_rendered(simulated):
    frames, labels, truth, video = simulated
    assert truth_path(video).is_file() and truth_path(video).name == "plate.truth.h5"
    assert np.array_equal(truth.labels, labels)
    assert truth.labels.dtype == np.uint8 and truth.labels.shape == (30, 96, 128)
    assert truth.background.dtype == np.float32 and truth.background.shape == (96, 128)
    assert truth.immobile.tolist().count(True) == 2
    assert truth.gain.shape == (30,) and 0.02 < truth.gain.std() / 0.02 < 2
    assert SimulationSettings.from_dict(truth.settings) == dataclasses.replace(
        SETTINGS, worm_length=SETTINGS.length_px, worm_width=SETTINGS.width_px
    )
    assert set(np.unique(labels)) == {0, 1, 2, 3, 4}


def test_masks_cover_the_dark_worm_pixels(simulated):
    frames, labels, truth, _ = simulated
    contrast, sigma = SETTINGS.contrast, SETTINGS.noise_sigma
    expected = truth.gain[:, None, None] * truth.background
    darker = expected - frames  # how much darker than the background each pixel is
    inside = labels > 0
    assert np.median(darker[inside]) == pytest.approx(contrast, rel=0.1)
    assert darker[inside].min() > 0.5 * contrast - 5 * sigma - 1
    # Right next to a mask a worm covers at most half of a pixel.
    rim = dilate(inside, 1) & ~inside
    assert darker[rim].max() < 0.5 * contrast * 1.07 + 5 * sigma + 1
    outside = ~dilate(inside, 2)
    assert np.abs(darker[outside]).max() < 5.5 * sigma + 1
    assert darker[outside].std() == pytest.approx(sigma, rel=0.1)


def test_background_without_worms_is_the_saved_one_up_to_noise_and_flicker(simulated):
    frames, labels, truth, _ = simulated
    outside = ~dilate(labels > 0, 2)
    for frame, gain, mask in zip(frames, truth.gain, outside, strict=True):
        measured_gain = np.median(frame[mask] / truth.background[mask])
        assert measured_gain == pytest.approx(gain, abs=0.01)
        residual = frame[mask] - gain * truth.background[mask]
        assert abs(residual.mean()) < 0.3
        assert residual.std() == pytest.approx(SETTINGS.noise_sigma, rel=0.15)


def test_immobile_worms_never_move_and_the_others_do(simulated):
    _, labels, truth, _ = simulated
    for k, immobile in enumerate(truth.immobile):
        worm = labels == k + 1
        assert worm[0].sum() > 40
        if immobile:
            # The same pixels in every frame, except where a later worm crawls over it (a later worm wins).
            place = worm.any(axis=0)
            assert np.array_equal(worm, place & ~(labels > k + 1))
        else:
            overlap = (worm[0] & worm[-1]).sum() / (worm[0] | worm[-1]).sum()
            assert overlap < 0.7, f"mobile worm {k} hardly moved"
            assert sum(not np.array_equal(a, b) for a, b in zip(worm[:-1], worm[1:], strict=True)) > 20


def test_immobile_worm_pixels_change_only_by_noise_and_flicker(simulated):
    frames, labels, truth, _ = simulated
    k = int(np.flatnonzero(truth.immobile)[0])
    worm = labels[0] == k + 1
    values = frames[:, worm] / truth.gain[:, None]
    assert values.std(axis=0).mean() < 1.5 * SETTINGS.noise_sigma


def test_same_seed_same_video_other_seed_other_video():
    small = dataclasses.replace(SETTINGS, n_frames=4)
    first = [frame for frame, _ in render_video(small)]
    again = [frame for frame, _ in render_video(small)]
    other = [frame for frame, _ in render_video(dataclasses.replace(small, seed=4))]
    assert all(np.array_equal(a, b) for a, b in zip(first, again, strict=True))
    assert not np.array_equal(first[0], other[0])
    # Frames differ by their noise at least.
    assert not np.array_equal(first[0], first[1])


def test_encoded_video_decodes_close_to_the_rendered_frames(simulated):
    frames, _, _, video = simulated
    decoded = decode(video)
    assert decoded.shape == frames.shape
    error = decoded.astype(np.float32) - frames
    # A colour-range mistake (limited range read as full) shifts grey levels by up to 20.
    assert abs(error.mean()) < 0.3
    assert np.abs(error).mean() < 2.0
    with av.open(str(video)) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == "h264"
        assert float(stream.average_rate) == pytest.approx(25)
        # Stored full range: even the raw luma plane holds the grey levels.
        frame = next(container.decode(video=0))
        plane = frame.planes[0]
        luma = np.frombuffer(plane, np.uint8).reshape(plane.height, plane.line_size)[:, : plane.width]
        assert np.array_equal(luma, decoded[0])


def test_light_worms_are_brighter_than_a_dark_background():
    light = dataclasses.replace(SETTINGS, n_frames=3, dark_worms=False)
    simulation = Simulation(light)
    for index, (frame, labels) in enumerate(simulation.frames()):
        brighter = frame - simulation.gain[index] * simulation.background
        assert np.median(brighter[labels > 0]) == pytest.approx(light.contrast, rel=0.1)
    assert simulation.background.mean() < 128
    dark = Simulation(dataclasses.replace(light, dark_worms=True))
    assert dark.background.mean() > 128
    np.testing.assert_allclose(simulation.background, 255 - dark.background, atol=1e-3)


def test_blurred_worms_are_still_labelled_where_dark():
    blurred = dataclasses.replace(SETTINGS, n_frames=2, blur_sigma=1.0, noise_sigma=0.0, flicker=0.0)
    simulation = Simulation(blurred)
    frame, labels = next(simulation.frames())
    darker = simulation.background - frame
    assert (labels > 0).sum() > 100
    assert darker[labels > 0].min() > 0.5 * blurred.contrast - 1
    assert darker[~dilate((labels > 0)[None], 1)[0]].max() < 0.5 * blurred.contrast + 1


@pytest.mark.parametrize(
    "change, message",
    [
        (dict(size=(8, 64)), "size"),
        (dict(size="big"), "size"),
        (dict(n_frames=0), "n_frames"),
        (dict(n_frames=2.5), "n_frames"),
        (dict(n_worms=300), "n_worms"),
        (dict(immobile_fraction=1.5), "immobile_fraction"),
        (dict(contrast=0), "contrast"),
        (dict(noise_sigma=-1), "noise_sigma"),
        (dict(flicker=0.5), "flicker"),
        (dict(fps=0), "fps"),
        (dict(worm_length=60.0), "do not fit"),
        (dict(worm_width=12.0), "worm_width"),
        (dict(lawn="yes"), "lawn"),
        (dict(seed=-1), "seed"),
    ],
)
def test_bad_settings_are_refused(change, message):
    with pytest.raises(SettingsError, match=message):
        dataclasses.replace(SETTINGS, **change)


def test_default_worm_size_scales_with_the_frame():
    assert SimulationSettings().length_px == 80 and SimulationSettings().width_px == pytest.approx(80 / 12)
    assert SimulationSettings(size=1024).length_px == 40
    assert SimulationSettings(size=(64, 96)).length_px == 16  # never smaller than 16


def test_randomised_settings_are_varied_valid_and_reproducible():
    drawn = [SimulationSettings.randomised(seed, size=(128, 160), n_frames=20) for seed in range(40)]
    assert drawn[5] == SimulationSettings.randomised(5, size=(128, 160), n_frames=20)
    for name in ("n_worms", "worm_length", "contrast", "noise_sigma", "dark_worms", "lawn", "immobile_fraction"):
        assert len({getattr(settings, name) for settings in drawn}) > 1, name
    assert all(settings.size == (128, 160) and settings.n_frames == 20 for settings in drawn)
    assert all(settings.length_px <= 0.45 * 128 for settings in drawn)
    fixed = SimulationSettings.randomised(5, size=(128, 160), n_frames=20, contrast=33.0, dark_worms=False)
    assert fixed.contrast == 33.0 and not fixed.dark_worms and fixed.noise_sigma == drawn[5].noise_sigma
    with pytest.raises(SettingsError, match="unknown"):
        SimulationSettings.randomised(1, colour="red")
    for settings in drawn[:3]:
        frame, labels = next(render_video(settings))
        assert frame.shape == labels.shape == (128, 160)


def test_tube_coverage_has_the_area_of_the_tube():
    radius, length = 3.0, 40.0
    points = np.stack([np.linspace(10, 10 + length, 30), np.full(30, 20.3)], axis=1)
    coverage, window = tube_coverage(points, np.full(30, radius), (64, 64))
    assert coverage.sum() == pytest.approx(2 * radius * length + np.pi * radius**2, rel=0.02)
    assert coverage.max() == 1.0 and coverage.min() == 0.0
    assert tube_coverage(points + 500, np.full(30, radius), (64, 64)) is None


# ---- the video writer ----


@pytest.mark.parametrize(
    "name, settings, shape, pixel_format",
    [
        ("even.mp4", EncoderSettings(crf=0), (48, 64), "yuv420p"),
        ("odd.mp4", EncoderSettings(crf=0), (47, 63), "gray"),
        ("lossless.mkv", EncoderSettings(codec="ffv1"), (47, 63), "gray"),
    ],
)
def test_lossless_round_trip_keeps_every_grey_level(tmp_path, name, settings, shape, pixel_format):
    ramp = (np.arange(shape[0] * shape[1]) % 256).astype(np.uint8).reshape(shape)
    frames = [ramp, np.ascontiguousarray(ramp[::-1]), 255 - ramp]
    with VideoWriter(tmp_path / name, fps=10, settings=settings) as writer:
        for frame in frames:
            writer.write(frame)
    assert settings.pixel_format_for(*shape) == pixel_format
    assert np.array_equal(decode(tmp_path / name), np.stack(frames))


def test_mjpeg_writes_close_frames(tmp_path):
    rng = np.random.default_rng(0)
    frames = [cv2.GaussianBlur(rng.integers(0, 256, (40, 50), dtype=np.uint8), (0, 0), 2) for _ in range(3)]
    with VideoWriter(tmp_path / "clip.avi", fps=5, settings=EncoderSettings(codec="mjpeg")) as writer:
        for frame in frames:
            writer.write(frame)
    decoded = decode(tmp_path / "clip.avi").astype(np.float32)
    assert decoded.shape == (3, 40, 50)
    assert np.abs(decoded - np.stack(frames)).mean() < 1.0


def test_writer_refuses_bad_settings_and_frames(tmp_path):
    for bad, message in [
        (dict(codec="nope"), "unknown"),
        (dict(crf=60), "crf"),
        (dict(preset="warp"), "preset"),
        (dict(gop=0), "gop"),
        (dict(codec="mjpeg", pixel_format="gray"), "pixel format"),
    ]:
        with pytest.raises(SettingsError, match=message):
            EncoderSettings(**bad)
    with pytest.raises(SettingsError, match="even"):
        EncoderSettings(pixel_format="yuv420p").pixel_format_for(47, 64)
    with VideoWriter(tmp_path / "a.mp4") as writer:
        writer.write(np.zeros((32, 32), np.uint8))
        with pytest.raises(ValueError, match="differs"):
            writer.write(np.zeros((32, 34), np.uint8))
        with pytest.raises(ValueError, match="uint8"):
            writer.write(np.zeros((32, 32), np.float32))
    with pytest.raises(OutputError):
        VideoWriter(tmp_path / "missing" / "a.mp4")


# ---- writing and reading simulations ----


def test_a_failed_simulation_leaves_no_files(tmp_path):
    def interrupt(done):
        if done == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        write_simulation(tmp_path / "plate.mp4", dataclasses.replace(SETTINGS, n_frames=4), progress=interrupt)
    assert os.listdir(tmp_path) == []


def test_existing_outputs_need_overwrite(tmp_path):
    small = dataclasses.replace(SETTINGS, n_frames=2)
    truth_path(tmp_path / "plate.mp4").write_text("old")
    with pytest.raises(OutputError, match="exists"):
        write_simulation(tmp_path / "plate.mp4", small)
    assert not (tmp_path / "plate.mp4").exists()
    write_simulation(tmp_path / "plate.mp4", small, overwrite=True)
    with read_truth(tmp_path / "plate.truth.h5") as truth:
        assert truth.labels.shape == (2, 96, 128)
        assert truth.masks.dtype == bool and truth.masks.any()


def test_read_truth_refuses_missing_and_foreign_files(tmp_path):
    with pytest.raises(VideoError, match="no truth file"):
        read_truth(tmp_path / "absent.mp4")
    (tmp_path / "junk.truth.h5").write_text("not hdf5")
    with pytest.raises(VideoError, match="cannot read"):
        read_truth(tmp_path / "junk.truth.h5")


def run_cli(*arguments):
    return CliRunner().invoke(cli, ["simulate", *map(str, arguments)])


def test_cli_writes_video_and_truth(tmp_path):
    out = tmp_path / "clip.mp4"
    result = run_cli(out, "--size", "64x96", "--frames", "6", "--worms", "3", "--immobile", "0.34", "--length",
                     "24", "--contrast", "50", "--seed", "2", "--light-worms")
    assert result.exit_code == 0, result.output
    assert "Wrote" in result.stdout and "1 immobile" in result.stdout
    assert decode(out).shape == (6, 64, 96)
    with read_truth(out) as truth:
        assert truth.labels.shape == (6, 64, 96)
        assert truth.settings["dark_worms"] is False and truth.settings["contrast"] == 50
        assert truth.immobile.sum() == 1


def test_cli_quiet_prints_nothing(tmp_path):
    result = run_cli(tmp_path / "clip.mp4", "--size", "48", "--frames", "2", "--worms", "1", "-q")
    assert result.exit_code == 0, result.output
    assert result.stdout == "" and result.stderr == ""


def test_cli_refuses_to_replace_without_overwrite(tmp_path):
    out = tmp_path / "clip.mp4"
    out.write_bytes(b"precious")
    result = run_cli(out, "--size", "48", "--frames", "2", "--worms", "1")
    assert result.exit_code == 2
    assert "Error:" in result.stderr and "exists" in result.stderr and "--overwrite" in result.stderr
    assert out.read_bytes() == b"precious"
    assert sorted(os.listdir(tmp_path)) == ["clip.mp4"]
    result = run_cli(out, "--size", "48", "--frames", "2", "--worms", "1", "--overwrite", "-q")
    assert result.exit_code == 0, result.output
    assert decode(out).shape == (2, 48, 48)


def test_cli_errors(tmp_path):
    result = run_cli(tmp_path / "missing" / "clip.mp4", "--size", "48", "--frames", "2")
    assert result.exit_code == 2 and "does not exist" in result.stderr
    result = run_cli(tmp_path / "clip.mp4", "--size", "48", "--immobile", "2")
    assert result.exit_code == 2 and "'--immobile': 2.0 is not in the range" in result.stderr
    result = run_cli(tmp_path / "clip.mp4", "--size", "12x")
    assert result.exit_code == 2 and "HEIGHTxWIDTH" in result.stderr
    assert os.listdir(tmp_path) == []


def test_cli_randomise_and_dry_run(tmp_path):
    result = run_cli(tmp_path / "clip.mp4", "--randomise", "--seed", "7", "--contrast", "25", "--dry-run")
    assert result.exit_code == 0, result.output
    assert "contrast: 25.0" in result.stdout and "size: (256, 256)" in result.stdout
    assert os.listdir(tmp_path) == []


def test_static_structures_only_darken_the_plate():
    from dataclasses import replace

    from wormclean.sim.render import Simulation

    base = SimulationSettings(size=160, n_frames=1, n_worms=0, seed=5)
    plain = Simulation(base).background
    rich = Simulation(replace(base, n_rings=1, n_marks=1, n_tracks=2, dish_edge=True, text=True)).background
    darker = plain - rich
    assert darker.min() >= -1e-3  # drawn on the same plate: the same random plate, only darkened
    assert (darker > 5).mean() > 0.05  # and visibly: a dish edge, a ring, a line, a label
