import numpy as np
import pytest
import torch

from wormclean.errors import ModelFileError, SettingsError
from wormclean.model.modelfile import Normalisation, load_model, save_model
from wormclean.model.unet import UNet, UNetConfig


def test_paper_architecture_size():
    # The Noise2Noise U-Net for one grey channel in and out.
    assert UNet().n_parameters() == 988_609


@pytest.mark.parametrize("depth", [2, 3, 4])
def test_receptive_field_radius_bounds_the_gradient(depth):
    net = UNet(UNetConfig(width=4, depth=depth))
    radius = net.receptive_field_radius()
    size = 2 * radius + 8 * 2**depth
    x = torch.zeros(1, 1, size, size, requires_grad=True)
    centre = size // 2 + 2**depth - 1  # the worst alignment on the pooling grid
    net(x)[0, 0, centre, centre].backward()
    rows, cols = np.nonzero(x.grad[0, 0].numpy())
    reach = max(centre - rows.min(), rows.max() - centre, centre - cols.min(), cols.max() - centre)
    assert reach <= radius
    assert reach >= radius - 1  # and the bound is tight: a smaller halo would break tiling


def test_forward_padded_keeps_any_size():
    net = UNet(UNetConfig(width=4, depth=3))
    assert net.forward_padded(torch.zeros(2, 1, 37, 50)).shape == (2, 1, 37, 50)


def test_bad_architecture_is_a_settings_error():
    with pytest.raises(SettingsError, match="width"):
        UNetConfig(width=2)


def test_model_file_round_trip(tmp_path):
    torch.manual_seed(0)
    net = UNet(UNetConfig(width=4, depth=2))
    path = save_model(tmp_path / "m.pt", net, Normalisation.for_bit_depth(16), {"kind": "video", "lag_frames": 7})
    loaded = load_model(path)
    assert loaded.config == net.config
    assert loaded.normalisation.bit_depth == 16
    assert loaded.metadata == {"kind": "video", "lag_frames": 7}
    x = torch.rand(1, 1, 16, 16)
    assert torch.equal(loaded.net(x), net.eval()(x))
    assert not list(tmp_path.glob(".*partial*"))


def test_normalisation_round_trip():
    pixels = np.array([0, 10, 255, 4000], dtype=np.uint16)
    for normalisation in (Normalisation.for_bit_depth(16), Normalisation.for_bit_depth(16, log=True)):
        np.testing.assert_allclose(normalisation.inverse(normalisation.forward(pixels)), pixels, rtol=1e-4)


def test_not_a_model_file(tmp_path):
    text = tmp_path / "notes.pt"
    text.write_text("hello")
    with pytest.raises(ModelFileError, match="not a wormclean model file"):
        load_model(text)
    other = tmp_path / "other.pt"
    torch.save({"weights": torch.zeros(3)}, other)
    with pytest.raises(ModelFileError, match="not a wormclean model file"):
        load_model(other)
    with pytest.raises(ModelFileError, match="does not exist"):
        load_model(tmp_path / "missing.pt")


def test_other_format_version_and_damage(tmp_path):
    net = UNet(UNetConfig(width=4, depth=2))
    path = save_model(tmp_path / "m.pt", net, Normalisation(), {})
    payload = torch.load(path, weights_only=True)
    payload["format_version"] = 99
    torch.save(payload, tmp_path / "future.pt")
    with pytest.raises(ModelFileError, match="format version 99"):
        load_model(tmp_path / "future.pt")
    payload["format_version"] = 1
    payload["state_dict"].pop("output.bias")
    torch.save(payload, tmp_path / "damaged.pt")
    with pytest.raises(ModelFileError, match="damaged"):
        load_model(tmp_path / "damaged.pt")
