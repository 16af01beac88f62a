"""Readers and writers of still-image annotations: point CSV, box CSV and Pascal VOC XML.

Annotations are grouped by image **stem** (file name without folder and extension), so ``a.jpg`` in a CSV, a
VOC ``<filename>a.jpg</filename>`` and the image file ``images/a.jpg`` all meet under ``"a"``.

Formats
-------
Points CSV, header required: ``image,x,y,class`` (pixel coordinates, x to the right, y down).
Boxes CSV, header required: ``image,xmin,ymin,xmax,ymax,class`` with an optional ``score`` column; a detection
file may leave out ``class``. Box ends are exclusive pixel coordinates (``xmax - xmin`` is the width).
Pascal VOC XML: one file per image, ``<object><name>`` and ``<bndbox>`` with 1-based inclusive pixel indices,
converted on reading to the exclusive convention (``xmin - 1``, ``ymin - 1``, ``xmax``, ``ymax``).
"""

from __future__ import annotations

import csv
import os
import xml.etree.ElementTree as ElementTree
from collections import defaultdict
from pathlib import Path

from wormclean.errors import SettingsError
from wormclean.io.atomic import atomic_output
from wormclean.segment.regions import Box, Point

BOX_COLUMNS = ["image", "xmin", "ymin", "xmax", "ymax", "score"]


def image_key(name: str | os.PathLike) -> str:
    """The key an image's annotations are stored under: its file name without folder and extension."""
    return Path(str(name).replace("\\", "/")).stem


def _read_csv_rows(path: Path, required: list[str]) -> list[tuple[int, dict]]:
    if not path.is_file():
        raise SettingsError(f"annotation file {path} does not exist")
    with open(path, newline="") as handle:
        reader = csv.DictReader(handle)
        columns = [name.strip().lower() for name in (reader.fieldnames or [])]
        missing = [name for name in required if name not in columns]
        if missing:
            raise SettingsError(
                f"{path} lacks column(s) {', '.join(missing)}; expected a header with {','.join(required)}"
            )
        rows = []
        for line, row in enumerate(reader, start=2):
            rows.append((line, {key.strip().lower(): (value or "").strip() for key, value in row.items() if key}))
        return rows


def _number(path: Path, line: int, row: dict, column: str) -> float:
    try:
        return float(row[column])
    except ValueError:
        raise SettingsError(f"{path} line {line}: {column} {row[column]!r} is not a number") from None


def read_points(path: str | os.PathLike) -> dict[str, list[Point]]:
    """Read a points CSV (``image,x,y,class``) into ``{image stem: [Point, ...]}``."""
    path = Path(path)
    points: dict[str, list[Point]] = defaultdict(list)
    for line, row in _read_csv_rows(path, ["image", "x", "y", "class"]):
        points[image_key(row["image"])].append(
            Point(_number(path, line, row, "x"), _number(path, line, row, "y"), row["class"])
        )
    return dict(points)


def _read_box_csv(path: Path, require_class: bool) -> dict[str, list[Box]]:
    boxes: dict[str, list[Box]] = defaultdict(list)
    required = ["image", "xmin", "ymin", "xmax", "ymax"] + (["class"] if require_class else [])
    for line, row in _read_csv_rows(path, required):
        xmin, ymin, xmax, ymax = (_number(path, line, row, name) for name in ("xmin", "ymin", "xmax", "ymax"))
        if xmax <= xmin or ymax <= ymin:
            raise SettingsError(f"{path} line {line}: empty box ({xmin}, {ymin}, {xmax}, {ymax})")
        score = _number(path, line, row, "score") if row.get("score") else None
        boxes[image_key(row["image"])].append(Box(xmin, ymin, xmax, ymax, row.get("class", ""), score))
    return dict(boxes)


def _read_voc(path: Path) -> tuple[str, list[Box]]:
    try:
        root = ElementTree.parse(path).getroot()
    except ElementTree.ParseError as error:
        raise SettingsError(f"{path} is not a readable Pascal VOC XML file ({error})") from None
    filename = root.findtext("filename")
    boxes = []
    for item in root.iter("object"):
        box = item.find("bndbox")
        label = (item.findtext("name") or "").strip()
        if box is None or not label:
            raise SettingsError(f"{path}: an <object> lacks its <name> or <bndbox>")
        try:
            xmin, ymin, xmax, ymax = (float(box.findtext(name)) for name in ("xmin", "ymin", "xmax", "ymax"))
        except (TypeError, ValueError):
            raise SettingsError(f"{path}: a <bndbox> of {label} lacks a number") from None
        if xmax >= xmin and ymax >= ymin:
            boxes.append(Box(xmin - 1, ymin - 1, xmax, ymax, label))
    return image_key(filename.strip() if filename else path.name), boxes


def read_boxes(path: str | os.PathLike, require_class: bool = True) -> dict[str, list[Box]]:
    """Read box annotations into ``{image stem: [Box, ...]}``.

    Parameters
    ----------
    path : path
        A folder of Pascal VOC ``*.xml`` files, one such file, or a boxes CSV.
    require_class : bool
        Refuse a CSV without a ``class`` column (detections may have none).
    """
    path = Path(path)
    if path.is_dir():
        files = sorted(path.glob("*.xml"))
        if not files:
            raise SettingsError(f"{path} holds no Pascal VOC *.xml files")
        boxes: dict[str, list[Box]] = {}
        for file in files:
            key, found = _read_voc(file)
            boxes.setdefault(key, []).extend(found)
        return boxes
    if path.suffix.lower() == ".xml":
        key, found = _read_voc(path)
        return {key: found}
    return _read_box_csv(path, require_class)


def write_boxes(path: str | os.PathLike, boxes: dict[str, list[Box]], overwrite: bool = False) -> Path:
    """Write detections as a CSV ``image,xmin,ymin,xmax,ymax,score`` (``image`` as given in the keys)."""
    with atomic_output(path, overwrite) as temporary:
        with open(temporary, "w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(BOX_COLUMNS)
            for image, found in boxes.items():
                for box in found:
                    score = "" if box.score is None else f"{box.score:.4f}"
                    writer.writerow([image, *(f"{v:g}" for v in box.corners), score])
    return Path(path)
