"""Worm bodies and their gait.

A worm's body lies on its own track, as a crawling nematode's does in the groove it makes in agar
("follow the leader"): the leading end moves along a direction that undulates sinusoidally about a slowly
turning heading, so the track is a sine wave, and the body is the last ``length`` pixels of it. Forward, the
head leads and the wave runs from head to tail; in a reversal the tail leads and lays new track behind, after
which the worm usually turns. Near the frame's edges the leading end turns back inside (and sometimes
reverses), so worms stay in view.
"""

from __future__ import annotations

import math

import numpy as np

WAVELENGTH = 0.65  # of the body length: C. elegans crawls with about 1.5 waves along its body
REVERSAL_RATE = 1 / 20  # reversals per second, away from edges
REVERSAL_SECONDS = (1.0, 3.0)
REVERSAL_SPEED = 0.7  # of the forward speed
TURN_RATE = 1.5  # rad/s, for turns after reversals
EDGE_TURN_RATE = 2.0  # rad/s, turning back from an edge
EDGE_REVERSAL_CHANCE = 0.3
HEADING_NOISE = 0.3  # rad/s, standard deviation of the slow turning rate
HEADING_MEMORY = 3.0  # s, correlation time of the turning rate
WARM_UP_SPEED = 0.15  # body lengths per second, for laying the starting posture's track


def body_radii(n_points: int, width: float) -> np.ndarray:
    """Radii along a C. elegans-like body, head first: a blunt rounded nose, a long thin tail.

    Parameters
    ----------
    n_points
        Points along the centreline, head (index 0) to tail.
    width
        Widest diameter in pixels.

    Returns
    -------
    radii : (n_points,) float64
    """
    position = np.linspace(0.0, 1.0, n_points)
    nose = np.sqrt(np.clip((position + 0.02) / 0.12, 0.0, 1.0))
    tail = np.clip((1.0 - position + 0.03) / 0.4, 0.0, 1.0)
    return 0.5 * width * np.minimum(nose, tail)


def n_body_points(length: float, width: float) -> int:
    """How many centreline points draw a body smoothly: about two per width, 12 to 64."""
    return int(np.clip(round(2 * length / max(width, 1.0)), 12, 64))


class Crawler:
    """One worm's centreline, stepped frame by frame.

    Parameters
    ----------
    rng
        The worm's own random generator (its gait and start depend only on it).
    length, width
        Body length and widest diameter, pixels.
    speed
        Forward speed, pixels per frame (0 for a worm that never moves).
    fps
        Frames per second, for the rates of reversals and turns.
    frame_shape
        ``(height, width)``; the worm starts inside it and stays inside it.
    """

    def __init__(
        self,
        rng: np.random.Generator,
        length: float,
        width: float,
        speed: float,
        fps: float,
        frame_shape: tuple[int, int],
    ):
        self.rng = rng
        self.length = float(length)
        self.width = float(width)
        self.speed = float(speed)
        self.dt = 1.0 / fps
        self.frame_height, self.frame_width = frame_shape
        self.n_points = n_body_points(length, width)
        self.radii = body_radii(self.n_points, width)
        self.wavenumber = 2 * math.pi / (WAVELENGTH * self.length * rng.uniform(0.85, 1.15))
        self.amplitude = rng.uniform(0.6, 0.9)  # rad, of the leading end's direction about the heading
        self.wall = 0.25 * self.length + self.width  # distance from an edge where turning back starts
        self.phase = rng.uniform(0, 2 * math.pi)
        self.turning_rate = 0.0
        self.pending_turn = 0.0
        self.reversing_frames = 0
        self.near_edge = False
        # The track: points from the tail side to the head side with their arc lengths; the body is the stretch
        # [start, start + length] of it.
        centre = np.array(
            [
                rng.uniform(self.length / 2 + self.wall, self.frame_width - self.length / 2 - self.wall),
                rng.uniform(self.length / 2 + self.wall, self.frame_height - self.length / 2 - self.wall),
            ]
        )
        self.heading = rng.uniform(-math.pi, math.pi)
        direction = np.array([math.cos(self.heading), math.sin(self.heading)])
        self.track = np.stack([centre - direction * self.length / 2, centre + direction * self.length / 2])
        self.arc = np.array([0.0, self.length])
        self.start = 0.0
        # Lay a stretch of undulating track so that the whole body starts in a natural posture.
        step = max(self.width / 4, 0.5)
        seconds_per_step = step / (WARM_UP_SPEED * self.length)
        for _ in range(math.ceil(1.2 * self.length / step)):
            self._steer(seconds_per_step, may_reverse=False)
            self._advance(step)

    def centreline(self) -> np.ndarray:
        """The body now: ``(n_points, 2)`` float64 ``(x, y)``, head first."""
        positions = self.start + self.length * np.linspace(1.0, 0.0, self.n_points)
        return np.stack(
            [np.interp(positions, self.arc, self.track[:, 0]), np.interp(positions, self.arc, self.track[:, 1])],
            axis=1,
        )

    def step(self) -> None:
        """Move on by one frame: crawl, maybe start or end a reversal, turn."""
        if self.speed == 0:
            return
        if self.reversing_frames > 0:
            self.reversing_frames -= 1
            if self.reversing_frames == 0:
                self._lead_with(head=True)
                self.pending_turn += self.rng.choice([-1, 1]) * self.rng.uniform(0.5, 2.5)
        elif self.rng.random() < REVERSAL_RATE * self.dt:
            self._start_reversal()
        self._steer(self.dt, may_reverse=True)
        distance = self.speed * (REVERSAL_SPEED if self.reversing_frames else 1.0)
        self._advance(distance if self.reversing_frames == 0 else -distance)

    def _start_reversal(self) -> None:
        self.reversing_frames = max(1, round(self.rng.uniform(*REVERSAL_SECONDS) / self.dt))
        self._lead_with(head=False)

    def _lead_with(self, head: bool) -> None:
        """Point the heading along the body's end that now leads, keeping the undulation continuous."""
        near = self.length * 0.1
        if head:
            tip, behind = self.start + self.length, self.start + self.length - near
        else:
            tip, behind = self.start, self.start + near
        tip_xy = np.array([np.interp(tip, self.arc, self.track[:, i]) for i in (0, 1)])
        behind_xy = np.array([np.interp(behind, self.arc, self.track[:, i]) for i in (0, 1)])
        tangent = math.atan2(tip_xy[1] - behind_xy[1], tip_xy[0] - behind_xy[0])
        self.heading = tangent - self.amplitude * math.sin(self.phase)
        self.turning_rate = 0.0

    def _leading_point(self) -> np.ndarray:
        end = self.start if self.reversing_frames else self.start + self.length
        return np.array([np.interp(end, self.arc, self.track[:, i]) for i in (0, 1)])

    def _steer(self, seconds: float, may_reverse: bool) -> None:
        """Turn for ``seconds``: slow random turning, turns after reversals, turning back from edges."""
        decay = math.exp(-seconds / HEADING_MEMORY)
        self.turning_rate = self.turning_rate * decay + HEADING_NOISE * math.sqrt(
            1 - decay**2
        ) * self.rng.standard_normal()
        turn = self.turning_rate * seconds
        if self.pending_turn:
            bit = math.copysign(min(abs(self.pending_turn), TURN_RATE * seconds), self.pending_turn)
            self.pending_turn -= bit
            turn += bit
        x, y = self._leading_point()
        inward = np.array(
            [
                float(x < self.wall) - float(x > self.frame_width - 1 - self.wall),
                float(y < self.wall) - float(y > self.frame_height - 1 - self.wall),
            ]
        )
        near_edge = bool(inward.any())
        if near_edge:
            direction = np.array([math.cos(self.heading), math.sin(self.heading)])
            if direction @ inward / np.linalg.norm(inward) < 0.3:
                side = direction[0] * inward[1] - direction[1] * inward[0]
                turn = math.copysign(EDGE_TURN_RATE * seconds, side if side != 0 else 1.0)
                self.pending_turn = 0.0
            if may_reverse and not self.near_edge and not self.reversing_frames and (
                self.rng.random() < EDGE_REVERSAL_CHANCE
            ):
                self._start_reversal()
        self.near_edge = near_edge
        self.heading += turn

    def _advance(self, distance: float) -> None:
        """Extend the track at the leading end by ``|distance|`` (head if positive, tail if negative)."""
        self.phase += self.wavenumber * abs(distance)
        angle = self.heading + self.amplitude * math.sin(self.phase)
        step = abs(distance) * np.array([math.cos(angle), math.sin(angle)])
        limit = np.array([self.frame_width - 1.0, self.frame_height - 1.0])
        end = self.start + self.length
        if distance > 0:
            keep = self.arc < end
            tip = np.array([np.interp(end, self.arc, self.track[:, i]) for i in (0, 1)])
            new = np.clip(tip + step, 0.0, limit)
            self.track = np.concatenate([self.track[keep], tip[None], new[None]])
            self.arc = np.concatenate([self.arc[keep], [end, end + np.hypot(*(new - tip))]])
            self.start = self.arc[-1] - self.length
        else:
            keep = self.arc > self.start
            tip = np.array([np.interp(self.start, self.arc, self.track[:, i]) for i in (0, 1)])
            new = np.clip(tip + step, 0.0, limit)
            self.track = np.concatenate([new[None], tip[None], self.track[keep]])
            self.arc = np.concatenate([[self.start - np.hypot(*(new - tip)), self.start], self.arc[keep]])
            self.start = self.arc[0]
        # Forget track that the body has left behind.
        first = max(0, int(np.searchsorted(self.arc, self.start, "right")) - 1)
        last = int(np.searchsorted(self.arc, self.start + self.length, "left")) + 1
        self.track, self.arc = self.track[first:last], self.arc[first:last]
