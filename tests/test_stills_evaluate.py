"""Still-image metrics, detection on filtered outputs and annotation files, on hand-made cases."""

from __future__ import annotations

import numpy as np
import pytest

from wormclean.errors import SettingsError
from wormclean.segment.detection import detect_objects
from wormclean.segment.metrics import DetectionCounts as Scores
from wormclean.segment.metrics import box_iou, match_points
from wormclean.segment.metrics import evaluate_detections as evaluate
from wormclean.segment.metrics import match_detections as match_boxes
from wormclean.segment.regions import Box, Point
from wormclean.settings import DetectionSettings
from wormclean.stills.annotations import read_boxes, read_points, write_boxes


def test_box_iou():
    assert box_iou(Box(0, 0, 10, 10), Box(0, 0, 10, 10)) == 1.0
    assert box_iou(Box(0, 0, 10, 10), Box(5, 0, 15, 10)) == pytest.approx(50 / 150)
    assert box_iou(Box(0, 0, 10, 10), Box(10, 0, 20, 10)) == 0.0


def test_box_matching_is_one_to_one_and_strictly_above_the_threshold():
    truth = [Box(0, 0, 10, 10)]
    # Two detections on one truth: only the better one matches; the other is a false positive.
    assert match_boxes([Box(1, 0, 11, 10), Box(0, 0, 10, 10)], truth) == [(1, 0)]
    # IoU exactly 0.25 does not match; just above does.
    assert box_iou(Box(0, 0, 5, 5), truth[0]) == 0.25
    assert match_boxes([Box(0, 0, 5, 5)], truth) == []
    assert match_boxes([Box(0, 0, 5.1, 5)], truth) == [(0, 0)]


def test_greedy_matching_prefers_the_best_overlap():
    truths = [Box(0, 0, 10, 10), Box(6, 0, 16, 10)]
    detections = [Box(5, 0, 15, 10), Box(0, 0, 10, 10)]
    # detection 0 overlaps both truths; detection 1 is exact on truth 0 and takes it first
    assert sorted(match_boxes(detections, truths)) == [(0, 1), (1, 0)]


def test_point_matching():
    points = [Point(5, 5, "WBC"), Point(6, 6, "WBC"), Point(50, 50, "WBC")]
    detections = [Box(0, 0, 10, 10, score=0.9), Box(40, 40, 45, 45, score=0.8)]
    # one detection holding two points validates one of them; the far point is missed
    assert match_points(detections, points) == [(0, 0)]
    # ends are exclusive: a point on xmax is outside
    assert match_points([Box(0, 0, 5, 10)], [Point(5, 5, "x")]) == []


def test_scores_and_conventions():
    scores = Scores(3, 1, 2)
    assert scores.precision == 0.75 and scores.recall == 0.6
    assert scores.f1 == pytest.approx(2 * 0.75 * 0.6 / 1.35)
    assert Scores().precision == Scores().recall == Scores().f1 == 1.0
    assert Scores(0, 0, 4).precision == 1.0 and Scores(0, 0, 4).f1 == 0.0
    assert Scores(1, 2, 3) + Scores(1, 0, 0) == Scores(2, 2, 3)


def test_evaluate_over_images_and_classes():
    truths = {
        "a": [Box(0, 0, 10, 10, "WBC"), Box(20, 20, 30, 30, "RBC")],
        "b": [Box(0, 0, 10, 10, "WBC")],
        "c": [Box(0, 0, 10, 10, "WBC")],
    }
    detections = {"a": [Box(1, 1, 10, 10), Box(20, 20, 30, 30)], "b": [Box(50, 50, 60, 60)]}
    total, per_image = evaluate(detections, truths, ["WBC"])
    assert per_image == {"a": Scores(1, 1, 0), "b": Scores(0, 1, 1)}
    assert total == Scores(1, 2, 1)
    total, per_image = evaluate(detections, truths, ["WBC"], images=["a", "b", "c"])
    assert per_image["c"] == Scores(0, 0, 1) and total == Scores(1, 2, 2)
    points = {"a": [Point(5, 5, "WBC"), Point(25, 25, "RBC")]}
    total, _ = evaluate(detections, points, ["WBC"], images=["a"])
    assert total == Scores(1, 1, 0)


def test_detection_finds_bright_objects_and_nothing_in_a_flat_output():
    rng = np.random.default_rng(0)
    output = 20 + rng.normal(0, 1, (64, 64, 1)).astype(np.float32)
    mask, boxes = detect_objects(output, 255, DetectionSettings(min_area=10))
    assert not mask.any() and boxes == []
    output[10:20, 30:45] += 100
    output[50:52, 5:7] += 100  # 4 pixels: below min_area
    mask, boxes = detect_objects(output, 255, DetectionSettings(min_area=10))
    assert len(boxes) == 1 and boxes[0].corners == (30, 10, 45, 20)
    assert boxes[0].score == pytest.approx(100 / 255, abs=0.01)
    assert mask.sum() == 150


def test_detection_closing_joins_pieces():
    output = np.zeros((40, 40, 1), np.float32)
    output[10:30, 10:18] = 200
    output[10:30, 20:28] = 200
    settings = DetectionSettings(min_area=10, close_radius=0)
    assert len(detect_objects(output, 255, settings)[1]) == 2
    joined = DetectionSettings(min_area=10, close_radius=2)
    assert [box.corners for box in detect_objects(output, 255, joined)[1]] == [(10, 10, 28, 30)]


def test_annotation_files_round_trip_and_errors(tmp_path):
    path = tmp_path / "found.csv"
    write_boxes(path, {"a.png": [Box(1, 2, 3, 4, score=0.5)], "b.png": []})
    assert read_boxes(path, require_class=False) == {"a": [Box(1, 2, 3, 4, "", 0.5)]}
    with pytest.raises(SettingsError, match="lacks column"):
        read_boxes(path)
    points = tmp_path / "points.csv"
    points.write_text("image,x,y,class\nimgs/a.png,1.5,2,WBC\nb.jpg,3,4,RBC\n")
    assert read_points(points) == {"a": [Point(1.5, 2, "WBC")], "b": [Point(3, 4, "RBC")]}
    points.write_text("image,x,y,class\na.png,one,2,WBC\n")
    with pytest.raises(SettingsError, match="line 2: x 'one' is not a number"):
        read_points(points)
    boxes = tmp_path / "boxes.csv"
    boxes.write_text("image,xmin,ymin,xmax,ymax,class\na.png,5,5,5,9,WBC\n")
    with pytest.raises(SettingsError, match="empty box"):
        read_boxes(boxes)
