"""Video readers: every source kind against what was written, random access, and bad input."""

from __future__ import annotations

import logging
import os
import threading
from fractions import Fraction
from pathlib import Path

import av
import cv2
import h5py
import numpy as np
import pytest
import tifffile

from wormclean.errors import VideoError
from wormclean.io import VIDEO_SUFFIXES, VideoInfo, VideoReader, find_videos, open_video


# --- helpers ----------------------------------------------------------------------------------------------
def make_frames(n: int, height: int = 48, width: int = 64, dtype=np.uint8, colour: bool = False) -> list[np.ndarray]:
    """Smooth frames (a bright blob moving over a gradient, levels about 20-230) that lossy codecs keep well.

    The levels span most of the range, so reading limited-range video as full range (or the reverse) shows
    as an error of several grey levels.
    """
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    frames = []
    for i in range(n):
        centre_x, centre_y = (8 + 3 * i) % width, height / 2 + 6 * np.sin(i / 3)
        blob = 150 * np.exp(-((x - centre_x) ** 2 + (y - centre_y) ** 2) / (2 * 6.0**2))
        image = 20 + 80 * x / width + 20 * y / height + blob
        if colour:
            image = np.stack([image, 0.7 * image + 20, 230 - 0.8 * image], axis=-1)
        scale = 257 if dtype == np.uint16 else 1
        frames.append(np.clip(np.round(image * scale), 0, 255 * scale).astype(dtype))
    return frames


def write_video(
    path: Path,
    frames: list[np.ndarray],
    codec: str,
    pix_fmt: str,
    fps: int = 25,
    gop: int | None = None,
    container_format: str | None = None,
    options: dict | None = None,
) -> Path:
    """Encode ``frames`` (grey uint8/uint16 or RGB uint8) with PyAV; sizes must suit ``pix_fmt``."""
    with av.open(str(path), "w", format=container_format) as container:
        stream = container.add_stream(codec, rate=fps, options=options or {})
        stream.height, stream.width = frames[0].shape[:2]
        stream.pix_fmt = pix_fmt
        if gop:
            stream.codec_context.gop_size = gop
        for image in frames:
            kind = "rgb24" if image.ndim == 3 else "gray16le" if image.dtype == np.uint16 else "gray"
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format=kind)):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def packet_spans(path: Path) -> list[tuple[int, int]]:
    """(byte offset, size) of each video packet, for damaging a file on purpose."""
    with av.open(str(path)) as container:
        return [(packet.pos, packet.size) for packet in container.demux(video=0) if packet.size]


def read_all(reader: VideoReader) -> list[np.ndarray]:
    return [frame for _, frame in reader.frames()]


def mean_abs_error(got: list[np.ndarray], expected: list[np.ndarray]) -> float:
    return float(np.mean([np.abs(a.astype(np.float64) - b).mean() for a, b in zip(got, expected, strict=True)]))


X265_QUIET = {"x265-params": "log-level=none"}

# name, codec, pix_fmt, container format, encoder options, lossless
FORMATS = [
    ("h264.mp4", "libx264", "yuv420p", None, {}, False),
    ("hevc.mkv", "libx265", "yuv420p", None, X265_QUIET, False),
    ("mjpeg.avi", "mjpeg", "yuvj420p", None, {}, False),
    ("mpeg4.avi", "mpeg4", "yuv420p", None, {"b": "4M"}, False),
    ("mpeg4.mov", "mpeg4", "yuv420p", None, {"b": "4M"}, False),
    ("mpeg1.mpg", "mpeg1video", "yuv420p", None, {"b": "4M"}, False),
    ("mpeg2.mpg", "mpeg2video", "yuv420p", None, {"b": "4M"}, False),
    ("ffv1.mkv", "ffv1", "gray", None, {}, True),
    ("ffv1.avi", "ffv1", "gray", None, {}, True),
    ("raw.mjpg", "mjpeg", "yuvj420p", "mjpeg", {}, False),
]


# --- video files ------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("name", "codec", "pix_fmt", "container_format", "options", "lossless"), FORMATS)
def test_video_formats_read_back_what_was_written(tmp_path, name, codec, pix_fmt, container_format, options, lossless):
    frames = make_frames(12)
    path = write_video(tmp_path / name, frames, codec, pix_fmt, container_format=container_format, options=options)
    with open_video(path) as reader:
        got = read_all(reader)
        assert reader.n_frames == 12 and len(got) == 12
        assert (reader.height, reader.width) == (48, 64)
        assert reader.fps == 25 and reader.bit_depth == 8 and reader.dtype == np.uint8
        assert reader.info.codec == codec.removeprefix("lib").replace("x264", "h264").replace("x265", "hevc")
        assert reader.broken_at is None
    for frame in got:
        assert frame.shape == (48, 64) and frame.dtype == np.uint8 and frame.flags["C_CONTIGUOUS"]
    if lossless:
        assert all(np.array_equal(a, b) for a, b in zip(got, frames))
    else:  # reading limited range as full (or the reverse) is off by about 8 levels on average
        assert mean_abs_error(got, frames) < 2.5
        assert abs(np.mean([a.mean() - b.mean() for a, b in zip(got, frames)])) < 1.5


def test_ffv1_16_bit_is_read_as_uint16_exactly(tmp_path):
    frames = make_frames(6, dtype=np.uint16)
    frames[0][0, 0], frames[0][0, 1] = 1, 65535  # low and high bits survive
    with open_video(write_video(tmp_path / "deep.mkv", frames, "ffv1", "gray16le")) as reader:
        assert reader.bit_depth == 16 and reader.dtype == np.uint16
        got = read_all(reader)
    assert all(frame.dtype == np.uint16 and np.array_equal(frame, expected) for frame, expected in zip(got, frames))


def test_limited_range_grey_is_expanded(tmp_path):
    """x265 stores grey frames flagged limited range: 16-235 must come back as 0-255."""
    frames = make_frames(5)
    limited = [np.round(16 + frame * (219 / 255)).astype(np.uint8) for frame in frames]
    path = write_video(tmp_path / "grey.mkv", limited, "libx265", "gray", options=X265_QUIET)
    with av.open(str(path)) as container:
        assert container.streams.video[0].codec_context.color_range == 1  # MPEG, limited
    with open_video(path) as reader:
        assert mean_abs_error(read_all(reader), frames) < 2.0


def test_colour_video_is_read_as_luma(tmp_path):
    frames = make_frames(6, colour=True)
    with open_video(write_video(tmp_path / "colour.mp4", frames, "libx264", "yuv420p")) as reader:
        got = read_all(reader)
    assert got[0].shape == (48, 64)
    assert mean_abs_error(got, [cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY) for frame in frames]) < 2.5


def test_odd_sizes(tmp_path):
    frames = make_frames(5, height=221, width=255)
    with open_video(write_video(tmp_path / "odd.mkv", frames, "ffv1", "gray")) as reader:
        assert (reader.width, reader.height) == (255, 221)
        assert all(np.array_equal(a, b) for a, b in zip(read_all(reader), frames))
    with open_video(write_video(tmp_path / "odd.avi", frames, "mjpeg", "yuvj420p")) as reader:
        got = read_all(reader)
        assert (reader.width, reader.height) == (255, 221) and got[0].shape == (221, 255)
        assert got[0].flags["C_CONTIGUOUS"] and mean_abs_error(got, frames) < 2.5


def test_real_tierpsy_clip(test_data):
    """MPEG-1 in AVI, grey stored as colour; its masked background is 0 only when the range is right."""
    with open_video(test_data / "tierpsy_clip" / "test.avi") as reader:
        assert (reader.n_frames, reader.width, reader.height, reader.fps) == (563, 128, 96, 15)
        assert reader.bit_depth == 8 and reader.info.duration == pytest.approx(563 / 15)
        count, zeros = 0, 0.0
        for frame in reader:
            assert frame.shape == (96, 128) and frame.dtype == np.uint8
            count += 1
            zeros += (frame == 0).mean()
        assert count == 563 and reader.broken_at is None
        assert zeros / count > 0.8


def test_real_wormtracer_clip(test_data):
    """MJPEG in AVI: the last 100 of WormTracer's 1500 frames, stream-copied (tests/data/README.md)."""
    with open_video(test_data / "wormtracer" / "WT_grayscale_1400-1499.avi") as reader:
        assert (reader.n_frames, reader.width, reader.height) == (100, 255, 221)
        assert reader.info.codec == "mjpeg" and reader.fps > 0
        frames = dict(reader.frames(90))
        assert sorted(frames) == list(range(90, 100))
        assert frames[99].shape == (221, 255) and frames[99].max() > 60  # a bright worm, dark background
        assert np.array_equal(reader[95], frames[95])


def test_raw_mjpeg_has_no_header_count_and_is_counted(tmp_path):
    path = write_video(tmp_path / "raw.mjpg", make_frames(17), "mjpeg", "yuvj420p", container_format="mjpeg")
    with av.open(str(path)) as container:
        assert container.streams.video[0].frames == 0  # nothing to trust in the header
    with open_video(path) as reader:
        assert reader.n_frames == 17 == len(read_all(reader))


# --- random access ----------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def gop_videos(tmp_path_factory) -> dict[str, Path]:
    """40-frame videos with a keyframe every 5 or 6 frames, B-frames where the codec has them."""
    folder = tmp_path_factory.mktemp("gop")
    frames = make_frames(40)
    return {
        "h264": write_video(folder / "gop.mp4", frames, "libx264", "yuv420p", gop=5),
        "mpeg2-ps": write_video(folder / "gop.mpg", frames, "mpeg2video", "yuv420p", gop=6, options={"bf": "2"}),
        "mpeg4-avi": write_video(folder / "gop.avi", frames, "mpeg4", "yuv420p", gop=6, options={"bf": "2"}),
        "hevc": write_video(
            folder / "gop.mkv", frames, "libx265", "yuv420p", options={"x265-params": "keyint=5:log-level=none"}
        ),
        "raw-mjpeg": write_video(folder / "gop.mjpg", frames, "mjpeg", "yuvj420p", container_format="mjpeg"),
    }


@pytest.mark.parametrize("kind", ["h264", "mpeg2-ps", "mpeg4-avi", "hevc", "raw-mjpeg"])
def test_read_equals_sequential_decoding(gop_videos, kind):
    with open_video(gop_videos[kind]) as reader:
        sequential = read_all(reader)
        assert len(sequential) == 40
        rng = np.random.default_rng(7)
        for _ in range(4):
            wanted = rng.choice(40, size=8).tolist()  # unsorted, with repeats
            got = list(reader.read(wanted))
            assert [index for index, _ in got] == sorted(set(wanted))
            assert all(np.array_equal(frame, sequential[index]) for index, frame in got)
        assert [i for i, _ in reader.read([39, -1, 0])] == [0, 39]
        for index in (37, 3, 4, 20, -1):
            assert np.array_equal(reader[index], sequential[index])
        assert [i for i, _ in reader.frames(33, 36)] == [33, 34, 35]


def test_read_on_the_real_mpeg1_clip_equals_sequential(test_data):
    with open_video(test_data / "tierpsy_clip" / "test.avi") as reader:
        wanted = [3, 50, 51, 300, 562, 100]
        sequential = dict(reader.frames(stop=563))
        got = dict(reader.read(wanted))
    assert sorted(got) == sorted(wanted)
    assert all(np.array_equal(got[index], sequential[index]) for index in wanted)


def decode_counts(caplog, reader: VideoReader, wanted: list[int]) -> tuple[int, int]:
    """(frames decoded, seeks) for one read(), from the reader's debug log."""
    with caplog.at_level(logging.DEBUG, logger="wormclean.io.video"):
        caplog.clear()
        list(reader.read(wanted))
    (record,) = [r for r in caplog.records if "frames read" in r.getMessage()]
    _, n_read, n_decoded, n_seeks = record.args
    assert n_read == len(set(wanted))
    return n_decoded, n_seeks


def test_read_seeks_to_keyframes_instead_of_decoding_from_the_start(caplog, gop_videos):
    with open_video(gop_videos["h264"]) as reader:
        n_decoded, n_seeks = decode_counts(caplog, reader, [37])
        assert n_seeks == 1 and n_decoded <= 5  # from the keyframe at 35, not 38 frames
        n_decoded, n_seeks = decode_counts(caplog, reader, [2, 22, 37])
        assert n_seeks == 2 and n_decoded <= 3 + 2 * 5
        n_decoded, _ = decode_counts(caplog, reader, [11, 12, 13])  # neighbours: one decode run
        assert n_decoded <= 4
    with open_video(gop_videos["raw-mjpeg"]) as reader:  # no index to seek with: demux forward, decode only these
        n_decoded, n_seeks = decode_counts(caplog, reader, [5, 30, 31])
        assert (n_decoded, n_seeks) == (3, 0)


def test_a_seek_that_lands_wrong_falls_back_to_demuxing(gop_videos):
    with open_video(gop_videos["mpeg2-ps"]) as reader:
        sequential = read_all(reader)
        reader._table.seekable = True  # MPEG-PS timestamps change after a seek
        got = dict(reader.read([5, 26, 33]))
    assert all(np.array_equal(frame, sequential[index]) for index, frame in got.items())


def test_index_errors(gop_videos):
    with open_video(gop_videos["h264"]) as reader:
        with pytest.raises(IndexError):
            reader[40]
        with pytest.raises(IndexError):
            reader.read([0, -41])
        with pytest.raises(ValueError):
            reader.frames(prefetch=0)


def test_stopping_iteration_early_ends_the_decoding_thread(gop_videos):
    before = threading.active_count()
    with open_video(gop_videos["h264"]) as reader:
        iterator = reader.frames(prefetch=2)
        assert next(iterator)[0] == 0
        iterator.close()
    assert threading.active_count() == before


# --- image sources and HDF5 -------------------------------------------------------------------------------
def write_image_folder(folder: Path, frames: list[np.ndarray], suffix: str) -> Path:
    folder.mkdir()
    for index, frame in enumerate(frames):  # names whose natural order differs from their text order
        image = cv2.cvtColor(frame, cv2.COLOR_RGB2BGR) if frame.ndim == 3 else frame
        assert cv2.imwrite(str(folder / f"frame{index}{suffix}"), image)
    return folder


@pytest.mark.parametrize(
    ("suffix", "dtype", "codec"),
    [(".png", np.uint8, "png"), (".png", np.uint16, "png"), (".tif", np.uint16, "tiff"), (".jpg", np.uint8, "jpeg")],
)
def test_image_folders(tmp_path, suffix, dtype, codec):
    frames = make_frames(12, height=221, width=255, dtype=dtype)
    with open_video(write_image_folder(tmp_path / "frames", frames, suffix)) as reader:
        assert (reader.n_frames, reader.width, reader.height, reader.fps) == (12, 255, 221, 25)
        assert reader.dtype == dtype and reader.bit_depth == 8 * np.dtype(dtype).itemsize
        assert reader.info.codec == f"{codec}-sequence"
        got = read_all(reader)
        assert [i for i, _ in reader.read([10, 2])] == [2, 10]
    if suffix == ".jpg":
        assert mean_abs_error(got, frames) < 2.5
        assert np.argmax(got[10][110]) == np.argmax(frames[10][110])  # frame10 after frame9, not after frame1
    else:
        assert all(np.array_equal(a, b) for a, b in zip(got, frames))


def test_colour_images_are_read_as_grey(tmp_path):
    frames = make_frames(3, colour=True)
    with open_video(write_image_folder(tmp_path / "colour", frames, ".png")) as reader:
        got = read_all(reader)
    assert all(np.array_equal(a, cv2.cvtColor(b, cv2.COLOR_RGB2GRAY)) for a, b in zip(got, frames))


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_tiff_stacks(tmp_path, dtype):
    frames = np.stack(make_frames(7, height=33, width=47, dtype=dtype))
    tifffile.imwrite(tmp_path / "stack.tif", frames)
    with open_video(tmp_path / "stack.tif") as reader:
        assert (reader.n_frames, reader.width, reader.height, reader.dtype) == (7, 47, 33, dtype)
        assert reader.info.codec == "tiff-stack"
        assert np.array_equal(np.stack(read_all(reader)), frames)
        assert np.array_equal(reader[5], frames[5])


def test_single_images_are_one_frame_videos(tmp_path):
    frame = make_frames(1)[0]
    tifffile.imwrite(tmp_path / "one.tiff", frame)
    cv2.imwrite(str(tmp_path / "one.png"), frame)
    for name in ("one.tiff", "one.png"):
        with open_video(tmp_path / name) as reader:
            assert reader.n_frames == 1 and np.array_equal(reader[0], frame)


def write_masked_video(path: Path, frames: np.ndarray, dataset: str = "mask", **attrs) -> Path:
    with h5py.File(path, "w") as file:
        data = file.create_dataset(dataset, data=frames, chunks=(1, *frames.shape[1:]), compression="gzip")
        data.attrs.update(attrs)
    return path


def test_tierpsy_hdf5(tmp_path):
    frames = np.stack(make_frames(9))
    with open_video(write_masked_video(tmp_path / "a.hdf5", frames, expected_fps=30.0)) as reader:
        assert (reader.n_frames, reader.fps, reader.info.codec, reader.dtype) == (9, 30, "tierpsy-hdf5", np.uint8)
        assert np.array_equal(np.stack(read_all(reader)), frames)
        assert np.array_equal(reader[4], frames[4])
    with open_video(write_masked_video(tmp_path / "b.h5", frames[:3], "full_data")) as reader:
        assert reader.n_frames == 3 and reader.fps == 25
        assert np.array_equal(reader[2], frames[2])


# --- finding videos ---------------------------------------------------------------------------------------
def test_find_videos(tmp_path):
    frames = make_frames(2)
    write_video(tmp_path / "a.mkv", frames, "ffv1", "gray")
    (tmp_path / "notes.txt").write_text("not a video")
    (tmp_path / ".hidden.mp4").write_text("skipped")
    sub = tmp_path / "day1"
    sub.mkdir()
    write_video(sub / "b.avi", frames, "mjpeg", "yuvj420p")
    write_image_folder(sub / "sequence", frames, ".png")
    (sub / "sequence" / "info.json").write_text("{}")  # metadata beside frames: still one sequence
    stacks = tmp_path / "stacks"
    stacks.mkdir()
    for name in ("s1.tif", "s2.tif"):
        tifffile.imwrite(stacks / name, np.stack(frames))
    found = find_videos([tmp_path])
    assert found == sorted([tmp_path / "a.mkv", sub / "b.avi", sub / "sequence", stacks / "s1.tif", stacks / "s2.tif"])
    assert find_videos([str(sub / "*.avi"), sub / "b.avi", tmp_path / "a.mkv"]) == [tmp_path / "a.mkv", sub / "b.avi"]
    assert find_videos([sub / "sequence"]) == [sub / "sequence"]
    assert ".mp4" in VIDEO_SUFFIXES and ".hdf5" in VIDEO_SUFFIXES
    with pytest.raises(VideoError, match="no videos found"):
        find_videos([str(tmp_path / "*.mov")])
    with pytest.raises(VideoError, match="missing.mp4: no such file"):
        find_videos([tmp_path / "missing.mp4"])


# --- bad input --------------------------------------------------------------------------------------------
def test_missing_path(tmp_path):
    with pytest.raises(VideoError, match=r"missing\.mp4: no such file or folder"):
        open_video(tmp_path / "missing.mp4")


def test_text_file_named_as_video(tmp_path):
    path = tmp_path / "notes.mp4"
    path.write_text("this is not a video\n" * 20)
    with pytest.raises(VideoError, match=r"notes\.mp4 cannot be opened as a video"):
        open_video(path)


def test_video_without_a_decodable_frame(tmp_path):
    path = write_video(tmp_path / "blank.avi", make_frames(4), "mjpeg", "yuvj420p")
    data = bytearray(path.read_bytes())
    for offset, size in packet_spans(path):
        data[offset : offset + size] = bytes(size)
    path.write_bytes(bytes(data))
    with pytest.raises(VideoError, match=r"blank\.avi has no decodable frame"):
        open_video(path)


def test_empty_folder_and_folder_without_frames(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(VideoError, match=r"empty is empty"):
        open_video(tmp_path / "empty")
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("x")
    with pytest.raises(VideoError, match=r"other holds no frame images"):
        open_video(tmp_path / "other")


def test_unreadable_folder(tmp_path, monkeypatch):
    folder = tmp_path / "locked"
    folder.mkdir()
    folder.chmod(0)
    real_scandir = os.scandir

    def scandir(path):  # as root, permissions do not stop listing: refuse as the OS would for other users
        if Path(path) == folder:
            raise PermissionError(13, "Permission denied", str(path))
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)
    try:
        with pytest.raises(VideoError, match=r"locked: cannot read the folder \(Permission denied\)"):
            open_video(folder)
        with pytest.raises(VideoError, match="cannot read the folder"):
            find_videos([folder])
    finally:
        folder.chmod(0o755)


def test_bad_hdf5(tmp_path):
    with h5py.File(tmp_path / "other.hdf5", "w") as file:
        file.create_dataset("trajectories", data=np.zeros(3))
    with pytest.raises(VideoError, match=r"other\.hdf5 has neither /mask nor /full_data"):
        open_video(tmp_path / "other.hdf5")
    (tmp_path / "text.h5").write_text("not hdf5")
    with pytest.raises(VideoError, match=r"text\.h5 is not a readable HDF5 file"):
        open_video(tmp_path / "text.h5")


def test_bad_tiff(tmp_path):
    (tmp_path / "text.tif").write_text("not a tiff")
    with pytest.raises(VideoError, match=r"text\.tif is not a readable TIFF file"):
        open_video(tmp_path / "text.tif")


# --- videos that break part-way ---------------------------------------------------------------------------
def check_broken(caplog, path: Path, intact: list[np.ndarray]) -> VideoReader:
    """Reading stops cleanly at the damage, with a warning naming the frame; frames before it are intact."""
    with caplog.at_level(logging.WARNING, logger="wormclean.io.video"):
        reader = open_video(path)
        got = read_all(reader)
    broken_at = reader.broken_at
    assert broken_at is not None and 5 <= broken_at < len(intact)
    assert len(got) == broken_at
    assert all(np.array_equal(a, b) for a, b in zip(got, intact))
    assert f"frame {broken_at} cannot be decoded" in caplog.text
    assert [i for i, _ in reader.read(range(reader.n_frames))][-1] == broken_at - 1
    with pytest.raises(VideoError, match=f"frame {broken_at} cannot be decoded"):
        reader[broken_at]
    return reader


def test_truncated_avi(tmp_path, caplog):
    path = write_video(tmp_path / "cut.avi", make_frames(30), "mjpeg", "yuvj420p")
    with open_video(path) as reader:
        intact = read_all(reader)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) * 6 // 10])
    check_broken(caplog, path, intact).close()


def test_mp4_damaged_in_the_middle(tmp_path, caplog):
    path = write_video(tmp_path / "damaged.mp4", make_frames(30), "libx264", "yuv420p", gop=10)
    with open_video(path) as reader:
        intact = read_all(reader)
    data = bytearray(path.read_bytes())
    offset, size = packet_spans(path)[15]
    data[offset + 8 : offset + size] = bytes(size - 8)
    path.write_bytes(bytes(data))
    check_broken(caplog, path, intact).close()


def test_image_folder_with_a_bad_frame(tmp_path, caplog):
    folder = write_image_folder(tmp_path / "frames", make_frames(8), ".png")
    (folder / "frame5.png").write_bytes(b"broken")
    with caplog.at_level(logging.WARNING), open_video(folder) as reader:
        assert len(read_all(reader)) == 5 and reader.broken_at == 5
    assert "frame 5 cannot be decoded" in caplog.text


def test_video_info_duration():
    info = VideoInfo(Path("x.mp4"), n_frames=50, fps=25.0, height=4, width=6, bit_depth=8, codec="h264")
    assert info.duration == 2.0


def test_find_videos_passes_over_hdf5_files_without_frames(tmp_path):
    write_masked_video(tmp_path / "masked.hdf5", np.stack(make_frames(2)), "mask")
    with h5py.File(tmp_path / "plate.truth.h5", "w") as file:
        file["labels"] = np.zeros((2, 4, 4), np.uint8)
    assert find_videos([tmp_path]) == [tmp_path / "masked.hdf5"]
    # Named explicitly, it is still tried, and refused with a reason.
    assert find_videos([tmp_path / "plate.truth.h5"]) == [tmp_path / "plate.truth.h5"]


def test_find_videos_passes_over_wormclean_outputs(tmp_path):
    write_masked_video(tmp_path / "plate.hdf5", np.stack(make_frames(2)), "mask")
    with h5py.File(tmp_path / "plate_masks.hdf5", "a") as file:
        file["mask"] = np.zeros((2, 4, 4), np.uint8)
        file.attrs["source_video"] = "plate.hdf5"
    assert find_videos([tmp_path]) == [tmp_path / "plate.hdf5"]


def test_frame_times_are_the_containers_or_frame_numbers(tmp_path):
    frames = make_frames(6)
    with open_video(write_video(tmp_path / "times.mp4", frames, "libx264", "yuv420p", fps=20)) as reader:
        times = reader.frame_times()
    assert times.source == "container" and len(times.pts) == 6 and times.pts.dtype == np.int64
    np.testing.assert_allclose(times.seconds, np.arange(6) / 20, atol=1e-9)
    np.testing.assert_allclose(times.pts * float(times.time_base), times.seconds)
    with open_video(write_image_folder(tmp_path / "times", frames, ".png")) as reader:
        times = reader.frame_times()
    assert times.source == "frame_number" and times.time_base == Fraction(1, 25)
    np.testing.assert_array_equal(times.pts, np.arange(6))
    np.testing.assert_allclose(times.seconds, np.arange(6) / 25)
