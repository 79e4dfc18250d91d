"""Files that exist but cannot be read: a copy or download cut short, a disk that filled, a bit flip.

    with reading(path, "checkpoint", "retrain with `dvc repro -f train`"):
        obj = torch.load(path)

Inside `reading`, an error becomes a CorruptFileError (one line: the file, what it is, why it is
unreadable, what to do) only when the file itself fails `unreadable`'s check; any other error
passes through unchanged. The check runs only after a failure, so reading a good file costs nothing.

`unreadable` knows torch's two formats and numpy's .npz: a zip archive (torch >= 1.6, .npz) must
have its central directory (the end of the file: a truncated copy has none) and every member must
pass its CRC-32 (torch.load itself does not check them); torch's older pickle format (the 2017
torchvision weight files) must load with weights_only=True.
"""
from __future__ import annotations

import contextlib
import os
import pickle
import zipfile
from pathlib import Path
from typing import Iterator


class CorruptFileError(Exception):
    """A file that exists but is truncated or corrupt; the message says what to do about it."""

    def __init__(self, path: str | os.PathLike, what: str, remedy: str, reason: str):
        self.path, self.what, self.remedy, self.reason = Path(path), what, remedy, reason
        super().__init__(f"{what} {path} is unreadable, truncated or corrupt ({reason}); {remedy}")


def redownload(url: str) -> str:
    """The remedy for a damaged weight file of the torch cache."""
    return f"delete it and download it again from {url} (offline machines: copy a good copy there)"


def one_line(e: BaseException) -> str:
    """`Type: the first line of its message`."""
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0]}" if text else type(e).__name__


def unreadable(path: str | os.PathLike) -> str | None:
    """Why `path` is not a complete torch or .npz file, or None if it reads as one."""
    path = Path(path)
    size = path.stat().st_size
    if size == 0:
        return "the file is empty"
    with open(path, "rb") as f:
        head = f.read(4)
    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as z:
                bad = z.testzip()
            return None if bad is None else f"{bad} inside it fails its CRC check"
        if head == b"PK\x03\x04":
            return f"a zip archive with no central directory at its end: cut short, {size:,} bytes"
        import torch

        torch.load(path, map_location="cpu", weights_only=True)  # torch's legacy (pickle) format
        return None
    except pickle.UnpicklingError as e:
        if "Weights only load failed" in str(e):
            return None  # complete, but holds more than tensors: not a question of damage
        return one_line(e)
    except Exception as e:  # noqa: BLE001 - any failure to read it is the answer
        return one_line(e)


def check(path: str | os.PathLike, what: str, remedy: str) -> None:
    """Raise CorruptFileError if the existing file `path` is unreadable (reads it all: for files
    whose damage would only show late, or silently: torch.load ignores bad CRCs)."""
    if (reason := unreadable(path)) is not None:
        raise CorruptFileError(path, what, remedy, reason)


@contextlib.contextmanager
def reading(path: str | os.PathLike, what: str, remedy: str) -> Iterator[None]:
    """Turn an error raised while `path` is read into a CorruptFileError, if the file is unreadable."""
    try:
        yield
    except CorruptFileError:
        raise
    except Exception as e:
        try:
            reason = unreadable(path) if Path(path).is_file() else None
        except OSError:  # cannot even be opened (permissions): not a damaged file
            reason = None
        if reason is None:
            raise
        raise CorruptFileError(path, what, remedy, reason) from e
