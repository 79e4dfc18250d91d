"""DCGAN: shapes at 32 and 64px, one finite training step that moves the weights."""
import pytest
import torch

from conftest import changed, snapshot, tiny_run
from ganrepro.models import build_models
from ganrepro.models.dcgan import G
from ganrepro.training.loop import build, train_step


@pytest.mark.parametrize("size,channels", [(32, 1), (64, 3)])
def test_shapes(size, channels):
    G, D = build_models("dcgan", {"z_dim": 8, "ngf": 4, "ndf": 4}, size, channels, 10)
    z = G.sample_z(3)
    assert z.shape == (3, 8)
    x = G(z)
    assert x.shape == (3, channels, size, size) and x.abs().max() <= 1
    assert D(x).shape == (3,)


def test_depth_follows_the_image_size_and_bad_sizes_are_refused():
    convs = lambda g: sum(isinstance(m, torch.nn.ConvTranspose2d) for m in g.modules())  # noqa: E731
    assert convs(G(8, 4, 3, 64)) == 5  # pytorch/examples' 64px generator: five transposed convs
    assert convs(G(8, 4, 3, 32)) == 4
    with pytest.raises(ValueError, match="img_size: DCGAN needs a power of two >= 16, got 48"):
        G(8, 4, 3, 48)


def test_one_step_gives_finite_losses_and_changes_both_nets():
    torch.manual_seed(0)
    G, D, objective = build(tiny_run(), channels=1, n_classes=10, device=torch.device("cpu"))
    g0, d0 = snapshot(G), snapshot(D)
    real = torch.rand(4, 1, 32, 32) * 2 - 1
    logs = train_step(objective, iter([(real, torch.zeros(4, dtype=torch.long))] * 2))
    assert set(logs) >= {"loss_d", "loss_g"} and all(torch.isfinite(torch.tensor(v)) for v in logs.values())
    assert changed(g0, G) and changed(d0, D)


def test_weights_follow_the_dcgan_init():
    G_ = G(100, 64, 3, 64)
    w = torch.cat([m.weight.flatten() for m in G_.modules() if isinstance(m, torch.nn.ConvTranspose2d)])
    assert abs(w.mean().item()) < 1e-3 and w.std().item() == pytest.approx(0.02, rel=0.05)
