"""How close is a model's background to the truth under worms that never move? Against a median projection.

    python benchmarks/bench_background.py --model default [--size 1024] [--videos 4] [--markdown]

Simulates test plates (seeds 5000, 5001, ...; never used to train the shipped model, which used 1000-1023):
randomised worms, half of them immobile, 60 frames at 1 frame/s. For one frame of each, the mean absolute error
(grey levels) between a background estimate and the true background (times that frame's flicker gain):
inside the immobile worms' masks, where a median projection keeps the worm; inside all worms; and everywhere.
The frame itself is the no-op baseline.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from bench_tables import print_table

from wormclean.io import open_video
from wormclean.predict.cleaner import Cleaner
from wormclean.sim import SimulationSettings, read_truth, write_simulation

FIRST_SEED = 5000


def test_plate(folder: Path, seed: int, size: int) -> Path:
    path = folder / f"plate_{size}_{seed}.mp4"
    if not path.exists():
        settings = SimulationSettings.randomised(seed, size=size, n_frames=60, fps=1.0, immobile_fraction=0.5,
                                                 dark_worms=True)
        write_simulation(path, settings)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=None, help="Model file or registered name (default: the shipped one).")
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--videos", type=int, default=4)
    parser.add_argument("--work", type=Path, default=Path("benchmarks/.cache"))
    parser.add_argument("--markdown", action="store_true", help="print the table as Markdown (the README's)")
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    cleaner = Cleaner.load(args.model, device="cpu")
    errors: dict[str, dict[str, list[float]]] = {}
    seconds = []
    for seed in range(FIRST_SEED, FIRST_SEED + args.videos):
        video = test_plate(args.work, seed, args.size)
        truth = read_truth(video, in_memory=True)
        with open_video(video) as reader:
            frames = np.stack([frame for _, frame in reader.frames()])
        index = len(frames) // 2
        frame = frames[index]
        started = time.perf_counter()
        estimates = {"wormclean (1 frame)": cleaner.background(frame)}
        seconds.append(time.perf_counter() - started)
        estimates["median projection"] = np.median(frames, axis=0) * truth.gain[index] / np.median(truth.gain)
        estimates["the frame itself"] = frame.astype(np.float32)
        true = truth.background * truth.gain[index]
        immobile = np.isin(truth.labels[index], np.nonzero(truth.immobile)[0] + 1)
        worms = truth.labels[index] > 0
        for name, estimate in estimates.items():
            error = np.abs(estimate - true)
            row = errors.setdefault(name, {"immobile": [], "worms": [], "all": []})
            if immobile.any():
                row["immobile"].append(float(error[immobile].mean()))
            row["worms"].append(float(error[worms].mean()) if worms.any() else np.nan)
            row["all"].append(float(error.mean()))
    print(f"\nBackground error (grey levels), {args.videos} unseen {args.size}x{args.size} plates, half the worms "
          f"immobile; net {np.mean(seconds):.1f} s per frame on the CPU")
    table = [[name, f"{np.mean(row['immobile']):.2f}", f"{np.nanmean(row['worms']):.2f}", f"{np.mean(row['all']):.2f}"]
             for name, row in errors.items()]
    print_table(["estimate", "inside immobile worms", "inside all worms", "everywhere"], table, args.markdown)


if __name__ == "__main__":
    main()
