"""Inception Score (Salimans et al. 2016, "Improved Techniques for Training GANs", NeurIPS).

    p(y|x_i) = softmax(logits_i)                 p(y) = 1/n sum_i p(y|x_i)   (within a split)
    IS_split = exp( 1/n sum_i KL(p(y|x_i) || p(y)) )
    IS = mean over `splits` equal splits (of a seeded shuffle) of IS_split; std over them

1 <= IS <= classes. The score is torch-fidelity's `isc_features_to_metric`, which applies the
softmax itself, so it takes logits. Logit backends, by name (`LOGITS`):

    inception          pytorch-fid's Inception weights (the file FID uses), 1008 classes; logits
                       are the original protocol's pool3 . W, WITHOUT the fc bias (OpenAI's
                       improved-gan `tf.matmul(pool3, w)`, torch-fidelity's `logits_unbiased`)
    digit_classifier   our offline 10-class digit CNN (metrics/digit_classifier.py); a stand-in,
                       NOT comparable with Inception IS

Inception inputs: [-1, 1], grey repeated to 3 channels, bilinear to 299x299 as pytorch-fid
(not torch-fidelity's TF-style resize), so the pool3 features are exactly FID's.
"""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch_fidelity.metric_isc import KEY_METRIC_ISC_MEAN, KEY_METRIC_ISC_STD, isc_features_to_metric

from ganrepro.corrupt import reading, redownload
from ganrepro.metrics import features
from ganrepro.registry import Registry

INCEPTION_CLASSES = 1008
INCEPTION_RESIZE = "bilinear to 299x299 (pytorch-fid)"
# pytorch-fid's InceptionV3 blocks 0-3, up to the final average pool ("pool3", 2048-d).
POOL3_LAYERS = (
    "Conv2d_1a_3x3", "Conv2d_2a_3x3", "Conv2d_2b_3x3", "maxpool1", "Conv2d_3b_1x1", "Conv2d_4a_3x3", "maxpool2",
    "Mixed_5b", "Mixed_5c", "Mixed_5d", "Mixed_6a", "Mixed_6b", "Mixed_6c", "Mixed_6d", "Mixed_6e",
    "Mixed_7a", "Mixed_7b", "Mixed_7c", "avgpool",
)


def inception_score(logits: np.ndarray | torch.Tensor, splits: int = 10, seed: int = 0) -> dict:
    """IS of (N, classes) logits, over `splits` splits of a shuffle seeded by `seed`."""
    x = torch.as_tensor(np.asarray(logits) if not torch.is_tensor(logits) else logits).double().cpu()
    if x.dim() != 2:
        raise ValueError(f"Inception Score: logits must be (N, classes), got shape {tuple(x.shape)}")
    n, classes = x.shape
    if splits < 1 or n < splits:
        raise ValueError(f"Inception Score: {n} samples cannot fill {splits} splits (need N >= splits >= 1)")
    out = isc_features_to_metric(x, splits=splits, shuffle=True, rng_seed=seed)
    protocol = {"splits": splits, "n": n, "classes": classes}
    return {"value": out[KEY_METRIC_ISC_MEAN], "std": out[KEY_METRIC_ISC_STD], "protocol": protocol}


# Each entry builds a FeatureBackend (metrics/features.py) whose output is (B, classes) logits.
LOGITS: Registry[Callable[..., features.FeatureBackend]] = Registry("inception-score backend")


def logits_missing(name: str) -> Path | None:
    """The missing weight file a logit backend needs (the same file as its FID backend), or None."""
    LOGITS.get(name)  # unknown names raise, listing the valid ones
    return features.weights_missing(name)


def fid_inception_net() -> nn.Module:
    """pytorch-fid's `fid_inception_v3()` network, without its weights (so nothing downloads)."""
    from pytorch_fid import inception as pf

    net = pf._inception_v3(num_classes=INCEPTION_CLASSES, aux_logits=False, weights=None)
    net.Mixed_5b = pf.FIDInceptionA(192, pool_features=32)
    net.Mixed_5c = pf.FIDInceptionA(256, pool_features=64)
    net.Mixed_5d = pf.FIDInceptionA(288, pool_features=64)
    net.Mixed_6b = pf.FIDInceptionC(768, channels_7x7=128)
    net.Mixed_6c = pf.FIDInceptionC(768, channels_7x7=160)
    net.Mixed_6d = pf.FIDInceptionC(768, channels_7x7=160)
    net.Mixed_6e = pf.FIDInceptionC(768, channels_7x7=192)
    net.Mixed_7b = pf.FIDInceptionE_1(1280)
    net.Mixed_7c = pf.FIDInceptionE_2(2048)
    return net


def inception_input(x: torch.Tensor) -> torch.Tensor:
    """[-1, 1] (B, C, H, W) -> (B, 3, 299, 299) in [-1, 1], resized in [0, 1] as pytorch-fid does."""
    x = x.float().add(1).div(2)
    if x.shape[1] == 1:
        x = x.repeat(1, 3, 1, 1)
    x = F.interpolate(x, size=(299, 299), mode="bilinear", align_corners=False)
    return 2 * x - 1


def inception_logits(net: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Unbiased logits of prepared input: pool3 (B, 2048) . fc.weight^T -> (B, 1008), no fc bias."""
    for name in POOL3_LAYERS:
        x = getattr(net, name)(x)
    return x.flatten(1) @ net.fc.weight.T


@LOGITS.register("inception")
def inception(device: torch.device = torch.device("cpu")) -> features.FeatureBackend:
    file = features.hub_file(features.INCEPTION_FILE)
    if not file.exists():
        raise features.MissingWeightsError(file, features.INCEPTION_URL, "Inception Score")
    net = fid_inception_net()
    with reading(file, "Inception Score's Inception weights file", redownload(features.INCEPTION_URL)):
        net.load_state_dict(torch.load(file, map_location="cpu", weights_only=True))
    net = net.to(device).eval()
    fn = lambda x: inception_logits(net, inception_input(x.to(device)))  # noqa: E731
    return features.FeatureBackend("inception", INCEPTION_CLASSES, file, INCEPTION_RESIZE, net, fn)


@LOGITS.register("digit_classifier")
def digit_classifier(device: torch.device = torch.device("cpu")) -> features.FeatureBackend:
    """The FID stand-in's network, read at its logits: (B, 10)."""
    backend = features.digit_classifier(device=device)
    net = backend.net
    return replace(backend, dims=net.classify.out_features, fn=lambda x: net(x.to(device)))
