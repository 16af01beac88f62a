"""``wormclean info``: one line per video, errors on stderr with exit code 2."""

from __future__ import annotations

import av
import numpy as np
import pytest
from click.testing import CliRunner

from wormclean.cli import cli


def write_ffv1(path, n_frames: int = 5, height: int = 21, width: int = 33, pix_fmt: str = "gray"):
    """A tiny lossless video; ffv1 takes odd sizes and 16-bit grey."""
    dtype = np.uint16 if pix_fmt == "gray16le" else np.uint8
    with av.open(str(path), "w") as container:
        stream = container.add_stream("ffv1", rate=10)
        stream.height, stream.width, stream.pix_fmt = height, width, pix_fmt
        for i in range(n_frames):
            frame = av.VideoFrame.from_ndarray(np.full((height, width), i, dtype), format=pix_fmt)
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


def test_info_on_the_real_clip(runner, test_data):
    path = test_data / "tierpsy_clip" / "test.avi"
    result = runner.invoke(cli, ["info", str(path)])
    assert result.exit_code == 0, result.output
    assert result.stdout == f"{path}: 563 frames, 15 fps, 128x96, mpeg2video, 37.53 s, 8-bit\n"


def test_info_on_several_videos_and_a_folder(runner, tmp_path):
    write_ffv1(tmp_path / "a.mkv")
    write_ffv1(tmp_path / "deep.mkv", n_frames=20, pix_fmt="gray16le")
    result = runner.invoke(cli, ["info", str(tmp_path / "a.mkv"), str(tmp_path / "deep.mkv")])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines == [
        f"{tmp_path / 'a.mkv'}: 5 frames, 10 fps, 33x21, ffv1, 0.50 s, 8-bit",
        f"{tmp_path / 'deep.mkv'}: 20 frames, 10 fps, 33x21, ffv1, 2.00 s, 16-bit",
    ]
    folder_result = runner.invoke(cli, ["info", str(tmp_path)])
    assert folder_result.stdout.splitlines() == lines


def test_info_on_a_bad_path_is_one_line_and_exit_2(runner, tmp_path):
    result = runner.invoke(cli, ["info", str(tmp_path / "missing.mp4")])
    assert result.exit_code == 2
    assert result.stderr == f"Error: {tmp_path / 'missing.mp4'}: no such file or folder\n"
    assert result.stdout == ""

    (tmp_path / "notes.mp4").write_text("not a video")
    result = runner.invoke(cli, ["info", str(tmp_path / "notes.mp4")])
    assert result.exit_code == 2
    assert result.stderr.startswith(f"Error: {tmp_path / 'notes.mp4'} cannot be opened as a video")
    assert len(result.stderr.splitlines()) == 1 and "Traceback" not in result.output


def test_info_reports_good_files_and_bad_ones(runner, tmp_path):
    good = write_ffv1(tmp_path / "good.mkv")
    (tmp_path / "bad.avi").write_bytes(b"RIFF" + bytes(100))
    result = runner.invoke(cli, ["info", str(tmp_path / "bad.avi"), str(good), str(tmp_path / "nothing*.mkv")])
    assert result.exit_code == 2
    assert result.stdout.splitlines() == [f"{good}: 5 frames, 10 fps, 33x21, ffv1, 0.50 s, 8-bit"]
    errors = result.stderr.splitlines()
    assert len(errors) == 2 and all(line.startswith("Error: ") for line in errors)
    assert "bad.avi" in errors[0] and "no videos found in" in errors[1]


def test_info_needs_a_path(runner):
    result = runner.invoke(cli, ["info"])
    assert result.exit_code == 2
    assert "Missing argument" in result.stderr
