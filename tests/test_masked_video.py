"""The MaskedVideos HDF5 output, dataset by dataset and attribute by attribute."""

from __future__ import annotations

import importlib.util
import json
import logging
from fractions import Fraction
from pathlib import Path

import av
import cv2
import h5py
import numpy as np
import pytest
import torch

from wormclean.errors import OutputError
from wormclean.io import open_video
from wormclean.io.atomic import FailSafeFile
from wormclean.io.masked_video import MaskedVideoWriter
from wormclean.model.modelfile import Normalisation, load_model, save_model
from wormclean.model.registry import file_sha256
from wormclean.model.unet import UNet, UNetConfig
from wormclean.predict.cleaner import Cleaner
from wormclean.predict.pipeline import mask_video
from wormclean.segment.threshold import dilate
from wormclean.settings import MaskSettings
from wormclean.sim import SimulationSettings, read_truth, write_simulation

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"

IMAGE_ATTRIBUTES = {
    "CLASS": b"IMAGE",
    "IMAGE_SUBCLASS": b"IMAGE_GRAYSCALE",
    "IMAGE_WHITE_IS_ZERO": 0,
    "DISPLAY_ORIGIN": b"UL",
    "IMAGE_VERSION": b"1.2",
}


@pytest.fixture(scope="module")
def model_path(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("model") / "tiny.pt"
    save_model(path, UNet(UNetConfig(width=8, depth=2)), Normalisation(), {"kind": "video", "dark_worms": True})
    return path


@pytest.fixture(scope="module")
def model_path_16bit(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("model16") / "tiny16.pt"
    save_model(path, UNet(UNetConfig(width=8, depth=2)), Normalisation.for_bit_depth(16),
               {"kind": "video", "dark_worms": True})
    return path


def cleaner_with_background(model_path: Path, background: np.ndarray) -> Cleaner:
    """A Cleaner whose 'net' returns a known background, so the masks are known.

    The simulated worms here are about 16 x 2 pixels, below the default --min-area: keep them.
    """
    cleaner = Cleaner(load_model(model_path), device="cpu", min_area=10, background="net")
    cleaner.backgrounds = lambda frames: [background.astype(np.float32) for _ in frames]
    return cleaner


@pytest.fixture(scope="module")
def simulated(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("sim") / "plate.mp4"
    write_simulation(path, SimulationSettings(size=(64, 96), n_frames=12, n_worms=3, seed=3))
    return path


def check_image_dataset(dataset, shape, fps=25.0, microns_per_pixel=None, light=1):
    assert dataset.shape == shape and dataset.dtype == np.uint8
    assert dataset.chunks == (1,) + shape[1:] and dataset.compression == "gzip"
    for key, value in IMAGE_ATTRIBUTES.items():
        assert dataset.attrs[key] == value, key
    assert dataset.attrs["expected_fps"] == fps
    assert dataset.attrs["time_units"] == "seconds"
    assert dataset.attrs["is_light_background"] == light
    if microns_per_pixel is None:  # Tierpsy's "unknown"
        assert dataset.attrs["microns_per_pixel"] == 1.0 and dataset.attrs["xy_units"] == "pixels"
    else:
        assert dataset.attrs["microns_per_pixel"] == microns_per_pixel
        assert dataset.attrs["xy_units"] == "micrometers"


def test_layout_dataset_by_dataset(tmp_path, simulated, model_path):
    truth = read_truth(simulated, in_memory=True)
    cleaner = cleaner_with_background(model_path, truth.background)
    settings = MaskSettings(model=str(model_path), bgnd_interval=4, save_interval=5, dilation=2, microns_per_pixel=10.0)
    output = tmp_path / "plate.hdf5"
    result = mask_video(simulated, output, settings, cleaner)
    assert result.n_frames == 12 and result.broken_at is None and result.output == output
    with open_video(simulated) as reader:
        frames = [frame for _, frame in reader.frames()]
    worms = [cleaner.segment(frame, truth.background) for frame in frames]
    assert sum(mask.sum() for mask in worms) > 200  # there is something to check

    with h5py.File(output, "r") as file:
        names = set()
        file.visititems(lambda name, item: names.add(name) if isinstance(item, h5py.Dataset) else None)
        assert names == {"mask", "full_data", "bgnd", "worm_mask", "mean_intensity", "timestamp/raw", "timestamp/time",
                         "video_metadata", "worm_blobs", "provenance_tracking/COMPRESS"}  # fmt: skip

        mask = file["mask"]
        check_image_dataset(mask, (12, 64, 96), microns_per_pixel=10.0)
        for index, (frame, worm) in enumerate(zip(frames, worms)):
            kept = dilate(worm, 2)
            np.testing.assert_array_equal(mask[index][kept], np.maximum(frame, 1)[kept])
            assert not mask[index][~kept].any()
            assert (mask[index][kept] >= 1).all()  # 0 is Tierpsy's "no data"

        worm_mask = file["worm_mask"]
        assert worm_mask.shape == (12, 64, 96) and worm_mask.dtype == np.uint8
        assert worm_mask.chunks == (1, 64, 96) and worm_mask.compression == "gzip"
        np.testing.assert_array_equal(worm_mask[...], np.stack(worms).astype(np.uint8))

        full = file["full_data"]
        check_image_dataset(full, (3, 64, 96), microns_per_pixel=10.0)
        assert full.attrs["save_interval"] == 5
        np.testing.assert_array_equal(full[...], np.maximum(np.stack([frames[0], frames[5], frames[10]]), 1))

        bgnd = file["bgnd"]
        check_image_dataset(bgnd, (3, 64, 96), microns_per_pixel=10.0)
        assert bgnd.attrs["save_interval"] == 4
        expected_background = np.clip(np.rint(truth.background), 0, 255).astype(np.uint8)
        np.testing.assert_array_equal(bgnd[...], np.stack([expected_background] * 3))

        mean = file["mean_intensity"]
        assert mean.shape == (12,) and mean.dtype == np.float32
        np.testing.assert_allclose(mean[...], [np.maximum(frame, 1).mean() for frame in frames], rtol=1e-5)
        np.testing.assert_array_equal(file["timestamp/raw"][...], np.arange(12))
        np.testing.assert_allclose(file["timestamp/time"][...], np.arange(12) / 25.0)

        attrs = file.attrs
        assert attrs["n_frames"] == 12 and attrs["broken_at"] == -1
        assert attrs["source_video"] == str(simulated.resolve())
        stored_settings = json.loads(attrs["settings"])
        assert stored_settings["bgnd_interval"] == "4" and stored_settings["dilation"] == 2
        assert stored_settings["resolved"]["bgnd_interval_frames"] == 4
        assert stored_settings["resolved"]["delta"] == 10.0 and stored_settings["resolved"]["dark_worms"] is True
        model = json.loads(attrs["model"])
        assert model["path"] == str(model_path.resolve()) and model["sha256"] == file_sha256(model_path)
        assert model["metadata"]["kind"] == "video"

    with open_video(output) as reader:  # our own Tierpsy reader reads it back as a video
        assert reader.n_frames == 12 and reader.fps == 25.0


def write_png_sequence(folder: Path, frames: list[np.ndarray]) -> Path:
    folder.mkdir()
    for index, frame in enumerate(frames):
        assert cv2.imwrite(str(folder / f"frame{index:03d}.png"), frame)
    return folder


def drawn_frames(n_frames: int, dtype=np.uint8, level=180):
    """A flat plate with one dark bar moving right: frames and the background."""
    scale = 257 if dtype == np.uint16 else 1
    background = np.full((40, 60), level * scale, np.float32)
    frames = []
    for index in range(n_frames):
        frame = background.copy()
        frame[10:14, 5 + 2 * index : 25 + 2 * index] -= 60 * scale
        frames.append(frame.astype(dtype))
    return frames, background


def test_a_broken_video_keeps_every_frame_before_the_break(tmp_path, model_path, caplog):
    frames, background = drawn_frames(10)
    folder = write_png_sequence(tmp_path / "frames", frames)
    (folder / "frame006.png").write_bytes(b"not a png")
    output = tmp_path / "broken.hdf5"
    with caplog.at_level(logging.WARNING):
        result = mask_video(
            folder, output, MaskSettings(bgnd_interval=3), cleaner_with_background(model_path, background)
        )
    assert result.n_frames == 6 and result.broken_at == 6
    assert "breaks at frame 6 of 10: masks written for frames 0-5 only" in caplog.text
    with h5py.File(output, "r") as file:
        assert file["mask"].shape == (6, 40, 60) and file["worm_mask"].shape == (6, 40, 60)
        assert file["bgnd"].shape == (2, 40, 60)  # frames 0 and 3; 6 is past the break
        assert file.attrs["n_frames"] == 6 and file.attrs["broken_at"] == 6
        assert all(file["worm_mask"][index].sum() == 80 for index in range(6))
        # Image folders carry no times: frame numbers and index / fps, said so.
        metadata = file["video_metadata"]
        assert metadata.attrs["timestamp_source"] == "frame_number" and metadata.attrs["time_base"] == "1/25"
        np.testing.assert_array_equal(metadata["best_effort_timestamp"], np.arange(6))
        np.testing.assert_allclose(metadata["best_effort_timestamp_time"], np.arange(6) / 25)
        np.testing.assert_array_equal(file["timestamp/raw"][...], np.arange(6))
        assert len(file["worm_blobs"]) == 6 and (file["worm_blobs"]["area"] == 80).all()
        assert "provenance_tracking/COMPRESS" in file


def test_16bit_video_is_stored_in_8_bits_with_the_raw_full_frames(tmp_path, model_path_16bit):
    frames, background = drawn_frames(6, dtype=np.uint16)
    folder = write_png_sequence(tmp_path / "frames16", frames)
    output = tmp_path / "deep.hdf5"
    cleaner = cleaner_with_background(model_path_16bit, background)
    mask_video(folder, output, MaskSettings(save_interval=4), cleaner)
    with h5py.File(output, "r") as file:
        for name in ("mask", "full_data", "bgnd"):
            assert file[name].dtype == np.uint8
        raw = file["full_data_raw"]
        assert raw.dtype == np.uint16 and raw.attrs["save_interval"] == 4
        np.testing.assert_array_equal(raw[...], np.stack([frames[0], frames[4]]))
        ranges = file["normalization_range"][...]
        assert ranges.shape == (6, 2) and (ranges == ranges[0]).all()
        low, high = ranges[0]
        worm = file["worm_mask"][0].astype(bool)
        assert worm.sum() == 80  # the default delta is scaled to 16 bits: 60 x 257 levels of contrast
        expected = np.rint((frames[0].astype(np.float64) - low) * 255 / (high - low))
        np.testing.assert_allclose(file["mask"][0][worm], np.clip(expected[worm], 1, 255), atol=1)
        # The 8-bit map comes from the first frame (worms included), not from the worm-free background that
        # is computed before it: the worms are not clipped, and the background uses the same map.
        assert file["mask"][0][worm].min() > 1
        expected_background = np.rint((background.astype(np.float64) - low) * 255 / (high - low))
        np.testing.assert_allclose(file["bgnd"][0], np.clip(expected_background, 0, 255), atol=1)


def test_writer_grows_and_trims_and_needs_frames_in_order(tmp_path):
    path = tmp_path / "grow.hdf5"
    frame = np.full((8, 12), 100, np.uint8)
    worms = np.zeros((8, 12), bool)
    worms[2:4, 3:9] = True
    writer = MaskedVideoWriter(path, 8, 12, fps=None, bit_depth=8, is_light_background=False,
                               save_interval=10, bgnd_interval=7, expected_frames=2)  # fmt: skip
    for index in range(40):
        writer.write(index, frame, worms, worms)
    with pytest.raises(ValueError, match="in order: expected 40, got 41"):
        writer.write(41, frame, worms, worms)
    writer.write_background(0, np.full((8, 12), 99.6, np.float32))
    with pytest.raises(ValueError, match="out of order"):
        writer.write_background(14, frame)
    writer.close(broken_at=None)
    with h5py.File(path, "r") as file:
        assert file["mask"].shape[0] == file["worm_mask"].shape[0] == file["mean_intensity"].shape[0] == 40
        assert file["full_data"].shape[0] == 4 and file["bgnd"].shape[0] == 1 and file["bgnd"][0, 0, 0] == 100
        assert file["mask"].attrs["time_units"] == "frames" and file["mask"].attrs["expected_fps"] == 1
        assert file["mask"].attrs["is_light_background"] == 0
        assert np.isnan(file["timestamp/time"][...]).all()
        assert file.attrs["n_frames"] == 40


def test_a_writer_stopped_while_laying_out_its_file_closes_it(tmp_path, monkeypatch):
    # A stop signal can come while the datasets are being made: the HDF5 file must not stay open, or it is
    # flushed into its closed Python file when collected at exit, and HDF5 crashes the process there.
    import wormclean.io.masked_video as masked_video

    def stopped(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(masked_video, "_table_dataset", stopped)
    before = len(h5py.h5f.get_obj_ids())
    with FailSafeFile(tmp_path / "stopped.hdf5") as file, pytest.raises(KeyboardInterrupt) as stop:
        MaskedVideoWriter(file, 8, 12, fps=25, bit_depth=8, is_light_background=True, save_interval=10,
                          bgnd_interval=7, expected_frames=2)  # fmt: skip
    assert stop.tb is not None  # the traceback, and with it the half-made writer, is still held here
    assert len(h5py.h5f.get_obj_ids()) == before


def test_writer_keeps_every_row_across_its_blocks(tmp_path):
    # More frames and blobs than one block of buffered rows (1024): all are written, in order.
    path = tmp_path / "rows.hdf5"
    frame = np.full((8, 12), 100, np.uint8)
    writer = MaskedVideoWriter(path, 8, 12, fps=25.0, bit_depth=8, is_light_background=True,
                               save_interval=500, bgnd_interval=500, expected_frames=10)  # fmt: skip
    for index in range(1500):
        worms = np.zeros((8, 12), bool)
        worms[1, index % 12] = worms[5:7, 2:4] = True
        writer.write(index, frame + index % 7, worms, worms)
    writer.close()
    with h5py.File(path, "r") as file:
        np.testing.assert_array_equal(file["mean_intensity"][...], 100 + np.arange(1500) % 7)
        np.testing.assert_array_equal(file["timestamp/raw"][...], np.arange(1500))
        np.testing.assert_array_equal(file["video_metadata"]["best_effort_timestamp_time"], np.arange(1500) / 25)
        blobs = file["worm_blobs"][...]
        assert len(blobs) == file["worm_blobs"].attrs["NROWS"] == 3000
        np.testing.assert_array_equal(blobs["frame_number"], np.repeat(np.arange(1500), 2))
        np.testing.assert_array_equal(blobs["coord_x"][::2], np.arange(1500) % 12)


def test_masking_in_boxes_equals_masking_the_whole_frame(tmp_path):
    from wormclean.segment.blobs import outer_contours
    from wormclean.segment.threshold import grown_boxes

    rng = np.random.default_rng(12)
    frames = [rng.integers(0, 256, (60, 70)).astype(np.uint8) for _ in range(6)]  # zeros among them: stored as 1
    masks = [rng.random((60, 70)) < 0.01 for _ in frames]
    paths = {boxes: tmp_path / f"boxes_{boxes}.hdf5" for boxes in (False, True, "grown")}
    for boxes, path in paths.items():
        with MaskedVideoWriter(path, 60, 70, fps=25.0, bit_depth=8, is_light_background=True,
                               save_interval=1, bgnd_interval=10) as writer:  # fmt: skip
            for index, (frame, worms) in enumerate(zip(frames, masks)):
                radius = index % 3  # 0 included: the boxes are the blobs' own
                contours = outer_contours(worms)
                keep_boxes = grown_boxes(contours, radius, worms.shape) if boxes else None
                keep = radius if boxes == "grown" else dilate(worms, radius)  # grown box by box
                writer.write(index, frame, worms, keep, contours, keep_boxes)
    with (h5py.File(paths[False], "r") as whole, h5py.File(paths[True], "r") as boxed,
          h5py.File(paths["grown"], "r") as grown):  # fmt: skip
        for name in ("mask", "full_data", "worm_mask", "mean_intensity", "worm_blobs"):
            np.testing.assert_array_equal(whole[name][...], boxed[name][...])
            np.testing.assert_array_equal(whole[name][...], grown[name][...])
        expected = [np.float32(cv2.mean(np.maximum(frame, 1))[0]) for frame in frames]
        np.testing.assert_array_equal(boxed["mean_intensity"][...], expected)
        assert boxed["mask"][...].any() and (boxed["full_data"][...] >= 1).all()


def test_a_write_error_leaves_no_output_and_no_threads(tmp_path, simulated, model_path, monkeypatch):
    import threading

    cleaner = cleaner_with_background(model_path, read_truth(simulated, in_memory=True).background)
    original = MaskedVideoWriter.write

    def failing(self, index, *args):
        if index == 5:
            raise OSError(28, "No space left on device")
        original(self, index, *args)

    monkeypatch.setattr(MaskedVideoWriter, "write", failing)
    before = threading.active_count()
    with pytest.raises(OutputError, match=r"cannot write .*full\.hdf5: No space left on device"):
        mask_video(simulated, tmp_path / "full.hdf5", MaskSettings(bgnd_interval=100), cleaner)
    assert sorted(path.name for path in tmp_path.iterdir()) == []
    assert threading.active_count() == before


# --- Tierpsy reads it -------------------------------------------------------------------------------------
# What Tierpsy Tracker (ver228/tierpsy-tracker, its steps from TRAJ_CREATE on) reads from a MaskedVideos file,
# done here with h5py the way its code does it with PyTables; the functions named are Tierpsy's.


def tierpsy_has_finished(file: h5py.File, point: str) -> bool:
    """processing/CheckFinished.py: a step is done when /provenance_tracking holds a node named after it."""
    return "provenance_tracking" in file and point in file["provenance_tracking"]


def tierpsy_attr(file: h5py.File, name: str, default):
    """helper/params/read_attrs.py AttrReader._read_attr: from the first of /mask, /trajectories_data, ..."""
    return file["mask"].attrs.get(name, default)


def tierpsy_timestamps(file: h5py.File) -> tuple[np.ndarray, np.ndarray]:
    """analysis/compress/extractMetaData.py get_timestamp and _correct_timestamp."""
    rows = file["video_metadata"][...]
    assert abs(file["mask"].shape[0] - len(rows)) <= 2, "Tierpsy would drop the timestamps (all NaN)"
    timestamp = rows["best_effort_timestamp"].astype(int)
    steps = np.diff(rows["best_effort_timestamp"])
    step = np.min(steps[steps > 0])
    return (timestamp / step if step != 1 else timestamp), rows["best_effort_timestamp_time"]


def check_tierpsy_reads(file: h5py.File, fps: float, microns_per_pixel: float | None, light: bool) -> None:
    """Everything Tierpsy's tracking steps rely on in a file that COMPRESS made."""
    n_frames, height, width = file["mask"].shape
    assert tierpsy_has_finished(file, "COMPRESS") and not tierpsy_has_finished(file, "TRAJ_CREATE")
    node = file["provenance_tracking/COMPRESS"]
    # trackProvenance.execThisPoint: a PyTables array of JSON bytes, read back with node.read().decode()
    assert node.shape == () and node.attrs["CLASS"] == b"ARRAY" and node.attrs["FLAVOR"] == b"python"
    provenance = json.loads(node[()].decode("utf-8"))
    assert set(provenance) >= {"func_name", "func_arguments", "pkgs_versions", "cmd_original"}
    arguments = json.loads(provenance["func_arguments"])
    assert arguments["settings"]["wormclean_version"] == provenance["pkgs_versions"]["wormclean"]

    # read_attrs: fps from the timestamps (1 / median step, at least 1), units from /mask's attributes
    assert tierpsy_attr(file, "expected_fps", 1) == fps
    assert tierpsy_attr(file, "time_units", None) == "seconds"
    assert 1 / np.nanmedian(np.diff(file["timestamp/time"][...])) == pytest.approx(fps)
    expected_pixel = (microns_per_pixel, "micrometers") if microns_per_pixel else (1.0, "pixels")
    assert (tierpsy_attr(file, "microns_per_pixel", 1), tierpsy_attr(file, "xy_units", None)) == expected_pixel
    assert tierpsy_attr(file, "is_light_background", 1) == int(light)

    # the timestamps Tierpsy copies into its results (read_and_save_timestamp), and ours agree with them
    timestamp, timestamp_time = tierpsy_timestamps(file)
    assert not np.isnan(timestamp).any() and not np.isnan(timestamp_time).any()
    np.testing.assert_array_equal(file["timestamp/raw"][...], timestamp)
    np.testing.assert_array_equal(file["timestamp/time"][...], timestamp_time)
    for name in ("video_metadata", "worm_blobs"):  # PyTables opens compound datasets marked so as tables
        table = file[name]
        assert table.attrs["CLASS"] == b"TABLE" and table.attrs["NROWS"] == len(table)
        assert [table.attrs[f"FIELD_{i}_NAME"].decode() for i in range(len(table.dtype))] == list(table.dtype.names)

    # images: uint8 with 0 as "no data"; full frames and backgrounds indexed by frame // save_interval
    for name in ("mask", "full_data", "bgnd"):
        assert file[name].dtype == np.uint8 and file[name].shape[1:] == (height, width)
        assert file[name].attrs["CLASS"] == b"IMAGE"
    assert len(file["full_data"]) == -(-n_frames // file["full_data"].attrs["save_interval"])
    # BackgroundSubtractorPrecalculated (is_full_bgnd_subtraction): bgnd[frame // save_interval] for every frame
    assert (n_frames - 1) // file["bgnd"].attrs["save_interval"] < len(file["bgnd"])
    assert file["mean_intensity"].shape == (n_frames,)


def test_tierpsy_reads_every_dataset_and_attribute_it_needs(tmp_path, simulated, model_path):
    truth = read_truth(simulated, in_memory=True)
    output = tmp_path / "plate.hdf5"
    settings = MaskSettings(bgnd_interval=5, dilation=2)
    mask_video(simulated, output, settings, cleaner_with_background(model_path, truth.background),
               command_line="wormclean mask plate.mp4 -o plate.hdf5")  # fmt: skip
    with av.open(str(simulated)) as container:  # the truth: the container's own packet timestamps
        stream = container.streams.video[0]
        packet_pts = sorted(packet.pts for packet in container.demux(stream) if packet.size)
        time_base = stream.time_base
    with h5py.File(output, "r") as file:
        check_tierpsy_reads(file, fps=25.0, microns_per_pixel=None, light=True)
        provenance = json.loads(file["provenance_tracking/COMPRESS"][()])
        assert provenance["cmd_original"] == "wormclean mask plate.mp4 -o plate.hdf5"
        assert json.loads(provenance["func_arguments"])["settings"]["bgnd_interval"] == "5"
        metadata = file["video_metadata"]
        assert metadata.attrs["timestamp_source"] == "container" and metadata.attrs["time_base"] == str(time_base)
        np.testing.assert_array_equal(metadata["best_effort_timestamp"], packet_pts)
        np.testing.assert_allclose(metadata["best_effort_timestamp_time"], np.asarray(packet_pts) * float(time_base))
        # the blob table says what /worm_mask holds, frame by frame
        blobs = file["worm_blobs"][...]
        assert len(blobs) >= 12
        for index in range(12):
            count, _, stats, centroids = cv2.connectedComponentsWithStats(file["worm_mask"][index], connectivity=8)
            rows = blobs[blobs["frame_number"] == index]
            assert sorted(rows["area"]) == sorted(stats[1:, cv2.CC_STAT_AREA])
            np.testing.assert_allclose(np.sort(rows["coord_x"]), np.sort(centroids[1:, 0]), atol=1e-3)
            assert sorted(rows["bounding_box_xmin"]) == sorted(stats[1:, cv2.CC_STAT_LEFT])


def write_variable_rate_video(path: Path, frames: list[np.ndarray], pts: list[int], time_base: Fraction) -> Path:
    """Lossless FFV1 in Matroska with the given presentation timestamps (a camera that drops frames)."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream("ffv1", rate=25)
        stream.height, stream.width = frames[0].shape
        stream.pix_fmt = "gray"
        stream.codec_context.time_base = time_base
        for image, stamp in zip(frames, pts):
            frame = av.VideoFrame.from_ndarray(image, format="gray")
            frame.pts, frame.time_base = stamp, time_base
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    return path


def test_variable_frame_rate_keeps_the_real_times(tmp_path, model_path):
    frames, background = drawn_frames(6)
    pts = [0, 40, 80, 200, 240, 280]  # ms: frames 3 and 4 were dropped
    video = write_variable_rate_video(tmp_path / "dropped.mkv", frames, pts, Fraction(1, 1000))
    output = tmp_path / "dropped.hdf5"
    mask_video(video, output, MaskSettings(), cleaner_with_background(model_path, background))
    with h5py.File(output, "r") as file:
        metadata = file["video_metadata"]
        assert metadata.attrs["timestamp_source"] == "container"
        np.testing.assert_allclose(metadata["best_effort_timestamp_time"], np.array(pts) / 1000)
        np.testing.assert_array_equal(file["timestamp/raw"][...], [0, 1, 2, 5, 6, 7])  # gaps: dropped frames
        np.testing.assert_allclose(file["timestamp/time"][...], np.array(pts) / 1000)
        timestamp, _ = tierpsy_timestamps(file)
        np.testing.assert_array_equal(timestamp, [0, 1, 2, 5, 6, 7])


def test_the_tracker_example_reads_the_blob_table_back(tmp_path, simulated, capsys):
    spec = importlib.util.spec_from_file_location("python_before_tracker", EXAMPLES / "python_before_tracker.py")
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    output = tmp_path / "plate.hdf5"
    blobs = example.main(str(simulated), str(output), every=5)  # the shipped default model
    with h5py.File(output, "r") as file:
        table, worm_mask = file["worm_blobs"][...], file["worm_mask"][...]
    assert sum(len(rows) for rows in blobs.values()) == len(table) > 0
    for index, rows in blobs.items():
        assert (rows["frame_number"] == index).all()
        assert rows["area"].sum() == worm_mask[index].sum()  # hole-free blobs: every worm pixel, once
    printed = capsys.readouterr().out.splitlines()
    assert [line.split(" worms")[0] for line in printed] == [
        f"frame {index}: {len(blobs.get(index, []))}" for index in (0, 5, 10)
    ]
