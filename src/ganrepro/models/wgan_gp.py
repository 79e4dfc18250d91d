"""Conditional WGAN-GP: the DEQ-GAN paper's baseline (its Table 1 and the Pokemon FID 1.142).

References:
  * Gulrajani et al., "Improved Training of Wasserstein GANs", NeurIPS 2017 (the gradient penalty;
    the critic must not use batch norm, which would couple the per-sample gradients it penalises).
  * Monjur et al., DEQ-GAN (../shared/papers/deq-gan.txt), Sec. 3: the conditional GAN "generate[s]
    an embedding of dimension 64x64x1 from the labels ... and pass[es] it as an extra channel".

G is DCGAN's generator (depth following img_size) whose 1x1 input gets the label's embedding as
extra channels beside z: the 1x1 analogue of the critic's extra image channel. The critic is
DCGAN's discriminator without batch norm, with the label channel appended to the image.
With n_classes = 1 (an unlabelled set such as Pokemon) both embeddings are constants.
"""
from __future__ import annotations

import torch
from pydantic import PositiveInt
from torch import nn

from ganrepro.config import Strict
from ganrepro.models import register_family
from ganrepro.models.dcgan import G as DCGANGenerator
from ganrepro.models.dcgan import n_doublings


class Arch(Strict):
    z_dim: PositiveInt = 100
    ngf: PositiveInt = 64
    ndf: PositiveInt = 64
    embed_dim: PositiveInt = 10  # channels of G's label embedding


class G(nn.Module):
    def __init__(self, z_dim: int, ngf: int, channels: int, img_size: int, n_classes: int, embed_dim: int):
        super().__init__()
        self.z_dim = z_dim
        self.embed = nn.Embedding(n_classes, embed_dim)
        self.body = DCGANGenerator(z_dim + embed_dim, ngf, channels, img_size)

    def sample_z(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        device = next(self.parameters()).device
        return torch.randn(n, self.z_dim, generator=generator).to(device)

    def forward(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        y = torch.zeros(len(z), dtype=torch.long, device=z.device) if y is None else y
        return self.body(torch.cat([z, self.embed(y)], dim=1))  # (B, z_dim + e) -> (B, C, H, W)


class D(nn.Module):
    def __init__(self, ndf: int, channels: int, img_size: int, n_classes: int):
        super().__init__()
        self.img_size = img_size
        self.embed = nn.Embedding(n_classes, img_size * img_size)  # the label as a (1, H, W) channel
        n = n_doublings(img_size)
        layers = [nn.Conv2d(channels + 1, ndf, 4, 2, 1), nn.LeakyReLU(0.2, True)]
        c = ndf
        for _ in range(n - 1):  # (B, c, s, s) -> (B, 2c, s/2, s/2); no batch norm (see docstring)
            layers += [nn.Conv2d(c, c * 2, 4, 2, 1), nn.LeakyReLU(0.2, True)]
            c *= 2
        layers += [nn.Conv2d(c, 1, 4, 1, 0)]
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        y = torch.zeros(len(x), dtype=torch.long, device=x.device) if y is None else y
        label = self.embed(y).view(-1, 1, self.img_size, self.img_size)  # (B, 1, H, W)
        return self.net(torch.cat([x, label], dim=1)).flatten()  # (B,) critic values


def build(arch: Arch, img_size: int, channels: int, n_classes: int) -> tuple[G, D]:
    return (
        G(arch.z_dim, arch.ngf, channels, img_size, n_classes, arch.embed_dim),
        D(arch.ndf, channels, img_size, n_classes),
    )


register_family("wgan_gp", Arch, build)
