"""Use wormclean from Python as the step before a tracker: worm masks per frame, then blobs to track.

    python examples/python_before_tracker.py examples/sample_plate.mp4

Prints, for a few frames, the worms found (centroid, area), which is what a tracker links from frame to frame.
"""

from __future__ import annotations

import sys

import cv2

from wormclean import Cleaner


def main(video: str) -> None:
    cleaner = Cleaner.load()  # the shipped default model; Cleaner.load("my_model.pt") for your own
    for index, _frame, worms in cleaner.iter_masks(video, bgnd_interval="20s"):
        count, _, stats, centroids = cv2.connectedComponentsWithStats(worms.astype("uint8"))
        blobs = [(tuple(round(c) for c in centroids[i]), int(stats[i, cv2.CC_STAT_AREA])) for i in range(1, count)]
        if index % 20 == 0:
            print(f"frame {index}: {len(blobs)} worms " + ", ".join(f"at {c} ({a} px)" for c, a in blobs))


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "examples/sample_plate.mp4")
