"""A trained generator as a standalone image sampler, the model that MLflow stores for each run.

    G = mlflow.pytorch.load_model(uri)   # an ExportedGenerator, on the CPU, in eval mode
    z = G.sample_z(16)                   # (16, z_dim) float32, from the family's own prior
    images = G(z)                        # (16, C, H, W) in [-1, 1]

`forward` takes z alone, because MLflow's PyTorch flavour (and its pyfunc `predict`) feeds a model
one float32 tensor. A conditional G (the DEQ and WGAN-GP families) is given the labels
arange(B) % n_classes: row i of the batch is class i mod n_classes, so a batch of 10 digits holds
each class once. An unconditional G ignores the labels.

The weights are the ones evaluation scores: the EMA copy where the objective keeps one (FastGAN's
`G_ema`, which is `objective.eval_G` during training), else G, read from the finished checkpoint;
spectral norm folded into plain weights (its eval-mode value). The module is pickled by reference
to its classes: loading it needs this package importable (and torchdeq for a DEQ).
"""
from __future__ import annotations

from pathlib import Path

import torch
from torch import nn


class ExportedGenerator(nn.Module):
    """z (B, z_dim) float32 -> images (B, C, H, W) in [-1, 1]; see the module docstring for labels."""

    def __init__(self, G: nn.Module, n_classes: int, image_shape: tuple[int, int, int]):
        super().__init__()
        self.G, self.n_classes, self.z_dim = fold_parametrizations(G.eval()), n_classes, G.z_dim
        self.image_shape = tuple(image_shape)  # (C, H, W) of one image

    def sample_z(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """n latents from the family's prior (N(0, I), or U[-1, 1] for BEGAN): (n, z_dim)."""
        return self.G.sample_z(n, generator=generator)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        y = torch.arange(len(z), device=z.device) % self.n_classes  # (B,)
        return self.G(z.float(), y).float().clamp(-1, 1)  # (B, C, H, W), as evaluation samples it


def fold_parametrizations(module: nn.Module) -> nn.Module:
    """Replace each parametrized weight (spectral norm in SA-GAN and FastGAN) by its value, in place:
    torch pickles no parametrized module, and in eval mode spectral norm is a fixed W / sigma.
    Only for a module built to be exported: a deepcopy (FastGAN's G_ema of G) shares the class that
    torch edits here, so folding a copy would break the original."""
    from torch.nn.utils import parametrize

    assert not module.training, "fold in eval mode: in train mode spectral norm would step its power iteration"
    for m in list(module.modules()):
        if parametrize.is_parametrized(m):
            for name in list(m.parametrizations):
                parametrize.remove_parametrizations(m, name, leave_parametrized=True)
    return module


def from_checkpoint(checkpoint: dict | str | Path, channels: int, n_classes: int) -> ExportedGenerator:
    """The sampling G of a checkpoint (its config builds the architecture), on the CPU, in eval mode."""
    from ganrepro.models import build_models
    from ganrepro.training.checkpoint import load_checkpoint

    ckpt = checkpoint if isinstance(checkpoint, dict) else load_checkpoint(checkpoint)
    cfg = ckpt["config"]
    G, _ = build_models(cfg["family"], cfg["arch"], cfg["img_size"], channels, n_classes)
    G.load_state_dict(ckpt.get("objective", {}).get("G_ema") or ckpt["G"])  # EMA weights where kept
    return ExportedGenerator(G, n_classes, (channels, cfg["img_size"], cfg["img_size"])).eval()
