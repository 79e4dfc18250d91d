"""WGAN-GP (Gulrajani et al. 2017): n_critic critic steps with a gradient penalty, then one G step."""
from __future__ import annotations

import torch
from pydantic import NonNegativeFloat, PositiveInt

from ganrepro.config import Strict
from ganrepro.losses import LOSSES
from ganrepro.objectives import OBJECTIVES, Objective


def gradient_penalty(D, real: torch.Tensor, fake: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    # E_xhat[(||grad_xhat D(xhat)||_2 - 1)^2],  xhat = eps x + (1 - eps) G(z),  eps ~ U[0, 1] per sample
    eps = torch.rand(len(real), 1, 1, 1, device=real.device)
    x_hat = (eps * real + (1 - eps) * fake).requires_grad_(True)
    (grad,) = torch.autograd.grad(D(x_hat, y).sum(), x_hat, create_graph=True)
    return ((grad.flatten(1).norm(dim=1) - 1) ** 2).mean()


@OBJECTIVES.register("wgan_gp")
class WGANGPObjective(Objective):
    class Args(Strict):
        n_critic: PositiveInt = 5
        gp_lambda: NonNegativeFloat = 10.0

    wasserstein = LOSSES.get("wasserstein")

    def d_step(self, real, y):
        with torch.no_grad():
            fake = self.G(self.G.sample_z(len(real)), y)
        d_real, d_fake = self.D(real, y), self.D(fake, y)
        gp = gradient_penalty(self.D, real, fake, y)
        loss = self.wasserstein.d(d_real, d_fake) + self.args.gp_lambda * gp  # E[D(G(z))] - E[D(x)] + lambda GP
        self.step(self.opt_d, loss)
        return {"loss_d": loss.item(), "gp": gp.item(), "wasserstein": (d_real.mean() - d_fake.mean()).item()}

    def g_step(self, real, y):
        loss = self.wasserstein.g(self.D(self.G(self.G.sample_z(len(real)), y), y))  # -E[D(G(z))]
        self.step(self.opt_g, loss)
        return {"loss_g": loss.item()}
