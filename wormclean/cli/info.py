"""``wormclean info``: one line per video with its frame count, rate, size, codec, duration and bit depth."""

from __future__ import annotations

import click

from wormclean.errors import VideoError
from wormclean.io import find_videos, open_video


def describe(path) -> str:
    """One line about the video at ``path``; raises :class:`VideoError` if it cannot be opened."""
    with open_video(path) as reader:
        info = reader.info
    return (
        f"{info.path}: {info.n_frames} frames, {info.fps:g} fps, {info.width}x{info.height}, {info.codec}, "
        f"{info.duration:.2f} s, {info.bit_depth}-bit"
    )


@click.command()
@click.argument("videos", nargs=-1, required=True)
@click.pass_context
def info(ctx: click.Context, videos: tuple[str, ...]) -> None:
    """Describe VIDEOS (files, folders of frames, glob patterns): frames, fps, size, codec, duration, bit depth.

    Videos that cannot be read are reported on stderr; the exit code is then 2.
    """
    failed = False
    for name in videos:
        try:
            paths = find_videos([name])
        except VideoError as error:
            click.echo(f"Error: {error}", err=True)
            failed = True
            continue
        for path in paths:
            try:
                click.echo(describe(path))
            except VideoError as error:
                click.echo(f"Error: {error}", err=True)
                failed = True
    if failed:
        ctx.exit(2)
