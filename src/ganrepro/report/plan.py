"""reports/paper-plan.md: what a GPU user needs to know before starting `make paper`.

Written by the paper dry run (`make paper-dryrun`) from its workspace, which ran the paper
profile's whole DAG on CPU with every run cut to a couple of generator steps:

    workspace/params.yaml                     the dry run's params (profile `paper` with its overrides)
    workspace/reports/metrics/profile.json    per run: peak memory, CPU seconds, FLOPs, ATen ops and
                                              parameter counts of one training step at the paper batch
    workspace/reports/metrics/train/*.json    what each dry-run training did (steps, seconds)
    workspace/reports/claims.yaml             which paper each run feeds (optional)

Step counts are the paper's, never the dry run's: each run is resolved again from its preset and
overrides with the real paper profile (`reference`, the project's own params.yaml, by default),
or, without one, the dry run's profile with its `steps` override removed. Epochs use the paper
datasets' real sizes, not the fixtures'.

No GPU figure has been measured in this project, so GPU time is an estimate: the larger of a
FLOP bound (FLOPs per step / ASSUMED_GPU_FLOPS) and a launch bound (ATen ops per step x
ASSUMED_SECONDS_PER_OP). Both are lower bounds. A measured GPU seconds-per-step (`measured_gpu`:
a dict run -> seconds, or a profile.json the profile stage wrote on a GPU; by default
GPU_PROFILE_FILE in the workspace or beside the reference params.yaml, when present) replaces the
estimate run by run.
"""
from __future__ import annotations

import datetime
import json
from pathlib import Path
from typing import Any

import yaml

from ganrepro import records
from ganrepro.config import Params, ProfileConfig, RunConfig, eval_config, load_params
from ganrepro.pipeline import metrics_key
from ganrepro.utils import atomic_path, read_json

GPU_PROFILE_FILE = Path("reports/metrics/profile_gpu.json")  # the hook: a GPU-measured profile.json

# ---------------------------------------------------------------- assumptions (no GPU measured here)
# Sustained training throughput of one data-centre GPU on these models. An A100 peaks at 19.5
# TFLOP/s in plain fp32 and 156 in TF32 on its tensor cores (an H100 SXM: 67 and 495); PyTorch runs
# cuDNN convolutions in TF32 by default on Ampere and later (torch.backends.cudnn.allow_tf32), and
# these GANs are convolution-bound. Small convolutions at batch 8 to 64 and 64px keep the tensor
# cores far from busy, so we assume 20 TFLOP/s: about 13% of an A100's TF32 peak (4% of an
# H100's), or the A100's whole fp32 peak. Optimistic for these models, so the hours are a floor.
ASSUMED_GPU_FLOPS = 20e12

# Host time per dispatched ATen op in eager PyTorch on a GPU: Python, the dispatcher and the CUDA
# kernel launch (the launch alone is 2-4 us). 5 us is at the fast end of what profiler traces of
# eager training show (5-20 us), so a step cannot run faster than its ops x 5 us unless it is
# compiled or captured in a CUDA graph. This binds for batch-1 runs (DEQ-GAN, its WGAN baseline),
# whose kernels are each shorter than their launch: for those the FLOP bound alone is far too low.
ASSUMED_SECONDS_PER_OP = 5e-6

# Inception (pytorch-fid's InceptionV3, fp32, images bilinear-resized to 299px, batch 100) forward
# passes per second, for FID, KID and the Inception Score. A 299px forward is about 5.7 GFLOP, i.e.
# about 3,500 images/s at ASSUMED_GPU_FLOPS; we assume 1,000/s to allow for the resize, the copies
# and generating the fakes themselves.
INCEPTION_IMAGES_PER_SECOND = 1000.0

# Training-set sizes of the paper datasets (torchvision's training splits; CelebA split "all").
# The manifest datasets (Pokemon, Van Gogh, anime faces) are counted from their manifests' files.
DATASET_SIZES = {"mnist": 60_000, "fashion_mnist": 60_000, "cifar10": 50_000, "celeba": 202_599}

WEIGHTS = {  # what a weight file is for, by the backend or loss that loads it
    "inception": "FID, KID and Inception Score (pytorch-fid's InceptionV3)",
    "lpips_alex": "LPIPS metrics (lpips package, AlexNet backbone)",
    "lpips_recon": "FastGAN's LPIPS reconstruction loss (lpips package, {net} backbone)",
}


# ---------------------------------------------------------------- inputs
def dataset_size(name: str) -> int | None:
    """The paper dataset's real number of training images (not the dry run's fixtures)."""
    if name in DATASET_SIZES:
        return DATASET_SIZES[name]
    m = package_manifest(name)
    return (len(m.get("files") or []) or None) if m else None


def package_manifest(name: str) -> dict | None:
    """The package's own manifest (src/ganrepro/data/manifests/), never $GANREPRO_MANIFESTS's: the dry run
    points that at its fixtures' manifests, whose file counts are not the real datasets'."""
    from ganrepro.data.datasets import MANIFESTS

    path = MANIFESTS / f"{name}.json"
    return json.loads(path.read_text()) if path.exists() else None


def dataset_source(name: str) -> str:
    from ganrepro.data.datasets import DATASETS

    m = package_manifest(name)
    if m:
        how = "one archive" if m.get("archive") else f"{len(m.get('files') or [])} files"
        return (f"URL manifest `src/ganrepro/data/manifests/{name}.json` ({how}, sha256 per file): "
                f"{m.get('source', '')}")
    spec = DATASETS.get(name)
    if spec.offline:
        return f"installed package, no download: {spec.description}"
    return f"torchvision (md5-checked by torchvision): {spec.description}"


def paper_params(workspace_params: Params, reference: Params | None) -> Params:
    """The workspace's params with the real paper profile: the reference's profile of the same name
    where there is one, else the dry run's own with its `steps` (and `dry_run`) override removed."""
    name = workspace_params.profile
    if reference is not None and name in reference.profiles:
        prof: ProfileConfig = reference.profiles[name]
    else:
        prof = workspace_params.active.model_copy(update={"steps": None, "dry_run": False})
    return workspace_params.model_copy(update={"profiles": {**workspace_params.profiles, name: prof}})


def n_critic(run: RunConfig) -> int:
    from ganrepro.objectives import parse_objective

    _, args = parse_objective(run.objective)
    return getattr(args, "n_critic", 1)


def paper_steps(run: RunConfig, size: int | None, critic: int) -> int | None:
    """training.loop.total_steps at the real dataset size."""
    from ganrepro.training.loop import total_steps

    return total_steps(run, size, critic) if run.steps or size else None


def load_measured_gpu(measured: dict | Path | None) -> dict[str, dict]:
    """run -> {"seconds": GPU seconds per step, "device": ...}, from a dict run -> seconds (or -> such a
    dict) or from a profile.json (with its reports/protocols/ sibling), of which only the entries
    measured on CUDA count."""
    if measured is None:
        return {}
    if isinstance(measured, (str, Path)):
        data = records.read(measured)  # its numbers joined with its protocols (the device)
        return {run: {"seconds": e["seconds_per_step"], "device": e.get("device", "gpu")}
                for run, e in data.items() if str(e.get("device", "")).startswith("cuda")}
    return {run: v if isinstance(v, dict) else {"seconds": float(v), "device": "GPU (measured)"}
            for run, v in measured.items()}


def paper_of(claims: dict | None, run: RunConfig) -> str:
    for key, spec in (claims or {}).get("papers", {}).items():
        if run.name in spec.get("runs", []):
            return key
    return "(experiment)" if run.name == "experiment" else run.paper.split(" (")[0]


# ---------------------------------------------------------------- estimates
def gpu_step_seconds(prof: dict, measured: dict | None = None) -> tuple[float | None, str]:
    """(GPU seconds per step, basis): measured if given, else max(FLOP bound, launch bound)."""
    if measured:
        return measured["seconds"], f"measured ({measured['device']})"
    flops, ops = prof.get("flops_per_step"), prof.get("aten_ops_per_step")
    if flops is None and ops is None:
        return None, "not profiled"
    bounds = {"FLOPs": (flops or 0) / ASSUMED_GPU_FLOPS, "launch": (ops or 0) * ASSUMED_SECONDS_PER_OP}
    basis = max(bounds, key=bounds.get)
    return bounds[basis], f"{basis} bound"


def gpu_hours(seconds_per_step: float | None, steps: int | None, seeds: int) -> float | None:
    if seconds_per_step is None or steps is None:
        return None
    return seconds_per_step * steps * seeds / 3600


def plan_rows(params: Params, profile: dict, claims: dict | None = None,
              measured: dict[str, dict] | None = None) -> list[dict[str, Any]]:
    """One row per paper run (then the experiment), at the paper profile `params.active`."""
    from ganrepro import pipeline

    seeds, measured = params.active.seeds, measured or {}
    runs = pipeline.runs(params)
    rows = []
    for run in [*runs[1:], runs[0]]:
        size, critic = dataset_size(run.data), n_critic(run)
        steps = paper_steps(run, size, critic)
        prof = profile.get(run.name, {})
        sec, basis = gpu_step_seconds(prof, measured.get(run.name))
        per_step = run.batch_size * critic
        rows.append({
            "paper": paper_of(claims, run), "run": run.name, "dataset": run.data, "dataset_size": size,
            "img_size": run.img_size, "batch": run.batch_size, "n_critic": critic, "steps": steps,
            "images_per_step": per_step,
            "epochs": steps * per_step / size if steps and size else None,
            "params_g": prof.get("params_g"), "params_d": prof.get("params_d"),
            "peak_memory_mb": prof.get("peak_memory_mb"), "cpu_seconds_per_step": prof.get("seconds_per_step"),
            "flops_per_step": prof.get("flops_per_step"), "aten_ops_per_step": prof.get("aten_ops_per_step"),
            "gpu_seconds_per_step": sec, "gpu_basis": basis, "seeds": seeds,
            "gpu_hours": gpu_hours(sec, steps, seeds),
            "profiled_at": (prof.get("batch_size"), prof.get("img_size")),
            "device": prof.get("device"), "threads": prof.get("threads"), "date": prof.get("date"),
        })
    return rows


def eval_images(params: Params, rows: list[dict]) -> dict[str, Any]:
    """Inception forward passes of the paper profile's evaluation, as stages/evaluate.py makes them.

    Real images: once per (dataset, size, dims, n_real) statistics file. Per run: eval.fid.n_fake fakes
    for every seed (the spread over seeds), plus, on the first seed only, the Inception Score's n_fake
    and `train.snapshots` snapshots x eval.fid.curve_n_fake for the FID curve.
    """
    from ganrepro import pipeline
    from ganrepro.training.loop import snapshot_steps

    steps = {r["run"]: r["steps"] for r in rows}
    seeds = params.active.seeds
    real, per_run = {}, {}
    for run in pipeline.runs(params):
        cfg = eval_config(params, run.name)
        fid_inc = "inception" in cfg.fid.backends + cfg.fid.optional_backends
        is_inc = "inception" in cfg.inception_score.backends + cfg.inception_score.optional_backends
        size = dataset_size(run.data)
        if fid_inc:
            n_real = min(cfg.fid.n_real, size) if size else cfg.fid.n_real
            real[(run.data, run.img_size, cfg.fid.dims, n_real)] = n_real
        snaps = len(snapshot_steps(steps.get(run.name) or 0, run.train.snapshots))
        curve = snaps * cfg.fid.curve_n_fake if "inception" in cfg.fid.backends else 0  # required backends only
        per_run[run.name] = (cfg.fid.n_fake * seeds if fid_inc else 0) + curve \
            + (cfg.inception_score.n_fake if is_inc else 0)
    total = sum(real.values()) + sum(per_run.values())
    return {"real": real, "per_run": per_run, "total": total,
            "hours": total / INCEPTION_IMAGES_PER_SECOND / 3600}


def weight_needs(params: Params) -> dict[str, list[str]]:
    """weight file -> the runs that need it at the paper profile."""
    from ganrepro import pipeline
    from ganrepro.metrics.features import INCEPTION_FILE
    from ganrepro.metrics.lpips import ALEXNET_FILE
    from ganrepro.objectives.fastgan import LPIPS_BACKBONES

    need: dict[str, list[str]] = {}
    for run in pipeline.runs(params):
        cfg = eval_config(params, run.name)
        files = set()
        if "inception" in (cfg.fid.backends + cfg.fid.optional_backends + cfg.inception_score.backends
                           + cfg.inception_score.optional_backends):
            files.add((INCEPTION_FILE, WEIGHTS["inception"]))
        if "lpips_alex" in cfg.lpips.backends + cfg.lpips.optional_backends:
            files.add((ALEXNET_FILE, WEIGHTS["lpips_alex"]))
        if run.objective.get("recon_loss") == "lpips":
            net = run.objective.get("lpips_net", "vgg")
            files.add((LPIPS_BACKBONES[net], WEIGHTS["lpips_recon"].format(net={"vgg": "VGG16"}.get(net, net))))
        for f in files:
            need.setdefault(f, []).append(run.name)
    return need


def weight_url(file: str) -> str:
    from ganrepro.metrics.features import INCEPTION_FILE, INCEPTION_URL

    return INCEPTION_URL if file == INCEPTION_FILE else f"https://download.pytorch.org/models/{file}"


# ---------------------------------------------------------------- rendering
def _n(x: float | int | None, unit: float = 1.0, digits: int = 3) -> str:
    if x is None:
        return ""
    v = x / unit
    return f"{v:,.0f}" if abs(v) >= 10 ** digits else f"{v:.{digits}g}"


def _hours(h: float | None) -> str:
    return "" if h is None else (f"{h:,.1f}" if h >= 1 else f"{h:.2g}")


def measured_label(profile: dict, profile_file: Path) -> str:
    devices = sorted({f"{e.get('device')}, {e.get('threads')} threads, torch {e.get('torch')}"
                      for e in profile.values() if isinstance(e, dict)})
    dates = sorted({e["date"] for e in profile.values() if isinstance(e, dict) and e.get("date")})
    if not dates and profile_file.exists():
        dates = [datetime.date.fromtimestamp(profile_file.stat().st_mtime).isoformat()]
    return f"{'; '.join(devices) or 'unknown device'}, on {', '.join(dates) or 'an unknown date'}"


def published_hours(claims: dict | None, rows: list[dict]) -> list[dict]:
    """The papers' own epoch times (claims.yaml metric seconds_per_epoch) x each run's epochs x seeds."""
    by_run, out = {r["run"]: r for r in rows}, []
    for v in (claims or {}).get("values", []):
        row = by_run.get(v.get("run"))
        if v.get("metric") == "seconds_per_epoch" and v.get("value") and row and row["epochs"]:
            out.append({"run": row["run"], "source": f"{v.get('paper', '')} {v.get('table', '')}".strip(),
                        "seconds_per_epoch": v["value"],
                        "hours": v["value"] * row["epochs"] * row["seeds"] / 3600, "ours": row["gpu_hours"]})
    return out


def render_plan(params: Params, rows: list[dict], evals: dict, weights: dict, overrides: dict,
                stage_seconds: dict, label: str, train: dict[str, dict], reference_note: str,
                claims: dict | None = None) -> str:
    seeds = params.active.seeds
    table = ["| paper | run | dataset | px | batch | steps | images / step | epochs | params G | params D "
             "| peak MiB / step (CPU) | CPU s / step | GFLOP / step | GPU s / step (est.) | basis "
             f"| GPU h (x {seeds} seeds) |",
             "|" + "---|" * 16]
    notes = []
    for r in rows:
        at = r["profiled_at"]
        if at[0] is not None and at != (r["batch"], r["img_size"]):
            notes.append(f"`{r['run']}` was profiled at batch {at[0]}, {at[1]}px, not the paper's "
                         f"{r['batch']}, {r['img_size']}px.")
        per_step = f"{r['batch']} x {r['n_critic']}" if r["n_critic"] > 1 else f"{r['batch']}"
        table.append(
            f"| {r['paper']} | `{r['run']}` | {r['dataset']} ({_n(r['dataset_size'])}) | {r['img_size']} "
            f"| {r['batch']} | {_n(r['steps'])} | {per_step} | {_n(r['epochs'])} | {_n(r['params_g'], 1e6)} M "
            f"| {_n(r['params_d'], 1e6)} M | {_n(r['peak_memory_mb'])} | {_n(r['cpu_seconds_per_step'])} "
            f"| {_n(r['flops_per_step'], 1e9)} | {_n(r['gpu_seconds_per_step'])} | {r['gpu_basis']} "
            f"| {_hours(r['gpu_hours'])} |")
    train_h, total_h = sum(r["gpu_hours"] or 0 for r in rows), total_gpu_hours(rows, evals)
    missing = [r["run"] for r in rows if r["gpu_hours"] is None]
    measured = [r["run"] for r in rows if r["gpu_basis"].startswith("measured")]
    real_rows = "\n".join(f"| {d} | {px} | {dims} | {_n(n)} |" for (d, px, dims, n), n in sorted(evals["real"].items()))
    data_rows = "\n".join(
        f"| `{name}` | {_n(dataset_size(name))} | {dataset_source(name)} | {', '.join(f'`{r}`' for r in runs)} |"
        for name, runs in sorted(datasets_needed(params).items()))
    weight_rows = "\n".join(
        f"| `{file}` | {what} | {weight_url(file)} | {', '.join(f'`{r}`' for r in runs)} |"
        for (file, what), runs in sorted(weights.items()))
    dry_rows = "\n".join(
        f"| `{r['run']}` | {train.get(r['run'], {}).get('steps', 'not trained')} "
        f"| {train.get(r['run'], {}).get('train_seconds', '')} |" for r in rows)
    stage_rows = "\n".join(f"| {stage} | {s:,.1f} |" for stage, s in stage_seconds.items())
    fid = params.active.eval.fid
    published = published_hours(claims, rows)
    published_md = "" if not published else (
        "\nFor scale, the GPU epoch times the papers publish (`seconds_per_epoch` in `reports/claims.yaml`; on the\n"
        "paper's own GPU and dataset size), applied to these runs' epochs and seeds, beside our estimate:\n\n"
        "| run | published in | paper's seconds / epoch | paper's time for this run (h) | our estimate (h) |\n"
        "|---|---|---|---|---|\n"
        + "\n".join(f"| `{p['run']}` | {p['source']} | {_n(p['seconds_per_epoch'])} | {_hours(p['hours'])} "
                     f"| {_hours(p['ours'])} |" for p in published)
        + "\n\nWhere the paper's time is far above the estimate, the bounds are far from the real cost: plan "
          "for the paper's figure.\n")
    return f"""# Before `make paper`: what a GPU user needs to know

> **Estimates from a paper dry run, not measurements on a GPU.** Written by `make paper-dryrun`, which
> ran the paper profile's whole DAG on CPU with every run cut to a few generator steps, on synthetic
> fixture data and random stand-in weights. Measured here: {label}.

Step counts, epochs and GPU hours below are the paper profile's (each run's preset and overrides,
{reference_note}), not the dry run's. Epochs use the real datasets' sizes (in brackets).
Peak memory, CPU seconds, FLOPs and ATen ops are those of one training step (one generator step with
its n_critic critic steps) at the paper batch and resolution, measured by the profile stage on the
CPU named above; memory is torch's profiler peak of allocated tensor memory on CPU, which is close
to, but not, `torch.cuda.max_memory_allocated` on a GPU (no cuDNN workspaces, no allocator rounding).

## Training

{chr(10).join(table)}

**Training: {_hours(train_h)} GPU hours** for all {len(rows)} runs x {seeds} seeds, on one GPU, one run at a
time{" (runs with no estimate, not counted: " + ", ".join(f"`{m}`" for m in missing) + ")" if missing else ""}.

{chr(10).join(f"* {n}" for n in notes)}

### How the GPU time is estimated

No GPU figure has been measured in this project{" except for " + ", ".join(f"`{m}`" for m in measured) if measured else ""}.
Per step, the estimate is the larger of two lower bounds:

* **FLOP bound**: FLOPs per step / `ASSUMED_GPU_FLOPS` = {ASSUMED_GPU_FLOPS / 1e12:g} TFLOP/s sustained. FLOPs
  are counted by `torch.utils.flop_counter.FlopCounterMode` on one profiled step (matmuls,
  convolutions, attention, forward and backward; elementwise ops, normalisation and the optimiser are
  not counted). {ASSUMED_GPU_FLOPS / 1e12:g} TFLOP/s is about 13% of an A100's dense TF32 peak (156) or its
  whole plain-fp32 peak (19.5), about 4% of an H100's TF32 peak (495): PyTorch runs cuDNN
  convolutions in TF32 by default, and these small convolutions keep the tensor cores far from busy.
* **Launch bound**: ATen ops per step x `ASSUMED_SECONDS_PER_OP` = {ASSUMED_SECONDS_PER_OP * 1e6:g} us. Eager PyTorch
  issues one op at a time from the host (Python, dispatcher, CUDA launch: 5-20 us each in profiler
  traces, the launch alone 2-4 us). Ops are counted on the same step, views and optimiser steps left
  out (Adam's foreach kernels on CUDA are few). Batch-1 runs (DEQ-GAN and its WGAN baseline) are
  latency-bound: their kernels are shorter than their launches, so their FLOP bound is far too low,
  and the launch bound, though closer, is still a floor.

Hours = seconds per step x paper steps x {seeds} seeds / 3600. A DEQ step's FLOPs and ops depend on how
many solver iterations it took (at most `f_max_iter`); the dry run's step is an untrained model's.
{published_md}
**To replace the estimate with a measurement**, run the profile stage on the GPU at the paper profile
(`dvc repro -f -s profile` with `profile: paper`), copy `reports/metrics/profile.json` to
`{GPU_PROFILE_FILE}` and `reports/protocols/profile.json` to `reports/protocols/profile_gpu.json`, and rerun the dry run (or pass `measured_gpu=` to `ganrepro.report.plan.write_plan`:
a dict run -> GPU seconds per step, or that file): measured runs then say `measured (cuda: ...)`.

## Evaluation

Inception forward passes at the paper profile, as `stages/fid_stats.py` and `stages/evaluate.py` make
them: real images once per statistics file; per run, `eval.fid.n_fake` = {fid.n_fake:,} fakes for each of
the {seeds} seeds, and on the first seed only the Inception Score's {params.active.eval.inception_score.n_fake:,} and the FID
curve's {params.active.train.snapshots} snapshots x `curve_n_fake` = {fid.curve_n_fake:,}.

| real statistics: dataset | px | dims | images |
|---|---|---|---|
{real_rows}

{_n(evals['total'])} Inception images in all, at an assumed `INCEPTION_IMAGES_PER_SECOND` = {INCEPTION_IMAGES_PER_SECOND:,.0f}
(a 299px forward is about 5.7 GFLOP, 3,500/s at {ASSUMED_GPU_FLOPS / 1e12:g} TFLOP/s; 1,000/s allows for the resize to
299px, the copies and sampling the fakes): **evaluation: {_hours(evals['hours'])} GPU hours**. LPIPS
({params.active.eval.lpips.n_pairs:,} AlexNet pairs per run and metric) and sampling G are not counted.

## Total

**About {_hours(total_h)} GPU hours** for the whole `make paper`
(training {_hours(train_h)} + evaluation {_hours(evals['hours'])}), a lower bound on one GPU; the stages are
independent per run, so several GPUs divide it (`dvc exp run` per run, or `dvc queue`).

## Datasets to download

| dataset | images | source | runs |
|---|---|---|---|
{data_rows}

## Weight files (in `$TORCH_HOME/hub/checkpoints/`)

| file | for | from | runs |
|---|---|---|---|
{weight_rows}

## The dry run

Overrides of the paper profile it ran with:

```yaml
{yaml.safe_dump(overrides, sort_keys=False).strip()}
```

| run | steps trained | train seconds |
|---|---|---|
{dry_rows}

| stage | seconds |
|---|---|
{stage_rows}
| **total** | **{sum(stage_seconds.values()):,.1f}** |
"""


def datasets_needed(params: Params) -> dict[str, list[str]]:
    from ganrepro import pipeline

    need: dict[str, list[str]] = {pipeline.FEATURE_NET_DATA: ["feature_net"]}
    for run in pipeline.runs(params):
        need.setdefault(run.data, []).append(run.name)
    return need


def load_reference(reference: Path | None, profile: str) -> tuple[Params | None, Path | None]:
    """The params.yaml with the real paper profile: `reference`, else the project's (paths.project_root()).
    Not one whose profile is itself a dry run (the workspace's own, found from inside the workspace)."""
    from ganrepro import paths

    path = Path(reference) if reference is not None else paths.project_root() / "params.yaml"
    if not path.exists():
        return None, None
    ref = load_params(path)
    if profile not in ref.profiles or ref.profiles[profile].dry_run:
        return None, None
    return ref, path


def write_plan(workspace: Path, out: Path, overrides: dict, stage_seconds: dict, *,
               reference: Path | None = None, measured_gpu: dict | Path | None = None) -> Path:
    """Write `out` (reports/paper-plan.md) from the dry run's `workspace`; return `out`.

    Reads workspace/params.yaml, workspace/reports/metrics/profile.json, .../train/*.json (and
    train.json, the experiment's) and workspace/reports/claims.yaml. `overrides` (what the dry run
    changed in the profile) and `stage_seconds` (stage -> seconds) are printed as given.
    `reference`: a params.yaml holding the real paper profile (default: the project's own, found
    from the working directory); without one, the workspace's profile less its `steps` override,
    and the plan says which of its counts are the dry run's. `measured_gpu`: GPU seconds per step,
    a dict run -> seconds or a profile.json the profile stage wrote on a GPU; default
    GPU_PROFILE_FILE in the workspace, else beside the reference, when it exists.
    """
    workspace, out = Path(workspace), Path(out)
    ws = load_params(workspace / "params.yaml")
    ref, ref_path = load_reference(reference, ws.profile)
    params = paper_params(ws, ref)
    if ref:
        from ganrepro import paths

        root = paths.project_root()  # the committed plan names the project's file, not a clone's path
        shown = ref_path.relative_to(root) if ref_path.is_relative_to(root) else ref_path
        note = f"resolved with profile `{ws.profile}` of `{shown}`"
        missing = [r for r in ref.runs if r not in ws.runs]
        if missing:
            note += (f"; the dry run covered {len(ws.runs)} of its {len(ref.runs)} runs, and the totals only "
                     f"those (not: {', '.join(f'`{r}`' for r in missing)})")
    else:
        kept = [k for k in overrides if k not in ("steps", "dry_run")]
        note = (f"resolved with the dry run's profile `{ws.profile}` less its `steps` override; no reference "
                f"params.yaml was found, so {', '.join(f'`{k}`' for k in kept) or 'nothing else'} "
                "are the dry run's values, not the paper's")
    if measured_gpu is None:
        for folder in (workspace, ref_path.parent if ref_path else None):
            if folder is not None and (folder / GPU_PROFILE_FILE).exists():
                measured_gpu = folder / GPU_PROFILE_FILE
                break
    profile_file = workspace / "reports" / "metrics" / "profile.json"
    profile = records.read(profile_file) if profile_file.exists() else {}
    claims_file = workspace / "reports" / "claims.yaml"
    claims = yaml.safe_load(claims_file.read_text()) if claims_file.exists() else None
    rows = plan_rows(params, profile, claims, load_measured_gpu(measured_gpu))
    train = {p.stem: records.read(p, metrics_key(p.stem)) for p in sorted((workspace / "reports" / "metrics" / "train").glob("*.json"))}
    exp_train = workspace / "reports" / "metrics" / "train.json"
    if exp_train.exists():
        train.setdefault("experiment", read_json(exp_train))
    text = render_plan(params, rows, eval_images(params, rows), weight_needs(params), overrides, stage_seconds,
                       measured_label(profile, profile_file), train, note, claims)
    with atomic_path(out) as tmp:
        tmp.write_text(text)
    return out


def total_gpu_hours(rows: list[dict], evals: dict) -> float:
    return sum(r["gpu_hours"] or 0 for r in rows) + evals["hours"]

