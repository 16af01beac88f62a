"""Speed of ``wormclean mask`` (accuracy: ``benchmarks/bench_accuracy.py``).

Speed: on a synthetic 2048x2048 H.264 video (300 frames, 30 worms, cached in the scratch folder), decoding alone,
then the mask job at the default background interval (one video with --jobs 1, two videos with --jobs 1 and
--jobs 2) and at interval 1, on the CPU and on CUDA when there is a GPU: frames/s over the whole job, frames/s
once the first frames are out (the steady rate of a long video), both also as a fraction of decoding alone in
the same run, and peak memory of a worker (each batch in its own process). The default (``--background
fused``) is set beside the net's background alone (``--background net``, the former default) at the same
interval. At interval 1 on the CPU only a few frames are run: the full net takes tens of seconds per 2048x2048
frame there. Then the default job on the same plate encoded with x264's default preset (medium), which takes
2-3 times the simulator's (ultrafast) decoding work, against decoding that video alone.

Last, a long video: on the 300-frame plate every window samples the same frames (a window's samples are spread
over 300 s of video), so the steady rate there never pays for a later window's background, which a video of
more than 300 s makes every ``--bgnd-interval`` frames in a thread beside the frames. A 2000-frame plate at
2.5 frames/s (800 s, two windows of 1000 frames, each sampled from its own 300 s) shows that cost in its
steady rate. Its worms move ten times as far between frames, so it decodes at about half the 25 fps plate's
rate; compare it with decoding it alone, not with the other rows.

Usage::

    python benchmarks/bench_mask.py --model MODEL.pt            # full run (minutes on a GPU, an hour on a CPU)
    python benchmarks/bench_mask.py --model MODEL.pt --quick    # tiny sizes, to check that it works
    python benchmarks/bench_mask.py --model default --markdown  # the README's table
"""

from __future__ import annotations

import argparse
import dataclasses
import multiprocessing
import resource
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench_tables import print_table  # noqa: E402  (benchmarks/, this script's folder)

from wormclean.io import open_video  # noqa: E402
from wormclean.io.writer import EncoderSettings  # noqa: E402
from wormclean.settings import DEFAULT_BGND_INTERVAL, MaskSettings  # noqa: E402
from wormclean.sim import SimulationSettings, write_simulation  # noqa: E402


def cached_video(scratch: Path, name: str, settings: SimulationSettings, preset: str | None = None) -> Path:
    """A synthetic video in the scratch folder, made once (x264 ``preset``: default the simulator's)."""
    path = scratch / f"{name}.mp4"
    if not path.exists():
        print(f"making {path} ...", flush=True)
        write_simulation(path, settings, encoder=EncoderSettings(preset=preset) if preset else None)
    return path


def decode_rate(video: Path) -> float:
    with open_video(video) as reader:
        started = time.perf_counter()
        count = sum(1 for _ in reader.frames())
        return count / (time.perf_counter() - started)


def _batch_run(
    videos: list[str], output: str, model: str, interval: str, device: str, jobs: int, background: str
) -> dict:
    """One ``wormclean mask`` batch in this (child) process: rates, and the peak memory of a worker."""
    from wormclean.predict.batch import mask_batch

    settings = MaskSettings(model=model, bgnd_interval=interval, device=device, background=background)
    first: list[tuple[float, int]] = []

    def progress(status) -> None:
        if not first and status.frames:
            first.append((time.perf_counter(), status.frames))

    started = time.perf_counter()
    results = mask_batch(videos, output, settings, jobs=jobs, overwrite=True, progress=progress)
    ended = time.perf_counter()
    frames = sum(result.n_frames for result in results)
    steady = (frames - first[0][1]) / (ended - first[0][0]) if first and frames > first[0][1] else float("nan")
    peak = max(resource.getrusage(who).ru_maxrss for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN))
    return {"frames": frames, "fps": frames / (ended - started), "steady_fps": steady, "peak_gb": peak / 1e6}


def mask_rate(
    videos: list[Path], output: Path, model: str, interval: str, device: str, jobs: int = 1, background: str = "fused"
) -> dict:
    """Rates of a batch run in a fresh process (so that its peak memory is its own)."""
    # A process pool's processes may start their own (--jobs 2), where multiprocessing.Pool's may not.
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        job = (_batch_run, [str(v) for v in videos], str(output), model, interval, device, jobs, background)
        return pool.submit(*job).result()


def speed(args, scratch: Path) -> None:
    import torch

    size, n_frames, n_worms, n_short = (256, 20, 5, 3) if args.quick else (2048, 300, 30, 4)
    plate = SimulationSettings(size=(size, size), n_frames=n_frames, n_worms=n_worms, seed=1)
    video = cached_video(scratch, f"speed_{size}_{n_frames}", plate)
    twin = cached_video(scratch, f"speed_{size}_{n_frames}_twin", dataclasses.replace(plate, seed=2))
    short = cached_video(scratch, f"speed_{size}_short", dataclasses.replace(plate, n_frames=n_short))
    # The same plate through x264's default preset (CABAC, B-frames, deblocking): what offline transcoding and
    # much recording software write, and 2-3x the decoding work of the simulator's ultrafast stream.
    medium = cached_video(scratch, f"speed_{size}_{n_frames}_medium", plate, preset="medium")
    rows: list[list[str]] = []
    decode = decode_rate(video)
    rows.append(decode_row("decode alone", decode))
    default = str(DEFAULT_BGND_INTERVAL)
    cases = [("cpu", default, [video], 1, "fused"), ("cpu", default, [video], 1, "net"),
             ("cpu", default, [video, twin], 1, "fused"), ("cpu", default, [video, twin], 2, "fused"),
             ("cpu", "1", [short], 1, "net")]
    if torch.cuda.is_available():
        cases += [("cuda", default, [video], 1, "fused"), ("cuda", "1", [video], 1, "net")]
    for device, interval, videos, jobs, background in cases:
        stats = mask_rate(videos, scratch / "speed_out", args.model, interval, device, jobs, background)
        options = "defaults" if background == "fused" else f"`--background {background}`"
        if interval != default:
            options = f"`--background {background} --bgnd-interval {interval}` ({stats['frames']} frames)"
        videos_jobs = f"{len(videos)} video{'s' * (len(videos) > 1)}" + (f", `--jobs {jobs}`" * (len(videos) > 1))
        rows.append(rate_row(f"{device}: {options}, {videos_jobs}", stats, decode))
    decode_medium = decode_rate(medium)
    rows.append(decode_row("decode alone, x264 preset medium", decode_medium))
    stats = mask_rate([medium], scratch / "speed_out", args.model, default, "cpu", 1, "fused")
    rows.append(rate_row("cpu: defaults, x264 preset medium", stats, decode_medium))
    n_long = 60 if args.quick else 2000
    long = cached_video(scratch, f"speed_{size}_{n_long}_2.5fps", dataclasses.replace(plate, n_frames=n_long, fps=2.5))
    decode_long = decode_rate(long)
    rows.append(decode_row(f"decode alone, {n_long} frames at 2.5 fps", decode_long))
    stats = mask_rate([long], scratch / "speed_out", args.model, default, "cpu", 1, "fused")
    rows.append(rate_row(f"cpu: defaults, {n_long} frames at 2.5 fps", stats, decode_long))
    print(f"\nSpeed, {size}x{size} H.264, {n_frames} frames, {n_worms} worms; rates against decoding alone in this run")
    print_table(["case", "frames/s", "x decode", "steady frames/s", "x decode", "peak memory"], rows, args.markdown)


def decode_row(case: str, decode: float) -> list[str]:
    """The row of decoding alone, said at once as well (a full run takes long)."""
    print(f"{case}: {decode:.1f} frames/s", flush=True)
    return [case, f"{decode:.1f}", "1", "", "", ""]


def rate_row(case: str, stats: dict, decode: float) -> list[str]:
    """One row of the speed table: rates of a case, and as fractions of decoding alone; said at once as well."""
    print(f"{case}: {stats['fps']:.2f} frames/s, steady {stats['steady_fps']:.2f}", flush=True)
    return [case, f"{stats['fps']:.2f}", f"{stats['fps'] / decode:.2f}", f"{stats['steady_fps']:.2f}",
            f"{stats['steady_fps'] / decode:.2f}", f"{stats['peak_gb']:.2f} GB"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="video model file (or registered name)")
    parser.add_argument("--quick", action="store_true", help="tiny sizes, to check that the benchmark works")
    parser.add_argument("--scratch", type=Path, default=REPO / "scratch" / "bench_mask", help="cache folder")
    parser.add_argument("--skip-accuracy", action="store_true", help="(accuracy moved to bench_accuracy.py)")
    parser.add_argument("--markdown", action="store_true", help="print the table as Markdown (the README's)")
    args = parser.parse_args()
    args.scratch.mkdir(parents=True, exist_ok=True)
    speed(args, args.scratch)


if __name__ == "__main__":
    main()
