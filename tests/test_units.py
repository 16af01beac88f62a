import pytest

from wormclean.errors import SettingsError
from wormclean.units import FrameSpan


@pytest.mark.parametrize(
    "text, fps, frames",
    [("150", 25, 150), (150, 25, 150), ("200s", 25, 5000), ("2.5s", 10, 25), ("0.01s", 25, 1), ("3 frames", 9, 3)],
)
def test_frame_span_in_frames(text, fps, frames):
    assert FrameSpan.parse(text).frames(fps) == frames


@pytest.mark.parametrize("text", ["", "ten", "5 minutes", "-3", "1.5"])
def test_bad_frame_span_is_a_settings_error(text):
    with pytest.raises(SettingsError, match="frames|seconds"):
        FrameSpan.parse(text)


def test_frame_span_prints_as_given():
    assert str(FrameSpan.parse("200s")) == "200s"
    assert str(FrameSpan.parse("150")) == "150"
