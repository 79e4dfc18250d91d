"""BEGAN: an auto-encoder discriminator and a generator shaped like its decoder.

References:
  * Berthelot, Schumm & Metz, "BEGAN: Boundary Equilibrium Generative Adversarial Networks",
    arXiv:1703.10717, 2017 (../shared/papers/began.txt, began-equations.md), Sec. 3.5 and Fig. 1.
  * Reference code: github.com/carpedm20/BEGAN-tensorflow (models.py: GeneratorCNN,
    DiscriminatorCNN; repeat_num = log2(img_size) - 2, conv_hidden_num = 128, z_num = 64).

Architecture (Fig. 1). With S = log2(img_size / 8) + 1 scales (4 at 64px, 3 at 32px), the
bottleneck is always 8x8:
    Encoder  x (B, C, H, W) -> ELU(conv3x3 n)
             for scale i = 1..S: 2 x ELU(conv3x3 i*n); then, below the last scale, a stride-2
                                 ELU(conv3x3 (i+1)*n)   # filters grow linearly per down-sampling
             (B, S*n, 8, 8) -> Linear -> h (B, N_h)      # no activation
    Decoder  h -> Linear -> (B, n, 8, 8)                 # no activation
             for scale i = 1..S: 2 x ELU(conv3x3 n); then, below the last scale, nearest 2x up
             conv3x3 -> C channels                       # no activation
    G        the decoder with its own weights, z ~ U[-1, 1]^{N_z}
    D        decoder(encoder(x)), the reconstruction; D(x) = -L(x) = -mean|x - D.reconstruct(x)|
N_h = N_z = 64 (Sec. 4); n = 128 for the paper's biggest (128px) model and the reference's default.

Where we differ, and why:
  * G ends in tanh. The paper (and the reference) leave G's last conv linear; the shared interface
    wants G's images in [-1, 1] (the reference only clips them for display), and a tanh keeps the
    gradient where a clamp would zero it. D's decoder stays linear, as in the paper.
  * `D(x, y)` is the score -L(x) (higher = more real) so that generic code can call D; BEGAN's
    objective uses `D.reconstruct`.
  * Init: the paper gives none; we use the reference's (TF-slim) Xavier-uniform weights, zero biases.
  * Not implemented: the optional vanishing residuals and h0 skip connections (Sec. 3.5).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from pydantic import PositiveInt
from torch import nn

from ganrepro.config import Strict
from ganrepro.models import register_family

BOTTLENECK = 8  # the encoder's last and the decoder's first spatial size, at every img_size


class Arch(Strict):
    z_dim: PositiveInt = 64  # N_z
    h_dim: PositiveInt = 64  # N_h, the auto-encoder's embedding
    ngf: PositiveInt = 128  # n for G
    ndf: PositiveInt = 128  # n for D's encoder and decoder


def n_scales(img_size: int) -> int:
    """Scales from img_size down to the 8x8 bottleneck, both ends counted: 32px -> 3, 64px -> 4."""
    s = math.log2(img_size / BOTTLENECK) + 1
    if s < 2 or s != int(s):
        raise ValueError(f"img_size: BEGAN needs a power of two >= 16, got {img_size}")
    return int(s)


def conv(c_in: int, c_out: int, stride: int = 1) -> nn.Module:
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, stride, 1), nn.ELU(inplace=True))


def weights_init(m: nn.Module) -> None:
    """TF-slim's defaults, as in the reference: Xavier-uniform weights, zero biases."""
    if isinstance(m, (nn.Conv2d, nn.Linear)):
        nn.init.xavier_uniform_(m.weight)
        nn.init.zeros_(m.bias)


class Encoder(nn.Module):
    def __init__(self, channels: int, n: int, h_dim: int, img_size: int):
        super().__init__()
        S = n_scales(img_size)
        layers = [conv(channels, n)]
        for i in range(1, S + 1):  # (B, i*n, s, s) -> (B, (i+1)*n, s/2, s/2)
            layers += [conv(i * n, i * n), conv(i * n, i * n)]
            if i < S:
                layers.append(conv(i * n, (i + 1) * n, stride=2))
        self.convs = nn.Sequential(*layers)
        self.fc = nn.Linear(S * n * BOTTLENECK ** 2, h_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.convs(x)  # (B, C, H, W) -> (B, S*n, 8, 8)
        return self.fc(x.flatten(1))  # (B, h_dim)


class Decoder(nn.Module):
    def __init__(self, channels: int, n: int, in_dim: int, img_size: int):
        super().__init__()
        S = n_scales(img_size)
        self.n = n
        self.fc = nn.Linear(in_dim, n * BOTTLENECK ** 2)
        layers = []
        for i in range(1, S + 1):  # (B, n, s, s) -> (B, n, 2s, 2s)
            layers += [conv(n, n), conv(n, n)]  # 2 x ELU(conv3x3 n)
            if i < S:
                layers.append(nn.Upsample(scale_factor=2, mode="nearest"))
        layers.append(nn.Conv2d(n, channels, 3, 1, 1))
        self.convs = nn.Sequential(*layers)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        x = self.fc(h).view(-1, self.n, BOTTLENECK, BOTTLENECK)  # (B, in_dim) -> (B, n, 8, 8)
        return self.convs(x)  # (B, C, H, W), unbounded


class G(nn.Module):
    def __init__(self, z_dim: int = 64, ngf: int = 128, channels: int = 3, img_size: int = 64):
        super().__init__()
        self.z_dim = z_dim
        self.dec = Decoder(channels, ngf, z_dim, img_size)
        self.apply(weights_init)

    def sample_z(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        device = next(self.parameters()).device
        return (torch.rand(n, self.z_dim, generator=generator) * 2 - 1).to(device)  # z ~ U[-1, 1]

    def forward(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        return torch.tanh(self.dec(z))  # (B, z_dim) -> (B, C, H, W) in [-1, 1]


class D(nn.Module):
    def __init__(self, h_dim: int = 64, ndf: int = 128, channels: int = 3, img_size: int = 64):
        super().__init__()
        self.enc = Encoder(channels, ndf, h_dim, img_size)
        self.dec = Decoder(channels, ndf, h_dim, img_size)
        self.apply(weights_init)

    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        return self.dec(self.enc(x))  # (B, C, H, W) -> h (B, h_dim) -> (B, C, H, W)

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        return -(x - self.reconstruct(x)).abs().flatten(1).mean(1)  # (B,) = -L(x), per sample


def build(arch: Arch, img_size: int, channels: int, n_classes: int) -> tuple[G, D]:
    return (
        G(arch.z_dim, arch.ngf, channels, img_size),
        D(arch.h_dim, arch.ndf, channels, img_size),
    )


register_family("began", Arch, build)
