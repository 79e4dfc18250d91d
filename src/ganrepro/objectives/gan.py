"""The plain GAN objective with a named loss: DCGAN (bce), SA-GAN (wasserstein or hinge)."""
from __future__ import annotations

import torch
from pydantic import PositiveInt, field_validator

from ganrepro.config import Strict
from ganrepro.losses import LOSSES
from ganrepro.objectives import OBJECTIVES, Objective


@OBJECTIVES.register("gan")
class GANObjective(Objective):
    """Unconditional GAN with a named loss: DCGAN (bce), SA-GAN (wasserstein or hinge)."""

    class Args(Strict):
        loss: str = "bce"
        n_critic: PositiveInt = 1

        @field_validator("loss")
        @classmethod
        def _known_loss(cls, v: str) -> str:
            if v not in LOSSES:
                raise ValueError(f"unknown loss {v!r}; valid: {', '.join(LOSSES.names())}")
            return v

    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.loss = LOSSES.get(self.args.loss, key="objective.loss")

    def d_step(self, real, y):
        with torch.no_grad():
            fake = self.G(self.G.sample_z(real.shape[0]), y)  # (B, C, H, W)
        d_real, d_fake = self.D(real, y), self.D(fake, y)  # (B,), (B,)
        loss = self.loss.d(d_real, d_fake)
        self.step(self.opt_d, loss)
        return {"loss_d": loss.item(), "d_real": d_real.mean().item(), "d_fake": d_fake.mean().item()}

    def g_step(self, real, y):
        d_fake = self.D(self.G(self.G.sample_z(real.shape[0]), y), y)
        loss = self.loss.g(d_fake)
        self.step(self.opt_g, loss)
        return {"loss_g": loss.item()}
