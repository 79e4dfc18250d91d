"""DCGAN (Radford, Metz & Chintala, 2016), as in the CIFAR-10 report's Section 3.

References:
  * Radford et al., "Unsupervised Representation Learning with Deep Convolutional GANs", ICLR 2016.
  * pytorch/examples `dcgan/main.py`: ngf = ndf = 64, nz = 100, N(0, 0.02) init, Adam 2e-4 (0.5, 0.999).
  * Hada, "E0 250 Project 4" (../shared/papers/dcgan-vs-sagan-cifar10.txt): CIFAR-10 resized to 64px.

The report's D ends in a Sigmoid feeding BCELoss; ours returns the logit and the loss uses
`binary_cross_entropy_with_logits`, the same function computed stably.
Unlike the reference, which hard-wires 64px, the depth follows `img_size` (any power of two >= 16):
one stride-2 layer per doubling from 4x4.
"""
from __future__ import annotations

import math

import torch
from pydantic import PositiveInt
from torch import nn

from ganrepro.config import Strict
from ganrepro.models import register_family


class Arch(Strict):
    z_dim: PositiveInt = 100
    ngf: PositiveInt = 64
    ndf: PositiveInt = 64


def n_doublings(img_size: int) -> int:
    """Stride-2 layers between 4x4 and img_size."""
    n = math.log2(img_size) - 2
    if n < 2 or n != int(n):
        raise ValueError(f"img_size: DCGAN needs a power of two >= 16, got {img_size}")
    return int(n)


def weights_init(m: nn.Module) -> None:
    """DCGAN init: conv weights ~ N(0, 0.02); batch-norm scale ~ N(1, 0.02), shift 0."""
    if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
        nn.init.normal_(m.weight, 0.0, 0.02)
    elif isinstance(m, nn.BatchNorm2d):
        nn.init.normal_(m.weight, 1.0, 0.02)
        nn.init.zeros_(m.bias)


class G(nn.Module):
    """`bias` and `dcgan_init=False` (PyTorch's default init) are for models/wgan_gp.py's reference layout."""

    def __init__(self, z_dim: int = 100, ngf: int = 64, channels: int = 3, img_size: int = 64,
                 bias: bool = False, dcgan_init: bool = True):
        super().__init__()
        self.z_dim = z_dim
        n = n_doublings(img_size)
        c = ngf * 2 ** (n - 1)  # 64px: ngf * 8
        layers = [nn.ConvTranspose2d(z_dim, c, 4, 1, 0, bias=bias), nn.BatchNorm2d(c), nn.ReLU(True)]
        for _ in range(n - 1):  # (B, c, s, s) -> (B, c/2, 2s, 2s)
            layers += [nn.ConvTranspose2d(c, c // 2, 4, 2, 1, bias=bias), nn.BatchNorm2d(c // 2), nn.ReLU(True)]
            c //= 2
        layers += [nn.ConvTranspose2d(c, channels, 4, 2, 1, bias=bias), nn.Tanh()]
        self.net = nn.Sequential(*layers)
        if dcgan_init:
            self.apply(weights_init)

    def sample_z(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        device = next(self.parameters()).device
        return torch.randn(n, self.z_dim, generator=generator).to(device)  # z ~ N(0, I)

    def forward(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        return self.net(z[:, :, None, None])  # (B, z_dim) -> (B, C, H, W)


class D(nn.Module):
    def __init__(self, ndf: int = 64, channels: int = 3, img_size: int = 64):
        super().__init__()
        n = n_doublings(img_size)
        layers = [nn.Conv2d(channels, ndf, 4, 2, 1, bias=False), nn.LeakyReLU(0.2, True)]  # no BN on input
        c = ndf
        for _ in range(n - 1):  # (B, c, s, s) -> (B, 2c, s/2, s/2)
            layers += [nn.Conv2d(c, c * 2, 4, 2, 1, bias=False), nn.BatchNorm2d(c * 2), nn.LeakyReLU(0.2, True)]
            c *= 2
        layers += [nn.Conv2d(c, 1, 4, 1, 0, bias=False)]  # (B, c, 4, 4) -> (B, 1, 1, 1)
        self.net = nn.Sequential(*layers)
        self.apply(weights_init)

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        return self.net(x).flatten()  # (B,) logits


def build(arch: Arch, img_size: int, channels: int, n_classes: int) -> tuple[G, D]:
    return (
        G(arch.z_dim, arch.ngf, channels, img_size),
        D(arch.ndf, channels, img_size),
    )


register_family("dcgan", Arch, build)
