"""Model families by name. Each family is one file defining `Arch` (its typed hyper-parameters),
`G` and `D`, registered with `register_family`.

Every G and D share one interface:
    G.sample_z(n, generator=None) -> z          # the family's own prior
    G(z, y=None) -> images (B, C, H, W) in [-1, 1]
    D(x, y=None) -> scores (B,)                  # logits / critic values
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from torch import nn

from ganrepro.registry import Registry


@dataclass(frozen=True)
class Family:
    name: str
    Arch: type  # a pydantic model of the family's hyper-parameters
    build: Callable[..., tuple[nn.Module, nn.Module]]  # (arch, img_size, channels, n_classes) -> G, D
    describe: Callable[[Any], dict] | None = None  # arch -> settings its memory and time depend on


MODELS: Registry[Family] = Registry("model")


def register_family(name: str, Arch: type, build: Callable, describe: Callable | None = None) -> Family:
    return MODELS.register(name)(Family(name, Arch, build, describe))


def describe_arch(family: str, arch: dict) -> dict:
    """The settings a family says its measurements depend on (a DEQ's solver and backward), or {}."""
    fam = MODELS.get(family, key="family")
    return fam.describe(fam.Arch.model_validate(arch)) if fam.describe else {}


def build_models(family: str, arch: dict, img_size: int, channels: int, n_classes: int):
    fam = MODELS.get(family, key="family")
    return fam.build(fam.Arch.model_validate(arch), img_size=img_size, channels=channels, n_classes=n_classes)


def _import_all(package: str, folder) -> None:
    """Import every module of a package, so that each file registers itself: adding a family
    (or an objective) is adding one file."""
    import importlib
    import pkgutil

    for mod in pkgutil.iter_modules([str(folder)]):
        importlib.import_module(f"{package}.{mod.name}")


_import_all(__name__, __path__[0])
