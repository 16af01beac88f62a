"""Training throughput: the data pipeline alone against the full training step, on CPU and CUDA if present.

    python benchmarks/bench_fit.py [--size 1024] [--steps 10] [--widths 16,48] [--markdown]

Simulates two videos (cached in --work), then measures patches/s of
  - decode only: the key frames a LaggedPatchDataset decodes per video, as frames/s;
  - data pipeline: LaggedPatchDataset patches (crop, flips, swap) through a DataLoader, no net;
  - full step: the same batches through forward, L1 loss, backward and Adam, for each --widths: on the CPU
    once with malloc's defaults and once with freed memory kept for reuse, as ``fit`` runs
    (:func:`wormclean.memory.keep_freed_memory`), each in a fresh process, with its peak memory.
The pipeline must be much faster than the step, or training would wait on data.
"""

from __future__ import annotations

import argparse
import multiprocessing
import resource
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import torch
from bench_tables import print_table
from torch.utils.data import DataLoader

from wormclean.data.patches import LaggedPatchDataset
from wormclean.io import open_video
from wormclean.memory import keep_freed_memory
from wormclean.model.modelfile import Normalisation
from wormclean.model.unet import UNet, UNetConfig
from wormclean.sim import SimulationSettings, write_simulation


def videos(folder: Path, size: int) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for seed in (1, 2):
        path = folder / f"bench_{size}_{seed}.mp4"
        if not path.exists():
            write_simulation(path, SimulationSettings(size=size, n_frames=100, fps=1.0, seed=seed,
                                                      immobile_fraction=0.0))
        paths.append(path)
    return paths


def decode_rate(path: Path) -> float:
    with open_video(path) as reader:
        started = time.perf_counter()
        count = sum(1 for _ in reader.read(range(0, reader.n_frames, max(1, reader.n_frames // 8))))
        return count / (time.perf_counter() - started)


def pipeline_rate(paths, patch_size: int, batch_size: int, batches: int, workers: int) -> float:
    dataset = LaggedPatchDataset(paths, patch_size=patch_size, seed=0)
    loader = iter(DataLoader(dataset, batch_size=batch_size, num_workers=workers))
    next(loader)  # key frames decoded, workers started
    started = time.perf_counter()
    for _ in range(batches):
        next(loader)
    return batches * batch_size / (time.perf_counter() - started)


def step_rate(paths, width: int, depth: int, patch_size: int, batch_size: int, steps: int, device: str) -> float:
    dataset = LaggedPatchDataset(paths, patch_size=patch_size, seed=0)
    loader = iter(DataLoader(dataset, batch_size=batch_size))
    normalisation = Normalisation(offset=128.0, scale=20.0)
    net = UNet(UNetConfig(width=width, depth=depth)).to(device)
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-4)
    use_amp = device == "cuda"
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp)

    def one_step():
        source, target = (normalisation.forward(t.to(device)) for t in next(loader))
        with torch.autocast(device_type=device, dtype=torch.float16, enabled=use_amp):
            loss = torch.nn.functional.l1_loss(net(source).float(), target)
        optimizer.zero_grad()
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()

    one_step()
    if device == "cuda":
        torch.cuda.synchronize()
    started = time.perf_counter()
    for _ in range(steps):
        one_step()
    if device == "cuda":
        torch.cuda.synchronize()
    return steps * batch_size / (time.perf_counter() - started)


def _fresh_step_rate(paths, width, depth, patch_size, batch_size, steps, device, keep) -> tuple[float, float]:
    """:func:`step_rate` in this (fresh) process, after :func:`keep_freed_memory` if ``keep``; and the peak
    memory of the process in GB."""
    if keep:
        keep_freed_memory()
    rate = step_rate(paths, width, depth, patch_size, batch_size, steps, device)
    return rate, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", type=Path, default=Path("benchmarks/.cache"))
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--patch-size", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--widths", default="16,48", help="Comma-separated base widths (depth 4 for <48, 5 for 48).")
    parser.add_argument("--workers", type=int, default=0)
    parser.add_argument("--markdown", action="store_true", help="print the table as Markdown (the README's)")
    args = parser.parse_args()
    paths = videos(args.work, args.size)
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    rows = [["decoding key frames (seeks spread over the video)", "cpu", f"{decode_rate(paths[0]):.1f} frames/s", ""]]
    pipeline = pipeline_rate(paths, args.patch_size, args.batch_size, 20, args.workers)
    rows.append([f"data pipeline, {args.workers} workers (cached frames -> augmented patch pairs)", "cpu",
                 f"{pipeline:.1f} patches/s", ""])
    for device in devices:
        for width in (int(w) for w in args.widths.split(",")):
            depth = 5 if width >= 48 else 4
            for keep in (False, True) if device == "cpu" else (False,):
                job = (paths, width, depth, args.patch_size, args.batch_size, args.steps, device, keep)
                with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
                    rate, peak_gb = pool.submit(_fresh_step_rate, *job).result()
                malloc = ""
                if device == "cpu":
                    malloc = ", freed memory kept (as fit runs)" if keep else ", malloc's defaults"
                rows.append([f"full step, width {width}, depth {depth}{malloc}", device, f"{rate:.1f} patches/s",
                             f"{peak_gb:.1f} GB"])
    print(f"\nTraining throughput, {args.size}x{args.size} videos, {args.patch_size}x{args.patch_size} patches, "
          f"batch {args.batch_size}, torch threads {torch.get_num_threads()}")
    print_table(["stage", "device", "rate", "peak memory"], rows, args.markdown)


if __name__ == "__main__":
    main()
