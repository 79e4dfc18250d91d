"""Randomly initialised stand-ins for the pretrained weight files, saved under their real names.

This machine, CI and the paper dry run have no internet, so the real Inception, AlexNet and VGG16
files cannot be had. These stand-ins let every code path that loads them run for real: the same
architectures, the same state-dict keys, the same file names in `$TORCH_HOME/hub/checkpoints/`,
read by pytorch-fid, lpips and torchvision exactly as the real files would be. Numbers computed
on them mean nothing; they are for parity tests (our metric against the reference package on
the same file) and for the dry run.

Inception's BatchNorm statistics are made data-dependent: the running mean and variance of every
BatchNorm are set from a few batches of the images it will see. With the default statistics
(mean 0, variance 1) the random network's features collapse to nearly one point, FID comes out
about 1e-15, and a parity test would pass whatever the metric did. Its fc layer is scaled, for the
same reason, so that the logits of those images vary by LOGIT_SPREAD across images: as initialised
they vary by ~0.06, the softmax is nearly uniform and the Inception Score is 1.001 whatever it does.

    write_inception(torch_home, images)   pt_inception-2015-12-05-6726825d.pth (pytorch-fid FID)
    write_alexnet(torch_home)             alexnet-owt-7be5be79.pth (LPIPS)
    write_vgg16(torch_home)               vgg16-397923af.pth (FastGAN's LPIPS-VGG loss)
"""
from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

INCEPTION_FILE = "pt_inception-2015-12-05-6726825d.pth"
ALEXNET_FILE = "alexnet-owt-7be5be79.pth"
VGG16_FILE = "vgg16-397923af.pth"
LOGIT_SPREAD = 2.0  # the stand-in Inception's logits: std over the calibration images, mean over classes


def checkpoints(torch_home: str | Path) -> Path:
    folder = Path(torch_home) / "hub" / "checkpoints"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _save(state: dict, path: Path) -> Path:
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as f:  # a file object: torch.save's zip root is then fixed ("archive")
        torch.save(state, f)
    tmp.replace(path)
    return path


@torch.no_grad()
def calibrate_batchnorm(net: nn.Module, batches) -> nn.Module:
    """Set every BatchNorm's running mean/var to the cumulative statistics of `batches` (train mode)."""
    bns = [m for m in net.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    for bn in bns:
        bn.reset_running_stats()
        bn.momentum = None  # cumulative average over the batches
    net.train()
    for x in batches:
        net(x)
    for bn in bns:
        bn.momentum = 0.1
    return net.eval()


def write_inception(torch_home: str | Path, images: torch.Tensor, seed: int = 0, batch_size: int = 16,
                    n_calibrate: int = 64) -> Path:
    """A random FID Inception (pytorch-fid's `fid_inception_v3` layout, 1008 classes), BN calibrated
    on the first `n_calibrate` of `images` (uint8 or [-1, 1] float, (N, C, H, W), grey or RGB), and fc
    (weight and bias) scaled so that the logits of the first batch of them vary by LOGIT_SPREAD."""
    from ganrepro.metrics.inception_score import fid_inception_net, inception_input, inception_logits

    torch.manual_seed(seed)
    net = fid_inception_net()
    x = images[:n_calibrate]
    x = x.float() / 127.5 - 1 if x.dtype == torch.uint8 else x.float()
    calibrate_batchnorm(net, (inception_input(x[i : i + batch_size]) for i in range(0, len(x), batch_size)))
    with torch.no_grad():
        logits = inception_logits(net, inception_input(x[:batch_size]))  # (B, 1008)
        spread = logits.std(0).mean() if len(logits) > 1 else 0
        if spread > 0:
            net.fc.weight.mul_(LOGIT_SPREAD / spread)
            net.fc.bias.mul_(LOGIT_SPREAD / spread)
    return _save(net.state_dict(), checkpoints(torch_home) / INCEPTION_FILE)


def write_alexnet(torch_home: str | Path, seed: int = 0) -> Path:
    import torchvision

    torch.manual_seed(seed)
    return _save(torchvision.models.alexnet(weights=None).state_dict(), checkpoints(torch_home) / ALEXNET_FILE)


def write_vgg16(torch_home: str | Path, seed: int = 0) -> Path:
    import torchvision

    torch.manual_seed(seed)
    return _save(torchvision.models.vgg16(weights=None).state_dict(), checkpoints(torch_home) / VGG16_FILE)


def write_all(torch_home: str | Path, images: torch.Tensor, seed: int = 0) -> list[Path]:
    return [write_inception(torch_home, images, seed), write_alexnet(torch_home, seed), write_vgg16(torch_home, seed)]
