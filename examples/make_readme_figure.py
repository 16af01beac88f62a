"""Draw the README's picture: why a learnt background beats a median projection on immobile worms.

    python examples/make_readme_figure.py [--model default] [-o examples/readme_figure.jpg]

Panels, on the bundled clip (examples/sample_plate.mp4, half its worms never move): one frame; the median
projection over the video, which keeps the immobile worms; the net's background of that single frame, which
removes them; and the masks of both, the true immobile worms outlined in red.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np

from wormclean.io import open_video
from wormclean.predict.cleaner import Cleaner
from wormclean.segment.threshold import segment
from wormclean.sim import read_truth

HERE = Path(__file__).resolve().parent


def labelled(image: np.ndarray, text: str) -> np.ndarray:
    """A grey or colour panel with a caption band on top."""
    panel = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR) if image.ndim == 2 else image.copy()
    band = np.full((28, panel.shape[1], 3), 255, np.uint8)
    cv2.putText(band, text, (6, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.55, (0, 0, 0), 1, cv2.LINE_AA)
    return np.vstack([band, panel])


def overlay(frame: np.ndarray, mask: np.ndarray, immobile: np.ndarray) -> np.ndarray:
    """Frame with the mask in green and the true immobile worms outlined in red."""
    picture = cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR)
    picture[mask] = (0.4 * picture[mask] + 0.6 * np.array([60, 200, 60])).astype(np.uint8)
    contours, _ = cv2.findContours(immobile.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    cv2.drawContours(picture, contours, -1, (40, 40, 230), 1)
    return picture


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--video", type=Path, default=HERE / "sample_plate.mp4")
    parser.add_argument("--model", default=None, help="Model file or name (default: the shipped model).")
    parser.add_argument("-o", "--output", type=Path, default=HERE / "readme_figure.jpg")
    args = parser.parse_args()
    cleaner = Cleaner.load(args.model, device="cpu")
    truth = read_truth(args.video, in_memory=True)
    with open_video(args.video) as reader:
        frames = [frame for _, frame in reader.frames()]
    index = len(frames) // 2
    frame = frames[index]
    median = np.median(np.stack(frames), axis=0).astype(np.float32)
    background = cleaner.background(frame)
    immobile_ids = np.nonzero(truth.immobile)[0] + 1
    immobile = np.isin(truth.labels[index], immobile_ids)
    median_mask = segment(frame, median, dark_worms=cleaner.dark_worms, min_area=cleaner.min_area)
    net_mask = cleaner.segment(frame, background)
    to_8bit = lambda image: np.clip(image, 0, 255).astype(np.uint8)  # noqa: E731
    top = np.hstack([labelled(frame, "frame"), labelled(to_8bit(median), "median projection"),
                     labelled(to_8bit(background), "wormclean background (1 frame)")])
    bottom = np.hstack([labelled(overlay(frame, median_mask, immobile), "median mask (red: immobile)"),
                        labelled(overlay(frame, net_mask, immobile), "wormclean mask (red: immobile)"),
                        labelled(to_8bit(np.clip(background - frame.astype(np.float32), 0, 60) * 4),
                                 "background - frame")])
    figure = np.vstack([top, bottom])
    scale = 960 / figure.shape[1]
    figure = cv2.resize(figure, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    cv2.imwrite(str(args.output), figure, [cv2.IMWRITE_JPEG_QUALITY, 88])
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
