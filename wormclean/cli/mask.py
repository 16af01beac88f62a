"""``wormclean mask`` and ``wormclean preview``: worm masks of videos with a trained model."""

from __future__ import annotations

import functools
import shlex
import sys
from pathlib import Path

import click

from wormclean.cli.common import (
    FiniteFloat,
    Span,
    device_option,
    overwrite_option,
    progress_bar,
    quiet_option,
    raise_log_level,
    say,
    verbose_option,
)
from wormclean.settings import (
    BACKGROUND_MODES,
    DEFAULT_BGND_INTERVAL,
    DEFAULT_DILATION,
    DEFAULT_MIN_AREA,
    DEFAULT_SAVE_INTERVAL,
    LARGEST_DILATION,
    THRESHOLD_METHODS,
    MaskSettings,
    SegmentSettings,
)

BGND_INTERVAL_HELP = (
    "One background per this many frames (e.g. 1000) or seconds (e.g. 40s). With --background fused or temporal "
    "each window of that length gets its own background: the median of 21 frames sampled around it, its still "
    "worms filled in where the worm filter sees them. With --background net the net runs on one frame in this "
    "many and each frame takes the nearest; 1 runs it on every frame (hundreds of times slower on a CPU, "
    "affordable on a GPU). Every frame is segmented against its background scaled to its brightness (flicker). "
    "Shorter windows follow a changing background (moved plate, condensation) more closely and cost one net or "
    "filter call each."
)


def _model_option(function):
    return click.option(
        "--model",
        "model",
        default=None,
        metavar="PATH|NAME",
        help="Model file, or the name of an installed model (default: the installed default model).",
    )(function)


_SEGMENT_OPTIONS = {
    "threshold": click.option(
        "--threshold",
        type=click.Choice(THRESHOLD_METHODS),
        default=SegmentSettings.threshold,
        show_default=True,
        help="delta: a worm pixel differs from the background by more than --delta grey levels; "
        "otsu: Otsu's threshold of the difference, per frame.",
    ),
    "delta": click.option(
        "--delta",
        type=FiniteFloat(min=0, min_open=True),
        default=None,
        help="Threshold in grey levels [default: 10 for 8-bit video, scaled by 2^(bits-8)].",
    ),
    "background": click.option(
        "--background",
        type=click.Choice(BACKGROUND_MODES),
        default=SegmentSettings.background,
        show_default=True,
        help="fused: the video's own median background (every static thing kept as it is), with the worms "
        "that never move filled in where the worm filter sees them; net: the net's background alone (the "
        "paper's method); temporal: the median alone (immobile worms become background).",
    ),
    "worm_filter": click.option(
        "--worm-filter",
        default=None,
        help="Worm filter model file or registered name, for --background fused and for the frames of a video "
        "with no background of its own [default: the shipped prior].",
    ),
    "adapt_steps": click.option(
        "--adapt-steps",
        type=click.IntRange(min=0),
        default=SegmentSettings.adapt_steps,
        show_default=True,
        help="Most training steps that adapt the worm filter to each video's plate and moving worms (0: the "
        "filter as it is).",
    ),
    "min_area": click.option(
        "--min-area",
        type=click.IntRange(min=0),
        default=None,
        help="Smallest worm blob in pixels [default: a quarter of the worms the video shows moving; "
        f"{DEFAULT_MIN_AREA} with --background net].",
    ),
    "dark_worms": click.option(
        "--dark-worms/--light-worms",
        "dark_worms",
        default=None,
        help="Worms darker than the background (bright field) or lighter (dark field) [default: from the model].",
    ),
    "tile_size": click.option(
        "--tile-size",
        type=click.IntRange(min=1),
        default=None,
        help="Largest tile the net sees, in pixels [default: 1024 on CPU, 2048 on CUDA].",
    ),
    "batch_size": click.option(
        "--batch-size",
        type=click.IntRange(min=1),
        default=None,
        help="Tiles per forward pass [default: 1 on CPU, 4 on CUDA].",
    ),
    "device": device_option,
    "model": _model_option,
}
"""The options of how backgrounds become masks, by name; `mask` and `preview` take them all."""


def _segment_options(function, names=tuple(_SEGMENT_OPTIONS)):
    for name in reversed(names):
        function = _SEGMENT_OPTIONS[name](function)
    return function


@click.command()
@click.argument("videos", nargs=-1, required=True, metavar="VIDEO_OR_FOLDER...")
@click.option(
    "-o",
    "--output",
    required=True,
    type=click.Path(path_type=Path),
    help="Output .hdf5/.h5 file (one video) or folder (one VIDEO_NAME.hdf5 per video; created if missing).",
)
@click.option(
    "--bgnd-interval", type=Span(), default=DEFAULT_BGND_INTERVAL, show_default=True, help=BGND_INTERVAL_HELP
)
@_segment_options
@click.option(
    "--dilation",
    type=click.IntRange(min=0, max=LARGEST_DILATION),
    default=DEFAULT_DILATION,
    show_default=True,
    help="Pixels by which worm regions grow before the frame is masked (/mask).",
)
@click.option(
    "--save-interval",
    type=Span(),
    default=DEFAULT_SAVE_INTERVAL,
    show_default=True,
    help="A whole frame goes to /full_data every this many frames (or seconds, e.g. 200s).",
)
@click.option(
    "--microns-per-pixel",
    type=FiniteFloat(min=0, min_open=True),
    default=None,
    help="Pixel size, stored in the output.",
)
@click.option(
    "-j",
    "--jobs",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Videos masked at once on this machine, each in its own process with its share of the CPU cores.",
)
@click.option(
    "--scheduler",
    default=None,
    metavar="ADDRESS",
    help="Run on the Dask cluster whose scheduler is at ADDRESS (e.g. tcp://10.0.0.5:8786), one task per video; "
    "its workers must see the videos, -o and the model under the same paths. Needs wormclean[cluster].",
)
@overwrite_option
@quiet_option
@verbose_option
def mask(
    videos,
    output,
    bgnd_interval,
    background,
    threshold,
    delta,
    min_area,
    worm_filter,
    adapt_steps,
    dark_worms,
    tile_size,
    batch_size,
    device,
    model,
    dilation,
    save_interval,
    microns_per_pixel,
    jobs,
    scheduler,
    overwrite,
    quiet,
    verbose,
):
    """Find the worms in every frame of VIDEOS and write Tierpsy-style masked videos (HDF5).

    Each output holds /mask (the frame inside the worm regions, 0 elsewhere), /worm_mask (the binary worm
    masks), /worm_blobs (each frame's worms: centroid, area, box, length), /full_data, /bgnd (the
    backgrounds used), /mean_intensity, /video_metadata and /timestamp (the frames' times), and the provenance by
    which Tierpsy Tracker takes the file as masked and starts tracking it (tierpsy_process). A video that breaks
    part-way gets masks for every frame before the break.

    The background (--background): fused, the default, is the video's own median background per window with the
    worms that never move filled in, where the worm filter (adapted to each video's plate and moving worms) sees
    them; net is the net's alone (the paper's method); temporal the median alone.

    Into a folder, a batch resumes: complete outputs already there are skipped (--overwrite redoes them), and
    OUT/wormclean-batch.csv lists every video with its status (done, skipped, failed), frames, seconds and
    error. A failing video is tried once more, then reported, and the others are still done; the exit code is
    then 2.
    """
    from wormclean.errors import SettingsError
    from wormclean.io import find_videos
    from wormclean.predict.batch import BATCH_REPORT, mask_batch
    from wormclean.predict.pipeline import OUTPUT_SUFFIXES

    raise_log_level(verbose)
    if scheduler is not None and jobs > 1:
        raise SettingsError("--jobs is for this machine; with --scheduler the cluster's workers decide how many "
                            "videos run at once")
    settings = MaskSettings(
        model=model,
        bgnd_interval=bgnd_interval,
        background=background,
        threshold=threshold,
        delta=delta,
        min_area=min_area,
        dilation=dilation,
        save_interval=save_interval,
        device=device,
        tile_size=tile_size,
        batch_size=batch_size,
        dark_worms=dark_worms,
        worm_filter=worm_filter,
        adapt_steps=adapt_steps,
        microns_per_pixel=microns_per_pixel,
    )
    paths = find_videos(videos)
    display = _BatchDisplay(len(paths), quiet, per_worker=verbose > 0)
    try:
        results = mask_batch(
            paths,
            output,
            settings,
            jobs=jobs,
            scheduler=scheduler,
            overwrite=overwrite,
            progress=display.update,
            command_line=shlex.join(sys.argv),
        )
    finally:
        display.close()
    for result in results:
        if result.status == "failed":
            where = "" if str(result.video) in result.error else f"{result.video}: "
            click.echo(f"Error: {where}{result.error}", err=True)
        elif result.status == "done" and result.broken_at is not None:
            say(f"{result.output}: {result.n_frames} frames (the video breaks at frame {result.broken_at})", quiet)
        elif result.status == "done":
            say(f"{result.output}: {result.n_frames} frames", quiet)
    if output.suffix.lower() not in OUTPUT_SUFFIXES:
        counts = {status: sum(r.status == status for r in results) for status in ("done", "skipped", "failed")}
        say(f"{len(results)} videos: {counts['done']} done, {counts['skipped']} skipped (complete already), "
            f"{counts['failed']} failed; report {output / BATCH_REPORT}", quiet)
    if any(result.status == "failed" for result in results):
        click.get_current_context().exit(2)


class _BatchDisplay:
    """The progress lines of a batch: videos done, frames/s and ETA; with ``per_worker``, a line per worker
    with the video it is on."""

    def __init__(self, n_videos: int, quiet: bool, per_worker: bool):
        self.n_videos = n_videos
        self.quiet = quiet
        self.per_worker = per_worker
        self.bar = None  # made once the first frames are masked: a batch that fails at once shows no bar
        self.workers: dict = {}

    def update(self, status) -> None:
        from tqdm import tqdm

        if self.bar is None:
            if not status.frames:
                return
            self.bar = progress_bar(self.n_videos, "mask", "video", self.quiet, position=0,
                                    bar_format="{desc}: {n_fmt}/{total_fmt} videos |{bar}| {postfix}")
        self.bar.update(status.n_finished - self.bar.n)
        eta = "?" if status.eta_s is None else tqdm.format_interval(status.eta_s)
        failed = f", {status.n_failed} failed" if status.n_failed else ""
        self.bar.set_postfix_str(f"{status.frames_per_s:.1f} frames/s, ETA {eta}{failed}", refresh=True)
        if not self.per_worker:
            return
        for name, frames in status.workers.items():
            if name not in self.workers:
                self.workers[name] = progress_bar(frames.total, name, "frame", self.quiet,
                                                  position=len(self.workers) + 1, leave=False)
                self.workers[name].video = None
            bar = self.workers[name]
            if bar.video != frames.video:
                bar.video = frames.video
                bar.reset(total=frames.total)
                bar.set_description(f"{name} {frames.video.name}", refresh=False)
            bar.update(frames.done - bar.n)

    def close(self) -> None:
        for bar in self.workers.values():
            bar.close()
        if self.bar is not None:
            self.bar.close()


@click.command()
@click.argument("video", type=click.Path(path_type=Path))
@click.option("-o", "--output", required=True, type=click.Path(path_type=Path), help="PNG file to write.")
@click.option(
    "--frames",
    "n_frames",
    type=click.IntRange(min=1, max=50),
    default=3,
    show_default=True,
    help="How many frames, evenly spaced through the video.",
)
@click.option(
    "--bgnd-interval", type=Span(), default=DEFAULT_BGND_INTERVAL, show_default=True, help="As for 'wormclean mask'."
)
@_segment_options
@overwrite_option
@quiet_option
def preview(
    video,
    output,
    n_frames,
    bgnd_interval,
    background,
    threshold,
    delta,
    min_area,
    worm_filter,
    adapt_steps,
    dark_worms,
    tile_size,
    batch_size,
    device,
    model,
    overwrite,
    quiet,
):
    """Check the job on a few frames: one row per frame with the frame, the background (made as `mask` makes it,
    `--background`) and the worm mask over the frame, side by side in one PNG."""
    from wormclean.predict.cleaner import Cleaner
    from wormclean.predict.pipeline import write_preview

    settings = MaskSettings(
        model=model,
        bgnd_interval=bgnd_interval,
        background=background,
        threshold=threshold,
        delta=delta,
        min_area=min_area,
        device=device,
        tile_size=tile_size,
        batch_size=batch_size,
        dark_worms=dark_worms,
        worm_filter=worm_filter,
        adapt_steps=adapt_steps,
    )
    path, n_drawn = write_preview(Cleaner.from_settings(settings), video, output, n_frames, overwrite)
    say(f"{path}: {n_drawn} frame{'s' if n_drawn != 1 else ''}", quiet)


@click.command()
@click.argument("videos", nargs=-1, required=True, metavar="VIDEO_OR_FOLDER...")
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Worm filter file to write; NAME.loss.png (the training loss) is written beside it.")
@click.option("--steps", type=click.IntRange(min=1), default=None,
              help="Training steps of 8 crops [default: 400].")
@click.option("--learning-rate", type=FiniteFloat(min=0, min_open=True), default=None,
              help="Adam's learning rate [default: 1e-4, a tenth of the prior's training, so it is not undone].")
@click.option("--seed", type=int, default=0, show_default=True, help="The same seed gives the same filter.")
@click.option("--worm-filter", default=None, metavar="PATH|NAME",
              help="The filter to adapt: a worm filter file or registered name [default: the shipped prior].")
@functools.partial(_segment_options, names=("adapt_steps", "delta", "dark_worms", "device"))
@overwrite_option
@quiet_option
@verbose_option
def adapt(videos, output, steps, learning_rate, seed, worm_filter, adapt_steps, delta, dark_worms, device, overwrite,
          quiet, verbose):  # fmt: skip
    """Adapt the worm filter to videos recorded alike (the same plates, light and worms), once, and save it.

    Mask with it and no per-video adaptation: `wormclean mask VIDEOS -o OUT --worm-filter FILE --adapt-steps 0`.
    Each video's moving worms are pasted on every video's plate (its temporal background) to train the filter.
    The worms that lay still on a plate are first found as the job finds them (the prior adapted to that video by
    --adapt-steps) and left out of the training, so the filter does not learn that still worms are plate. Videos
    with no temporal background (too short, a moving stage) are reported and skipped. Every video's plate is held
    in memory (16 MB at 2048x2048): for a batch of thousands, adapt to a sample of a few dozen.
    """
    from wormclean.io import find_videos
    from wormclean.io.atomic import check_output_path
    from wormclean.predict.cleaner import Cleaner
    from wormclean.predict.lab_filter import DEFAULT_LAB_STEPS, fit_lab_filter, plot_losses
    from wormclean.train.worm_filter import ADAPT_LEARNING_RATE

    raise_log_level(verbose)
    output = check_output_path(output, overwrite)
    paths = find_videos(videos)
    settings = MaskSettings(background="fused", delta=delta, device=device, dark_worms=dark_worms,
                            worm_filter=worm_filter, adapt_steps=adapt_steps)  # fmt: skip
    cleaner = Cleaner.from_settings(settings)
    steps = steps or DEFAULT_LAB_STEPS
    learning_rate = learning_rate or ADAPT_LEARNING_RATE
    bars = [progress_bar(len(paths), "videos", "video", quiet)]

    def stepped(step: int, loss: float) -> None:
        if len(bars) == 1:  # the videos are read: training starts
            bars[0].close()
            bars.append(progress_bar(steps, "training", "step", quiet))
        bars[-1].update(1)
        bars[-1].set_postfix(loss=f"{loss:.3f}", refresh=False)

    try:
        result = fit_lab_filter(cleaner, paths, steps, learning_rate, seed=seed,
                                on_video=lambda path: bars[0].update(1), on_step=stepped)  # fmt: skip
    finally:
        for bar in bars:
            bar.close()
    metadata = result.metadata(worm_filter or "the shipped prior")
    result.worm_filter.save(output, metadata, {"steps": steps, "learning_rate": learning_rate, "seed": seed})
    plot_losses(result.losses, output.with_name(output.stem + ".loss.png"))
    used = [video for video in result.videos if video["moving_worms"] is not None]
    for video in result.videos:
        if video["moving_worms"] is None:
            click.echo(f"Warning: {video['video']}: no temporal background, not used", err=True)
    say(f"{output}: adapted to {len(used)} of {len(paths)} videos ({sum(v['moving_worms'] for v in used)} moving "
        f"worms; {sum(v['still_worm_pixels'] for v in used)} still-worm pixels left out), loss "
        f"{metadata['adapted']['loss_first_10']:.3f} -> {metadata['adapted']['loss_last_10']:.3f}", quiet)  # fmt: skip
