"""``wormclean crops``, ``wormclean filter`` and ``wormclean evaluate``: the still-image mode.

Train in between with ``wormclean fit --crops CROPS_DIR --targets CLASS -o model.pt``.
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from wormclean.cli.common import SEED, FiniteFloat, device_option, overwrite_option, progress_bar, quiet_option, say
from wormclean.errors import OutputError, SettingsError, WormcleanError
from wormclean.settings import COLOUR_MODES, CropSettings, DetectionSettings


@click.command(context_settings={"show_default": True})
@click.argument("images", nargs=-1, required=True)
@click.option("-o", "--output", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Crops folder to create: <class>/*.png, background/*.png and crops.json.")
@click.option("--points", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Point annotations: a CSV with columns image,x,y,class.")
@click.option("--boxes", type=click.Path(path_type=Path), default=None,
              help="Box annotations: a folder of Pascal VOC XML files, one XML, or a CSV "
                   "image,xmin,ymin,xmax,ymax,class.")
@click.option("--focus", is_flag=True, help="No annotation: split objects into 'blurred' and 'focused'.")
@click.option("--colour", type=click.Choice(["auto", *COLOUR_MODES]), default=CropSettings.colour,
              help="Working space: grey (bright objects), invert (complement: dark objects), rgb (complemented "
                   "when objects are dark); auto takes rgb for colour images, else grey or invert.")
@click.option("--dark-objects/--bright-objects", default=None,
              help="Whether objects are darker than their background [default: guessed from the images].")
@click.option("--min-area", default=CropSettings.min_area, type=click.IntRange(min=0),
              help="Smallest object kept (pixels).")
@click.option("--background-size", default=CropSettings.background_size, type=click.IntRange(min=1),
              help="Side of the background patches (pixels).")
@click.option("--backgrounds-per-image", default=CropSettings.backgrounds_per_image, type=click.IntRange(min=0),
              help="Background patches cut from each image.")
@click.option("--linear-threshold", is_flag=True, help="Otsu on the values rather than on their logarithm.")
@click.option("--seed", default=CropSettings.seed, type=SEED, help="Where the background patches are cut.")
@overwrite_option
@quiet_option
def crops(images, output, points, boxes, focus, colour, dark_objects, min_area, background_size,
          backgrounds_per_image, linear_threshold, seed, overwrite, quiet):
    """Cut object crops and background patches from IMAGES (files or folders) for 'wormclean fit --crops'.

    Give exactly one of --points, --boxes and --focus.
    """
    from wormclean.io.images import find_images
    from wormclean.stills.annotations import read_boxes, read_points
    from wormclean.stills.crops import extract_crops

    if sum([points is not None, boxes is not None, focus]) != 1:
        raise SettingsError("give exactly one of --points, --boxes and --focus")
    settings = CropSettings(colour=colour, dark_objects=dark_objects, log_threshold=not linear_threshold,
                            min_area=min_area, background_size=background_size,
                            backgrounds_per_image=backgrounds_per_image, seed=seed)
    paths = find_images(images)
    point_annotations = read_points(points) if points is not None else None
    box_annotations = read_boxes(boxes) if boxes is not None else None
    bar = progress_bar(len(paths), "crops", "image", quiet)
    try:
        summary = extract_crops(paths, output, settings, points=point_annotations, boxes=box_annotations,
                                overwrite=overwrite, progress=lambda: bar.update(1))
    finally:
        bar.close()
    counts = ", ".join(f"{name} {count}" for name, count in summary.counts.items())
    dropped = ", ".join(f"{name} {count}" for name, count in summary.dropped.items())
    say(f"Wrote {summary.path} from {summary.n_images} images ({summary.colour_space.mode}"
        f"{', complemented' if summary.colour_space.inverted else ''}): {counts}"
        + (f"; dropped: {dropped}" if dropped else ""), quiet)


def _outputs(paths: list[Path], folder: Path, overwrite: bool) -> list[Path]:
    """Output files for inputs (same names in ``folder``); refuses clashes before any work starts."""
    names = [path.name for path in paths]
    if len(set(names)) != len(names):
        raise SettingsError("two input images have the same file name; filter them into separate folders")
    outputs = [folder / name for name in names]
    for path, output in zip(paths, outputs):
        if output.resolve() == path.resolve():
            raise OutputError(f"{output} is an input image; choose another output folder")
        if output.exists() and not overwrite:
            raise OutputError(f"{output} exists; use --overwrite to replace it")
    return outputs


@click.command("filter", context_settings={"show_default": True})
@click.argument("images", nargs=-1, required=True)
@click.option("-o", "--output", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Folder for the filtered images (same file names and bit depth as the inputs).")
@click.option("--model", "model_path", required=True, metavar="PATH|NAME",
              help="A stills model from 'wormclean fit --crops': a file or the name of an installed model.")
@click.option("--masks", is_flag=True, help="Also write object masks (Otsu on the output) to OUTPUT/masks/.")
@click.option("--boxes", "boxes_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Also write the objects' boxes to this CSV (image,xmin,ymin,xmax,ymax,score).")
@click.option("--min-area", default=DetectionSettings.min_area, type=click.IntRange(min=0),
              help="Smallest object in masks and boxes (pixels).")
@click.option("--min-contrast", default=DetectionSettings.min_contrast, type=FiniteFloat(0, 1),
              help="Least object contrast over the output's background, as a fraction of the full range.")
@click.option("--close-radius", default=DetectionSettings.close_radius, type=click.IntRange(0, 1000),
              help="Closing radius joining pieces of an object (pixels).")
@device_option
@overwrite_option
@quiet_option
def filter_images(images, output, model_path, masks, boxes_path, min_area, min_contrast, close_radius, device,
                  overwrite, quiet):
    """Filter still IMAGES (files or folders) with a stills model: keep its target objects (or remove them).

    An image that cannot be read or written is reported and the others are still done; the exit code is then 2.
    """
    from wormclean.io.atomic import check_folder_writable, check_output_path
    from wormclean.io.images import find_images, read_image, write_image
    from wormclean.model.registry import resolve_model
    from wormclean.predict.filtering import filter_image as run_filter
    from wormclean.predict.filtering import load_stills_model, model_colour_space
    from wormclean.segment.detection import detect_objects
    from wormclean.stills.annotations import write_boxes

    detection = DetectionSettings(min_area=min_area, min_contrast=min_contrast, close_radius=close_radius)
    model = load_stills_model(resolve_model(model_path))
    paths = find_images(images)
    check_folder_writable(output.parent)
    outputs = _outputs(paths, output, overwrite)
    mask_folder = output / "masks"
    if masks:
        _outputs([path.with_suffix(".png") for path in paths], mask_folder, overwrite)
    if boxes_path is not None:
        check_output_path(boxes_path, overwrite)
    output.mkdir(exist_ok=True)
    if masks:
        mask_folder.mkdir(exist_ok=True)
    top = model_colour_space(model).top
    found = {}
    errors = []
    bar = progress_bar(len(paths), "filter", "image", quiet)
    try:
        for path, destination in zip(paths, outputs):
            try:
                filtered, working = run_filter(model, read_image(path), device)
                write_image(destination, filtered, overwrite=True)
                if masks or boxes_path is not None:
                    mask, boxes = detect_objects(working, top, detection)
                    if masks:
                        write_image(mask_folder / f"{path.stem}.png", mask.astype("uint8") * 255, overwrite=True)
                    found[path.name] = boxes
            except WormcleanError as error:
                errors.append(str(error) if str(path) in str(error) else f"{path}: {error}")
            bar.update(1)
    finally:
        bar.close()
    for message in errors:
        click.echo(f"Error: {message}", err=True)
    if boxes_path is not None:
        write_boxes(boxes_path, found, overwrite=overwrite)
    n_objects = sum(len(boxes) for boxes in found.values())
    say(f"Wrote {len(paths) - len(errors)} filtered images to {output}"
        + (f"; {n_objects} objects" if found else "")
        + (f" in {boxes_path}" if boxes_path is not None else ""), quiet)
    if errors:
        click.get_current_context().exit(2)


@click.command(context_settings={"show_default": True})
@click.argument("detections", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--boxes", type=click.Path(path_type=Path), default=None,
              help="True boxes: Pascal VOC folder or file, or a box CSV.")
@click.option("--points", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="True points: a CSV image,x,y,class (a detection holding a point is a true positive).")
@click.option("--target", "targets", required=True, help="Comma-separated classes the detections stand for.")
@click.option("--images", "image_inputs", multiple=True,
              help="Images (files or folders) to score [default: those in DETECTIONS]; images with no "
                   "detection must be listed to count their misses.")
@click.option("--iou", default=0.25, type=FiniteFloat(0, 1, max_open=True),
              help="Boxes match when their IoU is above this.")
@click.option("--json", "json_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Also write the totals and per-image scores to this JSON file.")
@overwrite_option
def evaluate(detections, boxes, points, targets, image_inputs, iou, json_path, overwrite):
    """Localisation precision, recall and F1 of DETECTIONS (a box CSV from 'wormclean filter --boxes')."""
    from wormclean.io.atomic import atomic_output
    from wormclean.io.images import find_images
    from wormclean.segment.metrics import evaluate_detections as score
    from wormclean.stills.annotations import image_key, read_boxes, read_points

    if (boxes is None) == (points is None):
        raise SettingsError("give the truth as exactly one of --boxes and --points")
    if not 0 <= iou < 1:
        raise SettingsError(f"--iou must be in [0, 1), got {iou}")
    classes = [name.strip() for name in targets.split(",") if name.strip()]
    truths = read_boxes(boxes) if boxes is not None else read_points(points)
    found = read_boxes(detections, require_class=False)
    images = [image_key(path.name) for path in find_images(image_inputs)] if image_inputs else None
    total, per_image = score(found, truths, classes, images, iou)
    if not per_image:
        raise SettingsError(f"{detections} lists no image to score; name the images with --images")
    criterion = f"IoU > {iou:g}" if boxes is not None else "a true point inside"
    click.echo(f"{','.join(classes)} over {len(per_image)} images ({criterion}): precision {total.precision:.3f}, "
               f"recall {total.recall:.3f}, F1 {total.f1:.3f} (TP {total.true_positives}, "
               f"FP {total.false_positives}, FN {total.false_negatives})")
    if json_path is not None:
        report = {"classes": classes, "criterion": criterion, "total": total.as_dict(),
                  "images": {name: scores.as_dict() for name, scores in per_image.items()}}
        with atomic_output(json_path, overwrite) as temporary:
            temporary.write_text(json.dumps(report, indent=1))
