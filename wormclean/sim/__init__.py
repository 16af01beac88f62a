"""Synthetic worm videos with known truth.

>>> from wormclean.sim import SimulationSettings, write_simulation, read_truth
>>> write_simulation("plate.mp4", SimulationSettings(size=(512, 512), n_frames=100))  # doctest: +SKIP
>>> with read_truth("plate.mp4") as truth:  # doctest: +SKIP
...     first_labels = truth.labels[0]
"""

from wormclean.sim.render import Simulation, render_video
from wormclean.sim.settings import SimulationSettings
from wormclean.sim.truth import Truth, read_truth, truth_path
from wormclean.sim.write import write_simulation

__all__ = [
    "Simulation",
    "SimulationSettings",
    "Truth",
    "read_truth",
    "render_video",
    "truth_path",
    "write_simulation",
]
