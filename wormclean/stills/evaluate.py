"""Localisation scores of detections against boxes or points (``wormclean evaluate``); pure functions.

Matching is one-to-one and greedy: against boxes, candidate pairs with IoU above the threshold are taken in
order of decreasing IoU; against points, a detection is a true positive if it holds a true point, pairs taken
in order of decreasing detection score, then of the point's distance to the box centre. Unmatched detections
are false positives, unmatched truths false negatives.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from wormclean.segment.metrics import DetectionCounts
from wormclean.stills.annotations import Box, Point


@dataclass
class Scores(DetectionCounts):
    """Counts of one comparison, with precision, recall and F1 (see :class:`DetectionCounts`); they add up."""

    def __add__(self, other: Scores) -> Scores:
        return Scores(self.true_positives + other.true_positives, self.false_positives + other.false_positives,
                      self.false_negatives + other.false_negatives)

    def as_dict(self) -> dict:
        return {"true_positives": self.true_positives, "false_positives": self.false_positives,
                "false_negatives": self.false_negatives, "precision": self.precision, "recall": self.recall,
                "f1": self.f1}


def box_iou(first: Box, second: Box) -> float:
    """Intersection over union of two boxes (exclusive ends); 0 when either is empty."""
    width = min(first.xmax, second.xmax) - max(first.xmin, second.xmin)
    height = min(first.ymax, second.ymax) - max(first.ymin, second.ymin)
    if width <= 0 or height <= 0:
        return 0.0
    intersection = width * height
    area = (first.xmax - first.xmin) * (first.ymax - first.ymin) + (second.xmax - second.xmin) * (
        second.ymax - second.ymin)
    return intersection / (area - intersection)


def match_boxes(detections: Sequence[Box], truths: Sequence[Box], iou_threshold: float = 0.25) -> list[tuple]:
    """One-to-one ``(detection index, truth index)`` pairs with IoU strictly above ``iou_threshold``."""
    candidates = []
    for d, detection in enumerate(detections):
        for t, truth in enumerate(truths):
            overlap = box_iou(detection, truth)
            if overlap > iou_threshold:
                candidates.append((-overlap, d, t))
    return _greedy(sorted(candidates))


def _holds(box: Box, point: Point) -> bool:
    return box.xmin <= point.x < box.xmax and box.ymin <= point.y < box.ymax


def match_points(detections: Sequence[Box], points: Sequence[Point]) -> list[tuple]:
    """One-to-one ``(detection index, point index)`` pairs where the detection's box holds the point."""
    candidates = []
    for d, detection in enumerate(detections):
        centre_x, centre_y = (detection.xmin + detection.xmax) / 2, (detection.ymin + detection.ymax) / 2
        for p, point in enumerate(points):
            if _holds(detection, point):
                score = detection.score if detection.score is not None else 0.0
                distance = (point.x - centre_x) ** 2 + (point.y - centre_y) ** 2
                candidates.append((-score, distance, d, p))
    return _greedy(sorted(candidates))


def _greedy(candidates: list[tuple]) -> list[tuple]:
    """Take ``(..., first, second)`` candidates in order, skipping those whose first or second is taken."""
    used_first, used_second, pairs = set(), set(), []
    for candidate in candidates:
        first, second = candidate[-2:]
        if first not in used_first and second not in used_second:
            used_first.add(first)
            used_second.add(second)
            pairs.append((first, second))
    return pairs


def score_image(n_detections: int, n_truths: int, n_matches: int) -> Scores:
    """Scores of one image from its counts."""
    return Scores(n_matches, n_detections - n_matches, n_truths - n_matches)


def evaluate(
    detections: dict[str, list[Box]],
    truths: dict[str, list],
    classes: Iterable[str],
    images: Iterable[str] | None = None,
    iou_threshold: float = 0.25,
) -> tuple[Scores, dict[str, Scores]]:
    """Score detections against box or point annotations of the given classes, image by image.

    Parameters
    ----------
    detections : dict
        ``{image stem: [Box, ...]}``; their classes are not looked at (a filter finds only its targets).
    truths : dict
        ``{image stem: [Box, ...]}`` or ``{image stem: [Point, ...]}``; only ``classes`` count.
    classes : iterable of str
        The target classes.
    images : iterable of str, optional
        Image stems to score (default: those with detections). An image with no detection must be listed
        here to count its misses.
    iou_threshold : float
        Box matching threshold (strictly above).

    Returns
    -------
    (Scores, dict)
        The totals over all images and the scores of each image.
    """
    classes = set(classes)
    per_image = {}
    for image in sorted(images if images is not None else detections):
        found = detections.get(image, [])
        wanted = [truth for truth in truths.get(image, []) if truth.label in classes]
        if wanted and isinstance(wanted[0], Point):
            matches = match_points(found, wanted)
        else:
            matches = match_boxes(found, wanted, iou_threshold)
        per_image[image] = score_image(len(found), len(wanted), len(matches))
    total = sum(per_image.values(), Scores())
    return total, per_image
