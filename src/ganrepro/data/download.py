"""Downloads that either finish with the right sha256 or leave nothing behind, and one-line failures.

`fetch_url` streams into a temporary file beside the destination, hashing as it goes, and renames
it into place only when the hash matches; a bad checksum or a broken transfer deletes the
temporary file and raises an error naming the URL and both hashes.

A dataset whose download fails (no network, a refused Google Drive quota, a 404, a checksum or md5
mismatch) raises `DatasetDownloadError`, a `DownloadError`, so a stage prints one line and exits 2:

    <dataset>: could not download <url> (<why>); place <files> in <folder> by hand, then resume with: dvc repro download

`watch_network(on_request)` calls `on_request(url)` before every request urllib or requests makes
(torchvision, gdown and `fetch_url` all go through one of them): the datasets use it to name the
URL that failed. `probe(name)` runs a dataset's real download code into an empty temporary folder
with the network cut at the lowest level (urllib's opener, `requests.Session.request`, and the
socket's connect and name lookup as the last net) and returns the URL it was about to fetch, so a
missing package (gdown for CelebA) fails on the CPU, before a GPU machine is booked. Nothing gets
through: the first attempt raises `NetworkAttempt`, a BaseException no library's `except Exception`
swallows.
"""
from __future__ import annotations

import contextlib
import hashlib
import http.client
import shutil
import socket
import tarfile
import tempfile
import urllib.error
import urllib.request
import zipfile
from pathlib import Path
from typing import Callable, Iterator
from unittest import mock

from tqdm import tqdm

from ganrepro.utils import atomic_path, sha256_file

RESUME = "dvc repro download"
MAX_REASON = 400  # characters of the underlying error kept in the one-line message


class DownloadError(RuntimeError):
    """A download that could not be completed (network, truncation or checksum)."""


class ChecksumError(DownloadError):
    def __init__(self, what: str, expected: str, actual: str):
        super().__init__(
            f"checksum mismatch for {what}: expected sha256 {expected}, got {actual}; "
            "nothing was kept. The file may be corrupted or changed upstream."
        )
        self.expected, self.actual = expected, actual


class DatasetDownloadError(DownloadError):
    """One dataset could not be downloaded: one line naming it, the URL, where its files go by hand, how to resume."""

    def __init__(self, dataset: str, url: str, reason: str, by_hand: str):
        super().__init__(f"{dataset}: could not download {url} ({reason}); {by_hand}, then resume with: {RESUME}")
        self.dataset, self.url, self.reason, self.by_hand = dataset, url, reason, by_hand


class MissingPackageError(DatasetDownloadError):
    """A package the dataset's download needs (gdown for CelebA's Google Drive files) is not importable."""


class DownloadFailures(DownloadError):
    """Several datasets were attempted and some failed: a summary line, then one line per failure."""

    def __init__(self, failures: list[str], attempted: int):
        head = [] if len(failures) == 1 else [f"{len(failures)} of {attempted} datasets failed to download:"]
        super().__init__("\n".join(head + failures))
        self.failures = failures


def one_line(e: BaseException, limit: int = MAX_REASON) -> str:
    """`Type: message` on one line (torchvision's and gdown's messages span several), at most `limit` characters."""
    text = f"{type(e).__name__}: {' '.join(str(e).split())}"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def reason(e: BaseException, url: str) -> str:
    """Why a download of `url` failed, on one line: our own DownloadError's message (without the URL it
    repeats), or anything else's `Type: message`."""
    if isinstance(e, DownloadError) and not isinstance(e, DatasetDownloadError):
        return one_line(e).split(": ", 1)[1].replace(f"could not download {url}: ", "")
    return one_line(e)


def failed_url(requested: list[str]) -> str | None:
    """The URL a failed download was after: the first of the requests for the same file as the last one
    (torchvision's mirrors, or its https-then-http retry, name one file several ways)."""
    if not requested:
        return None
    from urllib.parse import urlparse

    def file_of(url: str) -> str:
        return urlparse(url).path.rsplit("/", 1)[-1]

    last = file_of(requested[-1])
    return next(url for url in requested if file_of(url) == last)


def download_errors() -> tuple[type[BaseException], ...]:
    """What a failed download raises: urllib/requests (OSError), torchvision (RuntimeError: md5, mirrors,
    GDrive), http.client, a bad archive, and gdown's own errors (quota, no public link)."""
    errors: tuple[type[BaseException], ...] = (
        OSError, RuntimeError, EOFError, http.client.HTTPException, tarfile.TarError, zipfile.BadZipFile)
    try:
        import gdown.exceptions

        errors += (gdown.exceptions.DownloadError,)
    except ImportError:
        pass
    return errors


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


# ---------------------------------------------------------------- watching and cutting the network
class NetworkAttempt(BaseException):
    """Raised by `cut_network` at the first request; `url` is what was about to be fetched.

    A BaseException, so torchvision's mirror loop (`except (RuntimeError, URLError)`), gdown's retries
    and our own `except Exception` wrappers let it through.
    """

    def __init__(self, url: str):
        super().__init__(url)
        self.url = url


def _request_url(request) -> str:
    return request if isinstance(request, str) else request.full_url


@contextlib.contextmanager
def watch_network(on_request: Callable[[str], None]) -> Iterator[None]:
    """Call `on_request(url)` before every request through urllib (`urlopen`, any opener) or
    `requests.Session.request` (which gdown uses) while the block runs; the request then goes ahead
    unless `on_request` raises."""
    original_open = urllib.request.OpenerDirector.open

    def opener_open(self, fullurl, *args, **kwargs):
        on_request(_request_url(fullurl))
        return original_open(self, fullurl, *args, **kwargs)

    with contextlib.ExitStack() as stack:
        stack.enter_context(mock.patch.object(urllib.request.OpenerDirector, "open", opener_open))
        try:
            import requests
        except ImportError:
            pass
        else:
            original_request = requests.Session.request

            def session_request(self, method, url, *args, **kwargs):
                on_request(str(url))
                return original_request(self, method, url, *args, **kwargs)

            stack.enter_context(mock.patch.object(requests.Session, "request", session_request))
        yield


@contextlib.contextmanager
def cut_network() -> Iterator[list[str]]:
    """No network at all while the block runs: the first request raises `NetworkAttempt(url)`.

    Cut at urllib's opener and requests' session (which know the URL), and, as the last net for
    anything else, at the socket: `socket.socket.connect`/`connect_ex`, `socket.create_connection`
    and `socket.getaddrinfo` (these raise with `host:port`). Yields the list of attempts.
    """
    attempts: list[str] = []

    def refuse(url: str, *args, **kwargs):
        attempts.append(url)
        raise NetworkAttempt(url)

    def refuse_address(address) -> str:
        return ":".join(str(part) for part in address[:2]) if isinstance(address, tuple) else str(address)

    with contextlib.ExitStack() as stack:
        stack.enter_context(watch_network(refuse))
        stack.enter_context(mock.patch.object(
            socket.socket, "connect", lambda self, address: refuse(refuse_address(address))))
        stack.enter_context(mock.patch.object(
            socket.socket, "connect_ex", lambda self, address: refuse(refuse_address(address))))
        stack.enter_context(mock.patch.object(
            socket, "create_connection", lambda address, *a, **k: refuse(refuse_address(address))))
        stack.enter_context(mock.patch.object(
            socket, "getaddrinfo", lambda host, port, *a, **k: refuse(f"{host}:{port}")))
        yield attempts


def probe(name: str) -> str:
    """Run dataset `name`'s real download code into an empty temporary folder with the network cut
    (`cut_network`); return the URL it was about to fetch.

    Everything before the first request runs for real: torchvision's dataset class, its mirror and
    integrity logic, the import of gdown for CelebA, a manifest's loading (`GANREPRO_MANIFESTS`
    honoured). A failure on the way (a missing package, a missing manifest) raises its one-line
    `DownloadError` (or FileNotFoundError), as the download stage would. An offline set (mnist5k),
    which needs no network, returns "". Nothing is kept.
    """
    from ganrepro.data.datasets import DATASETS

    spec = DATASETS.get(name, key="probe")
    with tempfile.TemporaryDirectory(prefix=f"ganrepro-probe-{name}-") as tmp, cut_network():
        try:
            spec.download(Path(tmp) / name)
        except NetworkAttempt as attempt:
            return attempt.url
        except DatasetDownloadError as e:  # its by-hand advice would name the temporary folder: leave it out
            raise DownloadError(f"probe {name}: the download of {e.url} cannot run here: {e.reason}") from e
    if spec.offline:
        return ""
    raise DownloadError(f"probe {name}: its download finished into an empty folder without any network request")
