"""Options and helpers shared by the subcommands: progress bars, quiet mode, device choice."""

from __future__ import annotations

import click
from tqdm import tqdm

quiet_option = click.option("-q", "--quiet", is_flag=True, help="No progress bar and no summary.")
overwrite_option = click.option("--overwrite", is_flag=True, help="Replace an existing output.")
device_option = click.option(
    "--device",
    type=click.Choice(["auto", "cpu", "cuda"]),
    default="auto",
    show_default=True,
    help="Where the net runs; auto takes CUDA when there is a GPU.",
)


def progress_bar(total: int | None, description: str, unit: str, quiet: bool) -> tqdm:
    """A progress bar on stderr with count, rate and ETA; silent when ``quiet``."""
    return tqdm(total=total, desc=description, unit=unit, disable=quiet, dynamic_ncols=True, leave=True)


def say(message: str, quiet: bool) -> None:
    """Print a summary line unless ``quiet``."""
    if not quiet:
        click.echo(message)
