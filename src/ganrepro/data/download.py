"""Downloads that either finish with the right sha256 or leave nothing behind.

`fetch_url` streams into a temporary file beside the destination, hashing as it goes, and renames
it into place only when the hash matches; a bad checksum or a broken transfer deletes the
temporary file and raises an error naming the URL and both hashes.
"""
from __future__ import annotations

import hashlib
import shutil
import tarfile
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

from tqdm import tqdm

from ganrepro.utils import atomic_path, sha256_file


class DownloadError(RuntimeError):
    """A download that could not be completed (network, truncation or checksum)."""


class ChecksumError(DownloadError):
    def __init__(self, what: str, expected: str, actual: str):
        super().__init__(
            f"checksum mismatch for {what}: expected sha256 {expected}, got {actual}; "
            "nothing was kept. The file may be corrupted or changed upstream."
        )
        self.expected, self.actual = expected, actual


def fetch_url(url: str, dest: str | Path, sha256: str | None, timeout: float = 60.0) -> Path:
    """Download `url` to `dest`, verified against `sha256` (None: report the hash, keep the file).

    A `dest` that already exists with the right hash is kept as it is (no network access).
    """
    dest = Path(dest)
    if dest.exists() and sha256 and sha256_file(dest) == sha256:
        return dest
    with atomic_path(dest) as tmp:
        digest = _stream(url, tmp, timeout)
        if sha256 and digest != sha256:
            raise ChecksumError(url, sha256, digest)
        if not sha256:
            print(f"warning: no sha256 pinned for {url}; got {digest}. Pin it in the manifest.")
    return dest


def _stream(url: str, out: Path, timeout: float) -> str:
    h = hashlib.sha256()
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r, open(out, "wb") as f:
            total = int(r.headers.get("Content-Length") or 0) or None
            done = 0
            with tqdm(total=total, unit="B", unit_scale=True, desc=Path(url).name, leave=False) as bar:
                while block := r.read(1 << 16):
                    f.write(block)
                    h.update(block)
                    done += len(block)
                    bar.update(len(block))
            if total is not None and done != total:
                raise DownloadError(f"{url}: transfer ended after {done} of {total} bytes")
    except (urllib.error.URLError, OSError, ConnectionError) as e:
        if isinstance(e, DownloadError):
            raise
        raise DownloadError(f"could not download {url}: {e}") from e
    return h.hexdigest()


def verify_file(path: str | Path, sha256: str) -> Path:
    """Check a local file against its pinned hash (used for files shipped inside packages)."""
    actual = sha256_file(path)
    if actual != sha256:
        raise ChecksumError(str(path), sha256, actual)
    return Path(path)


def extract(archive: str | Path, dest: str | Path) -> Path:
    """Unpack a .zip or .tar(.gz) into `dest`, refusing members that would escape it."""
    archive, dest = Path(archive), Path(dest)
    tmp = dest.with_name(f".{dest.name}.extracting")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        if zipfile.is_zipfile(archive):
            with zipfile.ZipFile(archive) as z:
                for m in z.namelist():
                    if Path(m).is_absolute() or ".." in Path(m).parts:
                        raise DownloadError(f"{archive}: unsafe member path {m!r}")
                z.extractall(tmp)
        elif tarfile.is_tarfile(archive):
            with tarfile.open(archive) as t:
                try:
                    t.extractall(tmp, filter="data")
                except tarfile.FilterError as e:
                    raise DownloadError(f"{archive}: unsafe member path: {e}") from e
        else:
            raise DownloadError(f"{archive}: not a zip or tar archive")
        shutil.rmtree(dest, ignore_errors=True)
        tmp.rename(dest)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return dest
