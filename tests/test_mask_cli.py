"""``wormclean mask`` and ``wormclean preview`` in-process, the model registry, and their error paths."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import cv2
import h5py
import pytest
import torch
from click.testing import CliRunner

from wormclean.cli import cli
from wormclean.errors import ModelFileError
from wormclean.model.modelfile import Normalisation, model_payload, save_model
from wormclean.model.registry import resolve_model
from wormclean.model.unet import UNet, UNetConfig
from wormclean.sim import SimulationSettings, write_simulation


def tiny_net() -> UNet:
    torch.manual_seed(0)
    return UNet(UNetConfig(width=8, depth=2))


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("models")
    paths = {}
    paths["video"] = save_model(folder / "video.pt", tiny_net(), Normalisation(), {"kind": "video", "dark_worms": True})
    paths["stills"] = save_model(folder / "stills.pt", tiny_net(), Normalisation(), {"kind": "stills"})
    payload = model_payload(tiny_net(), Normalisation(), {"kind": "video"})
    payload["format_version"] = 99
    torch.save(payload, folder / "future.pt")
    paths["future"] = folder / "future.pt"
    torch.save({"format": "something else", "weights": [1, 2]}, folder / "other.pt")
    paths["other"] = folder / "other.pt"
    (folder / "garbage.pt").write_bytes(b"\x00not a model at all")
    paths["garbage"] = folder / "garbage.pt"
    return paths


@pytest.fixture(scope="module")
def videos(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("videos")
    for seed, name in enumerate(["day1", "day2"]):
        write_simulation(folder / f"{name}.mp4", SimulationSettings(size=(48, 64), n_frames=8, n_worms=2, seed=seed))
    return folder


def run(*args: str):
    return CliRunner().invoke(cli, [str(arg) for arg in args])


def leftovers(folder: Path) -> list[str]:
    return sorted(path.name for path in folder.iterdir() if ".partial" in path.name)


def test_mask_a_folder_into_a_folder(tmp_path, videos, models):
    out = tmp_path / "out" / "masks"  # created when missing
    result = run("mask", videos, "-o", out, "--model", models["video"], "--bgnd-interval", "1s", "-q")
    assert result.exit_code == 0, result.output
    assert sorted(path.name for path in out.iterdir()) == ["day1.hdf5", "day2.hdf5", "wormclean-batch.csv"]
    with h5py.File(out / "day1.hdf5", "r") as file:
        assert file["mask"].shape == (8, 48, 64) and file.attrs["n_frames"] == 8
        assert json.loads(file.attrs["settings"])["resolved"]["bgnd_interval_frames"] == 25


def test_mask_one_video_into_a_file_with_options(tmp_path, videos, models):
    output = tmp_path / "one.h5"
    options = [
        "--light-worms",
        "--threshold",
        "otsu",
        "--min-area",
        "4",
        "--delta",
        "12",
        "--dilation",
        "0",
        "--save-interval",
        "3",
        "--microns-per-pixel",
        "12.5",
        "--tile-size",
        "64",
        "--batch-size",
        "2",
    ]
    result = run("mask", videos / "day1.mp4", "-o", output, "--model", models["video"], "--device", "cpu", *options)
    assert result.exit_code == 0, result.output
    assert f"{output}: 8 frames" in result.output
    with h5py.File(output, "r") as file:
        assert file["mask"].attrs["is_light_background"] == 0
        assert file["mask"].attrs["microns_per_pixel"] == 12.5
        assert file["full_data"].shape[0] == 3 and file["full_data"].attrs["save_interval"] == 3
        settings = json.loads(file.attrs["settings"])
        assert settings["threshold"] == "otsu" and settings["min_area"] == 4 and settings["dark_worms"] is False


def test_frames_smaller_than_a_tile_just_work(tmp_path, models):
    video = tmp_path / "small.mp4"
    write_simulation(video, SimulationSettings(size=(20, 34), n_frames=4, n_worms=0))
    result = run("mask", video, "-o", tmp_path / "small.hdf5", "--model", models["video"], "--tile-size", "4096")
    assert result.exit_code == 0, result.output


def test_one_failing_video_does_not_stop_the_others(tmp_path, videos, models):
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    (inputs / "good.mp4").write_bytes((videos / "day1.mp4").read_bytes())
    (inputs / "bad.mp4").write_bytes(b"this is not a video")
    out = tmp_path / "out"
    result = run("mask", inputs, "-o", out, "--model", models["video"])
    assert result.exit_code == 2
    errors = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and str(inputs / "bad.mp4") in errors[0]
    assert f"{out / 'good.hdf5'}: 8 frames" in result.output
    assert sorted(path.name for path in out.iterdir()) == ["good.hdf5", "wormclean-batch.csv"]


def test_existing_output_needs_overwrite(tmp_path, videos, models):
    output = tmp_path / "taken.hdf5"
    output.write_bytes(b"precious")
    result = run("mask", videos / "day1.mp4", "-o", output, "--model", models["video"])
    assert result.exit_code == 2
    assert f"Error: {videos / 'day1.mp4'}: {output} exists; use --overwrite to replace it" in result.output
    assert output.read_bytes() == b"precious" and leftovers(tmp_path) == []
    result = run("mask", videos / "day1.mp4", "-o", output, "--model", models["video"], "--overwrite")
    assert result.exit_code == 0, result.output
    assert h5py.is_hdf5(output)


@pytest.mark.parametrize(
    "kind, message",
    [
        ("stills", "is a stills model; masking videos needs a video model"),
        ("future", "has model format version 99; this wormclean (version"),
        ("other", "is not a wormclean model file"),
        ("garbage", "is not a wormclean model file"),
    ],
)
def test_bad_model_files(tmp_path, videos, models, kind, message):
    output = tmp_path / "out.hdf5"
    result = run("mask", videos / "day1.mp4", "-o", output, "--model", models[kind])
    assert result.exit_code == 2
    assert result.output.startswith("Error: ") and message in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert not output.exists() and leftovers(tmp_path) == []


def test_missing_and_default_models(tmp_path, videos):
    result = run("mask", videos / "day1.mp4", "-o", tmp_path / "out.hdf5", "--model", tmp_path / "nope.pt")
    assert result.exit_code == 2 and f"model file {tmp_path / 'nope.pt'} does not exist" in result.output
    # Without --model, the shipped default model is used.
    result = run("mask", videos / "day1.mp4", "-o", tmp_path / "out.hdf5", "-q")
    assert result.exit_code == 0, result.output
    with h5py.File(tmp_path / "out.hdf5", "r") as file:
        assert json.loads(file.attrs["model"])["path"].endswith("default.pt")
    # An installation without a default model says what to do.
    with pytest.raises(ModelFileError, match="no default model is installed; pass --model PATH"):
        resolve_model(None, folder=tmp_path)


def test_bad_inputs_and_outputs(tmp_path, videos, models):
    model = ("--model", models["video"])
    result = run("mask", tmp_path / "missing.mp4", "-o", tmp_path / "out", *model)
    assert result.exit_code == 2 and "missing.mp4: no such file or folder" in result.output
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    result = run("mask", videos, "-o", blocker / "out", *model)
    assert result.exit_code == 2 and f"cannot create output folder {blocker / 'out'}" in result.output
    result = run("mask", videos / "day1.mp4", "-o", tmp_path / "no" / "such" / "x.hdf5", *model)
    assert result.exit_code == 2 and "output folder" in result.output and "does not exist" in result.output
    result = run("mask", videos, "-o", tmp_path / "one.hdf5", *model)
    assert result.exit_code == 2 and "names one file, but there are 2 videos" in result.output
    result = run("mask", videos, "-o", tmp_path / "out", "--bgnd-interval", "ten", *model)
    assert result.exit_code == 2 and "expected frames (e.g. 150) or seconds" in result.output
    assert not (tmp_path / "out").exists()


def test_help_explains_the_background_interval():
    result = run("mask", "--help")
    assert result.exit_code == 0
    text = " ".join(result.output.split())
    assert "--bgnd-interval" in text and "[default: 1000]" in text
    assert "median of 21 frames sampled around it" in text and "1 runs it on every frame" in text
    assert "--background [fused|net|temporal]" in text and "the paper's method" in text


def test_preview_writes_one_row_per_frame(tmp_path, videos, models):
    output = tmp_path / "preview.png"
    result = run("preview", videos / "day2.mp4", "-o", output, "--model", models["video"], "--frames", "3")
    assert result.exit_code == 0, result.output
    image = cv2.imread(str(output))
    assert image.shape == (3 * 48 + 2 * 4, 3 * 64 + 2 * 4, 3)
    result = run("preview", videos / "day2.mp4", "-o", output, "--model", models["video"])
    assert result.exit_code == 2 and "exists; use --overwrite" in result.output
    result = run("preview", videos / "day2.mp4", "-o", tmp_path / "preview.xyz", "--model", models["video"])
    assert result.exit_code == 2 and "use a .png file name" in result.output
    assert leftovers(tmp_path) == []


def test_cleaner_is_exported():
    from wormclean import Cleaner
    from wormclean.predict.cleaner import Cleaner as Defined

    assert Cleaner is Defined


# --- registry ----------------------------------------------------------------------------------------------
def make_registry(folder: Path, models: dict, default: str | None) -> None:
    entries = {}
    for name, path in models.items():
        target = folder / f"{name}.pt"
        target.write_bytes(path.read_bytes())
        entries[name] = {"file": target.name, "sha256": hashlib.sha256(target.read_bytes()).hexdigest()}
    (folder / "registry.json").write_text(json.dumps({"default": default, "models": entries}))


def test_registry_resolves_names_paths_and_checks_files(tmp_path, models):
    make_registry(tmp_path, {"plate-v1": models["video"]}, default="plate-v1")
    assert resolve_model(None, folder=tmp_path) == tmp_path / "plate-v1.pt"
    assert resolve_model("plate-v1", folder=tmp_path) == tmp_path / "plate-v1.pt"
    assert resolve_model(models["stills"], folder=tmp_path) == models["stills"]
    with pytest.raises(ModelFileError, match="unknown model 'plate-v2' \\(registered models: plate-v1\\)"):
        resolve_model("plate-v2", folder=tmp_path)
    (tmp_path / "plate-v1.pt").write_bytes(b"damaged")
    with pytest.raises(ModelFileError, match="is damaged: its SHA-256 does not match the registry"):
        resolve_model("plate-v1", folder=tmp_path)
    (tmp_path / "plate-v1.pt").unlink()
    with pytest.raises(ModelFileError, match="is registered but its file .* is missing"):
        resolve_model("plate-v1", folder=tmp_path)
    (tmp_path / "registry.json").write_text("{not json")
    with pytest.raises(ModelFileError, match="registry .* is damaged"):
        resolve_model("plate-v1", folder=tmp_path)


def test_cli_options_and_cleaner_keywords_make_the_same_job(models, videos, tmp_path, monkeypatch):
    # One path from options to a job: `mask` and `preview` build MaskSettings, and Cleaner(**keywords) builds the
    # same object, so the settings a video resolves to are the same whichever way the job was asked for.
    import wormclean.predict.batch as batch
    import wormclean.predict.pipeline as pipeline
    from wormclean.io import open_video
    from wormclean.model.modelfile import load_model
    from wormclean.predict.cleaner import Cleaner
    from wormclean.settings import MaskSettings

    asked = {}

    def mask_batch(paths, output, settings, **_):
        asked["mask"] = settings
        return []

    def write_preview(cleaner, *_):
        asked["preview"] = cleaner
        return Path("out.png"), 1

    monkeypatch.setattr(batch, "mask_batch", mask_batch)
    monkeypatch.setattr(pipeline, "write_preview", write_preview)
    options = ["--model", models["video"], "--bgnd-interval", "2s", "--background", "net", "--threshold", "otsu",
               "--delta", "12", "--min-area", "30", "--light-worms", "--tile-size", "64", "--batch-size", "2",
               "--device", "cpu", "--adapt-steps", "5"]
    assert run("mask", videos / "day1.mp4", "-o", tmp_path / "out.hdf5", *options).exit_code == 0
    assert run("preview", videos / "day1.mp4", "-o", tmp_path / "out.png", *options).exit_code == 0
    keywords = dict(bgnd_interval="2s", background="net", threshold="otsu", delta=12.0, min_area=30, dark_worms=False,
                    tile_size=64, batch_size=2, device="cpu", adapt_steps=5)
    assert asked["mask"] == MaskSettings(model=str(models["video"]), **keywords)
    from_cli = [Cleaner.from_settings(asked["mask"]), asked["preview"]]
    from_python = Cleaner(load_model(models["video"]), **keywords)
    with open_video(videos / "day1.mp4") as reader:
        resolved = from_python.for_video(reader)
        assert resolved.bgnd_interval_frames == round(2 * reader.fps) and resolved.dark_worms is False
        assert resolved.device == "cpu" and (resolved.tile_size, resolved.batch_size) == (64, 2)
        for cleaner in from_cli:
            assert cleaner.for_video(reader) == resolved
            assert cleaner.segmentation == from_python.segmentation and cleaner.net == from_python.net
    with pytest.raises(TypeError, match="either settings or keyword options"):
        Cleaner(load_model(models["video"]), settings=asked["mask"], device="cpu")
