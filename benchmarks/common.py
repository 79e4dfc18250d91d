"""What every benchmark shares: the environment it ran in, and writing its section of the report.

Each benchmark is a script runnable alone (`python benchmarks/<name>.py [--quick]`). It writes
    reports/benchmarks/<name>.md     its table(s), with device, versions and the exact command
    reports/benchmarks/<name>.json   its headline ratios: {key: {"value", "device", "command"}}
and `benchmarks/collect.py` merges every section into reports/benchmarks.md and
reports/benchmarks.json. Benchmarks measure; they assert nothing (tests do that).
"""
from __future__ import annotations

import json
import os
import platform
import shlex
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "reports" / "benchmarks"
sys.path.insert(0, str(ROOT / "src"))


def device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def environment(dev: torch.device | None = None) -> dict:
    from ganrepro.profiling import environment as pipeline_environment

    dev = dev or device()
    env = pipeline_environment(dev)  # as the profile stage records it, plus the core count and Python
    cores = "" if dev.type == "cuda" else f", {os.cpu_count()} cores"
    return {**env, "device": env["device"] + cores, "python": platform.python_version()}


def load_digits(tmp: Path, sizes) -> dict[int, dict]:
    """mnist5k at each of `sizes` px, as the download and preprocess stages make it: {size: processed}."""
    from ganrepro.data.datasets import DATASETS
    from ganrepro.data.preprocess import load_processed, preprocess

    DATASETS.get("mnist5k").download(tmp / "raw")
    return {n: load_processed(preprocess("mnist5k", tmp / "raw", tmp, n)) for n in sorted(set(sizes))}


def train_feature_net(digits28: dict, cfg=None) -> dict:
    """The offline FID's digit classifier, trained (one epoch unless `cfg` says otherwise) and saved where
    its backend looks (features.DIGIT_CLASSIFIER, relative to the cwd), as the feature_net stage does.
    Returns its metrics."""
    from ganrepro.config import FeatureNetConfig
    from ganrepro.metrics.digit_classifier import train_classifier
    from ganrepro.metrics.features import DIGIT_CLASSIFIER
    from ganrepro.utils import save_torch

    cfg = cfg or FeatureNetConfig(epochs=1, batch_size=64, lr=1e-3, holdout=500, seed=0)
    net, metrics = train_classifier(digits28["images"], digits28["labels"], cfg)
    save_torch(DIGIT_CLASSIFIER, net.state_dict())
    return metrics


def command() -> str:
    """The command line that ran this benchmark, as a user would type it."""
    return "python " + " ".join(shlex.quote(a) for a in [os.path.relpath(sys.argv[0], ROOT), *sys.argv[1:]])


def write_section(name: str, title: str, body_md: str, headline: dict[str, float] | None = None,
                  dev: torch.device | None = None) -> Path:
    """Write reports/benchmarks/<name>.md (and .json with the headline ratios)."""
    env, cmd = environment(dev), command()
    OUT.mkdir(parents=True, exist_ok=True)
    md = (f"## {title}\n\n{body_md.strip()}\n\n"
          f"Device: {env['device']}; torch {env['torch']}, Python {env['python']}, {env['threads']} threads. "
          f"Command: `{cmd}`\n")
    (OUT / f"{name}.md").write_text(md)
    if headline:
        data = {k: {"value": v, "device": env["device"], "command": cmd} for k, v in headline.items()}
        (OUT / f"{name}.json").write_text(json.dumps(data, indent=2) + "\n")
    print(md)
    return OUT / f"{name}.md"
