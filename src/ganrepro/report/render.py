"""Render reports/ from the metric files: one page per paper, the experiment's page, the runs page,
the index, a CSV (and Markdown) beside every table, claims.csv, and the figures (PNG).

Every table prints the paper's value, ours at the current profile, and both protocols side by side.
A quick-profile page opens with a banner saying its numbers are not paper-scale results; a dry run's
(`dry_run: true`, `make paper-dryrun`) with one saying it checks shapes and protocols only, no results.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd
import yaml

from ganrepro import paths
from ganrepro.config import Params, RunConfig
from ganrepro.report.claims import TABLE_COLUMNS, Metrics, check_claims, describe, paper_tables, seeds_text
from ganrepro.report.figures import FIGURES, FigureContext, copy, plot_losses
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


def run_table(run: RunConfig, evaluation: dict, published: dict[str, dict]) -> pd.DataFrame:
    """One row per metric and backend we computed for `run`, with the paper's value where one matches."""
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
                "our_value": res.get("value"), "our_seeds": "",
                "protocol": (describe(res.get("protocol", {})) or res.get("skipped", ""))
                            + ("" if same_backend else " (not the paper's backend)"),
                "profile": run.profile, "data": data_label(run),
            })
    return pd.DataFrame(rows, columns=TABLE_COLUMNS)


def write_table(df: pd.DataFrame, stem: Path) -> tuple[Path, Path]:
    csv, md = stem.with_suffix(".csv"), stem.with_suffix(".md")
    with atomic_path(csv) as tmp:
        df.to_csv(tmp, index=False)
    with atomic_path(md) as tmp:
        tmp.write_text(to_markdown(df) + "\n")
    return csv, md


def to_markdown(df: pd.DataFrame) -> str:
    return df.astype(object).where(df.notna(), "").to_markdown(index=False)


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


def paper_page(params: Params, spec: dict, tables: list[tuple[str, str, str]], claims_md: str,
               figures_md: list[str], runs: list[RunConfig], banner_run: RunConfig) -> str:
    table_md = "\n".join(f"### {title}\n\n{md}\n\n([CSV](tables/{stem}.csv))\n" for title, md, stem in tables)
    run_list = "\n".join(f"| `{r.name}` | {r.preset} | {data_label(r)} | {params.runs[r.name].feeds} |" for r in runs)
    return f"""# {spec['title']}

{banner(params, banner_run)}

Regenerated by `dvc repro` from `reports/metrics/` and the published numbers in
[`claims.yaml`](claims.yaml). `paper_value` is measured as `paper_protocol` says; `our_value` at
profile `profile` as `protocol` says; `data` is the dataset we trained on.

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


def index_page(params: Params, run: RunConfig, claims: dict, verdicts: pd.DataFrame) -> str:
    papers = "\n".join(f"| {spec['title']} | [{name}.md]({name}.md) |" for name, spec in claims["papers"].items())
    return f"""# ganrepro report

{banner(params, run)}

Regenerated by `dvc repro` from the metric files in `reports/metrics/`. Profile: **{params.profile}**.

## Papers

| paper | page |
|---|---|
{papers}

## Headline claims: does our run reproduce their direction?

{to_markdown(verdicts)}

(also [`claims.csv`](claims.csv); `paper_direction` checks the same test on the published numbers)

## Also

* [The experiment](experiment.md): `{run.preset}` on `{run.dataset}`, the run you iterate on.
* [The papers' runs](runs.md): every run, with samples, losses and its headline metrics.

## Reading the tables

* `paper_value` is the published number, measured as `paper_protocol` says.
* `our_value` is ours at profile `profile`, measured as `protocol` says (feature backend, weight file,
  dims, numbers of real and fake images, resize). Values with different protocols are not comparable.
* `data` names the dataset used; at the quick profile it is the offline stand-in.
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
        })
    return pd.DataFrame(rows)


def runs_page(params: Params, runs: list[RunConfig], table_md: str) -> str:
    grids = "\n".join(
        f"| `{r.name}` | ![samples](figures/{r.name}_samples.png) | ![losses](figures/{r.name}_losses.png) |"
        for r in runs
    )
    return f"""# The papers' runs

{banner(params, runs[0])}

Every run in params.yaml `runs:`, trained by `dvc repro` (stage `train_run@<run>`), evaluated by
`evaluate_run@<run>`. FID here is on the first available feature backend; see each run's
`reports/metrics/evaluate/<run>.json` for all metrics with their protocols.

{table_md}

| run | samples (fixed z) | losses |
|---|---|---|
{grids}
"""


def load_metrics(runs: list[RunConfig]) -> tuple[Metrics, dict[str, dict]]:
    def csv(path: Path) -> pd.DataFrame | None:
        return pd.read_csv(path) if path.exists() and path.stat().st_size else None

    m = Metrics(
        evaluate={r.name: read_json(paths.METRICS / "evaluate" / f"{r.name}.json") for r in runs},
        profile=read_json(paths.METRICS / "profile.json"),
        history={r.name: csv(paths.PLOTS / f"{r.name}_losses.csv") for r in runs},
        curve={r.name: csv(paths.PLOTS / f"{r.name}_fid.csv") for r in runs},
    )
    m.history = {k: v for k, v in m.history.items() if v is not None}
    m.curve = {k: v for k, v in m.curve.items() if v is not None}
    return m, {r.name: read_json(paths.METRICS / "train" / f"{r.name}.json") for r in runs}


def write_pages(pages: dict[Path, str]) -> list[Path]:
    for path, text in pages.items():
        with atomic_path(path) as tmp:
            tmp.write_text(text)
    return list(pages)


def render_papers(params: Params, runs: dict[str, RunConfig], m: Metrics, train: dict, claims: dict,
                  verdicts: pd.DataFrame, out: Path, banner_run: RunConfig) -> list[Path]:
    """One page per paper in claims.yaml, with its tables (CSV beside each), claims and figures."""
    tables = paper_tables(claims, m, params.profile, {name: data_label(r) for name, r in runs.items()})
    written, pages = [], {}
    for name, spec in claims["papers"].items():
        page_runs = [runs[r] for r in spec["runs"] if r in runs]
        mine = []
        for (paper, title), df in tables.items():
            if paper == name:
                stem = f"{name}_{slug(title)}"
                written += write_table(df, out / "tables" / stem)
                mine.append((title, to_markdown(df), stem))
        ctx = FigureContext(name, page_runs, m, train, claims, out)
        figures = [FIGURES.get(f, key=f"claims.yaml papers.{name}.figures")(ctx) for f in spec.get("figures", [])]
        claims_md = to_markdown(verdicts[verdicts.paper == name].drop(columns=["paper"]))
        pages[out / f"{name}.md"] = paper_page(params, spec, mine, claims_md, figures, page_runs,
                                               page_runs[0] if page_runs else banner_run)
    return written + write_pages(pages)


def render(params: Params, runs: list[RunConfig], out: Path, claims: dict) -> list[Path]:
    m, train = load_metrics(runs)
    experiment, paper_runs = runs[0], runs[1:]
    verdicts = check_claims(claims, m, params.profile)
    with atomic_path(out / "claims.csv") as tmp:
        verdicts.to_csv(tmp, index=False)
    for run in runs:  # the experiment's and runs page's figures
        copy(paths.RUNS / run.name / "samples.png", out / "figures" / f"{run.name}_samples.png")
        if run.name in m.history:
            plot_losses(m.history[run.name], out / "figures" / f"{run.name}_losses.png", f"{run.name} ({run.profile} profile)")
    table = run_table(experiment, m.evaluate[experiment.name], published_for(experiment, params, claims))
    written = [out / "claims.csv", *write_table(table, out / "tables" / f"{experiment.name}_metrics")]
    runs_df = runs_table(paper_runs, m, train, {name: spec.feeds for name, spec in params.runs.items()})
    written += write_table(runs_df, out / "tables" / "runs")
    written += render_papers(params, {r.name: r for r in paper_runs}, m, train, claims, verdicts, out, experiment)
    return written + write_pages({
        out / "experiment.md": experiment_page(params, experiment, to_markdown(table), m.profile, train[experiment.name]),
        out / "runs.md": runs_page(params, paper_runs or [experiment], to_markdown(runs_df)),
        out / "index.md": index_page(params, experiment, claims, verdicts),
    })
