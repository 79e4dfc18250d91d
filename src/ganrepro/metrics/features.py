"""Feature backends for FID, by name. Each maps images in [-1, 1] (B, C, H, W) to (B, dims).

    inception          pytorch-fid's InceptionV3 (the FID standard); weights from the torch cache
    digit_classifier   our offline stand-in (metrics/digit_classifier.py), trained by a DVC stage

`protocol()` records what a number was computed with: backend, weight file and its sha256,
dims and the resize applied.

Inception's 64, 192 and 768 dims are the outputs of earlier blocks (64 x 73 x 73, 192 x 35 x 35,
768 x 17 x 17 at 299px), globally average-pooled to (B, dims) as pytorch-fid's `get_activations`
does; its 2048 dims already end in the global pool.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ganrepro import paths
from ganrepro.corrupt import reading, redownload
from ganrepro.registry import Registry
from ganrepro.utils import sha256_file

INCEPTION_FILE = "pt_inception-2015-12-05-6726825d.pth"
INCEPTION_URL = f"https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/{INCEPTION_FILE}"
DIGIT_CLASSIFIER = paths.FEATURE_NETS / "digit_classifier.pt"


class MissingWeightsError(FileNotFoundError):
    def __init__(self, file: Path, url: str | None, what: str):
        how = f"download {url} and put it there" if url else "run the stage that makes it"
        super().__init__(f"{what}: weights file {file} not found; {how} (offline machines: copy it there)")
        self.file = file


@dataclass
class FeatureBackend:
    name: str
    dims: int
    weights: Path
    resize: str
    net: nn.Module
    fn: Callable[[torch.Tensor], torch.Tensor]
    _sha: str | None = field(default=None, repr=False)

    @torch.no_grad()
    def __call__(self, x: torch.Tensor) -> np.ndarray:
        return self.fn(x).double().cpu().numpy()  # (B, dims)

    def protocol(self) -> dict:
        if self._sha is None:
            self._sha = sha256_file(self.weights)
        return {"backend": self.name, "weights": self.weights.name, "weights_sha256": self._sha,
                "dims": self.dims, "resize": self.resize}


FEATURES: Registry[Callable[..., FeatureBackend]] = Registry("feature backend")


def hub_file(name: str) -> Path:
    return paths.torch_home() / "hub" / "checkpoints" / name


def inception_weights() -> tuple[Path, str, str]:
    """(file, what it is, remedy if it is damaged) of FID's Inception weights."""
    return hub_file(INCEPTION_FILE), "FID Inception weights file", redownload(INCEPTION_URL)


def digit_classifier_weights() -> tuple[Path, str, str]:
    return Path(DIGIT_CLASSIFIER), "digit-classifier weights file", "retrain them with `dvc repro -f feature_net`"


def weights_missing(backend: str) -> Path | None:
    """The missing weight file a backend needs, or None if it can run."""
    file = hub_file(INCEPTION_FILE) if backend == "inception" else Path(DIGIT_CLASSIFIER)
    return None if file.exists() else file


@FEATURES.register("inception")
def inception(dims: int = 2048, device: torch.device = torch.device("cpu")) -> FeatureBackend:
    from pytorch_fid.inception import InceptionV3

    file = hub_file(INCEPTION_FILE)
    if not file.exists():
        raise MissingWeightsError(file, INCEPTION_URL, "FID Inception")
    with reading(*inception_weights()):  # pytorch-fid reads the file itself
        net = InceptionV3([InceptionV3.BLOCK_INDEX_BY_DIM[dims]], resize_input=True, normalize_input=True)
    net = net.to(device).eval()

    def fn(x: torch.Tensor) -> torch.Tensor:
        x = x.to(device).float().add(1).div(2)  # [-1, 1] -> [0, 1], as pytorch-fid expects
        if x.shape[1] == 1:
            x = x.repeat(1, 3, 1, 1)  # grey -> RGB, as pytorch-fid's Image.convert("RGB")
        out = net(x)[0]  # (B, dims, h, w): 2048 ends in the global pool (h = w = 1), 64/192/768 do not
        return F.adaptive_avg_pool2d(out, 1).flatten(1)  # (B, dims), pytorch-fid's get_activations


    return FeatureBackend("inception", dims, file, "bilinear to 299x299 (pytorch-fid)", net, fn)


@FEATURES.register("digit_classifier")
def digit_classifier(dims: int | None = None, device: torch.device = torch.device("cpu")) -> FeatureBackend:
    from ganrepro.metrics.digit_classifier import INPUT_SIZE, DigitClassifier

    file = Path(DIGIT_CLASSIFIER)
    if not file.exists():
        raise MissingWeightsError(file, None, "digit-classifier features")
    net = DigitClassifier()
    with reading(*digit_classifier_weights()):
        net.load_state_dict(torch.load(file, map_location="cpu", weights_only=True))
    net = net.to(device).eval()
    fn = lambda x: net.embed(x.to(device))  # noqa: E731
    return FeatureBackend("digit_classifier", net.dims, file, f"grey, bilinear to {INPUT_SIZE}x{INPUT_SIZE}", net, fn)


def backend_dims(name: str, dims: int) -> int:
    """The feature width a backend gives: Inception's is chosen (`dims`), the classifier's fixed."""
    from ganrepro.metrics.digit_classifier import DigitClassifier

    return DigitClassifier.dims if name == "digit_classifier" else dims


def build_backend(name: str, dims: int, device: torch.device) -> FeatureBackend:
    return FEATURES.get(name, key="eval.fid.backends")(dims=dims, device=device)
