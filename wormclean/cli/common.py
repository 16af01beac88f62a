"""Options and helpers shared by the subcommands: progress bars, quiet mode, device choice, and the checked
types of option values (ranges, whole numbers, finite numbers, spans of frames or seconds)."""

from __future__ import annotations

import logging
import math

import click
from tqdm import tqdm

from wormclean.errors import SettingsError
from wormclean.settings import DEVICES, parse_span


class FiniteFloat(click.FloatRange):
    """A float in a range that is also a finite number (``nan`` and ``inf`` are refused)."""

    def convert(self, value, param, ctx):
        number = super().convert(value, param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number", param, ctx)
        return number


class Span(click.ParamType):
    """A span in frames (``150``) or seconds (``20s``), checked by :func:`~wormclean.settings.parse_span`; kept as
    text."""

    name = "frames|seconds"

    def convert(self, value, param, ctx):
        try:
            parse_span(value)
        except SettingsError as error:
            self.fail(str(error), param, ctx)
        return str(value).strip()


SEED = click.IntRange(0, 2**32 - 1)
"""Random seeds: what NumPy and PyTorch both take."""

quiet_option = click.option("-q", "--quiet", is_flag=True, help="No progress bar and no summary.")
verbose_option = click.option(
    "-v", "--verbose", count=True, help="More detail: a progress line per worker, and info messages (-vv: debug)."
)
overwrite_option = click.option("--overwrite", is_flag=True, help="Replace an existing output.")
device_option = click.option(
    "--device",
    type=click.Choice(DEVICES),
    default="auto",
    show_default=True,
    help="Where the net runs; auto takes CUDA when there is a GPU.",
)


def progress_bar(
    total: int | None, description: str, unit: str, quiet: bool, position: int | None = None, leave: bool = True,
    bar_format: str | None = None,
) -> tqdm:
    """A progress bar on stderr with count, rate and ETA; silent when ``quiet``. ``position``: its line among
    several bars (0 the top one); ``bar_format``: tqdm's, for bars that show their own figures."""
    return tqdm(total=total, desc=description, unit=unit, disable=quiet, dynamic_ncols=True, leave=leave,
                position=position, bar_format=bar_format)


def raise_log_level(verbose: int) -> None:
    """Show info messages (``verbose`` 1) or debug ones (2 or more) from here on, as ``wormclean -v`` does."""
    if verbose:
        root = logging.getLogger()
        root.setLevel(min(root.getEffectiveLevel(), logging.WARNING - 10 * min(verbose, 2)))


def say(message: str, quiet: bool) -> None:
    """Print a summary line unless ``quiet``."""
    if not quiet:
        click.echo(message)
