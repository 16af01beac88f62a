"""Scores of worm masks against truth: pooled IoU, worm-level precision/recall/F1, recall of chosen worms.

All arithmetic is numpy; only the labelling of predicted masks into connected components uses
:func:`wormclean.segment.threshold.label_components` (OpenCV).

Worms are matched one to one, frame by frame: a predicted blob (8-connected component) and a true worm match
when their bounding boxes overlap with an IoU above 0.5, best pairs first. Bounding boxes, not pixels, so that a
blob slightly fatter or thinner than the worm still counts as finding it; two touching worms found as one blob
count as one found and one missed.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

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


def box_iou(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """IoU of every pair of boxes: ``(n, 4)`` and ``(m, 4)`` -> float64 ``(n, m)``."""
    top = np.maximum(first[:, None, 0], second[None, :, 0])
    left = np.maximum(first[:, None, 1], second[None, :, 1])
    bottom = np.minimum(first[:, None, 2], second[None, :, 2])
    right = np.minimum(first[:, None, 3], second[None, :, 3])
    overlap = np.clip(bottom - top, 0, None) * np.clip(right - left, 0, None)
    area_first = (first[:, 2] - first[:, 0]) * (first[:, 3] - first[:, 1])
    area_second = (second[:, 2] - second[:, 0]) * (second[:, 3] - second[:, 1])
    union = area_first[:, None] + area_second[None, :] - overlap
    return overlap / np.maximum(union, 1)


def match_boxes(predicted: np.ndarray, truth: np.ndarray, min_iou: float = MATCH_IOU) -> list[tuple[int, int]]:
    """One-to-one matches ``(predicted_row, truth_row)`` with box IoU above ``min_iou``, best pairs first."""
    if len(predicted) == 0 or len(truth) == 0:
        return []
    iou = box_iou(predicted, truth)
    rows, cols = np.nonzero(iou > min_iou)
    order = np.argsort(-iou[rows, cols], kind="stable")
    used_predicted, used_truth, matches = set(), set(), []
    for row, col in zip(rows[order], cols[order]):
        if row not in used_predicted and col not in used_truth:
            used_predicted.add(row)
            used_truth.add(col)
            matches.append((int(row), int(col)))
    return matches


@dataclass
class DetectionCounts:
    """Object-level match counts and the precision, recall and F1 they give.

    With nothing detected, precision is 1 (nothing wrong was found); with nothing to find, recall is 1; F1 is
    their harmonic mean (1 when both are 1, 0 when either is 0).
    """

    true_positives: int = 0
    false_positives: int = 0
    false_negatives: int = 0

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
