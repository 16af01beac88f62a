"""``wormclean simulate``: write a synthetic worm video and its true masks."""

from __future__ import annotations

import time
from dataclasses import fields
from pathlib import Path

import click

from wormclean.cli.common import SEED, FiniteFloat, overwrite_option, progress_bar, quiet_option, say
from wormclean.sim.settings import SimulationSettings

_DEFAULT = SimulationSettings()


def _default(name: str) -> str:
    """``[default: ...]`` for an option, read from :class:`SimulationSettings` (the one home of the defaults)."""
    value = getattr(_DEFAULT, name)
    return f"[default: {value:g}]" if isinstance(value, float) else f"[default: {value}]"


class FrameSize(click.ParamType):
    """``N`` (square) or ``HxW`` in pixels."""

    name = "N|HxW"

    def convert(self, value, param, ctx):
        if isinstance(value, tuple):
            return value
        try:
            sides = tuple(int(side) for side in str(value).lower().split("x"))
        except ValueError:
            sides = ()
        if len(sides) == 1:
            sides = sides * 2
        if len(sides) != 2 or min(sides) < 1:
            self.fail(f"expected N or HEIGHTxWIDTH in pixels, got {value!r}", param, ctx)
        return sides


@click.command()
@click.argument("out", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--size", type=FrameSize(), default=None,
              help=f"Frame size, N or HxW pixels [default: {_DEFAULT.size[0]}].")
@click.option("--frames", "n_frames", type=click.IntRange(min=1), default=None,
              help=f"Number of frames {_default('n_frames')}.")
@click.option("--fps", type=FiniteFloat(min=0, min_open=True), default=None,
              help=f"Frames per second {_default('fps')}.")
@click.option("--worms", "n_worms", type=click.IntRange(min=0), default=None,
              help=f"Number of worms {_default('n_worms')}.")
@click.option("--immobile", "immobile_fraction", type=FiniteFloat(min=0, max=1), default=None,
              help=f"Fraction of worms that never move {_default('immobile_fraction')}.")
@click.option("--length", "worm_length", type=FiniteFloat(min=0, min_open=True), default=None,
              help="Worm length in pixels [default: 80 per 2048 pixels of frame, at least 16].")
@click.option("--width", "worm_width", type=FiniteFloat(min=0, min_open=True), default=None,
              help="Worm width in pixels [default: length / 12, at least 2].")
@click.option("--contrast", type=FiniteFloat(min=0), default=None,
              help=f"Grey levels between worms and the background {_default('contrast')}.")
@click.option("--speed", type=FiniteFloat(min=0), default=None,
              help=f"Crawling speed in body lengths per second {_default('speed')}.")
@click.option("--noise", "noise_sigma", type=FiniteFloat(min=0), default=None,
              help=f"Sensor noise standard deviation, grey levels {_default('noise_sigma')}.")
@click.option("--flicker", type=FiniteFloat(min=0), default=None,
              help=f"Standard deviation of the per-frame brightness gain {_default('flicker')}.")
@click.option("--blur", "blur_sigma", type=FiniteFloat(min=0), default=None,
              help=f"Optical blur sigma in pixels {_default('blur_sigma')}.")
@click.option("--lawn/--no-lawn", default=None, help="Draw a bacterial lawn [default: --lawn].")
@click.option("--dust", "n_dust", type=click.IntRange(min=0), default=None,
              help=f"Number of dust specks {_default('n_dust')}.")
@click.option("--fibres", "n_fibres", type=click.IntRange(min=0), default=None,
              help=f"Number of worm-like fibres and scratches {_default('n_fibres')}.")
@click.option("--rings", "n_rings", type=click.IntRange(0, 100), default=None,
              help=f"Thin dark circles drawn on the plate (a chemotaxis ring) {_default('n_rings')}.")
@click.option("--marks", "n_marks", type=click.IntRange(0, 100), default=None,
              help=f"Straight marker-pen lines {_default('n_marks')}.")
@click.option("--tracks", "n_tracks", type=click.IntRange(0, 100), default=None,
              help=f"Faint old worm tracks in the lawn {_default('n_tracks')}.")
@click.option("--dish-edge/--no-dish-edge", default=None, help="Draw the dish wall [default: no].")
@click.option("--text/--no-text", default=None, help="Write a dark label on the plate [default: no].")
@click.option("--light-worms/--dark-worms", default=None,
              help="Bright worms on a dark background (dark field) [default: --dark-worms].")
@click.option("--seed", type=SEED, default=_DEFAULT.seed, show_default=True,
              help="Random seed; the same seed, the same video.")
@click.option("--randomise", is_flag=True,
              help="Draw every setting not given from the seed (varied videos for training); size and frames "
                   "then default to 256 and 100.")
@click.option("--crf", type=FiniteFloat(0, 51), default=18.0, show_default=True,
              help="H.264 quality (0 lossless, 51 worst).")
@click.option("--preset", default="ultrafast", show_default=True, help="H.264 speed preset.")
@click.option("--dry-run", is_flag=True, help="Print the settings and stop.")
@overwrite_option
@quiet_option
def simulate(out, size, n_frames, fps, n_worms, immobile_fraction, worm_length, worm_width, contrast, speed,
             noise_sigma, flicker, blur_sigma, lawn, n_dust, n_fibres, n_rings, n_marks, n_tracks, dish_edge, text,
             light_worms, seed, randomise, crf, preset, dry_run, overwrite, quiet):
    """Write a synthetic worm video OUT (e.g. plate.mp4) and its truth OUT.truth.h5.

    Dark, undulating worms crawl on a light, uneven plate (vignetting, bacterial lawn, dust, fibres; on request
    rings, marker lines, old tracks, the dish edge and a label) with sensor noise and flicker; a fraction of them
    never move. The truth file holds every frame's worm labels,
    the noise-free background and the flicker gains.
    """
    from wormclean.io.writer import EncoderSettings
    from wormclean.sim import write_simulation
    from wormclean.sim.write import check_simulation_outputs

    given = dict(
        size=size, n_frames=n_frames, fps=fps, n_worms=n_worms, immobile_fraction=immobile_fraction,
        worm_length=worm_length, worm_width=worm_width, contrast=contrast, speed=speed, noise_sigma=noise_sigma,
        flicker=flicker, blur_sigma=blur_sigma, lawn=lawn, n_dust=n_dust, n_fibres=n_fibres, n_rings=n_rings,
        n_marks=n_marks, n_tracks=n_tracks, dish_edge=dish_edge, text=text,
        dark_worms=None if light_worms is None else not light_worms,
    )
    given = {name: value for name, value in given.items() if value is not None}
    if randomise:
        settings = SimulationSettings.randomised(seed, **given)
    else:
        settings = SimulationSettings(seed=seed, **given)
    encoder = EncoderSettings(crf=crf, preset=preset)
    if dry_run:
        for field in fields(settings):
            click.echo(f"{field.name}: {getattr(settings, field.name)}")
        click.echo(f"worm size in pixels: {settings.length_px:g} x {settings.width_px:g}")
        click.echo(f"encoder: {encoder}")
        return
    video, truth = check_simulation_outputs(out, overwrite)
    started = time.perf_counter()
    with progress_bar(settings.n_frames, "Simulating", "frame", quiet) as bar:
        write_simulation(video, settings, overwrite=overwrite, progress=lambda done: bar.update(done - bar.n),
                         encoder=encoder)
    height, width = settings.size
    say(
        f"Wrote {video} and {truth.name}: {width}x{height}, {settings.n_frames} frames at "
        f"{settings.fps:g} fps, {settings.n_worms} worms ({settings.n_immobile} immobile), "
        f"in {time.perf_counter() - started:.1f} s",
        quiet,
    )
