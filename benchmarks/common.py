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
    dev = dev or device()
    name = torch.cuda.get_device_name(dev) if dev.type == "cuda" else f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores"
    return {"device": f"{dev.type}: {name}", "torch": torch.__version__, "python": platform.python_version(),
            "threads": torch.get_num_threads()}


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
