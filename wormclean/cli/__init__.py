"""The ``wormclean`` command line: a click group whose subcommands live one per module in this package.

Subcommands are imported only when used, so ``wormclean --help`` and ``wormclean info`` do not pay for
importing torch.
"""

from __future__ import annotations

import importlib
import logging
import os
import sys
import warnings

import click

from wormclean._version import __version__
from wormclean.errors import WormcleanError
from wormclean.stopping import Stopped, stop_on_signals

# command name -> "module:function" inside wormclean.cli
COMMANDS = {
    "info": "info:info",
    "simulate": "simulate:simulate",
    "fit": "fit:fit",
    "mask": "mask:mask",
    "preview": "mask:preview",
    "adapt": "mask:adapt",
    "crops": "stills:crops",
    "filter": "stills:filter_images",
    "evaluate": "stills:evaluate",
}


class _LazyGroup(click.Group):
    """Imports a subcommand's module on first use and turns user errors into one line and exit code 2."""

    def list_commands(self, ctx):
        return sorted(COMMANDS)

    def get_command(self, ctx, name):
        if name not in COMMANDS:
            return None
        module_name, attribute = COMMANDS[name].split(":")
        module = importlib.import_module(f"wormclean.cli.{module_name}")
        return getattr(module, attribute)

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except click.UsageError as error:
            # One line, like every other bad input; the usage is one --help away.
            command = error.ctx.command_path if error.ctx is not None else ctx.command_path
            click.echo(f"Error: {error.format_message()} (see '{command} --help')", err=True)
            ctx.exit(2)
        except WormcleanError as error:
            click.echo(f"Error: {error}", err=True)
            ctx.exit(2)
        except OSError as error:
            # A full disk, a permission problem: the user can act on it, a traceback does not help them.
            where = f": {error.filename}" if getattr(error, "filename", None) else ""
            click.echo(f"Error: {error.strerror or error}{where}", err=True)
            ctx.exit(2)
        except KeyboardInterrupt:
            click.echo("Interrupted.", err=True)
            ctx.exit(130)
        except Stopped as stop:
            # Temporary outputs and locks were released on the way here, as for Ctrl-C.
            click.echo(f"Stopped by {stop}.", err=True)
            ctx.exit(stop.exit_code)


@click.group(cls=_LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="wormclean")
@click.option("-v", "--verbose", count=True, help="More messages (-vv for debug).")
def cli(verbose: int) -> None:
    """Separate worms from the background of tracking videos, with a U-Net that learns the background
    from the videos themselves (no annotation)."""
    level = logging.WARNING - 10 * min(verbose, 2)
    logging.basicConfig(level=level, format="%(levelname)s: %(message)s", stream=sys.stderr, force=True)
    _quiet_other_libraries(verbose)


def _quiet_other_libraries(verbose: int) -> None:
    """Keep other libraries' messages off stderr unless ``-vv``: what tifffile logs about a damaged TIFF and what
    OpenCV prints about an unreadable image, our readers report in one line that names the file. Python
    warnings (numpy's RuntimeWarning...) become one log line each, without the source line they print."""
    debug = verbose >= 2
    warnings.showwarning = _warning_as_log
    logging.getLogger("tifffile").setLevel(logging.DEBUG if debug else logging.CRITICAL)
    if "cv2" in sys.modules:
        import cv2

        cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_INFO if debug else cv2.utils.logging.LOG_LEVEL_SILENT)
    else:  # read by OpenCV when it is imported (here and in worker processes)
        os.environ.setdefault("OPENCV_LOG_LEVEL", "INFO" if debug else "SILENT")


def _warning_as_log(message, category, filename, lineno, file=None, line=None) -> None:
    """``warnings.showwarning`` for the command line: the warning as one line of our log (where from at -vv)."""
    logging.getLogger("py.warnings").warning("%s (%s)", message, category.__name__)
    logging.getLogger("py.warnings").debug("the warning above came from %s:%s", filename, lineno)


def main() -> None:
    """Console-script entry point: SIGTERM and SIGHUP stop a command as cleanly as Ctrl-C does."""
    with stop_on_signals():
        cli()
