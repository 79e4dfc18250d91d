"""WGAN-GP (Gulrajani et al. 2017): n_critic critic steps with a gradient penalty, then one G step.

`gp_norm` says over what the penalised gradient norm is taken:
  per_sample         ||grad_xhat D||_2 over all of a sample's (C, H, W), then the mean over the batch
                     (Gulrajani et al., Algorithm 1): ours, the default.
  per_pixel_channel  the norm over channels only, one per pixel, then the mean over batch and pixels:
                     Monjur-Mahathir/DEQ-GAN-755-PROJECT@7366c8b wgan/models/wgan_gradient_penalty.py:327
                     (`gradients.norm(2, dim=1)` on (B, C, H, W); the same line as Zeleni9/pytorch-wgan).
                     Opt-in, only to reproduce that baseline (preset wgan_gp_ref).
Both penalise at xhat = eps x + (1 - eps) G(z) with one eps per sample, from detached real and fake
images (:299-307), as the reference does.

`gp_step` says how the penalty enters the critic's update:
  joint     one Adam step on  E[D(G(z))] - E[D(x)] + lambda GP  (Gulrajani et al., Algorithm 1): ours, the default.
  separate  two Adam steps per critic step: first on E[D(G(z))] - E[D(x)], then, with the updated critic,
            on lambda GP at interpolates of the same real and fake batch: heykeetae/Self-Attention-GAN@8714a54
            trainer.py:122-125 (the adversarial step) and :128-150 (the penalty and a second
            d_optimizer.step()), the SA-GAN report's presumed reference (preset sagan_ref).
"""
from __future__ import annotations

from typing import Literal, get_args

import torch
from pydantic import NonNegativeFloat, PositiveInt

from ganrepro.config import Strict
from ganrepro.losses import LOSSES
from ganrepro.objectives import OBJECTIVES, Objective


GPNorm = Literal["per_sample", "per_pixel_channel"]
GPStep = Literal["joint", "separate"]


def gradient_penalty(D, real: torch.Tensor, fake: torch.Tensor, y: torch.Tensor, norm: str = "per_sample") -> torch.Tensor:
    # E_xhat[(||grad_xhat D(xhat)||_2 - 1)^2],  xhat = eps x + (1 - eps) G(z),  eps ~ U[0, 1] per sample
    eps = torch.rand(len(real), 1, 1, 1, device=real.device)
    x_hat = (eps * real + (1 - eps) * fake).requires_grad_(True)
    (grad,) = torch.autograd.grad(D(x_hat, y).sum(), x_hat, create_graph=True)  # (B, C, H, W)
    if norm == "per_sample":
        return ((grad.flatten(1).norm(dim=1) - 1) ** 2).mean()  # norms (B,)
    if norm == "per_pixel_channel":
        return ((grad.norm(2, dim=1) - 1) ** 2).mean()  # norms (B, H, W), as the reference's :327
    raise ValueError(f"gp_norm: unknown {norm!r}; valid: {', '.join(get_args(GPNorm))}")


@OBJECTIVES.register("wgan_gp")
class WGANGPObjective(Objective):
    class Args(Strict):
        n_critic: PositiveInt = 5
        gp_lambda: NonNegativeFloat = 10.0
        gp_norm: GPNorm = "per_sample"  # see the module docstring
        gp_step: GPStep = "joint"  # separate: heykeetae's second Adam step on the penalty alone

    wasserstein = LOSSES.get("wasserstein")

    def d_step(self, real, y):
        with torch.no_grad():
            fake = self.G(self.G.sample_z(len(real)), y)
        d_real, d_fake = self.D(real, y), self.D(fake, y)
        critic = self.wasserstein.d(d_real, d_fake)  # E[D(G(z))] - E[D(x)]
        if self.args.gp_step == "separate":
            self.step(self.opt_d, critic)
            gp = gradient_penalty(self.D, real, fake, y, self.args.gp_norm)  # at the updated critic
            self.step(self.opt_d, self.args.gp_lambda * gp)
            loss = critic.detach() + self.args.gp_lambda * gp.detach()
        else:
            gp = gradient_penalty(self.D, real, fake, y, self.args.gp_norm)
            loss = critic + self.args.gp_lambda * gp
            self.step(self.opt_d, loss)
        return {"loss_d": loss.item(), "gp": gp.item(), "wasserstein": (d_real.mean() - d_fake.mean()).item()}

    def g_step(self, real, y):
        loss = self.wasserstein.g(self.D(self.G(self.G.sample_z(len(real)), y), y))  # -E[D(G(z))]
        self.step(self.opt_g, loss)
        return {"loss_g": loss.item()}
