"""Use wormclean from Python as the step before a tracker: mask a video, then read each frame's worm blobs.

    python examples/python_before_tracker.py examples/sample_plate.mp4 [OUT.hdf5]

Besides the masks, every output holds ``/worm_blobs``: one row per worm blob per frame (frame_number, label,
coord_x, coord_y, area, bounding_box_xmin/xmax/ymin/ymax, length), measured from the binary worm mask as it is
written (see ``wormclean.segment.blobs``). That is what a tracker links from frame to frame; this script prints
the blobs of a few frames.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import h5py
import numpy as np

from wormclean.predict.pipeline import mask_video
from wormclean.settings import MaskSettings


def read_blobs(masked_video: str | Path) -> dict[int, np.ndarray]:
    """The ``/worm_blobs`` rows of a ``wormclean mask`` output, by frame number (frames without worms absent)."""
    with h5py.File(masked_video, "r") as file:
        blobs = file["worm_blobs"][...]
    frames, starts = np.unique(blobs["frame_number"], return_index=True)
    return dict(zip(frames.tolist(), np.split(blobs, starts[1:])))


def main(video: str, output: str | None = None, every: int = 20) -> dict[int, np.ndarray]:
    """Mask ``video`` into ``output`` (a temporary file if None) and print the blobs of every ``every``-th frame."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(output) if output else Path(folder) / "masked.hdf5"
        result = mask_video(video, path, MaskSettings(bgnd_interval="20s"), overwrite=True)
        blobs = read_blobs(path)
    for index in range(0, result.n_frames, every):
        rows = blobs.get(index, [])
        found = ", ".join(f"at ({b['coord_x']:.0f}, {b['coord_y']:.0f}) {b['area']} px" for b in rows)
        print(f"frame {index}: {len(rows)} worms {found}")
    return blobs


if __name__ == "__main__":
    main(*(sys.argv[1:3] or ["examples/sample_plate.mp4"]))
