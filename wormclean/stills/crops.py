"""Cutting object crops and background patches out of annotated still images (``wormclean crops``).

Three ways to find the objects, all on the working image (objects bright, see :mod:`wormclean.stills.colour`):

- **points** (``image,x,y,class``): Otsu on the log image gives the foreground; each connected component whose
  points all share one class becomes a crop of that class; components holding several classes are dropped,
  components holding no point are left out (unknown class).
- **boxes** (Pascal VOC or box CSV): Otsu inside each box, the largest component kept (holes filled), the rest
  of the box zeroed. With ``box_ellipse`` (default) the foreground is first cut to the ellipse inscribed in the
  box: annotation boxes are tight around roughly convex objects, and where objects crowd (blood smears) the
  neighbours reaching into a box's corners would otherwise join the object and give it straight box edges.
- **focus** (no annotation): components of the Otsu foreground scored by the mean absolute Laplacian of
  Gaussian; the lowest-scoring third become ``blurred``, the highest third ``focused``, the middle is dropped.

Every image also gives background patches: windows with all foreground (grown by a few pixels) cleared.
"""

from __future__ import annotations

import logging
import os
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np

from wormclean.errors import SettingsError
from wormclean.io.images import bit_depth_of, read_image
from wormclean.segment.regions import (
    Box,
    Component,
    Point,
    clip_box,
    find_components,
    foreground_mask,
    intensity,
    largest_component,
)
from wormclean.segment.threshold import dilate
from wormclean.settings import CropSettings
from wormclean.stills.annotations import image_key
from wormclean.stills.colour import ColourSpace, luminance, objects_are_dark
from wormclean.stills.store import CropsWriter, check_class_name

log = logging.getLogger(__name__)

FOCUS_CLASSES = ("blurred", "focused")
N_POLARITY_SAMPLES = 8





@dataclass(frozen=True)
class Region:
    """An object found in an image: its class, its box (exclusive ends) and its ``(h, w)`` bool mask in the box."""

    label: str
    box: tuple[int, int, int, int]
    mask: np.ndarray


@dataclass(frozen=True)
class CropsSummary:
    """What :func:`extract_crops` wrote."""

    path: Path
    counts: dict[str, int]
    dropped: dict[str, int]
    colour_space: ColourSpace
    n_images: int


def choose_colour_space(images: Sequence[np.ndarray], settings: CropSettings) -> ColourSpace:
    """The working space for a set of raw images (all of one bit depth), guessing the polarity if needed.

    The guess is a majority vote of :func:`objects_are_dark` over the given images.
    """
    depths = {bit_depth_of(image) for image in images}
    if len(depths) != 1:
        raise SettingsError(f"all images must have one bit depth, found {sorted(depths)}")
    colour_images = any(image.ndim == 3 for image in images)
    dark = settings.dark_objects
    if dark is None:
        votes = [objects_are_dark(luminance(image)) for image in images]
        dark = sum(votes) * 2 > len(votes)
        log.info("objects look %s than their background (%d of %d images)", "darker" if dark else "brighter",
                 sum(votes) if dark else len(votes) - sum(votes), len(votes))
    colour = settings.colour
    if colour == "auto":
        colour = "rgb" if colour_images else ("invert" if dark else "grey")
    if colour == "rgb" and not all(image.ndim == 3 for image in images):
        raise SettingsError("--colour rgb needs colour images; use grey or invert for grey images")
    return ColourSpace.from_mode(colour, dark, depths.pop())


def _region(mask: np.ndarray, origin: tuple[int, int], name: str, margin: int, shape: tuple[int, int]) -> Region:
    """A region from a bool ``mask`` whose pixel (0, 0) lies at image ``origin`` (row, column), with a margin."""
    rows, columns = np.nonzero(mask)
    rows, columns = rows + origin[0], columns + origin[1]
    box = clip_box((columns.min() - margin, rows.min() - margin, columns.max() + 1 + margin,
                    rows.max() + 1 + margin), *shape)
    inside = np.zeros((box[3] - box[1], box[2] - box[0]), dtype=bool)
    inside[rows - box[1], columns - box[0]] = True
    return Region(name, box, inside)


def _component_region(labels: np.ndarray, component: Component, name: str, margin: int) -> Region:
    xmin, ymin, xmax, ymax = component.box
    return _region(labels[ymin:ymax, xmin:xmax] == component.label, (ymin, xmin), name, margin, labels.shape)


def regions_from_points(
    working: np.ndarray, points: Sequence[Point], settings: CropSettings
) -> tuple[list[Region], np.ndarray, Counter]:
    """Objects of one working image ``(H, W, C)`` from point annotations.

    Returns the regions, the ``(H, W)`` bool mask of all foreground (for clearing backgrounds) and the counts of
    components dropped (``mixed`` classes, ``unlabelled``).
    """
    foreground = foreground_mask(working, settings.log_threshold)
    labels, components = find_components(foreground, settings.min_area)
    height, width = labels.shape
    classes: dict[int, set[str]] = {}
    for point in points:
        column, row = int(np.floor(point.x)), int(np.floor(point.y))
        if 0 <= row < height and 0 <= column < width and labels[row, column]:
            classes.setdefault(int(labels[row, column]), set()).add(point.label)
    regions, dropped = [], Counter()
    for component in components:
        found = classes.get(component.label, set())
        if len(found) == 1:
            regions.append(_component_region(labels, component, found.pop(), settings.margin))
        else:
            dropped["mixed classes" if found else "unlabelled"] += 1
    return regions, foreground, dropped


def regions_from_boxes(
    working: np.ndarray, boxes: Sequence[Box], settings: CropSettings
) -> tuple[list[Region], np.ndarray, Counter]:
    """Objects of one working image ``(H, W, C)`` from box annotations: Otsu inside each box, largest component.

    Returns the regions, the ``(H, W)`` bool foreground of the whole image plus the kept objects, and the
    counts of boxes dropped (``empty``: nothing above ``min_area`` inside).
    """
    height, width = working.shape[:2]
    foreground = foreground_mask(working, settings.log_threshold)
    regions, dropped = [], Counter()
    for box in boxes:
        xmin, ymin, xmax, ymax = clip_box(box.corners, height, width)
        if xmax - xmin < 2 or ymax - ymin < 2:
            dropped["empty"] += 1
            continue
        within = _inscribed_ellipse(ymax - ymin, xmax - xmin) if settings.box_ellipse else None
        inside = largest_component(foreground_mask(working[ymin:ymax, xmin:xmax], settings.log_threshold, within))
        if inside.sum() < settings.min_area:
            dropped["empty"] += 1
            continue
        regions.append(_region(inside, (ymin, xmin), box.label, settings.margin, (height, width)))
        foreground[ymin:ymax, xmin:xmax] |= inside
    return regions, foreground, dropped


def _inscribed_ellipse(height: int, width: int) -> np.ndarray:
    """``(height, width)`` bool: the ellipse touching the four sides of the box."""
    rows = (np.arange(height) + 0.5 - height / 2) / (height / 2)
    columns = (np.arange(width) + 0.5 - width / 2) / (width / 2)
    return rows[:, None] ** 2 + columns[None, :] ** 2 <= 1


def focus_scores(working: np.ndarray, settings: CropSettings) -> tuple[np.ndarray, list, np.ndarray]:
    """Components of the foreground of a working image and their focus scores (mean ``|LoG|``).

    Returns the ``(H, W)`` label image, a list of ``(Component, score)`` and the ``(H, W)`` bool foreground.
    """
    foreground = foreground_mask(working, settings.log_threshold)
    labels, components = find_components(foreground, settings.min_area)
    blurred = cv2.GaussianBlur(intensity(working), (0, 0), settings.focus_sigma)
    response = np.abs(cv2.Laplacian(blurred, cv2.CV_32F))
    scored = []
    for component in components:
        xmin, ymin, xmax, ymax = component.box
        inside = labels[ymin:ymax, xmin:xmax] == component.label
        scored.append((component, float(response[ymin:ymax, xmin:xmax][inside].mean())))
    return labels, scored, foreground


def background_level(working: np.ndarray, objects: np.ndarray) -> np.ndarray:
    """Median working value ``(C,)`` of the pixels outside ``objects`` (all pixels if there are none)."""
    outside = working[~objects]
    return np.median(outside if outside.size else working.reshape(-1, working.shape[2]), axis=0)


def background_windows(
    objects: np.ndarray, settings: CropSettings, rng: np.random.Generator
) -> list[tuple[tuple[int, int, int, int], np.ndarray]]:
    """Random square windows of an image and their ``(s, s)`` visible-background masks.

    ``objects`` is the ``(H, W)`` bool foreground; it is grown by ``background_grow`` and cleared. Windows with
    less than ``min_visible`` of background showing are skipped.
    """
    height, width = objects.shape
    size = min(settings.background_size, height, width)
    visible = ~dilate(objects, settings.background_grow)
    windows = []
    for _ in range(settings.backgrounds_per_image):
        row = int(rng.integers(0, height - size + 1))
        column = int(rng.integers(0, width - size + 1))
        shown = visible[row:row + size, column:column + size]
        if shown.mean() >= max(settings.min_visible, 1e-9):
            windows.append(((column, row, column + size, row + size), shown))
    return windows


def _cut(image: np.ndarray, box) -> np.ndarray:
    xmin, ymin, xmax, ymax = box
    return image[ymin:ymax, xmin:xmax]


def extract_crops(
    image_paths: Sequence[str | os.PathLike],
    output: str | os.PathLike,
    settings: CropSettings,
    points: dict[str, list[Point]] | None = None,
    boxes: dict[str, list[Box]] | None = None,
    overwrite: bool = False,
    progress: Callable[[], None] | None = None,
) -> CropsSummary:
    """Find objects in images, write their crops and background patches as a CROPS_DIR.

    Parameters
    ----------
    image_paths : sequence of paths
        The images; annotations are matched by file stem.
    output : path
        The CROPS_DIR to create (see :mod:`wormclean.stills.store`).
    settings : CropSettings
    points, boxes : dict, optional
        Point or box annotations by image stem (see :mod:`wormclean.stills.annotations`); give at most one.
        Without either, objects are split by focus.
    overwrite : bool
        Replace an existing crops folder.
    progress : callable, optional
        Called once per image processed.
    """
    if points is not None and boxes is not None:
        raise SettingsError("give either point or box annotations, not both")
    method = "points" if points is not None else "boxes" if boxes is not None else "focus"
    annotations = points if points is not None else boxes
    paths = [Path(p) for p in image_paths]
    if annotations is not None:
        for found in annotations.values():
            for item in found:
                check_class_name(item.label)
        annotated = [p for p in paths if image_key(p.name) in annotations]
        if not annotated:
            raise SettingsError(f"none of the {len(paths)} images has an annotation (matched by file name)")
    sample = [read_image(paths[i]) for i in np.linspace(0, len(paths) - 1, min(len(paths), N_POLARITY_SAMPLES))
              .astype(int)]
    colour_space = choose_colour_space(sample, settings)
    thresholds = _focus_thresholds(paths, colour_space, settings) if method == "focus" else None
    dropped: Counter = Counter()
    with CropsWriter(output, colour_space, overwrite) as writer:
        for index, path in enumerate(paths):
            image = read_image(path)
            if bit_depth_of(image) != colour_space.bit_depth:
                raise SettingsError(f"{path} is {bit_depth_of(image)}-bit, the others {colour_space.bit_depth}-bit")
            working = colour_space.to_working(image)
            if method == "focus":
                regions, objects = _focus_regions(working, thresholds, settings)
            else:
                find = regions_from_points if method == "points" else regions_from_boxes
                regions, objects, lost = find(working, annotations.get(image_key(path.name), []), settings)
                dropped.update(lost)
            writer.add_image(path.name, image.shape[:2], background_level(working, objects))
            for region in regions:
                writer.add_crop(region.label, path.name, _cut(image, region.box), region.mask, region.box)
            rng = np.random.default_rng([settings.seed, index])
            for box, visible in background_windows(objects, settings, rng):
                writer.add_background(path.name, _cut(image, box), visible, box)
            if progress:
                progress()
        if not writer.crops:
            raise SettingsError("no object crop was found; check the annotations and --colour")
        result = writer.finish(method, _settings_dict(settings), dict(dropped))
        counts = writer.counts()
    log.info("wrote %s: %s", result, counts)
    return CropsSummary(result, counts, dict(dropped), colour_space, len(paths))


def _settings_dict(settings: CropSettings) -> dict:
    values = asdict(settings)
    values["focus_quantiles"] = list(settings.focus_quantiles)
    return values


def _focus_thresholds(paths: Sequence[Path], colour_space: ColourSpace, settings: CropSettings) -> tuple:
    """Score quantiles over every component of every image (a first pass over the images)."""
    scores = []
    for path in paths:
        scores.extend(score for _, score in focus_scores(colour_space.to_working(read_image(path)), settings)[1])
    if len(scores) < 2:
        raise SettingsError("focus mode needs at least two objects in the images")
    low, high = np.quantile(scores, settings.focus_quantiles)
    return float(low), float(high)


def _focus_regions(working: np.ndarray, thresholds: tuple, settings: CropSettings) -> tuple[list, np.ndarray]:
    labels, scored, foreground = focus_scores(working, settings)
    low, high = thresholds
    regions = []
    for component, score in scored:
        if score <= low:
            regions.append(_component_region(labels, component, FOCUS_CLASSES[0], settings.margin))
        elif score >= high:
            regions.append(_component_region(labels, component, FOCUS_CLASSES[1], settings.margin))
    return regions, foreground
