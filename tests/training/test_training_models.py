"""Model shapes, TorchScript compilation and missing-component handling."""

from __future__ import annotations

import pytest
import torch

from geosentry.training.models import ConvAutoencoder, Discriminator, EventDetector, Generator, PhasePicker


@pytest.mark.parametrize("n", [400, 1001, 3001])
def test_picker_keeps_length_and_sums_to_one(n: int) -> None:
    torch.manual_seed(0)
    m = PhasePicker(channels=(4, 8, 8)).eval()
    y = m(torch.randn(2, 3, n))
    assert y.shape == (2, 3, n)
    assert torch.allclose(y.sum(dim=1), torch.ones(2, n), atol=1e-5)


def test_picker_default_size_is_small() -> None:
    assert sum(p.numel() for p in PhasePicker().parameters()) < 400_000


def test_detector_output_steps() -> None:
    m = EventDetector(window_samples=2000, hidden=8).eval()
    y = m(torch.randn(2, 3, 2000))
    assert m.output_step_samples == 10
    assert y.shape == (2, 1, 200)
    assert float(y.min()) >= 0.0 and float(y.max()) <= 1.0


def test_autoencoder_reconstructs_shape_and_scale() -> None:
    m = ConvAutoencoder(("H", "D", "Z"), 1.0, 600, channels=(8, 8), channel_scale=[5.0, 1.0, 3.0]).eval()
    x = torch.randn(2, 3, 600)
    assert m(x).shape == x.shape
    assert m.score(x).shape == (2,)


def test_gan_shapes() -> None:
    g = Generator(window_samples=256, base=16, n_up=3).eval()
    z = torch.randn(3, g.latent_dim)
    lab = torch.tensor([0, 1, 0])
    x = g(z, lab)
    assert x.shape == (3, 3, 256) and float(x.abs().max()) <= 1.0
    assert Discriminator(3, 2, (8, 8))(x, lab).shape == (3,)


def test_all_models_script_and_keep_contract_attributes() -> None:
    for m in (PhasePicker(channels=(4, 8)), EventDetector(hidden=4), ConvAutoencoder(channels=(4,)),
              Generator(window_samples=64, base=8, n_up=2)):
        s = torch.jit.script(m.eval())
        assert s.sampling_rate_hz == m.sampling_rate_hz
        assert list(s.components) == ["Z", "N", "E"]
        assert s.window_samples == m.window_samples


def test_zero_horizontal_channels_are_finite() -> None:
    m = PhasePicker(channels=(4, 8)).eval()
    x = torch.zeros(1, 3, 400)
    x[0, 0] = torch.randn(400)
    assert torch.isfinite(m(x)).all()
