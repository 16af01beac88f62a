import numpy as np
import pytest

from wormclean.data.pairs import change_map, key_frame_times, resolve_lag, valid_pairs
from wormclean.data.patches import augment, pad_to
from wormclean.errors import SettingsError
from wormclean.units import FrameSpan


def test_automatic_lag_is_half_the_video_at_most_a_minute():
    assert resolve_lag(None, n_frames=250, fps=25) == 125  # a 10-second clip: 5 s
    assert resolve_lag(None, n_frames=22500, fps=25) == 1500  # 15 minutes: 60 s
    assert resolve_lag(FrameSpan.parse("2s"), n_frames=100, fps=10) == 20


@pytest.mark.parametrize("n_frames, lag", [(250, 125), (1000, 10), (30, 29), (22500, 1500)])
def test_key_frames_are_spread_and_pairable(n_frames, lag):
    rng = np.random.default_rng(0)
    for _ in range(20):
        times = key_frame_times(n_frames, lag, 8, rng)
        assert np.all(np.diff(times) > 0)
        assert times[0] >= 0 and times[-1] < n_frames
        assert 2 <= len(times) <= 8
        pairs = valid_pairs(times, lag)
        assert len(pairs) >= 1
        assert np.all(times[pairs[:, 1]] - times[pairs[:, 0]] >= lag)


def test_video_not_longer_than_lag_is_refused():
    with pytest.raises(SettingsError, match="lag"):
        key_frame_times(10, 10, 8, np.random.default_rng(0))


def test_change_map_ignores_flicker_and_sees_motion():
    rng = np.random.default_rng(1)
    frame = rng.integers(150, 160, size=(64, 64)).astype(np.uint8)
    brighter = np.clip(frame.astype(int) * 1.1, 0, 255).astype(np.uint8)
    assert change_map(frame, brighter).max() < 5
    moved = brighter.copy()
    moved[20:26, 20:40] = 60
    assert change_map(frame, moved).max() > 30


def test_augment_applies_the_same_symmetry_to_both():
    rng = np.random.default_rng(2)
    a = np.arange(16).reshape(4, 4)
    seen = set()
    for _ in range(64):
        x, y = augment([a, a + 100], rng)
        np.testing.assert_array_equal(y, x + 100)
        seen.add(x.tobytes())
    assert len(seen) == 8  # all symmetries of the square


def test_pad_to_reaches_the_patch_size():
    assert pad_to(np.zeros((10, 300)), 64).shape == (64, 300)
    assert pad_to(np.zeros((3, 2)), 8).shape == (8, 8)
