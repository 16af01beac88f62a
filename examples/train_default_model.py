"""Reproduce the shipped default model (models/default.pt) from synthetic videos alone.

    python examples/train_default_model.py --work /tmp/wormclean-default -o models/default.pt

1. Simulates ``--videos`` randomised 1024x1024 videos (seeds 1000, 1001, ...): worm size, number, contrast,
   gait speed, background texture, lawn, dust, fibres, noise, flicker and blur all drawn per video. Every worm
   moves (an immobile worm in a training video is, correctly, learnt as background) and worms are darker than
   the background; bright worms are handled at inference by inverting the frame (``--light-worms``). The
   videos are time-lapses at 1 frame/s, so that frames half a video apart (the automatic lag) have worms
   several body lengths away from where they were. With ``--structures P``, a fraction P of the videos also
   gets the static things real plates have: a dish edge, rings, marker lines, old tracks in the lawn, text and
   more fibres (numbers drawn per video from its seed). The shipped model was trained without them (P = 0):
   fine-tuned on such videos, the narrow net keeps static structure but learns to keep immobile worms too
   (see the model card), and the fused background needs a net that removes them.
2. Trains a U-Net with the L1 loss on lagged pairs, on the CPU for ``--minutes``, with ``wormclean fit``'s
   machinery. Seeded: the same command gives the same videos and the same initial weights.

The model card (models/README.md) records the figures of the run that made the shipped file.
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

import numpy as np

from wormclean.data.videos import video_training_data
from wormclean.sim import SimulationSettings, write_simulation
from wormclean.train.fit import TrainSettings, train

log = logging.getLogger("train_default_model")

FIRST_SEED = 1000


def structures(seed: int, probability: float) -> dict:
    """Static structure for the video of ``seed``: none with chance ``1 - probability``, else drawn."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0x57C7]))
    if rng.random() >= probability:
        return {}
    return dict(n_rings=int(rng.integers(0, 3)), n_marks=int(rng.poisson(1.0)), n_tracks=int(rng.poisson(2.0)),
                dish_edge=bool(rng.random() < 0.5), text=bool(rng.random() < 0.5),
                n_fibres=int(rng.integers(2, 9)))


def make_videos(folder: Path, n_videos: int, size: int, n_frames: int, first_seed: int = FIRST_SEED,
                structure_probability: float = 0.0) -> list[Path]:
    """Simulate the training videos into ``folder`` (kept between runs: existing files are reused)."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for seed in range(first_seed, first_seed + n_videos):
        path = folder / f"train_{seed}.mp4"
        if not path.exists():
            settings = SimulationSettings.randomised(
                seed, size=size, n_frames=n_frames, fps=1.0, immobile_fraction=0.0, dark_worms=True,
                **structures(seed, structure_probability),
            )
            write_simulation(path, settings)
            log.info("simulated %s", path.name)
        paths.append(path)
    return paths


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", type=Path, required=True, help="Folder for the simulated training videos.")
    parser.add_argument("-o", "--output", type=Path, required=True, help="Model file to write.")
    parser.add_argument("--videos", type=int, default=24)
    parser.add_argument("--first-seed", type=int, default=FIRST_SEED)
    parser.add_argument("--structures", type=float, default=0.0, metavar="P",
                        help="Fraction of videos with dish edges, rings, marker lines, tracks and text.")
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--frames", type=int, default=60)
    parser.add_argument("--width", type=int, default=16)
    parser.add_argument("--depth", type=int, default=4)
    parser.add_argument("--patch-size", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    parser.add_argument("--steps", type=int, default=100000)
    parser.add_argument("--minutes", type=float, default=30.0, help="Training time budget.")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--resume", type=Path, default=None,
                        help="Continue from a .last.pt checkpoint (e.g. with a lower --learning-rate).")
    parser.add_argument("--init", type=Path, default=None, help="Start from this model's weights (fine-tune).")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")

    started = time.perf_counter()
    videos = make_videos(args.work, args.videos, args.size, args.frames, args.first_seed, args.structures)
    log.info("%d videos ready in %.0f s", len(videos), time.perf_counter() - started)
    data = video_training_data(videos, patch_size=args.patch_size, seed=0, val_fraction=0.1, val_batches=8,
                               val_batch_size=16)
    data.metadata["recipe"] = "examples/train_default_model.py " + " ".join(
        f"--{k.replace('_', '-')} {v}" for k, v in vars(args).items() if k not in ("work", "output", "resume", "init")
    )
    settings = TrainSettings(steps=args.steps, batch_size=args.batch_size, width=args.width, depth=args.depth,
                             learning_rate=args.learning_rate, device=args.device, seed=0, validate_every=50,
                             time_limit_s=args.minutes * 60)

    def report(update):
        if update.step % 25 == 0:
            log.info("step %d loss %.4f val %s %.1f patches/s", update.step, update.train_loss,
                     f"{update.val_loss:.4f}" if update.val_loss is not None else "-", update.patches_per_s)

    if args.init is not None:
        data.metadata["recipe"] += f" --init {args.init.name}"
    result = train(data, settings, args.output, init=args.init, resume=args.resume, progress=report)
    log.info("done: %d steps, best validation L1 %.4f (identity %.4f), %s", result.step, result.best_val_loss,
             result.identity_val_loss, result.best_path)


if __name__ == "__main__":
    main()
