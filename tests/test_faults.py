"""Faults and bad input: every command answers with one line and exit code 2, and leaves no file behind.

A full disk is a patched write that fails with ENOSPC after a few bytes (CI cannot mount a small tmpfs);
the HDF5 writes go through the real HDF5 library, in a subprocess where a crash would show.
"""

from __future__ import annotations

import errno
import json
import os
import pathlib
import re
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import cv2
import h5py
import numpy as np
import pytest
import tifffile
import torch
from click.testing import CliRunner

from wormclean.cli import cli
from wormclean.errors import ModelFileError
from wormclean.io import atomic, open_video
from wormclean.io.atomic import output_lock
from wormclean.io.writer import EncoderSettings, VideoWriter
from wormclean.model.modelfile import Normalisation, load_model, model_payload, save_model
from wormclean.model.unet import UNet, UNetConfig
from wormclean.sim import SimulationSettings, write_simulation

REPO_ROOT = Path(__file__).resolve().parents[1]


def tiny_net(width: int = 8) -> UNet:
    torch.manual_seed(0)
    return UNet(UNetConfig(width=width, depth=2))


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> dict[str, Path]:
    """Tiny good and bad inputs for every command."""
    folder = tmp_path_factory.mktemp("inputs")
    paths: dict[str, Path] = {}
    videos = folder / "videos"
    videos.mkdir()
    for seed, name in enumerate(["day1", "day2"]):
        write_simulation(videos / f"{name}.mp4", SimulationSettings(size=(48, 64), n_frames=8, n_worms=2, seed=seed))
    paths["videos"] = videos
    paths["video"] = videos / "day1.mp4"
    paths["garbage_video"] = folder / "garbage.mp4"
    paths["garbage_video"].write_bytes(b"\x00not a video at all" * 10)
    paths["model"] = save_model(folder / "video.pt", tiny_net(), Normalisation(), {"kind": "video", "dark_worms": True})
    paths["stills_model"] = save_model(
        folder / "stills.pt",
        tiny_net(),
        Normalisation(),
        {"kind": "stills", "targets": ["disc"], "mode": "keep", "colour": "grey", "inverted": False},
    )
    payload = model_payload(tiny_net(), Normalisation(), {"kind": "video", "dark_worms": True})
    payload["state_dict"] = {
        name: torch.full_like(tensor, float("nan")) for name, tensor in payload["state_dict"].items()
    }
    torch.save(payload, folder / "nan.pt")
    paths["nan_model"] = folder / "nan.pt"
    images = folder / "images"
    images.mkdir()
    rng = np.random.default_rng(0)
    for index in range(2):
        cv2.imwrite(str(images / f"scene{index}.png"), rng.integers(0, 255, (48, 48), dtype=np.uint8))
    paths["images"] = images
    paths["points"] = folder / "points.csv"
    paths["points"].write_text("image,x,y,class\nscene0.png,10,10,disc\n")
    paths["detections"] = folder / "found.csv"
    paths["detections"].write_text("image,xmin,ymin,xmax,ymax,score\n")
    paths["boxes"] = folder / "boxes.csv"
    paths["boxes"].write_text("image,xmin,ymin,xmax,ymax,class\nscene0.png,1,1,9,9,disc\n")
    return paths


def run(*args) -> object:
    return CliRunner().invoke(cli, [str(arg) for arg in args])


def assert_one_line_error(result, *expected: str) -> None:
    """Exit code 2, exactly one line on stderr (starting with Error:), no traceback, the expected words."""
    lines = result.stderr.strip().splitlines()
    assert result.exit_code == 2, result.output
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    for words in expected:
        assert words in lines[0], lines[0]


def errors_of(stderr: str) -> list[str]:
    """The lines of stderr that are not warnings (the tiny test videos can warn that no worm was found)."""
    return [line for line in stderr.strip().splitlines() if not line.startswith("WARNING")]


def files_in(folder: Path) -> list[str]:
    return sorted(str(path.relative_to(folder)) for path in folder.rglob("*")) if folder.exists() else []


# --- the table: bad input through every command -------------------------------------------------------------
# Each row: the command line (with {names} of inputs and {out} for the output folder) and words of the message.
BAD_INPUTS = [
    ("mask {missing} -o {out}/m.hdf5 --model {model}", "nope.mp4: no such file or folder"),
    ("mask {garbage_video} -o {out}/m.hdf5 --model {model}", "cannot be opened as a video"),
    ("mask {video} -o {out}/m.hdf5 --model {garbage_video}", "not a wormclean model file"),
    ("mask {video} -o {out}/m.hdf5 --model {nan_model}", "not finite"),
    ("mask {video} -o {out}/m.hdf5 --model {model} --bgnd-interval 0", "'--bgnd-interval'"),
    ("mask {video} -o {out}/m.hdf5 --model {model} --bgnd-interval 99999999999999999999999", "at most"),
    ("mask {video} -o {out}/m.hdf5 --model {model} --save-interval 0", "'--save-interval'"),
    ("mask {video} -o {out}/m.hdf5 --model {model} --dilation 100000", "'--dilation'"),
    ("mask {video} -o {out}/m.hdf5 --model {model} --delta nan", "not a finite number"),
    ("mask {video} -o {out}/m.hdf5 --model {model} --microns-per-pixel -1", "'--microns-per-pixel'"),
    ("mask {video} -o {out}/out.txt --model {model}", "give an .hdf5 or .h5 file, or a folder"),
    ("mask {video} -o {out}/m.hdf5 --model {model} --tile-size 1", "tile size 1 is too small"),
    ("preview {video} -o {out}/p.xyz --model {model}", "use a .png file name"),
    ("preview {video} -o {out}/p.png --model {model} --frames 0", "'--frames'"),
    ("preview {missing} -o {out}/p.png --model {model}", "nope.mp4: no such file or folder"),
    ("preview {video} -o {out}/p.png --model {nan_model}", "not finite"),
    ("fit {videos} -o {out}/f.pt --seed -1", "'--seed'"),
    ("fit {videos} -o {out}/f.pt --width 0", "'--width'"),
    ("fit {videos} -o {out}/f.pt --depth 0", "'--depth'"),
    ("fit {videos} -o {out}/f.pt --lag 0", "'--lag'"),
    ("fit {videos} -o {out}/f.pt --learning-rate nan", "not a finite number"),
    ("fit {videos} -o {out}/f.pt --learning-rate inf", "not a finite number"),
    ("fit {videos} -o {out}/f.pt --steps 0", "'--steps'"),
    ("fit {videos} -o {out}/f.pt --patch-size 8", "'--patch-size'"),
    ("fit -o {out}/f.pt", "no videos given"),
    ("fit {garbage_video} -o {out}/f.pt", "garbage.mp4"),
    ("fit {videos} -o {out}/missing/f.pt", "does not exist"),
    ("info {missing}", "nope.mp4: no such file or folder"),
    ("info {garbage_video}", "cannot be opened as a video"),
    ("simulate {out}/s.mp4 --frames 0", "'--frames'"),
    ("simulate {out}/s.mp4 --fps 0", "'--fps'"),
    ("simulate {out}/s.mp4 --seed -1", "'--seed'"),
    ("simulate {out}/s.mp4 --size 0", "HEIGHTxWIDTH"),
    ("simulate {out}/s --size 32 --frames 2", "has no extension"),
    ("simulate {out}/s.xyz --size 32 --frames 2", "s.xyz: no video container is written as .xyz"),
    ("simulate {out}/s.mp4 --noise nan", "not a finite number"),
    ("crops {missing} --focus -o {out}/c", "does not exist"),
    ("crops {images} -o {out}/c", "exactly one of --points, --boxes and --focus"),
    ("crops {images} --focus -o {out}/c --seed -1", "'--seed'"),
    ("crops {images} --focus -o {out}/c --min-area -1", "'--min-area'"),
    ("filter {images} -o {out}/f --model no-such-model", "unknown model 'no-such-model'"),
    ("filter {images} -o {out}/f --model {model}", "needs a stills model"),
    ("filter {images} -o {out}/f --model {stills_model} --min-contrast 2", "'--min-contrast'"),
    ("filter {missing} -o {out}/f --model {stills_model}", "does not exist"),
    ("evaluate {missing} --boxes {boxes} --target disc", "does not exist"),
    ("evaluate {detections} --boxes {boxes} --target disc --iou 1.5", "'--iou'"),
    ("evaluate {detections} --target disc", "exactly one of --boxes and --points"),
    ("evaluate {detections} --boxes {boxes} --target disc", "lists no image to score"),
    ("evaluate {detections} --boxes {boxes} --target disc --iou nan", "not a finite number"),
]


@pytest.mark.parametrize(
    "command, words", BAD_INPUTS, ids=[row[0].split(" -")[0] + f" #{i}" for i, row in enumerate(BAD_INPUTS)]
)
def test_bad_input_gives_one_line_exit_2_and_no_file(command, words, inputs, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    names = {name: str(path) for name, path in inputs.items()} | {
        "out": str(out),
        "missing": str(tmp_path / "nope.mp4"),
    }
    result = run(*command.format(**names).split())
    assert_one_line_error(result, words)
    assert files_in(out) == []


# --- 1. a full disk ---------------------------------------------------------------------------------------
class _SmallDisk:
    """An unbuffered file that fails with ENOSPC once ``budget`` bytes are written (all files together)."""

    budget = 0

    def __init__(self, path, mode="r", buffering=-1, **kwargs):
        self._file = open(path, mode, buffering=buffering, **kwargs)

    def write(self, data):
        size = len(data.encode()) if isinstance(data, str) else memoryview(data).nbytes
        if size > _SmallDisk.budget:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        _SmallDisk.budget -= size
        return self._file.write(data)

    def __getattr__(self, name):
        return getattr(self._file, name)


@pytest.fixture
def small_disk(monkeypatch):
    """HDF5 outputs (through FailSafeFile) and files written with Path.write_bytes share a small disk."""
    _SmallDisk.budget = 10**12
    monkeypatch.setattr(atomic, "open", _SmallDisk, raising=False)
    real_write_bytes = pathlib.Path.write_bytes

    def write_bytes(self, data):
        data = bytes(data)
        if len(data) > _SmallDisk.budget:
            real_write_bytes(self, data[: len(data) // 2])  # a half-written file, as a full disk leaves
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        _SmallDisk.budget -= len(data)
        return real_write_bytes(self, data)

    monkeypatch.setattr(pathlib.Path, "write_bytes", write_bytes)
    return _SmallDisk


def test_mask_on_a_full_disk_reports_each_video_and_goes_on(inputs, tmp_path, small_disk):
    out = tmp_path / "masks"
    small_disk.budget = 2000
    result = run("mask", inputs["videos"], "-o", out, "--model", inputs["model"], "-q")
    assert result.exit_code == 2
    lines = errors_of(result.stderr)
    assert lines == [
        f"Error: {inputs['videos'] / name}.mp4: cannot write {out / name}.hdf5: No space left on device"
        for name in ("day1", "day2")
    ]
    assert files_in(out) == ["wormclean-batch.csv"]
    small_disk.budget = 10**12  # space again: the same job now works
    result = run("mask", inputs["videos"], "-o", out, "--model", inputs["model"], "-q")
    assert result.exit_code == 0 and files_in(out) == ["day1.hdf5", "day2.hdf5", "wormclean-batch.csv"]


def test_a_full_disk_in_a_batch_in_a_real_process_is_no_crash(inputs, tmp_path):
    """HDF5 itself on a full disk (here: the first video's writes fail), with the interpreter's exit after."""
    out = tmp_path / "masks"
    script = textwrap.dedent(
        f"""
        import errno, os, sys
        from wormclean.io import atomic
        real_open = open
        class Full:
            def __init__(self, path, *args, **kwargs):
                self.path, self._file = str(path), real_open(path, *args, **kwargs)
            def write(self, data):
                if "day1" in self.path:
                    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
                return self._file.write(data)
            def __getattr__(self, name):
                return getattr(self._file, name)
        atomic.open = Full
        from wormclean.cli import main
        sys.argv = ["wormclean", "mask", {str(inputs["videos"])!r}, "-o", {str(out)!r}, "--model",
                    {str(inputs["model"])!r}, "-q"]
        main()
        """
    )
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 2, done.stderr
    assert errors_of(done.stderr) == [
        f"Error: {inputs['videos'] / 'day1.mp4'}: cannot write {out / 'day1.hdf5'}: No space left on device"
    ]
    assert files_in(out) == ["day2.hdf5", "wormclean-batch.csv"]
    with h5py.File(out / "day2.hdf5", "r") as file:
        assert file.attrs["n_frames"] == 8


@pytest.mark.parametrize(
    "command",
    [
        "preview {video} -o {out}/p.png --model {model}",
        "simulate {out}/s.mp4 --size 32 --frames 4",
        "fit {videos} -o {out}/f.pt --steps 2 --validate-every 1 --width 4 --depth 2 --patch-size 32 --lag 2 "
        "--include-immobile",
        "filter {images} -o {out}/f --model {stills_model}",
        "crops {images} --points {points} -o {out}/c --background-size 16",
    ],
    ids=lambda command: command.split()[0],
)
def test_every_write_path_names_the_file_and_the_full_disk(command, inputs, tmp_path, small_disk):
    out = tmp_path / "out"
    out.mkdir()
    small_disk.budget = 0
    names = {name: str(path) for name, path in inputs.items()} | {"out": str(out)}
    result = run(*command.format(**names).split(), "-q")
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert lines and all("No space left on device" in line and str(out) in line for line in lines), result.stderr
    assert "png file name" not in result.stderr
    assert [name for name in files_in(out) if not name.endswith(".log.csv") and name != "f"] == []


# --- 2. two jobs on one output ------------------------------------------------------------------------------
def test_a_second_job_on_the_same_output_is_told_and_the_first_finishes(inputs, tmp_path):
    output = tmp_path / "one.hdf5"
    with output_lock(output):  # another job is writing one.hdf5
        for extra in ([], ["--overwrite"]):
            result = run("mask", inputs["video"], "-o", output, "--model", inputs["model"], "-q", *extra)
            assert_one_line_error(result, f"{output} is being written by another job")
        assert files_in(tmp_path) == [".one.hdf5.lock"]
    result = run("mask", inputs["video"], "-o", output, "--model", inputs["model"], "-q")
    assert result.exit_code == 0 and files_in(tmp_path) == ["one.hdf5"]


def test_two_mask_processes_on_one_output(inputs, tmp_path):
    """Two real jobs at once: one writes the file, the other is told; nothing is deleted under the winner."""
    output = tmp_path / "one.hdf5"
    command = [
        sys.executable,
        "-c",
        "from wormclean.cli import main; main()",
        "mask",
        str(inputs["video"]),
        "-o",
        str(output),
        "--model",
        str(inputs["model"]),
        "-q",
        "--overwrite",
        "--bgnd-interval",
        "1",
    ]
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    jobs = [subprocess.Popen(command, stderr=subprocess.PIPE, text=True, env=env) for _ in range(2)]
    results = [(job.wait(timeout=300), job.stderr.read()) for job in jobs]
    codes = sorted(code for code, _ in results)
    assert codes in ([0, 0], [0, 2]), results  # one after the other, or at the same time
    for code, stderr in results:
        if code == 2:
            assert errors_of(stderr) == [
                f"Error: {inputs['video']}: {output} is being written by another job; wait for it to finish"
            ]
    assert files_in(tmp_path) == ["one.hdf5"]
    with h5py.File(output, "r") as file:
        assert file.attrs["n_frames"] == 8


def test_temporary_names_are_unique():
    assert atomic.partial_path("a/b.hdf5") != atomic.partial_path("a/b.hdf5")
    assert atomic.partial_path("a/b.hdf5").suffix == ".hdf5"


# --- 4. a diverged fit --------------------------------------------------------------------------------------
def test_a_diverging_fit_stops_with_a_message_and_saves_no_nan_model(inputs, tmp_path):
    output = tmp_path / "m.pt"
    result = run(
        "fit",
        inputs["videos"],
        "-o",
        output,
        "--steps",
        "20",
        "--validate-every",
        "1",
        "--width",
        "4",
        "--depth",
        "2",
        "--patch-size",
        "32",
        "--lag",
        "2",
        "--learning-rate",
        "1e6",
        "-q",
    )
    assert_one_line_error(result, "training diverged at step", "Try a smaller --learning-rate (this run used 1e+06)")
    for path in (output, tmp_path / "m.last.pt"):
        if path.exists():  # a checkpoint from before the divergence: finite, and loadable
            assert load_model(path).net is not None
    assert "no checkpoint was saved" in result.stderr or output.exists()


def test_non_finite_weights_are_refused_at_save_and_at_load(tmp_path, inputs):
    net = tiny_net()
    with torch.no_grad():
        next(net.parameters()).fill_(float("inf"))
    with pytest.raises(ModelFileError, match="not finite"):
        save_model(tmp_path / "inf.pt", net, Normalisation(), {"kind": "video"})
    assert files_in(tmp_path) == []
    with pytest.raises(ModelFileError, match=r"nan\.pt has weights that are not finite numbers"):
        load_model(inputs["nan_model"])


def test_a_state_dict_that_does_not_fit_is_described_in_one_line(tmp_path):
    payload = model_payload(tiny_net(), Normalisation(), {"kind": "video"})
    payload["architecture"]["width"] = 4
    torch.save(payload, tmp_path / "odd.pt")
    with pytest.raises(ModelFileError) as caught:
        load_model(tmp_path / "odd.pt")
    message = str(caught.value)
    assert "\n" not in message and "of the wrong shape (" in message and "more)" in message


# --- 5. frames lost on input ---------------------------------------------------------------------------------
def test_a_tiff_written_one_page_per_series_reads_every_page(tmp_path):
    frames = np.random.default_rng(0).integers(0, 255, (60, 32, 32), dtype=np.uint8)
    for frame in frames:
        tifffile.imwrite(tmp_path / "pages.tif", frame, append=True)
    with open_video(tmp_path / "pages.tif") as reader:
        got = [frame for _, frame in reader.frames()]
        assert reader.n_frames == 60 and reader.broken_at is None
    assert np.array_equal(np.stack(got), frames)


def test_a_truncated_tiff_breaks_where_it_ends(tmp_path, caplog):
    frames = np.random.default_rng(0).integers(0, 255, (60, 32, 32), dtype=np.uint8)
    tifffile.imwrite(tmp_path / "stack.tif", frames)
    data = (tmp_path / "stack.tif").read_bytes()
    (tmp_path / "cut.tif").write_bytes(data[: len(data) // 2])
    with open_video(tmp_path / "cut.tif") as reader:
        got = [frame for _, frame in reader.frames()]
        assert reader.n_frames == 60 and reader.broken_at == len(got) >= 1
    assert np.array_equal(np.stack(got), frames[: len(got)])
    assert f"frame {len(got)} cannot be decoded (the file declares 60 frames" in caplog.text


def test_an_mjpeg_avi_damaged_in_the_middle_is_not_renumbered(tmp_path, caplog):
    path = tmp_path / "clip.avi"
    with VideoWriter(path, 10.0, EncoderSettings(codec="mjpeg")) as writer:
        for index in range(20):
            writer.write(np.full((32, 32), 20 + 10 * index, np.uint8))
    data = bytearray(path.read_bytes())
    starts = [i for i in range(len(data) - 1) if data[i] == 0xFF and data[i + 1] == 0xD8]  # JPEG starts
    data[starts[10] - 8 : starts[12]] = bytes(starts[12] - starts[10] + 8)  # frames 10 and 11, chunk headers too
    path.write_bytes(bytes(data))
    with open_video(path) as reader:
        got = [(index, int(frame.mean())) for index, frame in reader.frames()]
        assert reader.n_frames == 20 and reader.broken_at == 10
    assert [index for index, _ in got] == list(range(10))
    assert all(abs(level - (20 + 10 * index)) <= 2 for index, level in got)  # every frame in its own place
    assert "frame 10 cannot be decoded (the container's index lists 20 frames" in caplog.text


# --- 6. fit checks its output folder first -------------------------------------------------------------------
def test_fit_into_an_unwritable_folder_fails_before_training(inputs, tmp_path, monkeypatch):
    import wormclean.train.fit as fit_module

    folder = tmp_path / "models"
    folder.mkdir()
    real_access = os.access
    monkeypatch.setattr(
        atomic.os, "access", lambda path, mode: False if Path(path) == folder else real_access(path, mode)
    )
    monkeypatch.setattr(fit_module.UNet, "forward", lambda *args: pytest.fail("training started"))
    result = run("fit", inputs["videos"], "-o", folder / "m.pt", "--patch-size", "32", "--lag", "2")
    assert_one_line_error(result, f"output folder {folder} is not writable")


# --- 8. values the user gave are not replaced ----------------------------------------------------------------
def test_an_existing_last_checkpoint_needs_overwrite(inputs, tmp_path):
    (tmp_path / "m.last.pt").write_bytes(b"an earlier run")
    result = run("fit", inputs["videos"], "-o", tmp_path / "m.pt", "--patch-size", "32", "--lag", "2")
    assert_one_line_error(result, "m.last.pt exists; use --overwrite")
    assert (tmp_path / "m.last.pt").read_bytes() == b"an earlier run"


# --- 9. smaller ----------------------------------------------------------------------------------------------
def test_preview_says_how_many_frames_it_drew(inputs, tmp_path):
    path = tmp_path / "one.mp4"
    write_simulation(path, SimulationSettings(size=(48, 64), n_frames=1, n_worms=1, seed=0))
    result = run("preview", path, "-o", tmp_path / "p.png", "--model", inputs["model"], "--frames", "3")
    assert result.exit_code == 0 and result.stdout.strip() == f"{tmp_path / 'p.png'}: 1 frame"


def test_filter_goes_on_after_a_bad_image_and_takes_a_registered_name(inputs, tmp_path, monkeypatch):
    import wormclean.model.registry as registry

    models = tmp_path / "models"
    models.mkdir()
    (models / "stills.pt").write_bytes(inputs["stills_model"].read_bytes())
    sha = registry.file_sha256(models / "stills.pt")
    (models / "registry.json").write_text(
        json.dumps({"default": None, "models": {"discs": {"file": "stills.pt", "sha256": sha}}})
    )
    monkeypatch.setattr(registry, "models_folder", lambda: models)
    images = tmp_path / "images"
    images.mkdir()
    for path in inputs["images"].iterdir():
        (images / path.name).write_bytes(path.read_bytes())
    (images / "broken.png").write_bytes(b"not an image")
    result = run("filter", images, "-o", tmp_path / "out", "--model", "discs", "--device", "cpu", "-q")
    assert_one_line_error(result, "broken.png is not a readable image")
    assert files_in(tmp_path / "out") == ["scene0.png", "scene1.png"]


# --- round two (issue 30) ------------------------------------------------------------------------------------
# 1. a model whose normalisation is not finite
@pytest.mark.parametrize("entry, value", [("offset", float("nan")), ("scale", float("inf"))])
def test_a_model_with_a_non_finite_normalisation_is_refused(entry, value, inputs, tmp_path):
    payload = torch.load(inputs["model"], weights_only=True)
    payload["normalisation"][entry] = value
    torch.save(payload, tmp_path / "n.pt")
    with pytest.raises(ModelFileError, match=r"n\.pt: normalisation holds values that are not finite"):
        load_model(tmp_path / "n.pt")
    out = tmp_path / "out"
    out.mkdir()
    result = run("mask", inputs["video"], "-o", out / "m.hdf5", "--model", tmp_path / "n.pt", "-q")
    assert_one_line_error(result, "normalisation holds values that are not finite")
    result = run("fit", inputs["videos"], "-o", out / "f.pt", "--init", tmp_path / "n.pt", "--steps", "2",
                 "--patch-size", "32", "--lag", "2", "-q")
    assert_one_line_error(result, "normalisation holds values that are not finite")
    assert "learning-rate" not in result.stderr and files_in(out) == []


# 2. the Python API checks its arrays at the door
@pytest.fixture(scope="module")
def cleaner(inputs):
    from wormclean.predict.cleaner import Cleaner

    return Cleaner.load(inputs["model"], device="cpu")


def _bad_arrays():
    frame = np.full((48, 64), 100, np.uint8)
    with_nan = frame.astype(np.float32)
    with_nan[5, 5] = np.nan
    with_inf = frame.astype(np.float32)
    with_inf[7, 9] = np.inf
    return {
        "nan": (with_nan, "not finite numbers"),
        "inf": (with_inf, "not finite numbers"),
        "bool": (frame > 50, "dtype bool"),
        "int8": (-frame.astype(np.int8), "dtype int8"),
        "empty": (np.zeros((0, 64), np.uint8), "has no pixel"),
        "3d": (frame[None], "shape (1, 48, 64)"),
        "list": (frame.tolist(), "numpy array"),
    }


@pytest.mark.parametrize("name", list(_bad_arrays()))
def test_the_python_api_refuses_arrays_it_cannot_use(name, cleaner):
    from wormclean.errors import WormcleanError

    bad, words = _bad_arrays()[name]
    frame = np.full((48, 64), 100, np.uint8)
    background = cleaner.background(frame)
    assert np.isfinite(background).all()
    for call, what in (
        (lambda: cleaner.background(bad), "the frame"),
        (lambda: cleaner.backgrounds([frame, bad]), "the frame"),
        (lambda: cleaner.segment(bad, background), "the frame"),
        (lambda: cleaner.segment(frame, bad), "the background"),
    ):
        with pytest.raises(ValueError, match=re.escape(words)) as caught:
            call()
        assert isinstance(caught.value, WormcleanError) and str(caught.value).startswith(what)


@pytest.mark.parametrize("interval", [0, -5, "0s"])
def test_iter_masks_refuses_an_interval_the_cli_refuses(interval, cleaner, inputs):
    from wormclean.errors import SettingsError

    with pytest.raises(SettingsError, match="bgnd_interval: expected more than 0"):
        next(cleaner.iter_masks(inputs["video"], bgnd_interval=interval))


# 6. options known to be wrong are refused before any work, and errors that will recur are not tried again
def test_a_tile_size_too_small_for_the_net_is_refused_before_any_work(inputs, tmp_path, monkeypatch):
    import wormclean.predict.pipeline as pipeline

    monkeypatch.setattr(pipeline, "open_video", lambda *args: pytest.fail("a video was opened"))
    result = run("mask", inputs["video"], "-o", tmp_path / "m.hdf5", "--model", inputs["model"], "--tile-size", "3")
    assert_one_line_error(result, "tile size 3 is too small for this net")
    assert files_in(tmp_path) == []


# 9. values that overflow the arithmetic are refused rather than passed on to numpy
def test_a_delta_beyond_the_16_bit_range_is_refused(inputs, tmp_path):
    result = run("mask", inputs["video"], "-o", tmp_path / "m.hdf5", "--model", inputs["model"], "--delta", "1e308")
    assert_one_line_error(result, "--delta must be at most 65535")


# 3. and 4. SIGTERM and SIGHUP stop a job as cleanly as Ctrl-C, worker processes included
@pytest.fixture(scope="module")
def long_videos(tmp_path_factory) -> Path:
    """Two videos long enough (with the net on every frame) to be stopped part-way."""
    folder = tmp_path_factory.mktemp("long")
    write_simulation(folder / "a.mp4", SimulationSettings(size=(48, 64), n_frames=150, n_worms=2, seed=0))
    (folder / "b.mp4").write_bytes((folder / "a.mp4").read_bytes())
    (folder / "a.truth.h5").unlink(missing_ok=True)
    return folder


def _start_mask(inputs_path: Path, output: Path, model: Path, *extra: str) -> subprocess.Popen:
    command = [sys.executable, "-m", "wormclean", "mask", str(inputs_path), "-o", str(output), "--model", str(model),
               "-q", "--device", "cpu", "--background", "net", "--bgnd-interval", "1", *extra]
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    return subprocess.Popen(command, stderr=subprocess.PIPE, text=True, env=env, start_new_session=True)


def _wait_for(condition, job: subprocess.Popen, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert job.poll() is None, job.stderr.read()
        assert time.monotonic() < deadline, "the job did not get that far"
        time.sleep(0.05)


def _partials(folder: Path) -> list[str]:
    return [name for name in files_in(folder) if ".partial-" in name]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z" if Path(f"/proc/{pid}").exists() else True


@pytest.mark.slow
@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGHUP], ids=["SIGTERM", "SIGHUP"])
def test_a_stop_signal_to_mask_removes_its_partial_and_lock(stop, inputs, long_videos, tmp_path):
    output = tmp_path / "a.hdf5"
    job = _start_mask(long_videos / "a.mp4", output, inputs["model"])
    _wait_for(lambda: _partials(tmp_path), job)
    job.send_signal(stop)
    assert job.wait(timeout=60) == 128 + stop
    assert job.stderr.read().strip().splitlines() == [f"Stopped by {signal.Signals(stop).name}."]
    assert files_in(tmp_path) == []
    result = run("mask", long_videos / "a.mp4", "-o", output, "--model", inputs["model"], "-q", "--background", "net")
    assert result.exit_code == 0 and files_in(tmp_path) == ["a.hdf5"]


def _workers_of(pid: int) -> list[int]:
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return [int(child) for child in children if "spawn_main" in Path(f"/proc/{child}/cmdline").read_text()]


@pytest.mark.slow
@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGKILL], ids=["SIGTERM", "SIGKILL"])
def test_a_stopped_batch_leaves_no_worker_partial_or_lock(stop, inputs, long_videos, tmp_path):
    out = tmp_path / "masks"
    job = _start_mask(long_videos, out, inputs["model"], "--jobs", "2")
    _wait_for(lambda: len(_partials(out)) == 2, job)
    workers = _workers_of(job.pid)
    assert len(workers) == 2
    job.send_signal(stop)
    assert job.wait(timeout=60) == (128 + stop if stop != signal.SIGKILL else -stop)
    if stop != signal.SIGKILL:
        assert job.stderr.read().strip().splitlines() == ["Stopped by SIGTERM."]
    deadline = time.monotonic() + 30
    while any(_alive(worker) for worker in workers) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(_alive(worker) for worker in workers)
    assert files_in(out) == ["wormclean-batch.csv"]
    result = run("mask", long_videos, "-o", out, "--model", inputs["model"], "-q", "--background", "net")
    assert result.exit_code == 0 and files_in(out) == ["a.hdf5", "b.hdf5", "wormclean-batch.csv"]


def test_the_next_run_removes_what_a_killed_run_left(inputs, tmp_path):
    output = tmp_path / "one.hdf5"
    (tmp_path / ".one.partial-99999-0123abcd.hdf5").write_bytes(b"half a file")
    (tmp_path / ".one.hdf5.lock").write_bytes(b"")
    (tmp_path / ".other.partial-99999-0123abcd.hdf5").write_bytes(b"another output's")
    result = run("mask", inputs["video"], "-o", output, "--model", inputs["model"], "-q")
    assert result.exit_code == 0, result.output
    assert files_in(tmp_path) == [".other.partial-99999-0123abcd.hdf5", "one.hdf5"]
    assert "removing" in result.stderr and ".one.partial-99999-0123abcd.hdf5" in result.stderr


# 6. a failure the job reports itself would recur: it is not tried again
def test_a_full_disk_is_reported_after_one_try(inputs, tmp_path, small_disk, monkeypatch):
    import wormclean.predict.batch as batch

    calls = []
    real_mask_video = batch.mask_video
    monkeypatch.setattr(batch, "mask_video", lambda video, *args: calls.append(video) or real_mask_video(video, *args))
    out = tmp_path / "masks"
    small_disk.budget = 2000
    result = run("mask", inputs["videos"], "-o", out, "--model", inputs["model"], "-q")
    assert result.exit_code == 2 and len(errors_of(result.stderr)) == 2
    assert sorted(path.name for path in calls) == ["day1.mp4", "day2.mp4"]
    with open(out / "wormclean-batch.csv") as report:
        assert [row.split(",")[5] for row in report.read().splitlines()[1:]] == ["1", "1"]  # attempts


# 9. and 10. stderr carries our lines only, each said once, workers' with their prefix too
def _cut_tiffs(folder: Path, n_videos: int) -> list[Path]:
    frames = (np.random.default_rng(0).integers(0, 255, (40, 32, 32)) * 256).astype(np.uint16)
    folder.mkdir()
    paths = []
    for index in range(n_videos):
        tifffile.imwrite(folder / "whole.tif", frames)
        data = (folder / "whole.tif").read_bytes()
        paths.append(folder / f"cut{index}.tif")
        paths[-1].write_bytes(data[: len(data) // 2])
    (folder / "whole.tif").unlink()
    return paths


def test_a_truncated_16_bit_tiff_is_reported_once_in_our_words(inputs, tmp_path):
    [video] = _cut_tiffs(tmp_path / "videos", 1)
    result = run("mask", video, "-o", tmp_path / "m.hdf5", "--model", inputs["model"], "-q")
    assert result.exit_code == 0, result.output
    lines = result.stderr.strip().splitlines()
    assert all(line.startswith("WARNING: ") for line in lines), result.stderr
    assert "tifffile" not in result.stderr and "invalid page offset" not in result.stderr
    assert sum("cannot be decoded" in line for line in lines) == 1, result.stderr
    assert len(lines) == len(set(lines)), result.stderr


def test_workers_warnings_reach_stderr_as_ours(inputs, tmp_path):
    folder = tmp_path / "videos"
    _cut_tiffs(folder, 2)
    result = run("mask", folder, "-o", tmp_path / "masks", "--model", inputs["model"], "-q", "--jobs", "2")
    assert result.exit_code == 0, result.output
    lines = result.stderr.strip().splitlines()
    assert lines and all(line.startswith("WARNING: ") for line in lines), result.stderr
    assert sum("cut0.tif: frame" in line and "cannot be decoded" in line for line in lines) == 1, result.stderr


def test_a_corrupt_image_in_a_sequence_leaves_only_our_lines_on_stderr(inputs, tmp_path):
    folder = tmp_path / "frames"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for index in range(12):
        cv2.imwrite(str(folder / f"f{index:02d}.png"), rng.integers(90, 110, (32, 32), dtype=np.uint8))
    (folder / "f06.png").write_bytes(b"not an image at all")
    env = {key: value for key, value in os.environ.items() if key != "OPENCV_LOG_LEVEL"}
    env["PYTHONPATH"] = str(REPO_ROOT)
    done = subprocess.run(
        [sys.executable, "-m", "wormclean", "mask", str(folder), "-o", str(tmp_path / "m.hdf5"), "--model",
         str(inputs["model"]), "-q", "--device", "cpu"],
        capture_output=True, text=True, env=env, timeout=300,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stderr.strip().splitlines()
    assert all(line.startswith("WARNING: ") for line in lines), done.stderr
    assert sum("f06.png is not a readable image" in line for line in lines) == 1, done.stderr


# 5. a second fit on the same output is refused, and the first one's files are left as they are
def test_a_second_fit_on_the_same_output_is_refused(inputs, tmp_path):
    output = tmp_path / "m.pt"
    options = ["--steps", "6", "--validate-every", "2", "--width", "4", "--depth", "2", "--patch-size", "32",
               "--lag", "2", "--include-immobile", "--device", "cpu", "-q"]
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    first = subprocess.Popen([sys.executable, "-m", "wormclean", "fit", str(inputs["videos"]), "-o", str(output),
                              *options], stderr=subprocess.PIPE, text=True, env=env)
    _wait_for(lambda: (tmp_path / ".m.pt.fit.lock").exists(), first)
    for extra in ([], ["--overwrite"]):
        second = run("fit", inputs["videos"], "-o", output, *options, *extra)
        assert_one_line_error(second, f"{output} is being written by another job")
    assert first.wait(timeout=300) == 0, first.stderr.read()
    assert files_in(tmp_path) == ["m.last.pt", "m.log.csv", "m.loss.png", "m.pt"]
    assert load_model(output).metadata["steps"] == 6
    assert [row.split(",")[0] for row in (tmp_path / "m.log.csv").read_text().splitlines()[1:]] == ["2", "4", "6"]


# 7. an entry of a batch folder that cannot be read is skipped, not the batch
def test_a_symlink_loop_in_a_batch_folder_is_skipped_with_a_warning(inputs, tmp_path):
    folder = tmp_path / "vids"
    folder.mkdir()
    (folder / "good.mp4").write_bytes(inputs["video"].read_bytes())
    (folder / "loop.mp4").symlink_to("loop.mp4")
    (folder / "sub").symlink_to("sub")
    out = tmp_path / "masks"
    result = run("mask", folder, "-o", out, "--model", inputs["model"], "-q")
    assert result.exit_code == 0, result.output
    assert files_in(out) == ["good.hdf5", "wormclean-batch.csv"]
    skipped = [line for line in result.stderr.splitlines() if "skipped" in line]
    assert len(skipped) == 2 and all("Too many levels of symbolic links" in line for line in skipped), result.stderr


# 8. messages that named the wrong thing
def test_a_one_pixel_video_is_masked(inputs, tmp_path):
    import av

    path = tmp_path / "pixel.avi"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("ffv1", rate=10)
        stream.width = stream.height = 1
        stream.pix_fmt = "gray"
        for index in range(12):
            container.mux(stream.encode(av.VideoFrame.from_ndarray(np.full((1, 1), 100 + index, np.uint8), "gray")))
        container.mux(stream.encode())
    result = run("mask", path, "-o", tmp_path / "pixel.hdf5", "--model", inputs["model"], "-q")
    assert result.exit_code == 0, result.output
    with h5py.File(tmp_path / "pixel.hdf5", "r") as file:
        assert file["/worm_mask"].shape == (12, 1, 1)


def test_a_batch_report_on_a_full_disk_is_named_and_not_left_empty(inputs, tmp_path, small_disk, monkeypatch):
    import wormclean.predict.batch as batch

    monkeypatch.setattr(batch, "open", _SmallDisk, raising=False)
    small_disk.budget = 0
    out = tmp_path / "masks"
    result = run("mask", inputs["videos"], "-o", out, "--model", inputs["model"], "-q")
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert all(str(out) in line and "No space left on device" in line for line in lines), result.stderr
    assert any(f"cannot write {out / 'wormclean-batch.csv'}" in line for line in lines), result.stderr
    assert files_in(out) == []


def test_a_stop_during_a_callback_of_hdf5_is_raised_back_in_python(tmp_path):
    """HDF5 writes through FailSafeFile; an exception thrown through HDF5's frames crashed the process."""
    from wormclean.stopping import Stopped, stop_on_signals

    class StoppedWhileWriting:
        def __init__(self, file):
            self.file = file

        def write(self, data):
            os.kill(os.getpid(), signal.SIGTERM)  # handled at once, inside FailSafeFile.write
            return self.file.write(data)

        def __getattr__(self, name):
            return getattr(self.file, name)

    with stop_on_signals(), atomic.FailSafeFile(tmp_path / "f.h5") as file:
        file._file = StoppedWhileWriting(file._file)
        assert file.write(b"abc") == 3
        with pytest.raises(Stopped):
            time.sleep(5)
    assert (tmp_path / "f.h5").read_bytes() == b"abc"


def test_a_python_warning_is_one_line_of_our_log(inputs, tmp_path, monkeypatch):
    import warnings

    import wormclean.predict.batch as batch

    real_mask_video = batch.mask_video

    def warning_mask_video(*args, **kwargs):
        np.float32(3e38) * np.float32(10)  # numpy's "overflow encountered" RuntimeWarning
        return real_mask_video(*args, **kwargs)

    monkeypatch.setattr(batch, "mask_video", warning_mask_video)
    with warnings.catch_warnings():
        warnings.simplefilter("default")
        result = run("mask", inputs["video"], "-o", tmp_path / "m.hdf5", "--model", inputs["model"], "-q")
    assert result.exit_code == 0, result.output
    lines = [line for line in result.stderr.splitlines() if "overflow" in line or "np.float32" in line]
    assert lines == ["WARNING: overflow encountered in scalar multiply (RuntimeWarning)"], result.stderr


@pytest.mark.slow
def test_sigterm_to_simulate_leaves_no_partial(tmp_path):
    command = [sys.executable, "-m", "wormclean", "simulate", str(tmp_path / "s.mp4"), "--size", "256", "--frames",
               "100000", "-q"]
    job = subprocess.Popen(command, stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(REPO_ROOT)})
    _wait_for(lambda: _partials(tmp_path), job)
    time.sleep(0.5)
    job.send_signal(signal.SIGTERM)
    assert job.wait(timeout=60) == 143
    assert job.stderr.read().strip().splitlines() == ["Stopped by SIGTERM."]
    assert files_in(tmp_path) == []
