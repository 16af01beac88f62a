"""Fingerprint what ``wormclean mask`` (and the Python paths beside it) make on small plates, to show that a change
leaves the outputs as they were.

Makes a few plates once (``wormclean simulate``; a short clip; a folder of images from a moving stage), masks them in
every background mode at several ``--bgnd-interval`` values through the CLI and through ``Cleaner``/``mask_video``,
draws previews and finds immobile worms, and writes a SHA-256 per HDF5 dataset and per stable root attribute (not
per file: the file's bytes and its provenance carry times and paths) to a JSON file::

    python benchmarks/compare_outputs.py --plates /tmp/plates --out /tmp/before.json
    # ... change the code ...
    python benchmarks/compare_outputs.py --plates /tmp/plates --out /tmp/after.json --compare /tmp/before.json

The plates are kept in ``--plates`` and reused, so before and after see the same videos. Everything runs on one CPU
thread (``OMP_NUM_THREADS=1``, ``torch.set_num_threads(1)``) so that the net and the worm filter's adaptation are
deterministic run to run. Exit code 1 when ``--compare`` finds a difference.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import cv2
import h5py
import numpy as np

ENVIRONMENT = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
WORMCLEAN = [sys.executable, "-m", "wormclean"]

# name -> ``wormclean simulate`` options
SIMULATED = {
    "plate": ["--size", "320", "--frames", "72", "--fps", "4", "--worms", "6", "--immobile", "0.34", "--seed", "3"],
    "small": ["--size", "256", "--frames", "24", "--fps", "4", "--worms", "4", "--immobile", "0.5", "--seed", "5"],
    "clip": ["--size", "256", "--frames", "5", "--worms", "3", "--seed", "7"],
}

# (name, plate, wormclean mask options): every mode, several intervals, the fallbacks
CLI_CASES = [
    ("fused-1000", "plate", ["--background", "fused", "--bgnd-interval", "1000"]),
    ("fused-20", "plate", ["--background", "fused", "--bgnd-interval", "20"]),
    ("fused-5s", "plate", ["--background", "fused", "--bgnd-interval", "5s", "--save-interval", "30"]),
    ("fused-20-noadapt", "plate", ["--background", "fused", "--bgnd-interval", "20", "--adapt-steps", "0"]),
    ("temporal-1000", "plate", ["--background", "temporal", "--bgnd-interval", "1000"]),
    ("temporal-25", "plate", ["--background", "temporal", "--bgnd-interval", "25"]),
    ("net-10", "plate", ["--background", "net", "--bgnd-interval", "10"]),
    ("net-9-delta3", "plate", ["--background", "net", "--bgnd-interval", "9", "--delta", "3"]),  # masks not empty
    ("net-40", "plate", ["--background", "net", "--bgnd-interval", "40"]),  # a second reader (> 32)
    ("net-1", "small", ["--background", "net", "--bgnd-interval", "1"]),
    ("net-7-otsu", "small", ["--background", "net", "--bgnd-interval", "7", "--threshold", "otsu"]),
    ("fused-small-6", "small", ["--background", "fused", "--bgnd-interval", "6", "--delta", "8", "--min-area", "20"]),
    ("fused-clip", "clip", ["--background", "fused"]),
    ("net-clip", "clip", ["--background", "net", "--bgnd-interval", "2"]),
    ("temporal-clip", "clip", ["--background", "temporal"]),
    ("fused-stage", "stage", ["--background", "fused", "--bgnd-interval", "5"]),
    ("net-stage", "stage", ["--background", "net", "--bgnd-interval", "5"]),
    ("temporal-stage", "stage", ["--background", "temporal"]),
]

# (name, plate, Cleaner keywords, bgnd_interval) for the Python API: mask_video with a Cleaner of its own
PYTHON_CASES = [
    ("python-fused-20", "plate", {"background": "fused"}, "20"),
    ("python-net-10", "plate", {"background": "net", "min_area": 10}, "10"),
    ("python-temporal-clip", "clip", {"background": "temporal"}, "1000"),
]

PREVIEW_CASES = [
    ("preview-fused-20", "plate", ["--background", "fused", "--bgnd-interval", "20", "--frames", "4"]),
    ("preview-net-10", "plate", ["--background", "net", "--bgnd-interval", "10"]),
    ("preview-temporal-clip", "clip", ["--background", "temporal"]),
]

STABLE_ATTRIBUTES = ("n_frames", "broken_at", "backgrounds")
"""Root attributes compared as they are; ``settings`` is compared without the paths and the version."""


def make_plates(folder: Path) -> dict[str, Path]:
    """The plates, made once into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    plates = {}
    for name, options in SIMULATED.items():
        video = folder / f"{name}.mp4"
        if not video.exists():
            subprocess.run([*WORMCLEAN, "simulate", str(video), "-q", *options], check=True, env=ENVIRONMENT)
        plates[name] = video
    stage = folder / "stage"
    if not stage.exists():  # the stage follows a worm: the field slides by 6 pixels a frame
        stage.mkdir()
        rng = np.random.default_rng(1)
        scene = cv2.GaussianBlur(rng.uniform(60, 220, (300, 400)).astype(np.float32), (0, 0), 2.0)
        for index in range(16):
            cv2.imwrite(str(stage / f"{index:03d}.png"), scene[80:208, 6 * index: 6 * index + 160].astype(np.uint8))
    plates["stage"] = stage
    return plates


def digest(data) -> str:
    array = np.ascontiguousarray(np.asarray(data))
    hasher = hashlib.sha256(f"{array.dtype.str}{array.shape}".encode())
    hasher.update(array.tobytes())
    return hasher.hexdigest()


def fingerprint_hdf5(path: Path) -> dict[str, str]:
    """SHA-256 of every dataset (but the provenance, which holds the command line) and of the stable attributes."""
    found: dict[str, str] = {}
    with h5py.File(path, "r") as file:

        def visit(name, item):
            if isinstance(item, h5py.Dataset) and not name.startswith("provenance_tracking"):
                found[name] = digest(item[()])
                for key, value in sorted(item.attrs.items()):
                    found[f"{name}@{key}"] = digest(np.asarray(value).astype(str) if isinstance(value, str) else value)

        file.visititems(visit)
        for key in STABLE_ATTRIBUTES:
            found[f"@{key}"] = hashlib.sha256(str(file.attrs[key]).encode()).hexdigest()
        settings = json.loads(file.attrs["settings"])
        settings.pop("wormclean_version", None)
        settings.pop("model", None)
        found["@settings"] = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()
        found["@settings.resolved"] = json.dumps(settings.get("resolved"), sort_keys=True)
    return found


def run_cli(plates: dict[str, Path], work: Path) -> dict:
    results = {}
    for name, plate, options in CLI_CASES:
        output = work / f"{name}.hdf5"
        started = time.perf_counter()
        failed = run_command(["mask", str(plates[plate]), "-o", str(output), *options])
        results[name] = failed or fingerprint_hdf5(output)
        print(f"{name}: {time.perf_counter() - started:.1f} s", flush=True)
    for name, plate, options in PREVIEW_CASES:
        output = work / f"{name}.png"
        failed = run_command(["preview", str(plates[plate]), "-o", str(output), *options])
        results[name] = failed or {"png": digest(cv2.imread(str(output), cv2.IMREAD_UNCHANGED))}
        print(f"{name}: done", flush=True)
    return results


def run_command(arguments: list[str]) -> dict | None:
    """Run a ``wormclean`` command on one CPU thread; None if it succeeds, else its exit code and error line (a
    failure is an outcome to compare like any other)."""
    command = [*WORMCLEAN, *arguments, "--device", "cpu", "-q", "--overwrite"]
    done = subprocess.run(command, env=ENVIRONMENT, capture_output=True, text=True)
    if done.returncode == 0:
        return None
    return {"exit_code": str(done.returncode), "error": done.stderr}


def run_python(plates: dict[str, Path], work: Path, with_regions: bool = True) -> dict:
    import torch

    from wormclean import Cleaner
    from wormclean.model.modelfile import load_model
    from wormclean.model.registry import resolve_model
    from wormclean.predict.pipeline import mask_video
    from wormclean.settings import MaskSettings

    torch.set_num_threads(1)
    model = load_model(resolve_model(None))
    results = {}
    for name, plate, keywords, interval in PYTHON_CASES:
        output = work / f"{name}.hdf5"
        cleaner = Cleaner(model, device="cpu", **keywords)
        settings = MaskSettings(bgnd_interval=interval, device="cpu", **keywords)
        try:
            mask_video(plates[plate], output, settings, cleaner=cleaner, overwrite=True)
            results[name] = fingerprint_hdf5(output)
        except Exception as error:  # a failure is an outcome to compare like any other
            results[name] = {"error": f"{type(error).__name__}: {error}"}
        print(f"{name}: done", flush=True)
    if not with_regions:
        return results
    finder = Cleaner(model, device="cpu")
    if hasattr(finder, "immobile_worm_regions"):
        regions = finder.immobile_worm_regions(plates["plate"])
    else:  # before the background schedule was one class
        from wormclean.predict.windows import immobile_worm_regions

        regions = immobile_worm_regions(finder, plates["plate"])
    results["immobile-regions"] = {"regions": "none" if regions is None else digest(regions)}
    return results


def _comparable(key: str, value: str | None) -> str | None:
    """An error is compared by its last line (the message), not by the traceback's paths and line numbers."""
    if key != "error" or value is None:
        return value
    lines = [line for line in value.splitlines() if line.strip()]
    return lines[-1] if lines else value


def compare(before: dict, after: dict) -> list[str]:
    differences = []
    for case in sorted(set(before) | set(after)):
        old, new = before.get(case, {}), after.get(case, {})
        for key in sorted(set(old) | set(new)):
            if _comparable(key, old.get(key)) != _comparable(key, new.get(key)):
                differences.append(f"{case}: {key}: {old.get(key, 'missing')} -> {new.get(key, 'missing')}")
    return differences


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--plates", type=Path, default=Path("/tmp/wormclean-compare-plates"))
    parser.add_argument("--out", type=Path, required=True, help="JSON file of fingerprints to write")
    parser.add_argument("--compare", type=Path, help="fingerprints to compare with")
    parser.add_argument("--only", choices=("cli", "python"), help="run one half only")
    parser.add_argument("--cases", nargs="+", metavar="NAME", help="run these cases only (CLI, preview and Python)")
    arguments = parser.parse_args()
    if arguments.cases:
        for cases in (CLI_CASES, PREVIEW_CASES, PYTHON_CASES):
            cases[:] = [case for case in cases if case[0] in arguments.cases]
    os.environ.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    plates = make_plates(arguments.plates)
    work = arguments.plates / "outputs"
    work.mkdir(exist_ok=True)
    results = {}
    if arguments.only in (None, "cli"):
        results.update(run_cli(plates, work))
    if arguments.only in (None, "python"):
        with_regions = not arguments.cases or "immobile-regions" in arguments.cases
        results.update(run_python(plates, work, with_regions))
    arguments.out.write_text(json.dumps(results, indent=1, sort_keys=True))
    if arguments.compare is None:
        return 0
    before = json.loads(arguments.compare.read_text())
    if arguments.only is not None or arguments.cases:
        before = {case: value for case, value in before.items() if case in results}
    differences = compare(before, results)
    for line in differences:
        print(line)
    print(f"{len(results)} cases, {len(differences)} differences")
    return 1 if differences else 0


if __name__ == "__main__":
    sys.exit(main())
