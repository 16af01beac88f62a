"""Scores against truth: of worm masks (pooled IoU, worm-level precision/recall/F1, recall of chosen worms) and
of objects found in still images (``wormclean evaluate``).

All arithmetic is numpy; only the labelling of predicted masks into connected components uses
:func:`wormclean.segment.threshold.label_components` (OpenCV).

Matching is one to one and greedy, best pairs first. Worms are matched frame by frame: a predicted blob
(8-connected component) and a true worm match when their bounding boxes overlap with an IoU above 0.5. Bounding
boxes, not pixels, so that a blob slightly fatter or thinner than the worm still counts as finding it; two
touching worms found as one blob count as one found and one missed. Objects in still images match boxes the same
way (above a given IoU, 0.25 by default); against points, a detection is a true positive if it holds a true
point, pairs taken in order of decreasing detection score, then of the point's distance to the box centre.
Unmatched detections are false positives, unmatched truths false negatives.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from wormclean.segment.regions import Box, Point, box_array
from wormclean.segment.threshold import label_components

MATCH_IOU = 0.5


def boxes_of(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Bounding boxes of the labels ``1..n`` of a label image.

    Returns
    -------
    ids : np.ndarray
        The labels present, ``(k,)``.
    boxes : np.ndarray
        ``(k, 4)`` int64 rows ``(top, left, bottom, right)`` with bottom and right exclusive.
    """
    rows, cols = np.nonzero(labels)
    values = labels[rows, cols].astype(np.int64)
    size = int(values.max()) + 1 if values.size else 1
    top = np.full(size, np.iinfo(np.int64).max)
    left = np.full(size, np.iinfo(np.int64).max)
    bottom = np.full(size, -1)
    right = np.full(size, -1)
    np.minimum.at(top, values, rows)
    np.minimum.at(left, values, cols)
    np.maximum.at(bottom, values, rows + 1)
    np.maximum.at(right, values, cols + 1)
    ids = np.nonzero(bottom >= 0)[0]
    ids = ids[ids > 0]
    return ids, np.stack([top[ids], left[ids], bottom[ids], right[ids]], axis=1)


def box_iou(first, second) -> np.ndarray:
    """IoU of every pair of boxes: ``(n, 4)`` and ``(m, 4)`` -> float64 ``(n, m)`` (0 where both are empty).

    Boxes are rows of corners with exclusive ends, in either order of the axes as long as both sides share it
    (``(top, left, bottom, right)`` or ``(xmin, ymin, xmax, ymax)``), or :class:`Box` objects (see
    :func:`~wormclean.segment.regions.box_array`).
    """
    first, second = box_array(first), box_array(second)
    top = np.maximum(first[:, None, 0], second[None, :, 0])
    left = np.maximum(first[:, None, 1], second[None, :, 1])
    bottom = np.minimum(first[:, None, 2], second[None, :, 2])
    right = np.minimum(first[:, None, 3], second[None, :, 3])
    overlap = np.clip(bottom - top, 0, None) * np.clip(right - left, 0, None)
    area_first = (first[:, 2] - first[:, 0]) * (first[:, 3] - first[:, 1])
    area_second = (second[:, 2] - second[:, 0]) * (second[:, 3] - second[:, 1])
    union = area_first[:, None] + area_second[None, :] - overlap
    return np.divide(overlap, union, out=np.zeros(union.shape), where=union > 0)


def match_boxes(predicted, truth, min_iou: float = MATCH_IOU) -> list[tuple[int, int]]:
    """One-to-one matches ``(predicted_row, truth_row)`` with box IoU strictly above ``min_iou``, best pairs
    first (ties in the order of the rows); boxes as :func:`box_iou` takes them."""
    if len(predicted) == 0 or len(truth) == 0:
        return []
    iou = box_iou(predicted, truth)
    rows, cols = np.nonzero(iou > min_iou)
    order = np.argsort(-iou[rows, cols], kind="stable")
    return _greedy(zip(rows[order].tolist(), cols[order].tolist()))


def _holds(box: Box, point: Point) -> bool:
    return box.xmin <= point.x < box.xmax and box.ymin <= point.y < box.ymax


def match_points(detections: Sequence[Box], points: Sequence[Point]) -> list[tuple[int, int]]:
    """One-to-one ``(detection index, point index)`` pairs where the detection's box holds the point."""
    candidates = []
    for d, detection in enumerate(detections):
        centre_x, centre_y = (detection.xmin + detection.xmax) / 2, (detection.ymin + detection.ymax) / 2
        for p, point in enumerate(points):
            if _holds(detection, point):
                score = detection.score if detection.score is not None else 0.0
                distance = (point.x - centre_x) ** 2 + (point.y - centre_y) ** 2
                candidates.append((-score, distance, d, p))
    return _greedy(candidate[-2:] for candidate in sorted(candidates))


def _greedy(pairs: Iterable[tuple[int, int]]) -> list[tuple[int, int]]:
    """Take ``(first, second)`` pairs in order, skipping those whose first or second is taken."""
    used_first, used_second, matches = set(), set(), []
    for first, second in pairs:
        if first not in used_first and second not in used_second:
            used_first.add(first)
            used_second.add(second)
            matches.append((first, second))
    return matches


def match_detections(detections: Sequence[Box], truths: Sequence, iou_threshold: float = 0.25) -> list[tuple]:
    """One-to-one ``(detection index, truth index)`` pairs of detections and truths of one image.

    Against :class:`Point` truths by :func:`match_points`; against :class:`Box` truths by :func:`match_boxes`,
    with IoU strictly above ``iou_threshold``.
    """
    if truths and isinstance(truths[0], Point):
        return match_points(detections, truths)
    return match_boxes(detections, truths, iou_threshold)


@dataclass
class DetectionCounts:
    """Object-level match counts and the precision, recall and F1 they give.

    With nothing detected, precision is 1 (nothing wrong was found); with nothing to find, recall is 1; F1 is
    their harmonic mean (1 when both are 1, 0 when either is 0).
    """

    true_positives: int = 0
    false_positives: int = 0
    false_negatives: int = 0

    def __add__(self, other: DetectionCounts) -> DetectionCounts:
        return DetectionCounts(self.true_positives + other.true_positives,
                               self.false_positives + other.false_positives,
                               self.false_negatives + other.false_negatives)

    def as_dict(self) -> dict:
        """The counts with precision, recall and F1."""
        return {"true_positives": self.true_positives, "false_positives": self.false_positives,
                "false_negatives": self.false_negatives, "precision": self.precision, "recall": self.recall,
                "f1": self.f1}

    @property
    def precision(self) -> float:
        """Matched detections over all detections."""
        found = self.true_positives + self.false_positives
        return self.true_positives / found if found else 1.0

    @property
    def recall(self) -> float:
        """Matched true objects over all true objects."""
        present = self.true_positives + self.false_negatives
        return self.true_positives / present if present else 1.0

    @property
    def f1(self) -> float:
        """Harmonic mean of precision and recall."""
        total = self.precision + self.recall
        return 2 * self.precision * self.recall / total if total else 0.0


@dataclass
class MaskScores(DetectionCounts):
    """Scores accumulated over frames; feed it with :meth:`add`, read the properties.

    Attributes
    ----------
    true_positives, false_positives, false_negatives : int
        Worm-level counts over frames (see :class:`DetectionCounts`).
    intersection, union : int
        Pixel counts summed over frames (pooled IoU = intersection / union).
    tracked_found, tracked_total : int
        Of the chosen worms (``tracked`` in :meth:`add`), frames in which they were matched / present.
    """

    intersection: int = 0
    union: int = 0
    tracked_found: int = 0
    tracked_total: int = 0

    def add(self, predicted: np.ndarray, truth_labels: np.ndarray, tracked: Iterable[int] = ()) -> None:
        """Score one frame.

        Parameters
        ----------
        predicted : np.ndarray
            bool ``(H, W)`` predicted worm mask.
        truth_labels : np.ndarray
            Integer ``(H, W)``: 0 background, ``k`` for true worm ``k`` (a plain boolean mask works too: its
            connected components are then the worms).
        tracked : iterable of int
            Labels of worms whose recall is reported separately (e.g. the immobile ones).
        """
        predicted = predicted.astype(bool, copy=False)
        if truth_labels.dtype == bool:
            truth_labels = label_components(truth_labels)[1]
        truth = truth_labels > 0
        self.intersection += int(np.count_nonzero(predicted & truth))
        self.union += int(np.count_nonzero(predicted | truth))
        _, predicted_labels, _ = label_components(predicted)
        _, predicted_boxes = boxes_of(predicted_labels)
        truth_ids, truth_boxes = boxes_of(truth_labels)
        matches = match_boxes(predicted_boxes, truth_boxes)
        self.true_positives += len(matches)
        self.false_positives += len(predicted_boxes) - len(matches)
        self.false_negatives += len(truth_boxes) - len(matches)
        tracked = np.asarray(sorted(set(tracked)), dtype=np.int64)
        present = np.isin(truth_ids, tracked)
        matched = np.zeros(len(truth_ids), dtype=bool)
        matched[[col for _, col in matches]] = True
        self.tracked_total += int(present.sum())
        self.tracked_found += int((present & matched).sum())

    @property
    def iou(self) -> float:
        """Pooled IoU: all frames' intersections over all frames' unions (1 when both are empty)."""
        return self.intersection / self.union if self.union else 1.0


    @property
    def tracked_recall(self) -> float:
        """Recall of the chosen worms (NaN when none was present)."""
        return self.tracked_found / self.tracked_total if self.tracked_total else float("nan")

    def summary(self) -> dict[str, float]:
        """The scores as a dict: iou, precision, recall, f1, tracked_recall."""
        return {
            "iou": self.iou,
            "precision": self.precision,
            "recall": self.recall,
            "f1": self.f1,
            "tracked_recall": self.tracked_recall,
        }


def score_masks(
    predicted: Iterable[np.ndarray], truth_labels: Iterable[np.ndarray], tracked: Iterable[int] = ()
) -> MaskScores:
    """Score a sequence of predicted masks against truth label frames (see :meth:`MaskScores.add`)."""
    tracked = list(tracked)
    scores = MaskScores()
    for predicted_frame, truth_frame in zip(predicted, truth_labels, strict=True):
        scores.add(predicted_frame, truth_frame, tracked)
    return scores


def pooled_iou(predicted: np.ndarray, truth: np.ndarray) -> float:
    """IoU of two boolean masks of any shape, pooled over all their pixels (e.g. ``(N, H, W)``)."""
    predicted, truth = predicted.astype(bool, copy=False), truth.astype(bool, copy=False)
    union = np.count_nonzero(predicted | truth)
    return np.count_nonzero(predicted & truth) / union if union else 1.0


def evaluate_detections(
    detections: dict[str, list[Box]],
    truths: dict[str, list],
    classes: Iterable[str],
    images: Iterable[str] | None = None,
    iou_threshold: float = 0.25,
) -> tuple[DetectionCounts, dict[str, DetectionCounts]]:
    """Score detections in still images against box or point annotations of the given classes, image by image.

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
    (DetectionCounts, dict)
        The totals over all images and the counts of each image.
    """
    classes = set(classes)
    per_image = {}
    for image in sorted(images if images is not None else detections):
        found = detections.get(image, [])
        wanted = [truth for truth in truths.get(image, []) if truth.label in classes]
        n_matches = len(match_detections(found, wanted, iou_threshold))
        per_image[image] = DetectionCounts(n_matches, len(found) - n_matches, len(wanted) - n_matches)
    total = sum(per_image.values(), DetectionCounts())
    return total, per_image
