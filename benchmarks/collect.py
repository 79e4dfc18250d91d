"""Merge every benchmark's section into reports/benchmarks.md and its headline ratios into reports/benchmarks.json.

Reads reports/benchmarks/<name>.md and <name>.json, as `common.write_section` writes them. Sections go in a
fixed order (deq_vs_wgan, pipeline_overhead, eval_cost, scaling, then any others by name); a known section
with no file yet is listed as "not run yet", and so is a headline key no section has given (in the .json:
value null, status "not run yet", and the command that would measure it).

    python benchmarks/collect.py
"""
from __future__ import annotations

import argparse
import json

from common import OUT, ROOT

ORDER = {  # name -> (title if not run yet, what it measures)
    "deq_vs_wgan": ("DEQ-GAN against WGAN-GP: memory and time",
                    "peak memory and time per step of the DEQ generator against the WGAN-GP baseline "
                    "(`deq_over_wgan_memory`, `deq_over_wgan_time`; the DEQ-GAN paper reports 0.39-0.47x and 4-4.5x)"),
    "pipeline_overhead": ("Pipeline overhead",
                          "images per second of our training loop (MLflow, tqdm, grids, checkpoints) against a bare "
                          "PyTorch loop on the same DCGAN and batches (`pipeline_over_bare_throughput`; goal >= 0.95)"),
    "eval_cost": ("Evaluation cost",
                  "FID with the real statistics cached against the first computation (`fid_cached_over_first`; "
                  "goal <= 0.10), and images per second of feature extraction"),
    "scaling": ("Scaling", "seconds per generator step against resolution and batch size, for every family"),
}
HEADLINES = {  # headline key -> the benchmark that gives it
    "deq_over_wgan_memory": "deq_vs_wgan",
    "deq_over_wgan_time": "deq_vs_wgan",
    "deq_over_wgan_ref_memory_ours": "deq_vs_wgan",  # at the paper's setting, against the reference code's WGAN
    "deq_over_wgan_ref_memory_reference": "deq_vs_wgan",
    "deq_over_wgan_ref_time": "deq_vs_wgan",
    "pipeline_over_bare_throughput": "pipeline_overhead",
    "fid_cached_over_first": "eval_cost",
}


def names() -> list[str]:
    found = sorted(p.stem for p in OUT.glob("*.md")) if OUT.exists() else []
    return [*ORDER, *(n for n in found if n not in ORDER)]


def intro(order: list[str]) -> str:
    lines = [
        "# Benchmarks",
        "",
        "Measurements, not tests: nothing here asserts a number or fails a build. Each benchmark is a script "
        "under `benchmarks/`, runnable alone (`python benchmarks/<name>.py [--quick]`), and states its own "
        "device, versions and exact command below its table. `make bench` reruns all of them at quick scale on "
        "the CPU and regenerates this page and `reports/benchmarks.json` (the headline ratios, each with its "
        "device and command).",
        "",
    ]
    for n in order:
        what = ORDER.get(n, (None, "see its section"))[1]
        lines.append(f"* `benchmarks/{n}.py`: {what}.")
    return "\n".join(lines)


def headline_table(merged: dict) -> str:
    rows = ["| headline | value | device | command |", "|---|---|---|---|"]
    for k in [*HEADLINES, *sorted(set(merged) - set(HEADLINES))]:
        v = merged.get(k)
        rows.append(f"| `{k}` | {v['value']} | {v['device']} | `{v['command']}` |" if v
                    else f"| `{k}` | not run yet | | `python benchmarks/{HEADLINES[k]}.py --quick` |")
    return "\n".join(rows)


def main() -> None:
    argparse.ArgumentParser(description=__doc__.split("\n")[0]).parse_args()
    order = names()
    merged: dict = {}
    sections = []
    for n in order:
        md, js = OUT / f"{n}.md", OUT / f"{n}.json"
        if md.exists():
            sections.append(md.read_text().strip())
        else:
            title = ORDER.get(n, (n,))[0]
            sections.append(f"## {title}\n\nNot run yet: `python benchmarks/{n}.py --quick`.")
        if js.exists():
            merged.update(json.loads(js.read_text()))
    page = "\n\n".join([intro(order), "## Headline ratios\n\n" + headline_table(merged), *sections]) + "\n"
    (ROOT / "reports" / "benchmarks.md").write_text(page)
    missing = lambda k: {"value": None, "device": None, "command": f"python benchmarks/{HEADLINES[k]}.py --quick",  # noqa: E731
                         "status": "not run yet"}
    out = {k: merged.get(k) or missing(k) for k in HEADLINES} | {k: v for k, v in merged.items() if k not in HEADLINES}
    (ROOT / "reports" / "benchmarks.json").write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote reports/benchmarks.md ({len(sections)} sections, "
          f"{sum((OUT / f'{n}.md').exists() for n in order)} run) and reports/benchmarks.json "
          f"({sum(k in merged for k in out)} of {len(out)} headlines measured)")


if __name__ == "__main__":
    main()
