"""Synthetic datasets in each paper dataset's REAL on-disk format, for the paper dry run.

The content is synthetic (seeded shapes on gradients); the files, their names, folders and encodings
are the ones torchvision 0.29 (or our manifest downloader) leaves after a real download, so the
pipeline's parsers run for real. Each builder writes into `raw` (= data/raw/<dataset>/, the root the
download stage hands torchvision: see ganrepro.data.datasets) and returns a few of its images, which
calibrate the stand-in Inception's BatchNorm (ganrepro.standin_weights).

    mnist, fashion_mnist  <raw>/MNIST/raw, <raw>/FashionMNIST/raw: train-/t10k- images-idx3-ubyte and
                          labels-idx1-ubyte (big-endian IDX: magic 0x0803 / 0x0801, then the dims),
                          each beside its .gz, as torchvision's download_and_extract_archive leaves them
    cifar10               <raw>/cifar-10-batches-py/: data_batch_1..5 and test_batch (pickled dicts:
                          batch_label, labels, data (N, 3072) uint8 row-major R, G, B planes, filenames),
                          batches.meta (label_names, num_cases_per_batch, num_vis), readme.html
    celeba                <raw>/celeba/: img_align_celeba/%06d.jpg at 178x218 (JPEG), list_attr_celeba.txt
                          (count, 40 names, rows of -1/1), list_eval_partition.txt (0/1/2),
                          identity_CelebA.txt, list_bbox_celeba.txt, list_landmarks_align_celeba.txt
                          (count, header, rows): space-separated, padded as the originals
    pokemon, vangogh,     a manifest (ganrepro/data/manifests/<name>.json format) whose files are a spread
    anime_faces           of the real manifest's entries (same paths, same URL paths, served from 127.0.0.1),
                          with synthetic content and its real sha256: transparent 96/128px PNG sprites (RGBA
                          and palette); Van Gogh JPEGs and RGBA PNGs of 283-750 x 312-600, suffixes as listed;
                          anime faces as one zip archive of 64px PNGs

`torchvision` checks md5s of the CIFAR-10 and CelebA files; the synthetic files' differ, so the
download stage skips those checks when `profiles.<p>.verify_downloads` is false (the dry run).
"""
from __future__ import annotations

import gzip
import hashlib
import io
import json
import pickle
import struct
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable
from urllib.parse import unquote, urlsplit

import numpy as np
from PIL import Image, ImageDraw

from ganrepro.data.datasets import load_manifest

N_IMAGES = 64  # per set: a full batch of the largest batch that trains on it (64, CIFAR-10's DCGAN/SA-GAN)
N_TEST = 16  # the test splits torchvision also reads (t10k, test_batch): present, as after a real download

# ---------------------------------------------------------------- synthetic pictures
def _colour(rng: np.random.Generator, alpha: bool = False) -> tuple:
    c = tuple(int(v) for v in rng.integers(0, 256, 3))
    return c + (255,) if alpha else c


def picture(rng: np.random.Generator, w: int, h: int, mode: str = "RGB", transparent: bool = False) -> Image.Image:
    """A seeded picture: a two-colour gradient (or a transparent background) and a few shapes."""
    if transparent:
        img = Image.new("RGBA", (w, h), (0, 0, 0, 0))
    else:
        a, b = np.array(_colour(rng), float), np.array(_colour(rng), float)
        t = np.linspace(0, 1, h)[:, None, None]
        grad = (a * (1 - t) + b * t).repeat(w, axis=1)
        img = Image.fromarray(grad.astype(np.uint8), "RGB")
        if mode == "RGBA":
            img = img.convert("RGBA")
    draw = ImageDraw.Draw(img)
    for _ in range(int(rng.integers(2, 6))):
        x0, x1 = sorted(int(v) for v in rng.integers(0, w, 2))
        y0, y1 = sorted(int(v) for v in rng.integers(0, h, 2))
        box = (x0, y0, max(x1, x0 + 2), max(y1, y0 + 2))
        fill = _colour(rng, alpha=img.mode == "RGBA")
        (draw.ellipse if rng.random() < 0.5 else draw.rectangle)(box, fill=fill)
    return img if img.mode == mode else img.convert(mode)


def digit(rng: np.random.Generator) -> Image.Image:
    """A 28x28 grey 'digit': white strokes on black."""
    img = Image.new("L", (28, 28), 0)
    draw = ImageDraw.Draw(img)
    pts = [tuple(int(v) for v in rng.integers(5, 23, 2)) for _ in range(int(rng.integers(3, 6)))]
    draw.line(pts, fill=255, width=int(rng.integers(2, 4)))
    return img


def _png(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def _jpeg(img: Image.Image, quality: int = 90) -> bytes:
    buf = io.BytesIO()
    img.convert("RGB").save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


# ---------------------------------------------------------------- MNIST, Fashion-MNIST (IDX files)
def idx_bytes(array: np.ndarray) -> bytes:
    """The IDX format torchvision's read_sn3_pascalvincent_tensor reads: 0x00 0x00, type 0x08 (uint8),
    ndim; then each dim as a big-endian uint32; then the data."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    return struct.pack(">I", 0x0800 | array.ndim) + struct.pack(f">{array.ndim}I", *array.shape) + array.tobytes()


def build_mnist_like(folder: str) -> Callable[[Path, np.random.Generator], list[Image.Image]]:
    def build(raw: Path, rng: np.random.Generator) -> list[Image.Image]:
        out = raw / folder / "raw"
        out.mkdir(parents=True, exist_ok=True)
        keep = []
        for split, n in (("train", N_IMAGES), ("t10k", N_TEST)):
            imgs = [digit(rng) for _ in range(n)]
            keep += imgs if split == "train" else []
            labels = rng.integers(0, 10, n).astype(np.uint8)
            for kind, data in (("images-idx3-ubyte", idx_bytes(np.stack([np.asarray(i) for i in imgs]))),
                               ("labels-idx1-ubyte", idx_bytes(labels))):
                (out / f"{split}-{kind}").write_bytes(data)
                (out / f"{split}-{kind}.gz").write_bytes(gzip.compress(data, mtime=0))
        return keep

    return build


# ---------------------------------------------------------------- CIFAR-10 (pickled batches)
CIFAR_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
CIFAR_TRAIN_BATCHES = 5


def _cifar_batch(rng: np.random.Generator, n: int, label: str) -> tuple[dict, list[Image.Image]]:
    imgs = [picture(rng, 32, 32) for _ in range(n)]
    labels = [int(v) for v in rng.integers(0, 10, n)]
    data = np.stack([np.asarray(i).transpose(2, 0, 1).reshape(-1) for i in imgs])  # (n, 3072): R, G, B planes
    names = [f"{CIFAR_CLASSES[y]}_s_{i:06d}.png" for i, y in enumerate(labels)]
    return {"batch_label": label, "labels": labels, "data": data, "filenames": names}, imgs


def build_cifar10(raw: Path, rng: np.random.Generator) -> list[Image.Image]:
    out = raw / "cifar-10-batches-py"
    out.mkdir(parents=True, exist_ok=True)
    per = -(-N_IMAGES // CIFAR_TRAIN_BATCHES)  # ceil: at least N_IMAGES training images in all
    keep = []
    for b in range(1, CIFAR_TRAIN_BATCHES + 1):
        batch, imgs = _cifar_batch(rng, per, f"training batch {b} of {CIFAR_TRAIN_BATCHES}")
        (out / f"data_batch_{b}").write_bytes(pickle.dumps(batch, protocol=2))
        keep += imgs
    batch, _ = _cifar_batch(rng, N_TEST, "testing batch 1 of 1")
    (out / "test_batch").write_bytes(pickle.dumps(batch, protocol=2))
    meta = {"num_cases_per_batch": per, "label_names": CIFAR_CLASSES, "num_vis": 3072}
    (out / "batches.meta").write_bytes(pickle.dumps(meta, protocol=2))
    (out / "readme.html").write_text("<meta HTTP-EQUIV=\"REFRESH\" content=\"0; url=http://www.cs.toronto.edu/~kriz/cifar.html\">\n")
    return keep


# ---------------------------------------------------------------- CelebA (aligned JPEGs + text tables)
CELEBA_ATTRS = (
    "5_o_Clock_Shadow Arched_Eyebrows Attractive Bags_Under_Eyes Bald Bangs Big_Lips Big_Nose Black_Hair "
    "Blond_Hair Blurry Brown_Hair Bushy_Eyebrows Chubby Double_Chin Eyeglasses Goatee Gray_Hair Heavy_Makeup "
    "High_Cheekbones Male Mouth_Slightly_Open Mustache Narrow_Eyes No_Beard Oval_Face Pale_Skin Pointy_Nose "
    "Receding_Hairline Rosy_Cheeks Sideburns Smiling Straight_Hair Wavy_Hair Wearing_Earrings Wearing_Hat "
    "Wearing_Lipstick Wearing_Necklace Wearing_Necktie Young"
).split()
CELEBA_LANDMARKS = "lefteye_x lefteye_y righteye_x righteye_y nose_x nose_y leftmouth_x leftmouth_y rightmouth_x rightmouth_y"
CELEBA_SIZE = (178, 218)  # (w, h) of img_align_celeba


def build_celeba(raw: Path, rng: np.random.Generator) -> list[Image.Image]:
    base = raw / "celeba"
    (base / "img_align_celeba").mkdir(parents=True, exist_ok=True)
    n = N_IMAGES
    names = [f"{i:06d}.jpg" for i in range(1, n + 1)]
    keep = []
    for name in names:
        img = picture(rng, *CELEBA_SIZE)
        (base / "img_align_celeba" / name).write_bytes(_jpeg(img))
        keep.append(img)
    part = [0] * (n - n // 4) + [1] * (n // 8) + [2] * (n // 4 - n // 8)  # train, valid, test in order, as the original
    attrs = rng.choice([-1, 1], size=(n, len(CELEBA_ATTRS)))
    ident = rng.integers(1, 10178, n)
    bbox = np.column_stack([rng.integers(0, 200, n), rng.integers(0, 200, n), rng.integers(50, 400, n),
                            rng.integers(50, 500, n)])
    marks = rng.integers(60, 160, size=(n, 10))

    def rows(values: np.ndarray, width: int) -> list[str]:
        return [f"{nm} " + " ".join(f"{int(v):>{width}}" for v in row) for nm, row in zip(names, values)]

    files = {
        "list_eval_partition.txt": [f"{nm} {p}" for nm, p in zip(names, part)],
        "identity_CelebA.txt": [f"{nm} {int(i)}" for nm, i in zip(names, ident)],
        "list_attr_celeba.txt": [str(n), " ".join(CELEBA_ATTRS)] + rows(attrs, 2),
        "list_bbox_celeba.txt": [str(n), "image_id x_1 y_1 width height"] + rows(bbox, 4),
        "list_landmarks_align_celeba.txt": [str(n), CELEBA_LANDMARKS] + rows(marks, 4),
    }
    for fname, lines in files.items():
        (base / fname).write_text("\n".join(lines) + "\n")
    return keep


TORCHVISION_BUILDERS: dict[str, Callable[[Path, np.random.Generator], list[Image.Image]]] = {
    "mnist": build_mnist_like("MNIST"),
    "fashion_mnist": build_mnist_like("FashionMNIST"),
    "cifar10": build_cifar10,
    "celeba": build_celeba,
}


# ---------------------------------------------------------------- manifest sets (served over HTTP)
def _pokemon_file(rng: np.random.Generator, path: str, i: int) -> tuple[bytes, Image.Image]:
    stem = Path(path).stem
    size = 128 if stem.isdigit() and int(stem) >= 10000 else 96  # Gen-8 / Mega forms are 128px
    img = picture(rng, size, size, "RGBA", transparent=True)
    if i % 2:  # palette PNGs with a transparent index, as many PokeAPI sprites are
        img = img.quantize(colors=64)
    return _png(img), img


def _vangogh_file(rng: np.random.Generator, path: str, i: int) -> tuple[bytes, Image.Image]:
    w, h = int(rng.integers(283, 751)), int(rng.integers(312, 601))
    if path.lower().endswith(".png"):
        img = picture(rng, w, h, "RGBA")  # the two PNG paintings are RGBA
        return _png(img), img
    img = picture(rng, w, h)
    return _jpeg(img), img


@dataclass(frozen=True)
class ManifestSet:
    make: Callable[[np.random.Generator, str, int], tuple[bytes, Image.Image]]
    pick: Callable[[list[dict], int], list[dict]]


def _spread(files: list[dict], n: int) -> list[dict]:
    """n entries spread over the manifest, plus every one whose suffix is unusual (.png, .JPG, .Jpg)."""
    odd = [f for f in files if not f["path"].endswith(".jpg")] if any(f["path"].endswith(".jpg") for f in files) else []
    rest = [f for f in files if f not in odd]
    step = max(1, len(rest) // max(1, n - len(odd)))
    return (odd + rest[::step])[:n]


def _anime_file(rng: np.random.Generator, path: str, i: int) -> tuple[bytes, Image.Image]:
    img = picture(rng, 64, 64)
    return _png(img), img


MANIFEST_SETS = {
    "pokemon": ManifestSet(_pokemon_file, _spread),
    "vangogh": ManifestSet(_vangogh_file, _spread),
    "anime_faces": ManifestSet(_anime_file, _spread),
}


def served_path(served: Path, url: str) -> Path:
    """Where the local server must hold `url`'s file: <served>/<host>/<path, percent-decoded>
    (SimpleHTTPRequestHandler decodes the request path the same way)."""
    parts = urlsplit(url)
    return served / parts.netloc / unquote(parts.path).lstrip("/")


def local_url(base: str, url: str) -> str:
    parts = urlsplit(url)
    return f"{base}/{parts.netloc}{parts.path}"


def build_manifest(name: str, manifests: Path, served: Path, base_url: str, rng: np.random.Generator,
                   n: int = N_IMAGES) -> list[Image.Image]:
    """Write <manifests>/<name>.json: the real manifest's format and file paths, URLs on `base_url`,
    synthetic content (written under `served`) and its sha256."""
    real = load_manifest(name)
    kind = MANIFEST_SETS[name]
    entries = kind.pick(real["files"], n) if real["files"] else [{"path": f"data/{i:05d}.png"} for i in range(n)]
    made = [(f, *kind.make(rng, f["path"], i)) for i, f in enumerate(entries)]
    keep = [img for _, _, img in made]
    files, archive = [], None
    if real.get("archive"):  # one archive of all the images (anime faces): a zip
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w") as z:
            for f, data, _ in made:
                z.writestr(zipfile.ZipInfo(f["path"], date_time=(2020, 1, 1, 0, 0, 0)), data)
        data = buf.getvalue()
        dest = served_path(served, real["archive"]["url"])
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes(data)
        archive = {**real["archive"], "url": local_url(base_url, real["archive"]["url"]),
                   "sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}
    else:
        for f, data, _ in made:
            dest = served_path(served, f["url"])
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.write_bytes(data)
            files.append({"url": local_url(base_url, f["url"]), "path": f["path"],
                          "sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)})
    manifest = {
        "name": name,
        "description": f"SYNTHETIC dry-run stand-in for {name}: {len(made)} images; real: {real['description']}",
        "source": f"ganrepro.dryrun.fixtures (synthetic), served from {base_url}; real: {real['source']}",
        "license": "synthetic",
        "notes": "paper dry run: shapes and protocols only, no results. Same paths and format as the real manifest.",
        **({"archive": archive} if archive else {}),
        "files": files,
    }
    manifests.mkdir(parents=True, exist_ok=True)
    (manifests / f"{name}.json").write_text(json.dumps(manifest, indent=1) + "\n")
    return keep


def has_fixture(name: str) -> bool:
    return name in TORCHVISION_BUILDERS or name in MANIFEST_SETS


def build(name: str, raw_root: Path, manifests: Path, served: Path, base_url: str, seed: int = 0) -> list[Image.Image]:
    """Build dataset `name`'s fixture: torchvision files into <raw_root>/<name>/, or a manifest and its
    served files. Returns some of its images. Offline sets (mnist5k) need none: returns []."""
    rng = np.random.default_rng([seed, sum(name.encode())])
    if name in TORCHVISION_BUILDERS:
        return TORCHVISION_BUILDERS[name](Path(raw_root) / name, rng)
    if name in MANIFEST_SETS:
        return build_manifest(name, Path(manifests), Path(served), base_url, rng)
    return []
