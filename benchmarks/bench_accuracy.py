"""Accuracy of ``wormclean mask`` at its defaults against the baselines a lab already has.

Suite: synthetic plates rich in static structure (dish edges, rings, marker lines, old tracks, fibres, text),
all-moving plates among them (there a median projection is at the ceiling, so we must be too), light and dark
fields, 512 to 2048 pixels, each at two seeds (``--seeds``: 10101-10106, then 10201-10206). These seeds are used
nowhere else: not in training the shipped model (randomised settings, seeds 1000-1023), not in the tests, and not
where the fusion was tuned (seeds 11-13, 79, and these settings at seeds 9001-9006, 9201-9206, 9301-9306,
9501-9506, 9601-9606, 9801-9806, 9901-9906, 10401-10406 and 10501-10506, whose failures were looked at during
development; 9301-9306 and then 9501-9506 were this suite's seeds until then, and 9701-9706 were run once,
unexamined, before an earlier change; 10701-10706 and 10801-10806 were run in aggregate, and one false blob of
10801 looked at; the 1024 half-immobile kind also at 10602-12102, every hundredth, some of whose failures were
looked at; and the ``--quick`` plates at 9101-9502).

``--unlike``: six plates of settings the fusion was never tuned on (long, faint, blurred and noisy, slow, crowded
small worms, strong flicker on a dark field), seeds 20101-20106 and 20201-20206 (``--offsets 0 100 200`` adds
20301-20306). 20103, 20104, 20106, 20201, 20204, 20205 and 20206 were looked at after their first run (and rules
made from 20103, 20104, 20201 and 20206), and 20301 after the first run of 20301-20306 (a rule made from it), so
20302-20306 are the independent ones.

Methods, each on every frame of each plate:
- ``wormclean`` (default): :class:`~wormclean.predict.cleaner.Cleaner` at its defaults (``--background fused``).
- ``wormclean net``: the net's background alone (``--background net``, the paper's method).
- ``median projection``: the per-pixel median of all the video's frames.
- ``MOG2``: OpenCV's background subtractor, history = the video.
- ``Tierpsy default``: Tierpsy's own mask, re-implemented (median blur 5, adaptive mean threshold with block 61
  and C 15, contours of 50 to 1e8 pixels filled, blobs touching the border dropped).
- ``true background``: the simulator's noise-free background (the ceiling).
The background-based methods share the threshold (10 grey levels) and the blob cleaning wormclean calibrated on
the video (smallest and largest blob, largest hole filled). Worms are matched by bounding-box IoU > 0.5.

``--semireal``: semi-real plates (:mod:`wormclean.sim.semireal`): the real wormpose worm, scaled to 50 px, crawling
or lying still on worm-free crops of real plates (marker lines, rims, a clamp, debris, plain agar), 80 frames,
each background once half still (60 % of the still worms on structure) and once all moving, seeds 30101-30106
(TUNE), 30107-30112 (REPORT) and 30113-30116 (VALIDATE). The TUNE backgrounds may be looked at while changing
wormclean; the VALIDATE ones (other plates, never trained on) are for choosing between priors and settings, so
their figures are not held-out ones; the REPORT ones (other plates again) are for reporting.
Scored as above, with the still worms' pixel recall in place of their worm-level recall. These plates were run
while the generator was built (three times, the last after worms were kept off black rims and marker ink); their
wormclean false blobs were looked at once (seeds 30108, 30112: the marker line's end at the frame border and thin
inner rim lines), and nothing in wormclean was changed from them.

Then the real plate in ``../shared/data/deeptangle`` (11 frames, no truth): blobs per frame for each method, and a
preview PNG (frame | wormclean background | mask) to look at.

Usage::

    python benchmarks/bench_accuracy.py                  # the suite and the real plate (about 20 CPU minutes)
    python benchmarks/bench_accuracy.py --quick          # two small plates, to check that it works
    python benchmarks/bench_accuracy.py --unlike         # plates of other settings: longer, fainter, blurred,
                                                         # slower, crowded worms, strong flicker
    python benchmarks/bench_accuracy.py --semireal --skip-net --markdown
                                                         # real worms on real backgrounds (TUNE / REPORT)
    python benchmarks/bench_accuracy.py --semireal --split validate --wormclean-only --worm-filter FILE
                                                         # a prior on the VALIDATE backgrounds, to choose on
    python benchmarks/bench_accuracy.py --offsets -500 -300 -200 300 400 --wormclean-only
                                                         # the tuning plates, fused default against the ceiling
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench_tables import print_table  # noqa: E402  (benchmarks/, this script's folder)

from wormclean.io import open_video  # noqa: E402
from wormclean.model.modelfile import load_model  # noqa: E402
from wormclean.model.registry import resolve_model  # noqa: E402
from wormclean.predict.cleaner import DEFAULT_MIN_AREA, Cleaner  # noqa: E402
from wormclean.predict.pipeline import preview_image  # noqa: E402
from wormclean.segment.background import WormStats  # noqa: E402
from wormclean.segment.metrics import MaskScores  # noqa: E402
from wormclean.segment.threshold import clean_mask, label_components, segment  # noqa: E402
from wormclean.settings import DEFAULT_ADAPT_STEPS  # noqa: E402
from wormclean.sim import SimulationSettings, read_truth, write_simulation  # noqa: E402
from wormclean.sim.semireal import (  # noqa: E402
    REPORT,
    TUNE,
    VALIDATE,
    compose_plate,
    load_background,
    real_worm_layers,
    write_plate,
)

STRUCTURE = dict(n_rings=1, n_marks=1, n_tracks=3, dish_edge=True, text=True, n_fibres=5)
SUITE = {
    "1024 all moving, structure": dict(size=1024, n_worms=14, immobile_fraction=0.0, seed=10101, **STRUCTURE),
    "1024 half immobile, structure": dict(size=1024, n_worms=14, immobile_fraction=0.5, seed=10102, **STRUCTURE),
    "512 half immobile, big worms": dict(size=512, n_worms=8, immobile_fraction=0.5, worm_length=48, seed=10103,
                                         n_rings=2, n_marks=1, text=True, n_tracks=1),
    "2048 30% immobile, structure": dict(size=2048, n_worms=30, immobile_fraction=0.3, seed=10104, **STRUCTURE),
    "1024 dark field, half immobile": dict(size=1024, n_worms=12, immobile_fraction=0.5, dark_worms=False,
                                           seed=10105, n_rings=1, n_marks=2, text=True),
    "1024 all moving, plain": dict(size=1024, n_worms=20, immobile_fraction=0.0, seed=10106, lawn=True),
}
QUICK = {
    "384 half immobile, structure": dict(size=384, n_worms=6, immobile_fraction=0.5, worm_length=36, seed=9101,
                                         n_rings=1, n_marks=1, text=True),
    "384 all moving, structure": dict(size=384, n_worms=6, immobile_fraction=0.0, worm_length=36, seed=9102,
                                      n_rings=1, n_marks=1, text=True),
}
UNLIKE = {
    "1024 long worms (70 px), half immobile": dict(size=1024, n_worms=12, immobile_fraction=0.5, worm_length=70,
                                                   seed=20101, **STRUCTURE),
    "1024 faint worms (contrast 22), half immobile": dict(size=1024, n_worms=14, immobile_fraction=0.5, contrast=22.0,
                                                          seed=20102, **STRUCTURE),
    "1024 blurred (1.2 px) and noisy (5), half immobile": dict(size=1024, n_worms=14, immobile_fraction=0.5,
                                                               blur_sigma=1.2, noise_sigma=5.0, seed=20103,
                                                               **STRUCTURE),
    "1024 slow worms (0.05 lengths/s), half immobile": dict(size=1024, n_worms=14, immobile_fraction=0.5, speed=0.05,
                                                            seed=20104, **STRUCTURE),
    "768 crowded small worms, 30% immobile": dict(size=768, n_worms=30, immobile_fraction=0.3, worm_length=28,
                                                  seed=20105, **STRUCTURE),
    "1024 dark field, 4% flicker, half immobile": dict(size=1024, n_worms=12, immobile_fraction=0.5, dark_worms=False,
                                                       flicker=0.04, seed=20106, n_rings=2, n_marks=2, text=True,
                                                       n_tracks=2),
}
COMMON = dict(n_frames=60, fps=1.0, noise_sigma=2.5, flicker=0.01)


def tierpsy_default_mask(frame: np.ndarray, dark_worms: bool) -> np.ndarray:
    """Tierpsy's default worm mask of one 8-bit frame, re-implemented from its parameters."""
    image = frame if dark_worms else 255 - frame
    blurred = cv2.medianBlur(image, 5)
    binary = cv2.adaptiveThreshold(blurred, 1, cv2.ADAPTIVE_THRESH_MEAN_C, cv2.THRESH_BINARY_INV, 61, 15)
    contours, _ = cv2.findContours(binary, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    height, width = frame.shape
    kept = []
    for contour in contours:
        x, y, w, h = cv2.boundingRect(contour)
        if not 50 <= cv2.contourArea(contour) <= 1e8 or x == 0 or y == 0 or x + w >= width or y + h >= height:
            continue
        kept.append(contour)
    mask = np.zeros(frame.shape, np.uint8)
    cv2.drawContours(mask, kept, -1, 1, thickness=cv2.FILLED)
    return mask.view(bool)


def against(background, frames, dark_worms: bool, stats: WormStats | None) -> list[np.ndarray]:
    """Masks of ``frames`` against ``background`` with wormclean's threshold and the blob limits it measured."""
    limits = (
        dict(min_area=stats.min_area, max_area=stats.max_area, max_hole=stats.max_hole)
        if stats is not None else dict(min_area=DEFAULT_MIN_AREA)
    )  # fmt: skip
    return [segment(frame, background, dark_worms=dark_worms, **limits) for frame in frames]


def baseline_masks(frames, cleaner: Cleaner, stats: WormStats | None, truth_background=None) -> dict:
    """Masks of the baselines, with wormclean's threshold and blob cleaning where they give a background."""
    dark = cleaner.segmentation.dark_worms
    min_area = stats.min_area if stats is not None else DEFAULT_MIN_AREA
    median = np.median(np.stack(frames), axis=0).astype(np.float32)
    subtractor = cv2.createBackgroundSubtractorMOG2(history=len(frames), detectShadows=False)
    methods = {
        "median projection": against(median, frames, dark, stats),
        "MOG2": [clean_mask(subtractor.apply(frame) > 0, min_area) for frame in frames],
        "Tierpsy default": [tierpsy_default_mask(frame, dark) for frame in frames],
    }
    if truth_background is not None:
        methods["true background"] = against(truth_background, frames, dark, stats)
    return methods


def wormclean_masks(cleaner: Cleaner, video: Path) -> tuple[list[np.ndarray], WormStats | None, float]:
    report: dict = {}
    started = time.perf_counter()
    masks = [worms for _, _, worms in cleaner.iter_masks(video, report=report)]
    windows = report.get("windows") or [{}]
    stats = windows[0].get("worm_stats")
    return masks, (WormStats(**stats) if stats else None), time.perf_counter() - started


def method_masks(model, args, video: Path, frames, dark_worms: bool, truth_background) -> tuple:
    """Every method's masks of one plate video: ``({method: [mask per frame]}, wormclean's WormStats, seconds)``.

    ``args.wormclean_only`` keeps the fused default and the true background; ``args.skip_net`` leaves out the
    net's background alone.
    """
    fused_here = Cleaner(model, device=args.device, dark_worms=dark_worms, worm_filter=args.worm_filter,
                         adapt_steps=args.adapt_steps)
    masks, stats, seconds = wormclean_masks(fused_here, video)
    methods = {"wormclean": masks}
    if args.wormclean_only:
        methods["true background"] = against(truth_background, frames, dark_worms, stats)
        return methods, stats, seconds
    if not args.skip_net:
        net_here = Cleaner(model, device=args.device, background="net", dark_worms=dark_worms)
        methods["wormclean net"] = wormclean_masks(net_here, video)[0]
    methods.update(baseline_masks(frames, fused_here, stats, truth_background))
    return methods, stats, seconds


def suite(args, scratch: Path) -> None:
    model = load_model(resolve_model(args.model))
    offsets = args.offsets if args.offsets is not None else [100 * repeat for repeat in range(args.seeds)]
    plates = {
        (f"{name}, seed {settings['seed'] + offset}" if len(offsets) > 1 or offset else name):
            {**settings, "seed": settings["seed"] + offset}
        for offset in offsets
        for name, settings in (QUICK if args.quick else UNLIKE if args.unlike else SUITE).items()
    }  # fmt: skip
    columns = ["wormclean", "wormclean net", "median projection", "MOG2", "Tierpsy default", "true background"]
    if args.wormclean_only:
        columns = ["wormclean", "true background"]
    elif args.skip_net:
        columns.remove("wormclean net")
    rows = []
    for name, settings in plates.items():
        settings = SimulationSettings(**{**COMMON, **settings})
        video = scratch / f"accuracy_{settings.seed}.mp4"
        if not video.exists():
            write_simulation(video, settings)
        truth = read_truth(video, in_memory=True)
        immobile = list(np.nonzero(truth.immobile)[0] + 1)
        with open_video(video) as reader:
            frames = [frame for _, frame in reader.frames()]
        methods, stats, seconds = method_masks(model, args, video, frames, settings.dark_worms, truth.background)
        scores = {}
        for method, masks in methods.items():
            score = MaskScores()
            for index, mask in enumerate(masks):
                score.add(mask, truth.labels[index], immobile)
            scores[method] = score
        rows.append((name, scores, stats, seconds))
        print(f"{name}: done in {seconds:.1f} s (wormclean), worms {stats}", flush=True)
    print("\nF1 (precision / immobile recall) per plate; pooled IoU as a fraction of the true background's")
    table = []
    for name, scores, _, _ in rows:
        cells = []
        for column in columns:
            s = scores[column]
            immobile = "" if np.isnan(s.tracked_recall) else f" / {s.tracked_recall:.2f}"
            cells.append(f"{s.f1:.3f} ({s.precision:.2f}{immobile})")
        ratio = scores["wormclean"].iou / max(scores["true background"].iou, 1e-9)
        table.append([name, *cells, f"{ratio:.2f}"])
    print_table(["plate", *columns, "wormclean IoU / ceiling"], table, args.markdown)


SEMIREAL_SEED = 30101  # semi-real plates: seeds 30101 + plate number, used nowhere else
SEMIREAL_KINDS = {
    "half still, on structure": dict(n_worms=10, still_fraction=0.5, on_structure_fraction=0.6),
    "all moving": dict(n_worms=10, still_fraction=0.0),
}
SEMIREAL_COMMON = dict(n_frames=80, worm_length=50.0, speed=3.0, posture_step=2, noise_sigma=1.0, flicker=0.005)


def semireal_suite(args, scratch: Path) -> None:
    """Semi-real plates (real worms on real worm-free backgrounds, :mod:`wormclean.sim.semireal`): every method's
    F1 (precision / still-worm pixel recall), on TUNE, VALIDATE and REPORT backgrounds."""
    data = REPO.parent / "shared" / "data"
    layers = real_worm_layers(data / "wormpose")
    model = load_model(resolve_model(args.model))
    rows, columns = [], None
    # VALIDATE last, so that the TUNE and REPORT plates keep their seeds.
    backgrounds = ([("tune", crop) for crop in TUNE] + [("report", crop) for crop in REPORT]
                   + [("validate", crop) for crop in VALIDATE])
    number = 0
    for split, crop in backgrounds:
        if args.split not in (None, split):
            number += len(SEMIREAL_KINDS)
            continue
        background = load_background(crop, data / "realplates")
        for kind, options in SEMIREAL_KINDS.items():
            seed = SEMIREAL_SEED + number
            number += 1
            if args.plates and seed not in args.plates:
                continue
            video = scratch / f"semireal_{seed}.mp4"
            plate = compose_plate(background, layers, seed=seed, background_name=crop.name,
                                  **{**SEMIREAL_COMMON, **options})
            if not video.exists():
                write_plate(video, plate)
            with open_video(video) as reader:
                frames = [frame for _, frame in reader.frames()]
            methods, stats, seconds = method_masks(model, args, video, frames, True, plate.background)
            still_ids = np.nonzero(plate.still)[0] + 1
            still_pixels = np.isin(plate.labels, still_ids)
            cells = {}
            for method, masks in methods.items():
                score = MaskScores()
                for index, mask in enumerate(masks):
                    score.add(mask, plate.labels[index], still_ids)
                found = sum(int(np.count_nonzero(mask & still_pixels[index])) for index, mask in enumerate(masks))
                total = int(np.count_nonzero(still_pixels))
                recall = f" / {found / total:.2f}" if total else ""
                cells[method] = f"{score.f1:.3f} ({score.precision:.2f}{recall})"
            columns = columns or list(cells)
            rows.append([f"{crop.name}, {kind} (seed {seed})", split] + [cells[column] for column in columns])
            print(f"{crop.name}, {kind}: done in {seconds:.1f} s (wormclean), worms {stats}", flush=True)
    print("\nSemi-real plates: F1 (precision / still-worm pixel recall)")
    print_table(["plate", "set"] + columns, rows, args.markdown)


def real_plate(args, scratch: Path) -> None:
    folder = REPO.parent / "shared" / "data" / "deeptangle"
    if not folder.is_dir():
        print(f"\n(no real plate at {folder})")
        return
    cleaner = Cleaner.load(args.model, device=args.device)
    with open_video(folder) as reader:
        frames = [frame for _, frame in reader.frames()]
        masks, stats, seconds = wormclean_masks(cleaner, folder)
        made = cleaner.video_backgrounds(reader, [5])
    methods = {"wormclean": masks}
    if not args.skip_net:
        net = Cleaner.load(args.model, device=args.device, background="net")
        methods["wormclean net"] = [worms for _, _, worms in net.iter_masks(folder)]
    methods.update(baseline_masks(frames, cleaner, stats))
    print(f"\nReal plate {folder.name} ({len(frames)} frames {frames[0].shape[1]}x{frames[0].shape[0]}, no truth); "
          f"worms measured: {stats}")
    table = []
    for method, method_masks in methods.items():
        blobs = [label_components(mask)[0] - 1 for mask in method_masks]
        pixels = [int(np.count_nonzero(mask)) for mask in method_masks]
        table.append([method, f"{np.median(blobs):.0f}", f"{np.median(pixels):.0f}"])
    print_table(["method", "blobs per frame (median)", "masked pixels per frame (median)"], table, args.markdown)
    image = preview_image([frames[5]], [made[5].background], [masks[5]])
    path = scratch / "deeptangle_preview.png"
    cv2.imwrite(str(path), image)
    print(f"preview of frame 5: {path}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="video model file or registered name (default: shipped)")
    parser.add_argument("--quick", action="store_true", help="two small plates, to check that it works")
    parser.add_argument("--unlike", action="store_true",
                        help="six plates of settings unlike the suite's (seeds 20101-20106, never tuned on)")
    parser.add_argument("--semireal", action="store_true",
                        help="semi-real plates: real worms on real worm-free backgrounds (TUNE, VALIDATE, REPORT)")
    parser.add_argument("--markdown", action="store_true", help="print the tables as Markdown (the README's)")
    parser.add_argument("--split", choices=("tune", "validate", "report"),
                        help="only the --semireal plates of this set")
    parser.add_argument("--plates", type=int, nargs="+", help="only the --semireal plates of these seeds")
    parser.add_argument("--worm-filter", help="worm filter model file or name (default: shipped)")
    parser.add_argument("--adapt-steps", type=int, default=DEFAULT_ADAPT_STEPS, help="most adaptation steps")
    parser.add_argument("--skip-net", action="store_true", help="leave out the net's background alone (faster)")
    parser.add_argument("--seeds", type=int, default=2, help="each plate at this many seeds (its own, +100, ...)")
    parser.add_argument("--offsets", type=int, nargs="+", default=None, metavar="K",
                        help="each plate at its seed + K for each K instead (tuning seeds: -500 -300 -200 300 400)")
    parser.add_argument("--wormclean-only", action="store_true",
                        help="only the fused default and the true background (a tuning sweep); implies --skip-real")
    parser.add_argument("--scratch", type=Path, default=REPO / "scratch" / "bench_accuracy", help="cache folder")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--skip-real", action="store_true", help="leave out the real plate")
    args = parser.parse_args()
    args.scratch.mkdir(parents=True, exist_ok=True)
    if args.semireal:
        semireal_suite(args, args.scratch)
        return
    suite(args, args.scratch)
    if not (args.skip_real or args.quick or args.wormclean_only):
        real_plate(args, args.scratch)


if __name__ == "__main__":
    main()
