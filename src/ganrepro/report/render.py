"""Render reports/ from the metric files: tables (CSV + Markdown), figures (PNG), pages (Markdown).

Every table prints the paper's value, ours at the current profile, and both protocols side by side.
A quick-profile page opens with a banner saying its numbers are not paper-scale results.
"""
from __future__ import annotations

import shutil
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import yaml  # noqa: E402

from ganrepro import paths  # noqa: E402
from ganrepro.config import Params, RunConfig  # noqa: E402
from ganrepro.utils import atomic_path  # noqa: E402

PAPERS = {
    "dcgan-vs-sagan": "DCGAN vs SA-GAN on CIFAR-10 (Hada, 2020)",
    "deq-gan": "DEQ-GAN: deep equilibrium generators (Monjur et al.)",
    "began": "BEGAN: boundary equilibrium GAN (Berthelot et al., 2017)",
    "fastgan-decoders": "FastGAN with self-supervised decoders on Van Gogh",
}
TABLE_COLUMNS = ["paper", "table", "row", "metric", "paper_value", "paper_protocol",
                 "our_value", "protocol", "profile", "data"]


def load_claims(path: Path) -> list[dict]:
    return yaml.safe_load(Path(path).read_text()) or []


def describe(protocol: dict) -> str:
    return ", ".join(f"{k}={v}" for k, v in protocol.items() if k != "weights_sha256")


def run_table(run: RunConfig, evaluation: dict, claims: list[dict]) -> pd.DataFrame:
    """One row per metric we computed for `run`, with the paper's value where a claim matches."""
    matching = {c["metric"]: c for c in claims if c["preset"] == run.preset and c["dataset"] == run.dataset}
    rows = []
    for backend, res in evaluation.get("fid", {}).items():
        claim = matching.get("fid", {})
        rows.append({
            "paper": claim.get("paper", ""), "table": claim.get("where", ""), "row": claim.get("row", run.preset),
            "metric": f"FID ({backend} features)",
            "paper_value": claim.get("value"), "paper_protocol": describe(claim.get("protocol", {})),
            "our_value": res.get("value"), "protocol": describe(res.get("protocol", {})) or res.get("skipped", ""),
            "profile": run.profile, "data": data_label(run),
        })
    for backend, res in evaluation.get("lpips_diversity", {}).items():
        rows.append({
            "paper": "", "table": "", "row": run.preset, "metric": f"LPIPS diversity ({backend})",
            "paper_value": None, "paper_protocol": "",
            "our_value": res.get("value"), "protocol": describe(res.get("protocol", {})) or res.get("skipped", ""),
            "profile": run.profile, "data": data_label(run),
        })
    return pd.DataFrame(rows, columns=TABLE_COLUMNS)


def data_label(run: RunConfig) -> str:
    return f"{run.data} (quick stand-in for {run.dataset})" if run.substituted else run.data


def write_table(df: pd.DataFrame, stem: Path) -> tuple[Path, Path]:
    csv, md = stem.with_suffix(".csv"), stem.with_suffix(".md")
    with atomic_path(csv) as tmp:
        df.to_csv(tmp, index=False)
    with atomic_path(md) as tmp:
        tmp.write_text(to_markdown(df) + "\n")
    return csv, md


def to_markdown(df: pd.DataFrame) -> str:
    return df.fillna("").to_markdown(index=False)


def plot_losses(history: pd.DataFrame, path: Path, title: str) -> Path:
    fig, ax = plt.subplots(figsize=(7, 3.5))
    for col in [c for c in history.columns if c.startswith("loss")]:
        ax.plot(history["step"], history[col], label=col, lw=1)
    ax.set(xlabel="generator step", ylabel="loss", title=title)
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
    return path


def banner(params: Params, run: RunConfig) -> str:
    if params.profile == "paper":
        return "> **Paper profile**: the papers' datasets, sizes and step counts."
    return (
        f"> **Quick profile** ({params.active.description}). "
        f"`{run.data}` stands in for `{run.dataset}`, and FID uses the offline digit-classifier features "
        "unless Inception's weights are cached. **These numbers are not paper-scale results** and are "
        "not comparable with the papers' values printed beside them."
    )


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

| peak memory (MiB) | seconds / step | images / s (training) | device | method |
|---|---|---|---|---|
| {prof.get('peak_memory_mb')} | {prof.get('seconds_per_step')} | {train.get('images_per_second')} | {prof.get('device')} | {prof.get('memory_method')} |
"""


def index_page(params: Params, run: RunConfig) -> str:
    papers = "\n".join(f"| {title} | `{name}` | not yet rendered |" for name, title in PAPERS.items())
    return f"""# ganrepro report

{banner(params, run)}

Regenerated by `dvc repro` from the metric files in `reports/metrics/`. Profile: **{params.profile}**.

* [The experiment](experiment.md): `{run.preset}` on `{run.dataset}`, the run you iterate on:
  sample grid, loss curves, metrics with their protocols.
* [The papers' runs](runs.md): every run the four papers report, with samples, losses and FID.

## Papers

| paper | page | status |
|---|---|---|
{papers}

## Reading the tables

* `paper_value` is the published number, measured as `paper_protocol` says.
* `our_value` is ours at profile `profile`, measured as `protocol` says (feature backend, weight file,
  dims, numbers of real and fake images, resize). Values with different protocols are not comparable.
* `data` names the dataset used; at the quick profile it is the offline stand-in.
"""


def runs_table(runs: list[RunConfig], metrics: dict[str, dict], feeds: dict[str, str]) -> pd.DataFrame:
    """One row per paper run: what it feeds, the data used, its final losses and FID."""
    rows = []
    for run in runs:
        train, evaluation = metrics[run.name]["train"], metrics[run.name]["evaluate"]
        fid = next((dict(backend=b, **r) for b, r in evaluation.get("fid", {}).items() if "value" in r), {})
        rows.append({
            "run": run.name, "preset": run.preset, "feeds": feeds.get(run.name, ""),
            "data": data_label(run), "img_size": run.img_size, "steps": train.get("steps"),
            "final_loss_d": train.get("final_loss_d"), "final_loss_g": train.get("final_loss_g"),
            "fid": fid.get("value"), "fid_protocol": describe(fid.get("protocol", {})),
            "profile": run.profile,
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
`reports/metrics/evaluate/<run>.json` for all of them with their protocols.

{table_md}

| run | samples (fixed z) | losses |
|---|---|---|
{grids}
"""


def figures_for(run: RunConfig, out: Path) -> None:
    figures = out / "figures"
    figures.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(paths.RUNS / run.name / "samples.png", figures / f"{run.name}_samples.png")
    history = pd.read_csv(paths.PLOTS / f"{run.name}_losses.csv")
    plot_losses(history, figures / f"{run.name}_losses.png", f"{run.name} ({run.profile} profile)")


def render(params: Params, runs: list[RunConfig], out: Path, claims: list[dict]) -> list[Path]:
    from ganrepro.utils import read_json

    metrics = {r.name: {stage: read_json(paths.METRICS / stage / f"{r.name}.json") for stage in ("train", "evaluate")}
               for r in runs}
    profile = read_json(paths.METRICS / "profile.json")
    for run in runs:
        figures_for(run, out)
    experiment, paper_runs = runs[0], runs[1:]
    table = run_table(experiment, metrics[experiment.name]["evaluate"], claims)
    written = list(write_table(table, out / "tables" / f"{experiment.name}_metrics"))
    runs_df = runs_table(paper_runs, metrics, {name: spec.feeds for name, spec in params.runs.items()})
    written += write_table(runs_df, out / "tables" / "runs")
    pages = {
        out / "experiment.md": experiment_page(params, experiment, to_markdown(table), profile,
                                               metrics[experiment.name]["train"]),
        out / "runs.md": runs_page(params, paper_runs or [experiment], to_markdown(runs_df)),
        out / "index.md": index_page(params, experiment),
    }
    for path, text in pages.items():
        with atomic_path(path) as tmp:
            tmp.write_text(text)
    return [*written, *pages]
