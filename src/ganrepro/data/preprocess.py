"""Raw images -> one uint8 tensor file per (dataset, size): `data/processed/<name>-<size>px.pt`.

Each image is flattened onto white if it has transparency (the DEQ-GAN Pokemon recipe), converted
to the dataset's channels, centre-cropped to a square and resized with antialiasing.
Training reads the file whole and scales to [-1, 1] per batch on the device.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image
from tqdm import tqdm

from ganrepro.corrupt import reading
from ganrepro.data.datasets import DATASETS
from ganrepro.utils import save_torch


def processed_path(root: Path, name: str, size: int) -> Path:
    return Path(root) / f"{name}-{size}px.pt"


def to_array(img: Image.Image, channels: int, size: int) -> np.ndarray:
    """A PIL image -> (C, size, size) uint8."""
    if img.mode in ("RGBA", "LA", "P"):
        rgba = img.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        img = Image.alpha_composite(white, rgba)
    img = img.convert("L" if channels == 1 else "RGB")
    w, h = img.size
    s = min(w, h)
    img = img.crop(((w - s) // 2, (h - s) // 2, (w - s) // 2 + s, (h - s) // 2 + s))
    if s != size:
        img = img.resize((size, size), Image.Resampling.BICUBIC, reducing_gap=None)
    arr = np.asarray(img, dtype=np.uint8)
    return arr[None] if channels == 1 else arr.transpose(2, 0, 1)


def preprocess(name: str, raw: Path, out_root: Path, size: int, verify: bool = True) -> Path:
    """`verify=False` (the dry run's synthetic fixtures) skips torchvision's md5 checks of the raw files."""
    spec = DATASETS.get(name, key="dataset")
    images, labels = [], []
    for img, label in tqdm(spec.iter_images(Path(raw), verify=verify), desc=f"{name} -> {size}px", unit="img"):
        images.append(to_array(img, spec.channels, size))
        labels.append(label)
    out = processed_path(out_root, name, size)
    save_torch(out, {
        "images": torch.from_numpy(np.stack(images)),  # (N, C, H, W) uint8
        "labels": torch.tensor(labels, dtype=torch.long),  # (N,)
        "dataset": name,
        "img_size": size,
        "n_classes": spec.n_classes,
    })
    return out


def load_processed(path: Path) -> dict:
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: missing; run the preprocess stage (dvc repro preprocess)")
    with reading(path, "preprocessed data file", "rebuild it with `dvc repro -f preprocess`"):
        return torch.load(path, weights_only=True)
