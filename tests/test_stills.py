"""Still-image mode: crops, synthetic pairs, the training stream, a tiny net that learns, filter, evaluate.

Scenes are drawn here with known objects: bright discs (targets) and bright bars (others) on a dim, noisy
background, written as PNGs with point and box annotations.
"""

from __future__ import annotations

import csv
import json

import cv2
import numpy as np
import pytest
import torch
from click.testing import CliRunner

from wormclean.cli import cli
from wormclean.data.crops import crop_training_data
from wormclean.data.synthesis import BackgroundPatch, CropBank, ObjectCrop, synthesize_pair
from wormclean.errors import ModelFileError, OutputError, SettingsError
from wormclean.io.images import read_image, write_image
from wormclean.model.modelfile import Normalisation, save_model
from wormclean.model.unet import UNet, UNetConfig
from wormclean.predict.filtering import filter_image, load_stills_model
from wormclean.segment.regions import Box, Point
from wormclean.settings import CropSettings, SynthesisSettings
from wormclean.stills.annotations import read_boxes
from wormclean.stills.colour import ColourSpace, objects_are_dark
from wormclean.stills.crops import extract_crops
from wormclean.stills.store import read_catalogue

BACKGROUND, OBJECT = 20, 170


@pytest.fixture(autouse=True)
def _one_thread():
    """One torch thread: on a shared 2-core machine two threads wait on each other and run many times slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def draw_scene(rng: np.random.Generator, size: int = 96, n_discs: int = 2, n_bars: int = 3):
    """A ``(size, size)`` uint8 scene, its points ``(x, y, class)`` and boxes ``(xmin, ymin, xmax, ymax, class)``.

    Objects do not touch, so each is one Otsu component.
    """
    image = np.zeros((size, size), dtype=np.uint8)
    points, boxes, centres = [], [], []
    for label, count in (("disc", n_discs), ("bar", n_bars)):
        placed = 0
        while placed < count:
            x, y = (int(v) for v in rng.integers(12, size - 12, size=2))
            if any((x - cx) ** 2 + (y - cy) ** 2 < 24**2 for cx, cy in centres):
                continue
            centres.append((x, y))
            layer = np.zeros_like(image)
            if label == "disc":
                cv2.circle(layer, (x, y), 5, OBJECT, -1)
            else:
                angle = rng.uniform(0, np.pi)
                dx, dy = int(round(9 * np.cos(angle))), int(round(9 * np.sin(angle)))
                cv2.line(layer, (x - dx, y - dy), (x + dx, y + dy), OBJECT, 3)
            image = np.maximum(image, layer)
            rows, columns = np.nonzero(layer)
            points.append((x, y, label))
            boxes.append((columns.min(), rows.min(), columns.max() + 1, rows.max() + 1, label))
            placed += 1
    noisy = image.astype(np.float32) + BACKGROUND + rng.normal(0, 3, image.shape)
    return np.clip(noisy, 0, 255).astype(np.uint8), points, boxes


@pytest.fixture(scope="module")
def scenes(tmp_path_factory):
    """Six annotated scenes: ``images/`` PNGs, ``points.csv``, ``boxes.csv`` and the drawn annotations."""
    folder = tmp_path_factory.mktemp("scenes")
    (folder / "images").mkdir()
    rng = np.random.default_rng(1)
    all_points, all_boxes = {}, {}
    with open(folder / "points.csv", "w", newline="") as p, open(folder / "boxes.csv", "w", newline="") as b:
        point_writer, box_writer = csv.writer(p), csv.writer(b)
        point_writer.writerow(["image", "x", "y", "class"])
        box_writer.writerow(["image", "xmin", "ymin", "xmax", "ymax", "class"])
        for index in range(6):
            image, points, boxes = draw_scene(rng)
            name = f"scene{index}.png"
            cv2.imwrite(str(folder / "images" / name), image)
            all_points[f"scene{index}"], all_boxes[f"scene{index}"] = points, boxes
            point_writer.writerows([name, x, y, label] for x, y, label in points)
            box_writer.writerows([name, *box] for box in boxes)
    return {"folder": folder, "points": all_points, "boxes": all_boxes}


@pytest.fixture(scope="module")
def crops_dir(scenes, tmp_path_factory):
    output = tmp_path_factory.mktemp("crops") / "crops"
    result = CliRunner().invoke(cli, ["crops", str(scenes["folder"] / "images"), "--points",
                                      str(scenes["folder"] / "points.csv"), "-o", str(output),
                                      "--background-size", "48", "-q"])
    assert result.exit_code == 0, result.output
    return output


# ---- crops ------------------------------------------------------------------------------------------------

def test_point_crops_one_per_object_with_layout(crops_dir):
    index = json.loads((crops_dir / "crops.json").read_text())
    assert index["counts"] == {"bar": 18, "disc": 12, "background": 24}
    assert index["method"] == "points" and index["colour"] == "grey" and index["inverted"] is False
    assert index["bit_depth"] == 8 and len(index["images"]) == 6
    disc = next(entry for entry in index["crops"] if entry["class"] == "disc")
    bgra = cv2.imread(str(crops_dir / disc["file"]), cv2.IMREAD_UNCHANGED)
    assert bgra.shape[2] == 4
    area = int((bgra[..., 3] > 0).sum())
    assert 70 <= area <= 100  # a disc of radius 5 has 81 pixels
    assert np.all(bgra[..., 0][bgra[..., 3] > 0] > 100)
    level = index["images"][disc["image"]]["background_level"][0]
    assert abs(level - BACKGROUND) < 3
    background = next(iter((crops_dir / "background").iterdir()))
    patch = cv2.imread(str(background), cv2.IMREAD_UNCHANGED)
    assert patch.shape[:2] == (48, 48)
    assert np.all(patch[..., 0][patch[..., 3] > 0] < 60), "an object was left in a background patch"


def test_component_with_two_classes_is_dropped(tmp_path):
    image = np.full((64, 64), 10, np.uint8)
    cv2.circle(image, (20, 20), 6, 200, -1)
    cv2.circle(image, (45, 45), 6, 200, -1)
    cv2.imwrite(str(tmp_path / "a.png"), image)
    points = {"a": [Point(20, 20, "x"), Point(21, 21, "y"), Point(45, 45, "x")]}
    summary = extract_crops([tmp_path / "a.png"], tmp_path / "crops", CropSettings(), points=points)
    assert summary.counts["x"] == 1 and "y" not in summary.counts
    assert summary.dropped == {"mixed classes": 1}


def test_box_crops_keep_the_largest_component(scenes, tmp_path):
    boxes = read_boxes(scenes["folder"] / "boxes.csv")
    summary = extract_crops(sorted((scenes["folder"] / "images").iterdir()), tmp_path / "crops",
                            CropSettings(box_ellipse=False), boxes=boxes)
    assert summary.counts["disc"] == 12 and summary.counts["bar"] == 18
    image = np.full((40, 60), 10, np.uint8)
    cv2.circle(image, (20, 20), 8, 200, -1)
    cv2.circle(image, (36, 20), 2, 200, -1)  # a small neighbour inside the same box
    cv2.imwrite(str(tmp_path / "b.png"), image)
    summary = extract_crops([tmp_path / "b.png"], tmp_path / "crops2", CropSettings(margin=0),
                            boxes={"b": [Box(10, 10, 40, 31, "big")]})
    catalogue = read_catalogue(summary.path)
    _, alpha = catalogue.load(catalogue.index["crops"][0])
    assert alpha.shape == (17, 17) and alpha.sum() == (image[10:31, 10:40] == 200).sum() - 13


def test_voc_reader(tmp_path):
    (tmp_path / "a.xml").write_text(
        "<annotation><filename>a.jpg</filename><object><name>WBC</name><bndbox><xmin>11</xmin>"
        "<ymin>21</ymin><xmax>30</xmax><ymax>40</ymax></bndbox></object></annotation>")
    assert read_boxes(tmp_path) == {"a": [Box(10, 20, 30, 40, "WBC")]}
    (tmp_path / "b.xml").write_text("<annotation><object><name>x</name></object></annotation>")
    with pytest.raises(SettingsError, match="lacks its <name> or <bndbox>"):
        read_boxes(tmp_path)


def test_focus_splits_blurred_from_sharp(tmp_path):
    image = np.full((96, 96), 10, np.float32)
    sharp, blurred = np.zeros_like(image), np.zeros_like(image)
    for x in (16, 48, 80):
        cv2.circle(sharp, (x, 20), 7, 200, -1)
        cv2.circle(blurred, (x, 70), 7, 200, -1)
    image += sharp + cv2.GaussianBlur(blurred, (0, 0), 3)
    cv2.imwrite(str(tmp_path / "f.png"), image.astype(np.uint8))
    summary = extract_crops([tmp_path / "f.png"], tmp_path / "crops", CropSettings(focus_quantiles=(0.5, 0.5)))
    index = read_catalogue(summary.path).index
    rows = {entry["class"]: [] for entry in index["crops"]}
    for entry in index["crops"]:
        rows[entry["class"]].append(entry["box"][1])
    assert len(rows["focused"]) == 3 and max(rows["focused"]) < 30
    assert len(rows["blurred"]) == 3 and min(rows["blurred"]) > 40
    tertiles = extract_crops([tmp_path / "f.png"], tmp_path / "crops3", CropSettings())
    assert sum(tertiles.counts[name] for name in ("blurred", "focused")) < 6, "the middle third was kept"


def test_dark_objects_are_complemented(tmp_path):
    rng = np.random.default_rng(3)
    image, points, _ = draw_scene(rng)
    brightfield = (255 - image).astype(np.uint8)
    assert objects_are_dark(brightfield) and not objects_are_dark(image)
    colour = np.stack([brightfield, brightfield // 2 + 100, brightfield], axis=2)
    write_image(tmp_path / "c.png", colour)
    summary = extract_crops([tmp_path / "c.png"], tmp_path / "crops", CropSettings(),
                            points={"c": [Point(x, y, label) for x, y, label in points]})
    assert summary.colour_space == ColourSpace("rgb", True, 8)
    assert summary.counts["disc"] == 2 and summary.counts["bar"] == 3


def test_crops_output_is_atomic_and_guarded(scenes, tmp_path):
    images = [scenes["folder"] / "images" / "scene0.png"]
    points = {"scene0": [Point(x, y, label) for x, y, label in scenes["points"]["scene0"]]}
    output = tmp_path / "crops"
    extract_crops(images, output, CropSettings(), points=points)
    with pytest.raises(OutputError, match="exists"):
        extract_crops(images, output, CropSettings(), points=points)
    with pytest.raises(SettingsError, match="none of the 1 images has an annotation"):
        extract_crops(images, output, CropSettings(), points={"other": points["scene0"]}, overwrite=True)
    assert (output / "crops.json").is_file()
    assert [p.name for p in tmp_path.iterdir()] == ["crops"], "a temporary folder was left behind"
    (tmp_path / "notcrops").mkdir()
    (tmp_path / "notcrops" / "keep.txt").write_text("mine")
    with pytest.raises(OutputError, match="not a crops folder"):
        extract_crops(images, tmp_path / "notcrops", CropSettings(), points=points, overwrite=True)


def test_crops_cli_errors(scenes, tmp_path):
    runner = CliRunner()
    images = str(scenes["folder"] / "images")
    result = runner.invoke(cli, ["crops", images, "-o", str(tmp_path / "c")])
    assert result.exit_code == 2 and "Error: give exactly one of --points, --boxes and --focus" in result.output
    bad = tmp_path / "bad.csv"
    bad.write_text("image,x,class\na.png,1,x\n")
    result = runner.invoke(cli, ["crops", images, "--points", str(bad), "-o", str(tmp_path / "c")])
    assert result.exit_code == 2 and "lacks column(s) y" in result.output


# ---- synthetic pairs -----------------------------------------------------------------------------------------

def _bank(n_channels: int = 1) -> CropBank:
    """Discs (targets) and bars (others) as crops, and a noisy background patch with a hole."""
    disc = np.zeros((13, 13), np.float32)
    cv2.circle(disc, (6, 6), 5, 1, -1)
    bar = np.zeros((7, 21), np.float32)
    cv2.line(bar, (1, 3), (19, 3), 1, 3)
    channels = np.array([150.0, 100.0, 50.0][:n_channels], np.float32)
    background = 20 + np.random.default_rng(0).normal(0, 3, (40, 40, n_channels)).astype(np.float32)
    visible = np.ones((40, 40), bool)
    visible[10:20, 10:20] = False
    return CropBank(
        targets=[ObjectCrop(disc[..., None] * channels + 20, disc > 0, 20.0)],
        others=[ObjectCrop(bar[..., None] * channels + 20, bar > 0, 20.0)],
        backgrounds=[BackgroundPatch(background, visible)],
        top=255.0,
        n_channels=n_channels,
    )


def _full_masks(placements, size: int) -> list[np.ndarray]:
    masks = []
    for placement in placements:
        full = np.zeros((size, size), bool)
        full[placement.window] = placement.mask
        masks.append(full)
    return masks


@pytest.mark.parametrize("mode", ["keep", "remove"])
def test_pairs_share_their_layer_and_respect_the_overlap_limit(mode):
    settings = SynthesisSettings(patch_size=64, mode=mode, max_overlap=0.3, n_targets=(2, 4), n_others=(6, 12))
    bank = _bank(3)
    shared_kind = "target" if mode == "keep" else "other"
    for seed in range(20):
        pair = synthesize_pair(bank, settings, np.random.default_rng(seed))
        assert pair.first.shape == pair.second.shape == (64, 64, 3) and pair.first.dtype == np.float32
        for image, varying in zip((pair.first, pair.second), pair.varying):
            np.testing.assert_allclose(image, np.clip(pair.shared + varying, 0, 255), atol=1e-4)
        shared_first = [p for p in pair.placements[0] if p.layer == shared_kind]
        shared_second = [p for p in pair.placements[1] if p.layer == shared_kind]
        assert len(shared_first) == len(shared_second) >= 1
        for a, b in zip(shared_first, shared_second):
            assert (a.row, a.column) == (b.row, b.column) and np.array_equal(a.mask, b.mask)
        for placements in pair.placements:
            masks = _full_masks(placements, 64)
            count = np.sum(masks, axis=0)
            for mask in masks:
                covered = np.count_nonzero(count[mask] >= 2) / mask.sum()
                assert covered <= 0.3 + 1e-9
    if mode == "keep":
        target_values = [p for p in pair.placements[0] if p.layer == "target"]
        assert np.all(pair.shared[_full_masks(target_values, 64)[0]] > 0)
        assert not np.allclose(pair.varying[0], pair.varying[1])


def test_pairs_are_deterministic_and_crops_hang_over_edges():
    settings = SynthesisSettings(patch_size=48, n_targets=(3, 3), n_others=(8, 8))
    bank = _bank()
    first = synthesize_pair(bank, settings, np.random.default_rng(7))
    again = synthesize_pair(bank, settings, np.random.default_rng(7))
    other = synthesize_pair(bank, settings, np.random.default_rng(8))
    assert np.array_equal(first.first, again.first) and np.array_equal(first.second, again.second)
    assert not np.array_equal(first.first, other.first)
    edge = 0
    for seed in range(30):
        pair = synthesize_pair(bank, settings, np.random.default_rng(seed))
        edge += sum(p.row == 0 or p.column == 0 for p in pair.placements[0])
    assert edge > 0


def test_varying_objects_stop_at_the_coverage_limit():
    settings = SynthesisSettings(patch_size=48, n_others=(40, 40), max_coverage=0.2, max_overlap=0.5)
    bank = _bank()
    for seed in range(10):
        pair = synthesize_pair(bank, settings, np.random.default_rng(seed))
        for placements in pair.placements:
            others = _full_masks([p for p in placements if p.layer == "other"], 48)
            union = np.sum(others, axis=0) > 0
            last = others[-1].sum()  # the check comes before each crop, so the last one may overshoot
            assert 0.2 * 48 * 48 <= union.sum() <= 0.2 * 48 * 48 + last
            assert len(others) < 40


def test_synthesis_settings_are_checked():
    with pytest.raises(SettingsError, match="max-overlap"):
        SynthesisSettings(max_overlap=1.0)
    with pytest.raises(SettingsError, match="mode"):
        SynthesisSettings(mode="both")


# ---- training data ---------------------------------------------------------------------------------------

def test_crop_training_data_stream(crops_dir):
    data = crop_training_data(crops_dir, ["disc"], patch_size=64, seed=3, validation_fraction=0.34,
                              validation_batches=2, validation_batch_size=3)
    assert data.in_channels == 1 and data.normalisation == Normalisation.for_bit_depth(8)
    assert data.metadata["kind"] == "stills" and data.metadata["targets"] == ["disc"]
    assert data.metadata["others"] == ["bar"] and data.metadata["colour"] == "grey"
    assert len(data.metadata["validation_images"]) == 2
    assert len(data.validation) == 2 and data.validation[0][0].shape == (3, 1, 64, 64)
    source, target = next(iter(data.dataset))
    assert source.shape == target.shape == (1, 64, 64) and source.dtype == torch.float32
    assert 0 <= float(source.min()) and 100 < float(source.max()) <= 255, "not raw working values"
    assert float(torch.mean(torch.abs(source - target))) > 1, "input and target are the same image"
    loader = torch.utils.data.DataLoader(data.dataset, batch_size=2, num_workers=2)
    batch = next(iter(loader))[0]
    assert not torch.equal(batch[0], batch[1]), "both workers drew the same pairs"
    again = crop_training_data(crops_dir, ["disc"], patch_size=64, seed=3, validation_fraction=0.34,
                               validation_batches=2, validation_batch_size=3)
    assert torch.equal(again.validation[1][1], data.validation[1][1])
    with pytest.raises(SettingsError, match="no crops of class cell"):
        crop_training_data(crops_dir, ["cell"])
    with pytest.raises(SettingsError, match="name the target classes"):
        crop_training_data(crops_dir, None)


@pytest.fixture(scope="module")
def trained_model(crops_dir, tmp_path_factory):
    """A width-8 depth-3 net trained for 300 steps on 48x48 pairs keeping discs, with the shared trainer."""
    from wormclean.train.fit import TrainSettings, train

    data = crop_training_data(crops_dir, ["disc"], patch_size=48, seed=0, n_targets=(2, 4), n_others=(2, 4))
    output = tmp_path_factory.mktemp("model") / "discs.pt"
    settings = TrainSettings(steps=300, batch_size=8, width=8, depth=3, learning_rate=3e-3, device="cpu",
                             validate_every=300)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        train(data, settings, output)
    finally:
        torch.set_num_threads(threads)
    return output


def test_tiny_net_keeps_targets_and_suppresses_others(trained_model, crops_dir):
    model = load_stills_model(trained_model)
    assert model.metadata["kind"] == "stills" and model.metadata["mode"] == "keep"
    data = crop_training_data(crops_dir, ["disc"], patch_size=64, seed=99, validation_fraction=0)
    bank, settings = data.dataset.bank, data.dataset.settings
    rng = np.random.default_rng(123)
    kept, removed, input_error, output_error = [], [], [], []
    for _ in range(8):
        pair = synthesize_pair(bank, settings, rng)
        image = np.clip(np.rint(pair.first[..., 0]), 0, 255).astype(np.uint8)
        _, working = filter_image(model, image, device="cpu")
        masks = {kind: np.sum(_full_masks([p for p in pair.placements[0] if p.layer == kind], 64), axis=0) > 0
                 for kind in ("target", "other")}
        level = np.median(pair.varying[0])
        targets_only = masks["target"] & ~masks["other"]
        others_only = masks["other"] & ~masks["target"]
        if targets_only.any():
            kept.append(np.mean(working[targets_only] - level) / np.mean(pair.first[targets_only] - level))
        if others_only.any():
            removed.append(np.mean(working[others_only] - level) / np.mean(pair.first[others_only] - level))
        clean = pair.shared + level
        input_error.append(np.mean(np.abs(pair.first - clean)))
        output_error.append(np.mean(np.abs(working - clean)))
    assert np.mean(kept) > 0.6, f"targets faded: {np.mean(kept):.2f} of their contrast kept"
    assert np.mean(removed) < 0.3, f"others stayed: {np.mean(removed):.2f} of their contrast kept"
    assert np.mean(output_error) < 0.5 * np.mean(input_error)


# ---- filter and evaluate ----------------------------------------------------------------------------------

def test_filter_and_evaluate_cli(trained_model, scenes, tmp_path):
    runner = CliRunner()
    images = scenes["folder"] / "images"
    output = tmp_path / "filtered"
    boxes = tmp_path / "found.csv"
    result = runner.invoke(cli, ["filter", str(images), "-o", str(output), "--model", str(trained_model),
                                 "--masks", "--boxes", str(boxes), "--min-area", "30", "--device", "cpu", "-q"])
    assert result.exit_code == 0, result.output
    filtered = read_image(output / "scene0.png")
    assert filtered.shape == (96, 96) and filtered.dtype == np.uint8
    assert (output / "masks" / "scene0.png").is_file()
    result = runner.invoke(cli, ["evaluate", str(boxes), "--boxes", str(scenes["folder"] / "boxes.csv"),
                                 "--target", "disc", "--images", str(images), "--json", str(tmp_path / "s.json")])
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "s.json").read_text())
    assert report["total"]["f1"] > 0.7, result.output
    assert "disc over 6 images (IoU > 0.25): precision" in result.output
    result = runner.invoke(cli, ["evaluate", str(boxes), "--points", str(scenes["folder"] / "points.csv"),
                                 "--target", "bar", "--images", str(images)])
    assert result.exit_code == 0 and "recall 0.0" in result.output, "bars were found in a disc-keeping output"
    result = runner.invoke(cli, ["filter", str(images), "-o", str(output), "--model", str(trained_model)])
    assert result.exit_code == 2 and "exists; use --overwrite" in result.output


def test_filter_refuses_a_video_model(tmp_path, scenes):
    path = tmp_path / "video.pt"
    save_model(path, UNet(UNetConfig(width=8, depth=3)), Normalisation.for_bit_depth(8), {"kind": "video"})
    with pytest.raises(ModelFileError, match="is a video model; 'wormclean filter' needs a stills model"):
        load_stills_model(path)
    result = CliRunner().invoke(cli, ["filter", str(scenes["folder"] / "images"), "-o", str(tmp_path / "out"),
                                      "--model", str(path)])
    assert result.exit_code == 2 and result.output.startswith("Error: ") and "stills model" in result.output


# ---- colour spaces, bit depths --------------------------------------------------------------------------------

@pytest.mark.parametrize("mode", ["grey", "invert", "rgb"])
@pytest.mark.parametrize("bit_depth", [8, 16])
def test_colour_spaces_round_trip(mode, bit_depth):
    dtype = np.uint8 if bit_depth == 8 else np.uint16
    top = 2**bit_depth - 1
    rgb = np.random.default_rng(0).integers(0, top + 1, (5, 7, 3)).astype(dtype)
    space = ColourSpace.from_mode(mode, dark_objects=True, bit_depth=bit_depth)
    working = space.to_working(rgb)
    assert working.shape == (5, 7, space.n_channels) and working.dtype == np.float32
    back = space.from_working(working)
    assert back.dtype == dtype
    if mode == "rgb":
        assert space.inverted and np.array_equal(back, rgb)
        assert np.allclose(working, top - rgb.astype(np.float32))
    else:
        grey = rgb.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
        assert np.abs(back.astype(np.float32) - grey).max() <= 0.5 + 1e-3 * top
        assert space.inverted == (mode == "invert")


def _stills_model(path, in_channels: int, bit_depth: int, colour: str, inverted: bool):
    net = UNet(UNetConfig(in_channels=in_channels, out_channels=in_channels, width=8, depth=3))
    metadata = {"kind": "stills", "targets": ["disc"], "mode": "keep", "colour": colour, "inverted": inverted}
    save_model(path, net, Normalisation.for_bit_depth(bit_depth), metadata)
    return path


def test_sixteen_bit_crops_training_data_and_filter(tmp_path):
    rng = np.random.default_rng(5)
    folder = tmp_path / "images"
    folder.mkdir()
    points = {}
    for index in range(2):
        image, found, _ = draw_scene(rng)
        cv2.imwrite(str(folder / f"s{index}.tif"), image.astype(np.uint16) * 257)
        points[f"s{index}"] = [Point(x, y, label) for x, y, label in found]
    summary = extract_crops(sorted(folder.iterdir()), tmp_path / "crops", CropSettings(background_size=48),
                            points=points)
    assert summary.colour_space == ColourSpace("grey", False, 16)
    data = crop_training_data(tmp_path / "crops", ["disc"], patch_size=32, log_scale=True, validation_fraction=0)
    assert data.normalisation == Normalisation.for_bit_depth(16, log=True)
    source, _ = next(iter(data.dataset))
    assert float(source.max()) > 255 * 100, "16-bit values were not kept"
    model = _stills_model(tmp_path / "m.pt", 1, 16, "grey", False)
    result = CliRunner().invoke(cli, ["filter", str(folder), "-o", str(tmp_path / "out"), "--model", str(model),
                                      "--device", "cpu", "-q"])
    assert result.exit_code == 0, result.output
    assert read_image(tmp_path / "out" / "s0.tif").dtype == np.uint16
    result = CliRunner().invoke(cli, ["filter", str(folder / "s0.tif"), "-o", str(tmp_path / "out8"),
                                      "--model", str(_stills_model(tmp_path / "m8.pt", 1, 8, "grey", False))])
    assert result.exit_code == 2 and "trained on 8-bit images, this one is 16-bit" in result.output


def test_rgb_model_filters_colour_images(tmp_path):
    image = np.random.default_rng(0).integers(0, 256, (40, 56, 3)).astype(np.uint8)
    model = load_stills_model(_stills_model(tmp_path / "rgb.pt", 3, 8, "rgb", True))
    filtered, working = filter_image(model, image, device="cpu")
    assert filtered.shape == (40, 56, 3) and filtered.dtype == np.uint8
    assert working.shape == (40, 56, 3)
    np.testing.assert_allclose(filtered, np.clip(np.rint(255 - working), 0, 255), atol=1)
    with pytest.raises(SettingsError, match="--colour rgb needs colour images"):
        filter_image(model, image[..., 0], device="cpu")


def test_fit_cli_takes_crops(crops_dir, tmp_path):
    runner = CliRunner()
    command = ["fit", "--crops", str(crops_dir), "-o", str(tmp_path / "m.pt"), "--patch-size", "32", "--dry-run"]
    result = runner.invoke(cli, command)
    assert result.exit_code == 2 and "name the target classes (--targets), among: bar, disc" in result.output
    result = runner.invoke(cli, [*command, "--targets", "disc"])
    assert result.exit_code == 0, result.output
    assert "kind: stills" in result.output and "targets: ['disc']" in result.output
