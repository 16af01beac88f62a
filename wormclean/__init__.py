"""wormclean: learn the background of worm videos without annotation, then segment the worms.

The public Python entry points are :func:`wormclean.io.open_video` and :class:`wormclean.Cleaner`.
"""

from wormclean._version import __version__

__all__ = ["__version__", "Cleaner", "open_video"]


def __getattr__(name):
    # Lazy, so that ``import wormclean`` stays cheap (no torch import) for the CLI's --help and for readers.
    if name == "Cleaner":
        from wormclean.predict.cleaner import Cleaner

        return Cleaner
    if name == "open_video":
        from wormclean.io import open_video

        return open_video
    raise AttributeError(f"module 'wormclean' has no attribute {name!r}")
