"""Each paper's training objective: a small class with `d_step` and `g_step`, registered by name.

One file per objective in this package; each registers itself with `@OBJECTIVES.register(name)`
and is imported at the bottom of this file.

The loop calls, per generator step, `n_critic` times `d_step(real, y)` (a fresh real batch each)
and then once `g_step(real, y)`. Each returns a dict of floats to log.
"""
from __future__ import annotations

from typing import Any

import torch
from pydantic import ValidationError
from torch import nn

from ganrepro.config import ConfigError, Strict, format_validation_error
from ganrepro.registry import Registry
from ganrepro.training.distributed import average_gradients

OBJECTIVES: Registry[type["Objective"]] = Registry("objective")


class Objective:
    """Base: holds G, D and their optimisers; subclasses define `Args`, `d_step`, `g_step`."""

    class Args(Strict):
        pass

    def __init__(self, G: nn.Module, D: nn.Module, opt_g, opt_d, args: "Objective.Args"):
        self.G, self.D, self.opt_g, self.opt_d, self.args = G, D, opt_g, opt_d, args

    @property
    def eval_G(self) -> nn.Module:
        """The generator to sample from (an EMA copy where the objective keeps one)."""
        return self.G

    @property
    def n_critic(self) -> int:
        return getattr(self.args, "n_critic", 1)

    def d_step(self, real: torch.Tensor, y: torch.Tensor) -> dict[str, float]:
        raise NotImplementedError

    def g_step(self, real: torch.Tensor, y: torch.Tensor) -> dict[str, float]:
        raise NotImplementedError

    def figures(self, real: torch.Tensor, y: torch.Tensor) -> dict[str, tuple[torch.Tensor, int]]:
        """Objective-specific images saved at the end of training: {name: (images in [-1, 1], per row)}."""
        return {}

    def state_dict(self) -> dict[str, Any]:
        """Objective state beyond the models and optimisers (e.g. BEGAN's k_t).

        A key "G_ema" (a state_dict of G) is what evaluation samples from, when present."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        pass

    @staticmethod
    def step(opt: torch.optim.Optimizer, loss: torch.Tensor) -> None:
        opt.zero_grad(set_to_none=True)
        loss.backward()
        average_gradients(opt)  # over torchrun's ranks; a no-op in one process
        opt.step()


def parse_objective(spec: dict[str, Any], key: str = "objective") -> tuple[type[Objective], Objective.Args]:
    """params.yaml's `objective: {name: ..., **args}` -> (the registered class, its validated Args)."""
    spec = dict(spec)
    name = spec.pop("name", None)
    if name is None:
        raise ConfigError(f"{key}: missing 'name'; valid: {', '.join(OBJECTIVES.names())}")
    cls = OBJECTIVES.get(name, key=f"{key}.name")
    try:
        return cls, cls.Args.model_validate(spec)
    except ValidationError as e:
        raise ConfigError(format_validation_error(f"{key} {name}", cls.Args, e)) from None


def build_objective(spec: dict[str, Any], G, D, opt_g, opt_d) -> Objective:
    cls, args = parse_objective(spec)
    return cls(G, D, opt_g, opt_d, args)


from ganrepro.models import _import_all  # noqa: E402

_import_all(__name__, __path__[0])
