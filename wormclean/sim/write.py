"""Write a synthetic video and its truth file, both atomically."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path

from wormclean.io.atomic import FailSafeFile, atomic_output, check_output_path
from wormclean.io.writer import EncoderSettings, VideoWriter, check_video_path
from wormclean.sim.render import Simulation
from wormclean.sim.settings import SimulationSettings
from wormclean.sim.truth import TruthWriter, truth_path

log = logging.getLogger(__name__)

# Noise makes every frame expensive to compress; the fastest preset keeps a 2048x2048 video quick to make.
SIMULATION_ENCODER = EncoderSettings(preset="ultrafast")


def check_simulation_outputs(out_path: str | os.PathLike, overwrite: bool) -> tuple[Path, Path]:
    """Check, before any work, that a video and its truth file can be written; return both paths.

    Raises :class:`~wormclean.errors.OutputError` if either exists (and not ``overwrite``), the folder is
    missing or not writable, or the video's extension names no container (:func:`check_video_path`).
    """
    video = check_video_path(out_path)
    truth = truth_path(video)
    return check_output_path(video, overwrite), check_output_path(truth, overwrite)


def write_simulation(
    out_path: str | os.PathLike,
    settings: SimulationSettings,
    overwrite: bool = False,
    progress: Callable[[int], object] | None = None,
    encoder: EncoderSettings | None = None,
) -> Path:
    """Render a synthetic video to ``out_path`` and its truth to ``OUT.truth.h5`` beside it.

    Both files appear complete or not at all.

    Parameters
    ----------
    out_path
        The video file; its extension picks the container (``.mp4`` for the default H.264).
    settings
        What to simulate.
    overwrite
        Replace existing files; otherwise an existing video or truth file is an error.
    progress
        Called with the number of frames done after each frame.
    encoder
        Codec settings; default H.264, CRF 18, preset ultrafast, a keyframe every 25 frames.

    Returns
    -------
    Path
        The video's path.

    Raises
    ------
    OutputError
        If an output exists (and not ``overwrite``), its folder is missing, or the video cannot be written.
    """
    video, truth = check_simulation_outputs(out_path, overwrite)
    simulation = Simulation(settings)
    with atomic_output(video, overwrite) as video_part, atomic_output(truth, overwrite) as truth_part:
        with (
            VideoWriter(video_part, settings.fps, encoder or SIMULATION_ENCODER) as writer,
            FailSafeFile(truth_part) as truth_file,  # HDF5 crashes the process when it cannot write
            TruthWriter(truth_file, settings, simulation.background, simulation.immobile, simulation.gain) as labels,
        ):
            for index, (frame, frame_labels) in enumerate(simulation.frames()):
                writer.write(frame)
                labels.write(index, frame_labels)
                truth_file.check()
                if progress is not None:
                    progress(index + 1)
    log.info("wrote %s and %s", video, truth)
    return video
