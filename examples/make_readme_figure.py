"""Draw the README's picture: the backgrounds of a plate with static structure and immobile worms, and their masks.

    python examples/make_readme_figure.py [--model default] [-o examples/readme_figure.jpg]

The plate is simulated here (seed 9401, 512x512, 60 frames at 1 frame/s, half its worms immobile, a ring, a
marker line, old tracks, fibres and a label). Top: the median projection over the video (keeps the immobile
worms), the net's background alone (removes them, but blurs the ring, the line and the text), and wormclean's
default, the two fused. Bottom: the mask each gives, the true immobile worms outlined in red.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import cv2
import numpy as np

from wormclean.io import open_video
from wormclean.model.modelfile import load_model
from wormclean.model.registry import resolve_model
from wormclean.predict.cleaner import Cleaner
from wormclean.segment.threshold import segment
from wormclean.sim import SimulationSettings, read_truth, write_simulation

PLATE = SimulationSettings(size=512, n_frames=60, fps=1.0, n_worms=8, immobile_fraction=0.5, worm_length=40,
                           n_rings=1, n_marks=1, n_tracks=2, n_fibres=4, text=True, noise_sigma=2.5, seed=9401)

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
    parser.add_argument("--model", default=None, help="Model file or name (default: the shipped model).")
    parser.add_argument("-o", "--output", type=Path, default=HERE / "readme_figure.jpg")
    args = parser.parse_args()
    model = load_model(resolve_model(args.model))
    fused, net = Cleaner(model, device="cpu"), Cleaner(model, device="cpu", background="net")
    with tempfile.TemporaryDirectory() as scratch:
        video = Path(scratch) / "plate.mp4"
        write_simulation(video, PLATE)
        truth = read_truth(video, in_memory=True)
        with open_video(video) as reader:
            frames = [frame for _, frame in reader.frames()]
            index = len(frames) // 2
            made = fused.video_backgrounds(reader, [index])[index]
    frame = frames[index]
    median = np.median(np.stack(frames), axis=0).astype(np.float32)
    net_background = net.background(frame)
    immobile = np.isin(truth.labels[index], np.nonzero(truth.immobile)[0] + 1)
    limits = dict(min_area=made.stats.min_area, max_area=made.stats.max_area, max_hole=made.stats.max_hole)
    masks = [segment(frame, background, **limits) for background in (median, net_background, made.background)]
    to_8bit = lambda image: np.clip(image, 0, 255).astype(np.uint8)  # noqa: E731
    names = ["median projection", "net alone (--background net)", "wormclean default (fused)"]
    top = np.hstack([labelled(to_8bit(b), f"{n}: background") for n, b in
                     zip(names, (median, net_background, made.background))])
    bottom = np.hstack([labelled(overlay(frame, mask, immobile), f"{n}: mask") for n, mask in zip(names, masks)])
    figure = np.vstack([top, bottom])
    scale = 960 / figure.shape[1]
    figure = cv2.resize(figure, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    cv2.imwrite(str(args.output), figure, [cv2.IMWRITE_JPEG_QUALITY, 88])
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
