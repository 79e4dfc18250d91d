"""Render reports/ from the metric files: one page per paper, the experiment's page, the runs page,
the index, a CSV (and Markdown) beside every table, claims.csv, and the figures (PNG).

Every table puts the paper's value beside ours at the current profile, in a few narrow columns; how
each was measured (both protocols, the data) is listed under it, once for what all rows share and in a
numbered note per row that differs (`page_table`), so the numbers can be read at a glance. The CSVs
keep every column in full.
A quick-profile page opens with a banner saying its numbers are not paper-scale results; a dry run's
(`dry_run: true`, `make paper-dryrun`) with one saying it checks shapes and protocols only, no results.
"""
from __future__ import annotations

import numbers
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from ganrepro import paths, pipeline, records
from ganrepro.config import Params, RunConfig
from ganrepro.report.claims import (REFERENCE_ROWS, REFERENCED, TABLE_COLUMNS, Metrics, check_claims, describe,
                                    paper_tables, reference_rows, seeds_text, unit)
from ganrepro.report.figures import FIGURES, SHOWS, FigureContext, all_fid_curves, copy, plot_losses
from ganrepro.utils import atomic_path, read_json

RUN_METRICS = {  # evaluate JSON key -> how the experiment and runs tables name it
    "fid": "FID", "kid": "KID", "fid_paper_n": "FID at the paper's n_fake", "kid_paper_n": "KID at the paper's n_fake",
    "inception_score": "Inception Score", "lpips_real_fake": "LPIPS real x fake", "lpips_diversity": "LPIPS diversity",
}


def load_claims(path: Path) -> dict:
    claims = yaml.safe_load(Path(path).read_text()) or {}
    for key in ("papers", "values", "claims"):
        if key not in claims:
            raise ValueError(f"{path}: missing top-level key {key!r} (valid: papers, values, claims)")
    return claims


def data_label(run: RunConfig) -> str:
    return f"{run.data} (quick stand-in for {run.dataset})" if run.substituted else run.data


def published_for(run: RunConfig, params: Params, claims: dict) -> dict[str, dict]:
    """metric -> the published value of a paper run with the same preset and dataset as `run`."""
    same = {name for name, spec in params.runs.items() if spec.preset == run.preset and spec.dataset == run.dataset}
    return {v["metric"]: v for v in claims["values"] if v.get("run") in same and v.get("value") is not None}


def run_table(run: RunConfig, evaluation: dict, published: dict[str, dict], reference: dict | None = None) -> pd.DataFrame:
    """One row per metric and backend we computed for `run`, with the paper's value where one matches,
    then the reference rows (real-image floor, uniform noise) of its FID and IS backends."""
    rows = []
    for metric, label in RUN_METRICS.items():
        for backend, res in evaluation.get(metric, {}).items():
            pub = published.get(metric, {})
            same_backend = (pub.get("protocol") or {}).get("backend") in (None, backend)
            rows.append({
                "paper": pub.get("paper", ""), "table": pub.get("table", ""), "row": pub.get("row", run.preset),
                "metric": f"{label} ({backend})",
                "paper_value": pub.get("value") if pub else None,
                "paper_protocol": describe(pub.get("protocol") or {}) if pub else "",
                "our_value": res.get("value"), "our_seeds": "", "unit": unit(metric),
                "protocol": (describe(res.get("protocol", {})) or res.get("skipped", ""))
                            + ("" if same_backend else "; not the paper's backend"),
                "profile": run.profile, "data": data_label(run),
            })
    m = Metrics(reference={run.name: reference or {}})
    for metric in REFERENCED:
        for backend, res in evaluation.get(metric, {}).items():
            if "value" in res:
                rows += [{**r, "metric": f"{RUN_METRICS[metric]} ({backend})"}
                         for r in reference_rows(run.name, metric, backend, m, run.profile, data_label(run))
                         if backend in (reference or {}).get("real", {}).get(metric, {})]
    return pd.DataFrame(rows, columns=TABLE_COLUMNS)


@dataclass(frozen=True)
class View:
    """How a table shows on a page. `columns` (DataFrame column -> header) are the table, a column
    empty on every row left out; `notes` (column -> side, e.g. "paper" or "ours") are how the numbers
    were measured, printed under the table: once what every row shares, then a numbered note per
    distinct rest, which the row names in its `notes` column. The CSV beside it keeps every column."""

    columns: dict[str, str]
    notes: dict[str, str]
    whole: frozenset[str] = frozenset({"our_seeds", "fid_over_seeds", "unit"})  # cells kept on one line


_VALUES = {"row": "row", "metric": "metric", "paper_value": "paper", "our_value": "ours",
           "our_seeds": "over seeds", "unit": "unit"}
PAPER_VIEW = View(_VALUES, {"paper_protocol": "paper", "profile": "ours", "data": "ours", "protocol": "ours"})
EXPERIMENT_VIEW = View(_VALUES, {"paper": "paper", "table": "paper", **PAPER_VIEW.notes})
RUNS_VIEW = View({"run": "run", "data": "data", "steps": "steps", "final_loss_d": "loss D",
                  "final_loss_g": "loss G", "fid": "FID", "fid_over_seeds": "FID over seeds",
                  "same_training_as": "same training as"},
                 {"profile": "run", "img_size": "run", "fid_protocol": "FID"})  # preset, feeds: runs_page
NBSP = "\u00a0"  # a no-break space: a browser does not wrap a cell there
_PART = re.compile(r"; |, (?=[\w.]+=)")  # between a protocol's parts: "a=1, b=x, y; c=2" -> a=1 | b=x, y | c=2


def cell(value) -> str:
    """A table cell's text: a number exactly as the CSV has it (4.0 as 4), a bool as yes/no, NaN/None empty."""
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return ""
    if isinstance(value, (bool, np.bool_)):
        return "yes" if value else "no"
    if isinstance(value, numbers.Real):
        return str(int(value)) if float(value).is_integer() else repr(float(value))
    return str(value).replace("|", "\\|")


def parts(column: str, value) -> list[str]:
    """A protocol cell split into its parts ("dims=64"); any other cell as the one part "column=value"."""
    text = cell(value)
    if not text:
        return []
    return _PART.split(text) if column.endswith("protocol") else [f"{column}={text}"]


def page_table(df: pd.DataFrame, view: View) -> str:
    """`df` as a narrow Markdown table (`view.columns`) with how its numbers were measured listed under
    it (`view.notes`): once what every row shares, then a numbered note per distinct rest of a row."""
    if df.empty:
        return "(no rows)"
    rows = df.to_dict("records")
    shared, own = split_notes(rows, view.notes)
    numbered = list(dict.fromkeys(n for n in own if n))  # note k is numbered[k - 1]
    columns = [c for c in view.columns if c in df and any(cell(r[c]) for r in rows)]

    def text(column: str, row: dict) -> str:
        shown = cell(row[column]) or "—"
        return shown.replace(" ", NBSP) if column in view.whole else shown

    table = pd.DataFrame({view.columns[c]: [text(c, r) for r in rows] for c in columns})
    numeric = lambda c: all(isinstance(r[c], numbers.Real) or not cell(r[c]) for r in rows)  # noqa: E731
    align = ["right" if numeric(c) else "left" for c in columns]
    if numbered:
        table["notes"] = [str(numbered.index(n) + 1) if n else "" for n in own]
        align.append("left")
    notes = ([f"- all rows: {shared}"] if shared else []) + [f"- ({k}) {n}" for k, n in enumerate(numbered, 1)]
    md = table.to_markdown(index=False, disable_numparse=True, colalign=align)
    return md + ("\n\n" + "\n".join(notes) if notes else "")


def split_notes(rows: list[dict], notes: dict[str, str]) -> tuple[str, list[str]]:
    """What the `notes` columns of every row share, and what each row adds to that, as text such as
    "paper: batch=1; ours: data=mnist5k" (sides in the order `notes` names them; "" for nothing)."""
    sides = list(dict.fromkeys(notes.values()))
    own = [{s: list(dict.fromkeys(p for c, side in notes.items() if side == s for p in parts(c, r.get(c))))
            for s in sides} for r in rows]
    common = {s: [p for p in own[0][s] if all(p in o[s] for o in own)] for s in sides}
    text = lambda by_side: "; ".join(f"{s}: {', '.join(ps)}" for s, ps in by_side.items() if ps)  # noqa: E731
    return text(common), [text({s: [p for p in o[s] if p not in common[s]] for s in sides}) for o in own]


def claims_table(verdicts: pd.DataFrame) -> str:
    """The claims, a line per tested pair `a < b`: the published numbers beside ours, and whether the
    whole claim holds on each (on its first line); the claims' wording and the profile under it."""
    if verdicts.empty:
        return "(no claims)"
    nobreak = lambda text: text.replace(" < ", f"{NBSP}<{NBSP}")  # noqa: E731  "a < b" stays on one line
    rows, notes = [], []
    for c in verdicts.to_dict("records"):
        pairs = zip(*(c[k].split("; ") for k in ("test", "paper_numbers", "our_numbers")))
        for k, (test, theirs, ours) in enumerate(pairs):
            rows.append({"claim": "" if k else f"`{c['claim_id']}`", "test": nobreak(test),
                         "paper": nobreak(theirs), "ours": nobreak(ours),
                         "holds (paper)": "" if k else cell(c["paper_direction"]) or "—",
                         "holds (ours)": "" if k else cell(c["direction_reproduced"]) or "—"})
        notes.append(f"- `{c['claim_id']}`" + (f" ({c['paper']})" if "paper" in c else "") + f": {c['claim']}")
    profiles = ", ".join(dict.fromkeys(verdicts["profile"].astype(str)))
    return (pd.DataFrame(rows).to_markdown(index=False, disable_numparse=True) + "\n\n" + "\n".join(notes)
            + f"\n\nOurs at profile `{profiles}`; `—`: a number is missing, so the claim cannot be tested.")


def write_table(df: pd.DataFrame, stem: Path, markdown: str) -> tuple[Path, Path]:
    """`df` in full as CSV, and beside it `markdown`, the table as its page shows it (`page_table`)."""
    csv, md = stem.with_suffix(".csv"), stem.with_suffix(".md")
    with atomic_path(csv) as tmp:
        df.to_csv(tmp, index=False)
    with atomic_path(md) as tmp:
        tmp.write_text(markdown + "\n")
    return csv, md


DRY_RUN_BANNER = "paper dry run: shapes and protocols only, no results"


def banner(params: Params, run: RunConfig) -> str:
    prof = params.active
    if prof.dry_run:  # in place of the paper banner; beside the quick one, were a quick profile a dry run
        steps = f"{prof.steps} generator steps" if prof.steps else "its own step counts"
        dry = (f"> **{DRY_RUN_BANNER}.** Profile `{params.profile}` ran with `dry_run: true`: every "
               f"run trained {steps} on device `{prof.device}`, on whatever data and weight files the workspace "
               "held (the dry run's synthetic fixtures and random stand-ins). Every number below checks that "
               "the pipeline runs; none is a result, at any scale. See `reports/paper-plan.md` for what "
               "`make paper` will need.")
        if params.profile == "paper":
            return dry
        return dry + "\n>\n" + _quick_banner(params, run)
    if params.profile == "paper":
        return "> **Paper profile**: the papers' datasets, sizes and step counts."
    return _quick_banner(params, run)


def _quick_banner(params: Params, run: RunConfig) -> str:
    return (
        f"> **Quick profile** ({params.active.description}). "
        f"`{run.data}` stands in for `{run.dataset}`, and FID uses the offline digit-classifier features "
        "unless Inception's weights are cached. **These numbers are not paper-scale results** and are "
        "not comparable with the papers' values printed beside them."
    )


def slug(text: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in text.lower()).strip("_")[:60]


def paper_page(params: Params, spec: dict, tables: list[tuple[str, str, str, list[str]]], claims_md: str,
               figures_md: list[str], runs: list[RunConfig], banner_run: RunConfig) -> str:
    """A paper's page. `tables`: (title, Markdown, CSV stem, the figures shown right under it), so that
    a figure sits beside the numbers it plots; `figures_md`: the other figures (samples, losses)."""
    table_md = "\n".join(f"### {title}\n\n{md}\n\n([CSV](tables/{stem}.csv))\n"
                         + "".join("\n" + re.sub("^### ", "#### ", f) for f in beside)  # a level under its table
                         for title, md, stem, beside in tables)
    run_list = "\n".join(f"| `{r.name}` | {r.preset} | {data_label(r)} | {params.runs[r.name].feeds} |" for r in runs)
    return f"""# {spec['title']}

{banner(params, banner_run)}

Regenerated by `dvc repro` from `reports/metrics/` and the published numbers in
[`claims.yaml`](claims.yaml). Each table puts the paper's number beside ours; under it, how each
was measured (and `data`, the dataset we trained on): once for what all rows share, then a numbered
note for each row that differs (its `notes` column). The CSV beside each table has every column.

## Headline claims

{claims_md}

## Tables

{table_md}
## Figures

{chr(10).join(figures_md)}
## Runs

| run | preset | data | feeds |
|---|---|---|---|
{run_list}
"""


def experiment_page(params: Params, run: RunConfig, table_md: str, profile: dict, train: dict) -> str:
    prof = profile.get(run.name, {})
    return f"""# The experiment: `{run.preset}` on `{run.dataset}`

{banner(params, run)}

Reproduces: {run.paper}. Knobs (`dvc exp run -S key=value`): model=`{params.model}`,
dataset=`{params.dataset}`, lr=`{params.lr}`, steps=`{params.steps}`, seed=`{params.seed}`.
Resolved: {run.img_size}px, batch {run.batch_size}, lr_G {run.lr_g:g}, lr_D {run.lr_d:g},
betas {tuple(run.betas)}, {train.get('steps')} generator steps, arch {run.arch}.

## Metrics

{table_md}

## Samples (fixed z, end of training)

![samples](figures/{run.name}_samples.png)

## Losses

![losses](figures/{run.name}_losses.png)

## Cost

| peak memory (MiB) | seconds / step | images / s (training) | params G | params D | GFLOP / step | device | method |
|---|---|---|---|---|---|---|---|
| {prof.get('peak_memory_mb')} | {prof.get('seconds_per_step')} | {train.get('images_per_second')} | {prof.get('params_g', '')} | {prof.get('params_d', '')} | {_gflop(prof.get('flops_per_step'))} | {prof.get('device')} | {prof.get('memory_method')} |
"""


def _gflop(flops: int | None) -> str:
    return "" if flops is None else f"{flops / 1e9:.3g}"


def reference_table(m: Metrics) -> str:
    """The reference rows of every set the runs use: FID and IS per backend, real images and noise."""
    rows, first = [], {}
    for name, key in m.reference_set.items():
        first.setdefault(key, name)  # a set's numbers, from its first run
    for key, name in first.items():
        for which, label in REFERENCE_ROWS.items():
            for metric in REFERENCED:
                for backend, res in m.reference[name][which].get(metric, {}).items():
                    if "value" in res:
                        rows.append(f"| {key} | {label} | {RUN_METRICS[metric]} ({backend}) | {cell(res['value'])} |")
    if not rows:
        return "(this profile computes no reference rows: `reference_rows: false`)"
    return "| set | images | metric | value |\n|---|---|---|---|\n" + "\n".join(rows)


def index_page(params: Params, run: RunConfig, claims: dict, verdicts: pd.DataFrame, m: Metrics | None = None,
               curves: str | None = None) -> str:
    m = m or Metrics()
    curves_md = f"\n![FID of every run over training]({curves})\n" if curves else ""
    papers = "\n".join(f"| {spec['title']} | [{name}.md]({name}.md) |" for name, spec in claims["papers"].items())
    return f"""# ganrepro report

{banner(params, run)}

Regenerated by `dvc repro` from the metric files in `reports/metrics/`. Profile: **{params.profile}**.

## Papers

| paper | page |
|---|---|
{papers}

## Headline claims: does our run reproduce their direction?

{claims_table(verdicts)}

(also [`claims.csv`](claims.csv); `holds (ours)`: our numbers go the claim's way; `holds (paper)`: the
published ones do, on the same test)

## Reading a number: the reference rows

Every FID and IS on these pages is printed beside two rows measured under the same protocol (stage
`reference`): real images against the same real statistics (the floor a perfect generator would
score) and images of uniform noise (what a generator that learned nothing scores).

{reference_table(m)}

## Learning: FID over training
{curves_md}
Each run's FID at its training snapshots (`reports/plots/<run>_fid.csv`), against its share of
training, with the floor (dashed) and noise (dotted); each paper's page has its runs' curves by epoch.

## Also

* [The experiment](experiment.md): `{run.preset}` on `{run.dataset}`, the run you iterate on.
* [The papers' runs](runs.md): every run, with samples, losses and its headline metrics.

## Reading the tables

* `paper` is the published number; `ours` is ours at profile `profile`, on the dataset `data`
  (at the quick profile, the offline stand-in).
* Under each table, how both were measured (feature backend, weight file, dims, numbers of real and
  fake images, resize): once for what all rows share, then a numbered note for each row that differs
  (its `notes` column). Values with different protocols are not comparable.
* The CSV beside each table has every column in full (`paper_value`, `paper_protocol`, `our_value`,
  `protocol`, ...).
"""


def runs_table(runs: list[RunConfig], m: Metrics, train: dict[str, dict], feeds: dict) -> pd.DataFrame:
    """One row per paper run: what it feeds, the data used, its final losses and FID (and over seeds)."""
    rows = []
    for run in runs:
        fid = next((dict(backend=b, **r) for b, r in m.evaluate[run.name].get("fid", {}).items() if "value" in r), {})
        rows.append({
            "run": run.name, "preset": run.preset, "feeds": feeds.get(run.name, ""),
            "data": data_label(run), "img_size": run.img_size, "steps": train[run.name].get("steps"),
            "final_loss_d": train[run.name].get("final_loss_d"), "final_loss_g": train[run.name].get("final_loss_g"),
            "fid": fid.get("value"), "fid_over_seeds": seeds_text(run.name, "fid", fid.get("backend"), m),
            "fid_protocol": describe(fid.get("protocol", {})), "profile": run.profile,
            "same_training_as": train[run.name].get("same_training_as") or "",
        })
    for key in dict.fromkeys(m.reference_set[r.name] for r in runs if r.name in m.reference_set):
        first = next(r for r in runs if m.reference_set.get(r.name) == key)  # the set's first run
        for which, label in REFERENCE_ROWS.items():
            fid = next((dict(backend=b, **r) for b, r in m.reference[first.name][which].get("fid", {}).items()
                        if "value" in r), {})
            rows.append({"run": label, "data": data_label(first), "img_size": first.img_size, "fid": fid.get("value"),
                         "fid_protocol": describe(fid.get("protocol", {})), "profile": first.profile})
    return pd.DataFrame(rows)


def runs_page(params: Params, runs: list[RunConfig], table_md: str) -> str:
    grids = "\n".join(
        f"| `{r.name}` | {r.preset} | {params.runs[r.name].feeds if r.name in params.runs else ''} "
        f"| ![samples](figures/{r.name}_samples.png) | ![losses](figures/{r.name}_losses.png) |"
        for r in runs
    )
    return f"""# The papers' runs

{banner(params, runs[0])}

Every run in params.yaml `runs:`, trained by `dvc repro` (stage `train_run@<run>`), evaluated by
`evaluate_run@<run>`. FID here is on the first available feature backend; see each run's
`reports/metrics/evaluate/<run>.json` for all metrics, `reports/protocols/evaluate/<run>.json` for their protocols.

{table_md}

| run | preset | feeds | samples (fixed z) | losses |
|---|---|---|---|---|
{grids}
"""


def load_metrics(params: Params, runs: list[RunConfig]) -> tuple[Metrics, dict[str, dict]]:
    from ganrepro.config import eval_config

    def csv(path: Path) -> pd.DataFrame | None:
        return pd.read_csv(path) if path.exists() and path.stat().st_size else None

    ref_file = paths.METRICS / "reference.json"
    reference = records.read(ref_file) if ref_file.exists() else {}

    m = Metrics(
        evaluate={r.name: records.read(pipeline.metrics_file("evaluate", r), pipeline.metrics_key(r)) for r in runs},
        profile=records.read(paths.METRICS / "profile.json"),
        history={r.name: csv(paths.PLOTS / f"{r.name}_losses.csv") for r in runs},
        curve={r.name: csv(paths.PLOTS / f"{r.name}_fid.csv") for r in runs},
    )
    keys = {r.name: pipeline.reference_key(r, eval_config(params, r.name).fid.dims) for r in runs}
    m.reference_set = {name: k for name, k in keys.items() if k in reference}
    m.reference = {name: reference[k] for name, k in m.reference_set.items()}
    m.history = {k: v for k, v in m.history.items() if v is not None}
    m.curve = {k: v for k, v in m.curve.items() if v is not None}
    return m, {r.name: records.read(pipeline.metrics_file("train", r), pipeline.metrics_key(r)) for r in runs}


def write_pages(pages: dict[Path, str]) -> list[Path]:
    for path, text in pages.items():
        with atomic_path(path) as tmp:
            tmp.write_text(text)
    return list(pages)


def render_papers(params: Params, runs: dict[str, RunConfig], m: Metrics, train: dict, claims: dict,
                  verdicts: pd.DataFrame, out: Path, banner_run: RunConfig) -> list[Path]:
    """One page per paper in claims.yaml, with its tables (CSV beside each), claims and figures."""
    data = {name: data_label(r) for name, r in runs.items()}
    data |= {name: row["data"] for name, row in m.profile.items() if "profile_only" in row}  # e.g. wgan_pokemon@reference
    tables = paper_tables(claims, m, params.profile, data)
    written, pages = [], {}
    for name, spec in claims["papers"].items():
        page_runs = [runs[r] for r in spec["runs"] if r in runs]
        mine, rest = [], []
        for (paper, title), df in tables.items():
            if paper == name:
                stem, md = f"{name}_{slug(title)}", page_table(df, PAPER_VIEW)
                written += write_table(df, out / "tables" / stem, md)
                mine.append((title, md, stem, []))
        ctx = FigureContext(name, page_runs, m, train, claims, out)
        for f in spec.get("figures", []):
            figure = FIGURES.get(f, key=f"claims.yaml papers.{name}.figures")(ctx)
            plotted = [t for t in mine if set(tables[(name, t[0])].metric) & SHOWS.get(f, set())]
            (plotted[-1][3] if plotted else rest).append(figure)  # under the last table of what it plots
        claims_md = claims_table(verdicts[verdicts.paper == name].drop(columns=["paper"]))
        pages[out / f"{name}.md"] = paper_page(params, spec, mine, claims_md, rest, page_runs,
                                               page_runs[0] if page_runs else banner_run)
    return written + write_pages(pages)


def render(params: Params, runs: list[RunConfig], out: Path, claims: dict) -> list[Path]:
    m, train = load_metrics(params, runs)
    experiment, paper_runs = runs[0], runs[1:]
    verdicts = check_claims(claims, m, params.profile)
    with atomic_path(out / "claims.csv") as tmp:
        verdicts.to_csv(tmp, index=False)
    for run in runs:  # the experiment's and runs page's figures
        copy(paths.RUNS / run.name / "samples.png", out / "figures" / f"{run.name}_samples.png")
        if run.name in m.history:
            plot_losses(m.history[run.name], out / "figures" / f"{run.name}_losses.png", f"{run.name} ({run.profile} profile)")
    table = run_table(experiment, m.evaluate[experiment.name], published_for(experiment, params, claims),
                      m.reference.get(experiment.name))
    table_md = page_table(table, EXPERIMENT_VIEW)
    written = [out / "claims.csv", *write_table(table, out / "tables" / f"{experiment.name}_metrics", table_md)]
    runs_df = runs_table(paper_runs, m, train, {name: spec.feeds for name, spec in params.runs.items()})
    runs_md = page_table(runs_df, RUNS_VIEW)
    written += write_table(runs_df, out / "tables" / "runs", runs_md)
    written += render_papers(params, {r.name: r for r in paper_runs}, m, train, claims, verdicts, out, experiment)
    curves = all_fid_curves(FigureContext("index", runs, m, train, claims, out)) if m.curve else None
    return written + write_pages({
        out / "experiment.md": experiment_page(params, experiment, table_md, m.profile, train[experiment.name]),
        out / "runs.md": runs_page(params, paper_runs or [experiment], runs_md),
        out / "index.md": index_page(params, experiment, claims, verdicts, m, curves),
    })
