"""``wormclean fit``: train a background model on lagged frame pairs of videos (or on synthetic still pairs)."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import click
from click.core import ParameterSource

from wormclean.cli.common import (
    SEED,
    FiniteFloat,
    Span,
    device_option,
    overwrite_option,
    progress_bar,
    quiet_option,
    say,
)
from wormclean.errors import OutputError, SettingsError
from wormclean.settings import (
    FINE_TUNING_STEPS,
    SYNTHESIS_MODES,
    CropFitSettings,
    SynthesisSettings,
    TrainSettings,
    VideoFitSettings,
)

VIDEO_OPTIONS = ("lag", "val_fraction", "min_change", "focus_changes", "exclude_immobile")
"""Options of training on videos, refused with --crops."""
CROP_OPTIONS = ("targets", "mode", "max_overlap", "log_scale")
"""Options of training on crops (--crops), refused with videos."""

LAG_HELP = (
    "Frames (150) or seconds (200s) between the two frames of a training pair. Worms must have moved off "
    "their place in that time; the background must not have changed. Default: half the video, at most 60 s "
    "(a 15-minute tracking video gets 60 s, a 10-second clip 5 s)."
)


@click.command(context_settings={"show_default": True})
@click.argument("inputs", nargs=-1)
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Model file to write (the best by validation loss); NAME.last.pt, NAME.log.csv and "
                   "NAME.loss.png are written beside it.")
@click.option("--lag", type=Span(), default=None, help=LAG_HELP, show_default=False)
@click.option("--steps", default=None, type=click.IntRange(min=1), show_default=False,
              help=f"Training steps (batches) [default: {TrainSettings.steps} from scratch, {FINE_TUNING_STEPS} "
                   "when fine-tuning (--init)].")
@click.option("--batch-size", default=TrainSettings.batch_size, type=click.IntRange(min=1), help="Patches per step.")
@click.option("--patch-size", default=VideoFitSettings.patch_size, type=click.IntRange(min=16),
              help="Side of the square training patches (pixels).")
@click.option("--width", default=None, type=click.IntRange(min=4),
              help="Base channels of the U-Net [default: 48, the paper's]. On a CPU, 16 trains several times faster.")
@click.option("--depth", default=None, type=click.IntRange(min=1, max=10),
              help="Pooling levels of the U-Net [default: 5].")
@click.option("--learning-rate", default=None, type=FiniteFloat(min=0, min_open=True),
              help="Adam's learning rate [default: 1e-4 x batch size / 36].")
@device_option
@click.option("--workers", default=TrainSettings.workers, type=click.IntRange(min=0),
              help="DataLoader worker processes preparing training patches.")
@click.option("--val-fraction", default=VideoFitSettings.val_fraction, type=FiniteFloat(min=0, max=1, max_open=True),
              help="Fraction of videos held out for validation.")
@click.option("--validate-every", default=TrainSettings.validate_every, type=click.IntRange(min=1),
              help="Steps between validations and checkpoints.")
@click.option("--min-change", default=VideoFitSettings.min_change, type=FiniteFloat(min=0),
              help="Drop frame pairs whose largest smoothed change is below this many grey levels.")
@click.option("--focus-changes", default=VideoFitSettings.change_fraction, type=FiniteFloat(min=0, max=1),
              help="Fraction of patches centred on where the pair changed most (moving worms), e.g. 0.5.")
@click.option("--time-limit", default=None, type=FiniteFloat(min=0, min_open=True),
              help="Stop after this many minutes (saving as at the end), even before --steps.")
@click.option("--seed", default=TrainSettings.seed, type=SEED, help="Random seed (weights, sampling).")
@click.option("--resume", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Continue an interrupted run from its NAME.last.pt file.")
@click.option("--init", "init_model", default=None, show_default=False,
              help="Start from this model (a file or a registered name such as 'default') to fine-tune it "
                   "[default on a CPU without --width/--depth: 'default', the shipped model; else from scratch].")
@click.option("--exclude-immobile/--include-immobile", default=True,
              help="Leave the immobile worms of each video (found as 'wormclean mask' finds them, with the "
                   "--init model or the shipped one) out of the loss, so that the net does not learn to keep them.")
@click.option("--crops", "crops_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Train a still-image model on synthetic pairs from this crops folder (see 'wormclean "
                   "crops') instead of on videos.")
@click.option("--targets", default=None,
              help="With --crops: comma-separated classes to keep (the others are removed).")
@click.option("--mode", type=click.Choice(SYNTHESIS_MODES), default=SynthesisSettings.mode,
              help="With --crops: keep the target classes and remove the rest, or remove the targets.")
@click.option("--max-overlap", default=SynthesisSettings.max_overlap, type=FiniteFloat(min=0, max=1),
              help="With --crops: largest fraction of an object that others may cover in a synthetic image.")
@click.option("--log-scale", is_flag=True, help="With --crops: train on log intensities (high dynamic range).")
@click.option("--dry-run", is_flag=True, help="Check the inputs, print the settings and stop.")
@overwrite_option
@quiet_option
def fit(inputs, output, lag, steps, batch_size, patch_size, width, depth, learning_rate, device, workers,
        val_fraction, validate_every, min_change, focus_changes, time_limit, seed, resume, init_model, crops_dir,
        targets, mode, max_overlap, log_scale, exclude_immobile, dry_run, overwrite, quiet):
    """Train a background model on VIDEOS (files, folders searched recursively, or globs).

    Pairs of frames of the same video a lag apart are the input and target of an L1 loss: the net learns the
    per-pixel median, the background with the worms removed, from a single frame. No annotation is needed.
    The paper's net from scratch wants a GPU (--device cuda); on a CPU the default is to fine-tune the shipped
    model (500 steps; after the first ones it says how long the rest will take).
    Ctrl-C saves NAME.last.pt; --resume NAME.last.pt continues, on any number of processes.

    Several GPUs: torchrun --nproc_per_node N -m wormclean fit ... trains with DistributedDataParallel, each
    process on its share of the patches with --batch-size patches per step (the default learning rate follows
    the N x --batch-size of all together); rank 0 writes the files.
    """
    from wormclean.data.shards import launched_group
    from wormclean.io.atomic import check_folder_writable, output_lock
    from wormclean.train.fit import output_paths, train

    quiet = quiet or not launched_group().is_main  # under torchrun, rank 0 alone shows progress and results

    _check_mode_options(click.get_current_context(), crops_dir is not None)
    if crops_dir is not None and inputs:
        raise SettingsError("give either videos or --crops, not both")
    if crops_dir is None and not inputs:
        raise SettingsError("no videos given; usage: wormclean fit VIDEOS... -o model.pt")
    if resume and init_model:
        raise SettingsError("use either --resume (continue a run) or --init (start from a model), not both")
    check_folder_writable(output.parent)
    if not dry_run and launched_group().is_main:
        # Held to the end of the command: a second fit on the same output is refused before it touches a file.
        click.get_current_context().with_resource(output_lock(output, "fit"))
    if resume is None and not overwrite and not dry_run:
        for path in (output, output_paths(output)["last"]):
            if path.exists():
                raise OutputError(f"{path} exists; use --overwrite to replace it or --resume to continue")
    if init_model is None and resume is None and crops_dir is None and width is None and depth is None:
        from wormclean.model.device import resolve_device

        if resolve_device(device).type == "cpu":
            init_model = "default"
            say("On a CPU: fine-tuning the shipped model (--init default); --width 48 trains the paper's net "
                "from scratch instead", quiet)
    if steps is None and resume is not None:
        from wormclean.model.modelfile import load_model

        steps = int(load_model(resume).metadata.get("train_settings", {}).get("steps", TrainSettings.steps))
    if steps is None:
        steps = FINE_TUNING_STEPS if init_model else TrainSettings.steps
    settings = TrainSettings(steps=steps, batch_size=batch_size, width=width, depth=depth,
                             learning_rate=learning_rate, device=device, workers=workers, seed=seed,
                             validate_every=validate_every,
                             time_limit_s=time_limit * 60 if time_limit is not None else None)
    init_path = None
    if init_model:
        from wormclean.model.registry import resolve_model

        init_path = resolve_model(init_model)
    if crops_dir is not None:
        from wormclean.data.crops import crop_training_data

        target_classes = [t.strip() for t in targets.split(",")] if targets else None
        synthesis = SynthesisSettings(patch_size=patch_size, mode=mode, max_overlap=max_overlap)
        data = crop_training_data(crops_dir, target_classes, CropFitSettings(synthesis, log_scale=log_scale), seed)
    else:
        from wormclean.data.videos import video_training_data

        video_settings = VideoFitSettings(lag=lag, patch_size=patch_size, val_fraction=val_fraction,
                                          min_change=min_change, change_fraction=focus_changes)
        data = video_training_data(inputs, video_settings, seed,
                                   excluded=_immobile_finder(init_path, device) if exclude_immobile else None)
        if exclude_immobile:
            left_out = data.metadata["excluded_pixels"]
            unknown = sum(1 for n in left_out.values() if n is None)
            say(f"leaving the immobile worms out of the loss: {sum(n or 0 for n in left_out.values())} pixels in "
                f"{sum(1 for n in left_out.values() if n)} of {len(left_out)} videos"
                + (f"; in {unknown} they cannot be found (too few frames, or worms that barely move), "
                   "so whole frames are trained on (wormclean -v fit says why)" if unknown else ""), quiet)
    if dry_run:
        click.echo(f"settings: {asdict(settings)} (learning rate {settings.lr:g})")
        for key, value in data.metadata.items():
            click.echo(f"{key}: {value}")
        return
    start_step = 0
    if resume is not None:
        from wormclean.model.modelfile import load_model

        start_step = int((load_model(resume).training or {}).get("step", 0))
    bar = progress_bar(steps, "fit", "step", quiet)
    bar.update(start_step)
    estimated = []

    def report(update):
        if not quiet and not estimated and update.step >= start_step + 3 and update.patches_per_s > 0:
            estimated.append(True)
            minutes = (steps - update.step) * batch_size / update.patches_per_s / 60
            bar.write(f"about {minutes:.0f} min for {steps - update.step} more steps at "
                      f"{update.patches_per_s:.1f} patches/s on this device", file=click.get_text_stream("stderr"))
        bar.update(update.step - bar.n)
        postfix = {"loss": f"{update.train_loss:.4f}", "patches/s": f"{update.patches_per_s:.1f}"}
        if update.val_loss is not None:
            postfix["val"] = f"{update.val_loss:.4f}"
        bar.set_postfix(postfix, refresh=False)

    try:
        result = train(data, settings, output, init=init_path, resume=resume, progress=report)
    finally:
        bar.close()
    if result.interrupted:
        click.echo(f"Interrupted at step {result.step}; continue with --resume {result.last_path}", err=True)
        raise SystemExit(130)
    paths = output_paths(output)
    identity = f" (identity {result.identity_val_loss:.4f})" if result.identity_val_loss is not None else ""
    best = f"{result.best_val_loss:.4f}" if result.best_val_loss is not None else "n/a"
    say(f"Wrote {paths['best']} (validation L1 {best}{identity}) after {result.step} steps; "
        f"log {paths['log']}, curve {paths['plot']}", quiet)


def _check_mode_options(context: click.Context, on_crops: bool) -> None:
    """Refuse, in one line, an option of the other kind of training than the one asked for."""
    given = [name for name in (VIDEO_OPTIONS if on_crops else CROP_OPTIONS)
             if context.get_parameter_source(name) not in (ParameterSource.DEFAULT, None)]
    if given:
        flags = ", ".join("--" + name.replace("_", "-") for name in given)
        if on_crops:
            raise SettingsError(f"{flags}: for training on videos, not with --crops")
        raise SettingsError(f"{flags}: for training on crops, only with --crops")


def _immobile_finder(model_path, device):
    """``path -> bool (H, W)`` regions of a video's immobile worms, found with ``model_path`` (None: the shipped
    model) as 'wormclean mask' finds them."""
    from wormclean.predict.cleaner import Cleaner

    return Cleaner.load(model_path, device=device).immobile_worm_regions
