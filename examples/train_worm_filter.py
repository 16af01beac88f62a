"""Train the shipped worm filter prior (``models/worm_filter.pt``) on composites, resumably, in chunks.

Plates: the true backgrounds of simulated plates rich in structure (rings, marker lines, tracks, fibres, text, dish
edges, lawns; light and dark fields) and, with ``--real``, worm-free real plate backgrounds
(:mod:`wormclean.sim.semireal`, the TUNE set only). Worms: the moving worms of the simulated plates, measured as a
video's are (:func:`~wormclean.data.worm_crops.worm_layers`), and with ``--real`` the real worm of
``../shared/data/wormpose``. Any worm is pasted on any plate: all are in worm units.

With ``--whole-plates``, also tiles of whole real plates whose worms are left out of the loss
(:data:`WHOLE_PLATES`); with ``--mine``, before each chunk the filter is run on every plate (all worm-free, or
their worms weighted 0) and a share of the crops is centred where it saw worms (hard-negative mining), so that
the ends of marker lines, arcs of rings, letters and debris it takes for worms are seen as often as worms are.

Usage::

    python examples/train_worm_filter.py -o models/worm_filter.pt --steps 3000            # from scratch
    python examples/train_worm_filter.py -o models/worm_filter.pt --steps 3000 --resume   # on from the file

Each run of ``--chunk`` steps writes the model file (with the steps done and the loss) and can be stopped and
resumed; the crops of a resumed run are drawn from a seed that depends on the steps already done.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from wormclean.data.worm_crops import WormLayer, plate_in_worm_units, worm_layers  # noqa: E402
from wormclean.model.modelfile import load_model  # noqa: E402
from wormclean.predict.worm_filter import WormFilter, check_filter_model, new_filter  # noqa: E402
from wormclean.segment.background import calibrate_worms  # noqa: E402
from wormclean.sim import Simulation, SimulationSettings  # noqa: E402
from wormclean.sim.semireal import REPORT, VALIDATE, plate_of  # noqa: E402
from wormclean.train.worm_filter import train_filter  # noqa: E402

SIM_SEEDS = range(3000, 3032)
"""Simulated plates of the prior (used nowhere else: not in the benchmarks, the tests or the background net)."""


def simulated(seed: int, size: int = 512, n_frames: int = 24) -> tuple[np.ndarray, list]:
    """A simulated plate's true background (a Plate) and its moving worms as layers."""
    rng = np.random.default_rng(seed)
    settings = SimulationSettings.randomised(
        seed, size=size, n_frames=n_frames, immobile_fraction=0.0,
        n_rings=int(rng.integers(0, 3)), n_marks=int(rng.integers(0, 3)), n_tracks=int(rng.integers(0, 4)),
        n_fibres=int(rng.integers(0, 6)), dish_edge=bool(rng.random() < 0.4), text=bool(rng.random() < 0.4),
    )
    simulation = Simulation(settings)
    frames = [frame for frame, _ in simulation.frames()]
    background = simulation.background
    delta = min(10.0, 0.4 * settings.contrast)
    stats = calibrate_worms(frames[::3], background, settings.dark_worms, delta)
    if stats is None:
        return plate_in_worm_units(background, settings.dark_worms, settings.contrast), []
    layers = worm_layers(frames[::2], background, settings.dark_worms, delta, stats.area, stats.contrast, 60)
    return plate_in_worm_units(background, settings.dark_worms, stats.contrast), layers


def real(rng: np.random.Generator) -> tuple[list[np.ndarray], list]:
    """Worm-free real plates (TUNE set) and the real worm's layers, in worm units."""
    from wormclean.sim.semireal import TUNE, load_background, real_worm_layers

    data = REPO.parent / "shared" / "data"
    plates = []
    for source in TUNE:
        background = load_background(source, data / "realplates")
        for contrast in (15.0, 30.0, 60.0):  # the plate's structure against faint and strong worms alike
            plates.append(plate_in_worm_units(background, True, contrast))
    layers = []
    for values, mask in real_worm_layers(data / "wormpose")[::5]:
        core = float(np.percentile(values[mask], 75))
        for scale in (0.4, 0.6, 0.9):  # the 89-pixel worm as plates filmed whole or closer show it
            size = (max(3, round(mask.shape[1] * scale)), max(3, round(mask.shape[0] * scale)))
            small = cv2.resize(cv2.GaussianBlur(values, (0, 0), 0.5 / scale), size, interpolation=cv2.INTER_AREA)
            layers.append(WormLayer(small / core, cv2.resize(mask.astype(np.uint8), size) > 0))
    return plates, layers


WHOLE_PLATES = (
    # (images, dark level, smallest worm area): lifespan scans are the pixel maximum of a plate's two scans, two
    # minutes apart, so its live worms, which moved, are gone; what stays dark is dead worms, debris and structure.
    *((f"quantworm_lifespan/{n}/assembled.jpeg", f"quantworm_lifespan/{n}__1/assembled.jpeg", 60.0, 120)
      for n in (1, 2, 3, 4, 5, 6, 7)),
    *((f"quantworm_chemotaxis_counter/{n}/assembled_org.jpeg", None, 20.0, 40) for n in (2, 4, 5, 6)),
)
"""Whole real plates beyond the TUNE crops. The plates of the VALIDATE crops (lifespan 9, chemotaxis 7) and of the
REPORT ones (lifespan 8, chemotaxis 3) are left out (:func:`check_held_out` makes sure). Their worms are not painted
out but left out of the loss (:func:`worm_free`), with levels checked by eye: the lifespan plates' dead worms are far
darker than their debris, the chemotaxis plates' worms are faint."""


def check_held_out(whole_plates: tuple = WHOLE_PLATES) -> None:
    """Refuse whole plates that show a plate of :data:`~wormclean.sim.semireal.VALIDATE` or
    :data:`~wormclean.sim.semireal.REPORT`: a prior trained on them would make those sets neither for choosing
    nor for reporting."""
    held_out = {plate_of(crop.source) for crop in VALIDATE + REPORT}
    used = {plate_of(image) for first, second, *_ in whole_plates for image in (first, second) if image is not None}
    if used & held_out:
        raise ValueError(f"WHOLE_PLATES uses the held-out plates {sorted(used & held_out)} (VALIDATE or REPORT)")


check_held_out()

TILES_PER_PLATE = 2
TILE = 640


def worm_free(image: np.ndarray, level: float, min_area: int, width: int = 11) -> np.ndarray:
    """Loss weights of a real plate with worms on it: float32, 0 on and around its worms, else 1.

    A worm is a blob darker than the plate's local level (a median over 41 pixels) by ``level``, of at least
    ``min_area`` pixels and at most 160 long, once the parts thicker than ``width`` (rims, marker lines) are
    taken away, so that worms touching a line are left out too. Debris lighter than ``level`` stays, as plate.
    """
    local = cv2.medianBlur(image, 41).astype(np.float32)
    dark = ((local - image) > level).astype(np.uint8)
    thick = cv2.morphologyEx(dark, cv2.MORPH_OPEN, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (width, width)))
    n_labels, labels, stats, _ = cv2.connectedComponentsWithStats(dark & (1 - thick), connectivity=8)
    worms = (stats[:, cv2.CC_STAT_AREA] >= min_area) & (np.maximum(stats[:, 2], stats[:, 3]) <= 160)
    worms[0] = False
    around = cv2.dilate(worms[labels].astype(np.uint8), np.ones((9, 9), np.uint8))
    return (1 - around).astype(np.float32)


def whole_plates(rng: np.random.Generator) -> list:
    """Tiles of :data:`WHOLE_PLATES` at random places, in worm units (against worms of 30 or 60 grey levels), their
    worms weighted 0."""
    folder = REPO.parent / "shared" / "data" / "realplates"
    plates = []
    for first, second, level, min_area in WHOLE_PLATES:
        image = cv2.imread(str(folder / first), cv2.IMREAD_GRAYSCALE)
        if second is not None:
            image = np.maximum(image, cv2.imread(str(folder / second), cv2.IMREAD_GRAYSCALE))
        weight = worm_free(image, level, min_area)
        for taken in range(TILES_PER_PLATE):
            top = int(rng.integers(image.shape[0] - TILE))
            left = int(rng.integers(image.shape[1] - TILE))
            plate = plate_in_worm_units(image[top:top + TILE, left:left + TILE], True, (30.0, 60.0)[taken % 2])
            plates.append(replace(plate, weight=np.ascontiguousarray(weight[top:top + TILE, left:left + TILE])))
    return plates


def mined(worm_filter: WormFilter, plates: list) -> list:
    """``plates`` with their ``hard`` pixels: where ``worm_filter`` sees a worm (probability above 1/2) on these
    worm-free plates, outside the pixels left out of the loss (hard-negative mining)."""
    found = []
    for plate in plates:
        wrong = worm_filter.probability(plate.image) > 0.5
        if plate.weight is not None:
            wrong &= plate.weight > 0
        found.append(replace(plate, hard=np.argwhere(wrong)))
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-o", "--output", type=Path, required=True)
    parser.add_argument("--steps", type=int, default=3000, help="total steps, those of a resumed file included")
    parser.add_argument("--chunk", type=int, default=250, help="steps between writes of the model file")
    parser.add_argument("--resume", action="store_true")
    parser.add_argument("--real", action="store_true", help="also real plates and the real worm (../shared/data)")
    parser.add_argument("--whole-plates", action="store_true",
                        help="also tiles of whole real plates, their worms left out of the loss (../shared/data)")
    parser.add_argument("--mine", action="store_true",
                        help="centre a share of the crops where the filter of the last chunk saw worms on the plates")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1 is fastest beside other jobs)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    started = time.time()
    plates, layers = [], []
    for seed in SIM_SEEDS:
        plate, found = simulated(seed)
        plates.append(plate)
        layers.extend(found)
    sources = ["simulated plates 3000-3031 (512x512, structure drawn at random)", "their moving worms"]
    if args.real:
        real_plates, real_layers = real(np.random.default_rng(7))
        plates += real_plates
        layers += real_layers
        sources += ["real plates: wormclean.sim.semireal.TUNE (against worms of 15, 30 and 60 grey levels)",
                    "the real worm of wormpose (every 5th posture, at 0.4, 0.6 and 0.9 of its size)"]
    if args.whole_plates:
        plates += whole_plates(np.random.default_rng(11))
        sources += ["two 640x640 tiles of each of lifespan plates 1-7 (the maximum of their two scans) and "
                    "chemotaxis plates 2 and 4-6 of ../shared/data/realplates, their worms left out of the loss"]
    print(f"{len(plates)} plates, {len(layers)} worm layers ({time.time() - started:.0f} s)", flush=True)

    done, history = 0, []
    if args.resume and args.output.is_file():
        loaded = load_model(args.output)
        check_filter_model(loaded)
        worm_filter = WormFilter((loaded.net,))
        done = int((loaded.training or {}).get("steps", 0))
        history = list((loaded.training or {}).get("loss_per_chunk", []))
        print(f"resumed at step {done}", flush=True)
    else:
        worm_filter = new_filter()
    while done < args.steps:
        steps = min(args.chunk, args.steps - done)
        rng = np.random.default_rng([1234, done])
        if args.mine:
            plates = mined(worm_filter, plates)
            print(f"mined: {sum(len(plate.hard) for plate in plates)} pixels seen as worms on worm-free plates",
                  flush=True)
        losses = train_filter(worm_filter.nets[0], plates, layers, steps, rng, batch_size=args.batch_size,
                              learning_rate=args.learning_rate)
        done += steps
        history.append([done, float(np.mean(losses))])
        worm_filter.save(
            args.output,
            metadata={"dark_worms": True, "data": sources + (["hard-negative mining"] if args.mine else [])},
            training={"steps": done, "batch_size": args.batch_size, "crop": 96, "loss_per_chunk": history,
                      "seconds": round(time.time() - started)},
        )
        print(f"step {done}: loss {np.mean(losses):.4f} ({time.time() - started:.0f} s)", flush=True)


if __name__ == "__main__":
    main()
