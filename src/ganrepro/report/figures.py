"""The papers' figures, registered by name (claims.yaml `papers.<page>.figures` lists them).

Each figure is `fn(ctx) -> str`: it writes its PNGs under `ctx.out / "figures"` and returns the
Markdown that shows them on the paper's page. `ctx` is a `FigureContext`: the page's runs, the
metric files, claims.yaml, and where to write. `SHOWS` places a figure under the table it plots.
"""
from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from ganrepro import paths  # noqa: E402
from ganrepro.config import RunConfig  # noqa: E402
from ganrepro.registry import Registry  # noqa: E402
from ganrepro.report.claims import REFERENCE_ROWS, Metrics, eval_value  # noqa: E402
from ganrepro.utils import atomic_path  # noqa: E402


@dataclass
class FigureContext:
    paper: str
    runs: list[RunConfig]
    metrics: Metrics
    train: dict[str, dict]  # reports/metrics/train/<run>.json
    claims: dict
    out: Path  # reports/

    def path(self, name: str) -> Path:
        return self.out / "figures" / name

    def label(self) -> str:
        return f"{self.runs[0].profile} profile" if self.runs else ""


FIGURES: Registry[Callable[[FigureContext], str]] = Registry("figure")
# figure -> the metrics it plots: its page shows it right under the last table of those metrics, the
# others (samples, losses, reconstructions) in the page's Figures section
SHOWS = {"fid_curve": {"fid"}, "deq_heatmap": {"fid"}, "memory_time_bars": {"peak_memory_mb", "seconds_per_epoch"},
         "mglobal": {"mglobal_fid_spearman"}}


def save(fig, path: Path) -> str:
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
    return f"figures/{path.name}"


def copy(src: Path, dest: Path) -> str | None:
    if not src.exists():
        return None
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, dest)
    return f"figures/{dest.name}"


def plot_losses(history: pd.DataFrame, path: Path, title: str) -> str:
    fig, ax = plt.subplots(figsize=(7, 3.5))
    for col in [c for c in history.columns if c.startswith("loss")]:
        ax.plot(history["step"], history[col], label=col, lw=1)
    ax.set(xlabel="generator step", ylabel="loss", title=title)
    ax.legend()
    ax.grid(alpha=0.3)
    return save(fig, path)


@FIGURES.register("samples")
def samples(ctx: FigureContext) -> str:
    cells = [(r.name, copy(paths.RUNS / r.name / "samples.png", ctx.path(f"{r.name}_samples.png"))) for r in ctx.runs]
    rows = "\n".join(f"| `{name}` | ![{name} samples]({src}) |" for name, src in cells if src)
    return f"### Samples (fixed z, end of training)\n\n| run | samples |\n|---|---|\n{rows}\n"


@FIGURES.register("losses")
def losses(ctx: FigureContext) -> str:
    rows = []
    for r in ctx.runs:
        if r.name in ctx.metrics.history:
            src = plot_losses(ctx.metrics.history[r.name], ctx.path(f"{r.name}_losses.png"), f"{r.name} ({ctx.label()})")
            rows.append(f"| `{r.name}` | ![{r.name} losses]({src}) |")
    return "### Loss curves\n\n| run | losses |\n|---|---|\n" + "\n".join(rows) + "\n"


def all_fid_curves(ctx: FigureContext) -> str:
    """The index's figure: every trained run's FID against its share of training, one panel per
    family, with the reference rows. Returns the image's path under reports/."""
    families = list(dict.fromkeys(r.family for r in ctx.runs))
    fig, axes = plt.subplots(1, len(families), figsize=(2.6 * len(families), 3.2), sharey=True, squeeze=False)
    reference = next((ctx.metrics.reference[r.name] for r in ctx.runs if r.name in ctx.metrics.reference), {})
    for ax, family in zip(axes[0], families):
        for r in ctx.runs:
            curve = ctx.metrics.curve.get(r.name)
            if r.family != family or curve is None or curve.empty or ctx.train.get(r.name, {}).get("same_training_as"):
                continue
            col = next(c for c in curve.columns if c.startswith("fid_"))
            ax.plot(curve["step"] / curve["step"].max(), curve[col], marker=".", lw=1, label=r.name)
        for (which, label), style in zip(REFERENCE_ROWS.items(), ("--", ":")):
            for backend, res in reference.get(which, {}).get("fid", {}).items():
                if "value" in res:
                    ax.axhline(res["value"], color="grey", ls=style, lw=1)
        ax.set(title=family, xlabel="share of training", yscale="log")
        ax.legend(fontsize=5)
        ax.grid(alpha=0.3, which="both")
    axes[0][0].set_ylabel("FID (log)")
    return save(fig, ctx.path("all_fid_curves.png"))


@FIGURES.register("fid_curve")
def fid_curve(ctx: FigureContext) -> str:
    """FID of the training snapshots against epochs (steps / steps_per_epoch), one line per run (a
    copy of another run's training is that run's line), with the reference rows' FID as dashed lines."""
    fig, ax = plt.subplots(figsize=(7, 3.8))
    copies = {r.name: ctx.train.get(r.name, {}).get("same_training_as") for r in ctx.runs}
    for r in ctx.runs:
        curve = ctx.metrics.curve.get(r.name)
        if curve is None or curve.empty or copies[r.name]:
            continue
        col = next(c for c in curve.columns if c.startswith("fid_"))
        per_epoch = ctx.train.get(r.name, {}).get("steps_per_epoch") or 1
        also = [n for n, src in copies.items() if src == r.name]
        label = f"{r.name}{' = ' + ', '.join(also) if also else ''} ({col[4:]} features)"
        ax.plot(curve["step"] / per_epoch, curve[col], marker="o", label=label)
    reference = next((ctx.metrics.reference[r.name] for r in ctx.runs if r.name in ctx.metrics.reference), {})
    for (which, label), style in zip(REFERENCE_ROWS.items(), ("--", ":")):
        for backend, res in reference.get(which, {}).get("fid", {}).items():
            if "value" in res:
                ax.axhline(res["value"], color="grey", ls=style, lw=1, label=f"{label} ({backend})")
    ax.set(xlabel="epoch", ylabel="FID (log scale)", title=f"FID vs epoch ({ctx.label()})", yscale="log")
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3, which="both")
    src = save(fig, ctx.path(f"{ctx.paper}_fid_curve.png"))
    return (f"### FID vs epoch\n\n![FID vs epoch]({src})\n\nEach point is a training snapshot "
            "(`reports/plots/<run>_fid.csv`; compare experiments with `dvc plots diff`); the grey lines are the "
            "reference rows, real images (the floor) and uniform noise.\n")


@FIGURES.register("mglobal")
def mglobal(ctx: FigureContext) -> str:
    """BEGAN's convergence measure over training for each gamma, and the FID of the snapshots."""
    fig, (ax, ax_fid) = plt.subplots(1, 2, figsize=(10, 3.8))
    for r in ctx.runs:
        hist, curve = ctx.metrics.history.get(r.name), ctx.metrics.curve.get(r.name)
        gamma = r.objective.get("gamma")
        if hist is not None and "M_global" in hist:
            ax.plot(hist["step"], hist["M_global"], lw=1, label=f"{r.name} (gamma {gamma})")
        if curve is not None and not curve.empty:
            col = next(c for c in curve.columns if c.startswith("fid_"))
            ax_fid.plot(curve["step"], curve[col], marker="o", label=f"{r.name} ({col[4:]})")
    ax.set(xlabel="generator step", ylabel="M_global", title=f"M_global ({ctx.label()})")
    ax_fid.set(xlabel="generator step", ylabel="FID", title="FID of the snapshots")
    for a in (ax, ax_fid):
        a.legend(fontsize=7)
        a.grid(alpha=0.3)
    src = save(fig, ctx.path(f"{ctx.paper}_mglobal.png"))
    return f"### M_global over training, and image quality\n\n![M_global]({src})\n"


def deq_grid(ctx: FigureContext) -> tuple[list, list, np.ndarray, np.ndarray]:
    """Table 2's cells: (lrs, branch counts, our FID grid, the paper's FID grid)."""
    deq = [r for r in ctx.runs if r.family == "deq" and r.dataset == "pokemon"]
    published = {v["run"]: v.get("value") for v in ctx.claims["values"] if v.get("run") and v["metric"] == "fid"}
    lrs, branches = sorted({r.lr_g for r in deq}), sorted({r.arch["n_branches"] for r in deq})
    ours, theirs = np.full((len(lrs), len(branches)), np.nan), np.full((len(lrs), len(branches)), np.nan)
    for r in deq:
        i, j = lrs.index(r.lr_g), branches.index(r.arch["n_branches"])
        value, _ = eval_value(r.name, "fid", "inception", ctx.metrics)
        ours[i, j] = np.nan if value is None else value
        theirs[i, j] = published.get(r.name) or np.nan
    return lrs, branches, ours, theirs


@FIGURES.register("deq_heatmap")
def deq_heatmap(ctx: FigureContext) -> str:
    lrs, branches, ours, theirs = deq_grid(ctx)
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.6))
    for ax, grid, title in zip(axes, (theirs, ours), ("paper: FID-64 (Inception)", f"ours ({ctx.label()})")):
        im = ax.imshow(grid, cmap="viridis_r")
        ax.set(xticks=range(len(branches)), xticklabels=[f"{b} branch" for b in branches],
               yticks=range(len(lrs)), yticklabels=[f"lr {lr:g}" for lr in lrs], title=title)
        for (i, j), v in np.ndenumerate(grid):
            ax.text(j, i, "n/a" if np.isnan(v) else f"{v:.3g}", ha="center", va="center", color="w")
        fig.colorbar(im, ax=ax, shrink=0.8)
    src = save(fig, ctx.path(f"{ctx.paper}_heatmap.png"))
    return f"### FID by learning rate x branches (Table 2)\n\n![lr x branches heatmap]({src})\n"


@FIGURES.register("memory_time_bars")
def memory_time_bars(ctx: FigureContext) -> str:
    """DEQ vs WGAN peak memory and epoch time per dataset (Table 1), from our profile."""
    pairs = [(v["row"], *v["ratio"]) for v in ctx.claims["values"]
             if v["paper"] == ctx.paper and v.get("ratio") and v["metric"] == "peak_memory_mb"]
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    x = np.arange(len(pairs))
    for ax, metric, unit in zip(axes, ("peak_memory_mb", "seconds_per_epoch"), ("MiB", "s")):
        for k, (who, offset) in enumerate((("DEQ-GAN", -0.2), ("WGAN", 0.2))):
            vals = [ctx.metrics.profile.get(p[1 + k], {}).get(metric, np.nan) for p in pairs]
            ax.bar(x + offset, vals, width=0.4, label=who)
        ax.set(xticks=x, xticklabels=[p[0] for p in pairs], ylabel=f"{metric} ({unit})",
               title=f"{metric} ({ctx.label()})")
        ax.legend()
    src = save(fig, ctx.path(f"{ctx.paper}_memory_time.png"))
    device = next((p.get("device") for p in ctx.metrics.profile.values()), "?")
    return f"### DEQ-GAN vs WGAN: memory and time (Table 1)\n\n![memory and time]({src})\n\nMeasured on {device}.\n"


@FIGURES.register("reconstructions")
def reconstructions(ctx: FigureContext) -> str:
    rows = []
    for r in ctx.runs:
        for src in sorted((paths.RUNS / r.name).glob("reconstructions_*.png")):
            decoder = src.stem.removeprefix("reconstructions_")
            rows.append(f"| `{r.name}` | {decoder} | ![{r.name} {decoder}]({copy(src, ctx.path(f'{r.name}_{src.name}'))}) |")
    return ("### Decoder reconstructions\n\nTop row: the target region of a real image; bottom row: "
            "the decoder's reconstruction from D's features.\n\n| run | decoder | target / reconstruction |\n"
            "|---|---|---|\n" + "\n".join(rows) + "\n")
