"""A stage's result as two files: its headline numbers (a DVC metric) and the rest (a protocol file).

DVC shows every leaf of a metric file as a column of `dvc exp show` and a row of `dvc metrics
show`, strings included. So a metric file holds only the numbers a reader compares across
experiments, and everything that says how they were measured (backends' protocols, weight files'
sha256s, the device, per-seed values, final losses) goes to a sibling file under reports/protocols/,
a plain DVC out. `split` and `join` are exact inverses, so a reader (the report) gets back the
record the stage computed.

    reports/metrics/evaluate/experiment.json  {"fid": {"digit_classifier": 35.2}, "inception_score": {...}}
    reports/metrics/evaluate/<run>.json       {"<run>": {"fid": {"digit_classifier": 35.2}, ...}}
    reports/protocols/evaluate/<run>.json     {"fid": {"digit_classifier": {"protocol": {...}}}, ...}

The experiment's numbers sit at the top level, so `dvc exp show` names its columns `fid.<backend>`;
a paper run's sit under its name, so theirs read `<run>.fid.<backend>` and none collide (DVC would
otherwise prefix every column with its file's path).

A headline number is a leaf whose key is in the stage's `HEADLINE` set and whose value is an int or
a float (None, strings and booleans stay in the protocol file). A `value` leaf is written under its
parent's name, so the column reads `fid.digit_classifier`, not `fid.digit_classifier.value`.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from ganrepro import paths
from ganrepro.utils import read_json, write_json

PROTOCOLS = paths.REPORTS / "protocols"

HEADLINE: dict[str, set[str]] = {
    # per metric and backend: the value, and FID's mean over the training seeds (spreads, per-seed
    # values and protocols are in the protocol file and on the pages)
    "evaluate": {"value", "mean"},
    "train": {"train_seconds", "images_per_second"},  # `steps` would collide with the knob's column
    # per run: the Table 1 figures of DEQ-GAN, and the time per step the paper plan scales
    "profile": {"peak_memory_mb", "seconds_per_epoch", "seconds_per_step"},
    "feature_net": {"holdout_accuracy"},
}
_COLLAPSED = "value"


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def split(record: dict, headline: set[str]) -> tuple[dict, dict]:
    """(numbers, rest): the headline numbers, and everything else, each keeping the record's nesting.

    Every mapping of the record stays in `rest` (empty if all its leaves are numbers), so `join`
    knows where a collapsed `value` goes back.
    """
    numbers: dict = {}
    rest: dict = {}
    for key, value in record.items():
        if isinstance(value, dict):
            n, rest[key] = split(value, headline)
            if n:
                numbers[key] = n[_COLLAPSED] if set(n) == {_COLLAPSED} else n
        elif key in headline and _is_number(value):
            numbers[key] = value
        else:
            rest[key] = value
    return numbers, rest


def join(numbers: dict, rest: dict) -> dict:
    """The inverse of `split`."""
    out = {k: (dict(v) if isinstance(v, dict) else v) for k, v in rest.items()}
    for key, value in numbers.items():
        if isinstance(value, dict):
            out[key] = join(value, out.get(key, {}))
        elif isinstance(out.get(key), dict):
            out[key] = {**out[key], _COLLAPSED: value}
        else:
            out[key] = value
    return out


def protocol_path(metric_path: Path) -> Path:
    """.../reports/metrics/<...>.json -> .../reports/protocols/<...>.json (any project root)."""
    parts = list(Path(metric_path).parts)
    for i in range(len(parts) - 1, 0, -1):
        if parts[i] == paths.METRICS.name and parts[i - 1] == paths.REPORTS.name:
            parts[i] = PROTOCOLS.name
            return Path(*parts)
    raise ValueError(f"{metric_path}: not under {paths.METRICS}/")


def write(metric_path: Path, record: dict, stage: str, under: str | None = None) -> None:
    """Write `record` as its metric file and its protocol sibling (each atomically, protocol first).

    `under`: nest the numbers under this key (a paper run's name), so that its columns in `dvc exp
    show` read `<run>.fid.<backend>` and never collide with the experiment's own `fid.<backend>`.
    """
    numbers, rest = split(record, HEADLINE[stage])
    write_json(protocol_path(metric_path), rest)
    write_json(metric_path, {under: numbers} if under else numbers)


def read(metric_path: Path, under: str | None = None) -> dict:
    """The record a stage wrote at `metric_path` (with `under` as written): its numbers joined with
    its protocol file, if any."""
    metric_path = Path(metric_path)
    numbers = read_json(metric_path)
    numbers = numbers.get(under, {}) if under else numbers
    proto = protocol_path(metric_path)
    return join(numbers, read_json(proto) if proto.exists() else {})
