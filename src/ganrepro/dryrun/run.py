"""The paper dry run's orchestrator (see ganrepro.dryrun): workspace, fixtures, weights, probes, `dvc repro`.

    dry_run(runs=None, workspace=None, plan=None) -> Summary

Everything it makes stays in the workspace (default <project>/build/paper-dryrun/): the project's
files, its own git repo and DVC cache, data/raw/ fixtures, `.dryrun/` (the stand-in weights'
TORCH_HOME, the served files and their manifests, repro.log, summary.json), mlflow.db, and the
rendered reports/*.md. Only the plan is written outside it (default <project>/reports/paper-plan.md).
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import yaml

from ganrepro.dryrun import BANNER, OVERRIDES, merged

PRIVATE = ".dryrun"  # inside the workspace: TORCH_HOME, served files, manifests, logs (git-excluded there)
DEFAULT_WORKSPACE = Path("build") / "paper-dryrun"
DEFAULT_PLAN = Path("reports") / "paper-plan.md"
# Stages outside `foreach`; each run adds train_run@<run> and evaluate_run@<run>.
FIXED_STAGES = ["configure", "download", "preprocess", "feature_net", "fid_stats", "reference", "train", "evaluate", "profile", "report"]
RUNNING = re.compile(rb"Running stage '([^']+)'")
FAILED = re.compile(rb"ERROR: failed to reproduce '([^']+)'(.*)")
GIT_IDENTITY = {"GIT_AUTHOR_NAME": "paper dry run", "GIT_AUTHOR_EMAIL": "dryrun@localhost",
                "GIT_COMMITTER_NAME": "paper dry run", "GIT_COMMITTER_EMAIL": "dryrun@localhost"}


class DryRunError(RuntimeError):
    """The dry run stopped: the message names the step (or the DVC stage) and why."""

    def __init__(self, message: str, stage_seconds: dict | None = None):
        super().__init__(message)
        self.stage_seconds = stage_seconds or {}  # the stages that ran before it stopped


@dataclass
class Summary:
    workspace: str
    plan: str
    runs: list[str]
    overrides: dict
    probes: dict[str, str] = field(default_factory=dict)  # torchvision dataset -> first URL its download reached
    stage_seconds: dict[str, float] = field(default_factory=dict)  # in the order DVC ran them
    setup_seconds: float = 0.0  # copy, git, fixtures, weights, probes
    repro_seconds: float = 0.0  # the whole `dvc repro`
    total_seconds: float = 0.0
    failed: str | None = None  # the first line of the error, when the dry run stopped


def say(msg: str) -> None:
    print(f"[paper-dryrun] {msg}", flush=True)


# ---------------------------------------------------------------- the workspace
def project_root() -> Path:
    """The git checkout the dry run copies: the one around the working directory."""
    out = subprocess.run(["git", "rev-parse", "--show-toplevel"], capture_output=True, text=True)
    if out.returncode != 0:
        raise DryRunError(f"run from inside the project's git checkout ({out.stderr.strip()})")
    return Path(out.stdout.strip()).resolve()


def project_files(root: Path, exclude: Path) -> list[str]:
    """The files a clone would hold (git-tracked), plus untracked ones git does not ignore (work in
    progress is tested too); none under `exclude` (the workspace, when it lies inside the project)."""
    out = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=root,
                         capture_output=True, check=True).stdout.decode()
    files = sorted({f for f in out.split("\0") if f and (root / f).is_file()})
    return [f for f in files if not _inside(root / f, exclude)]


def _inside(path: Path, folder: Path) -> bool:
    try:
        path.resolve().relative_to(folder.resolve())
        return True
    except ValueError:
        return False


def fresh_folder(dest: Path, root: Path) -> None:
    """Empty `dest` for a new workspace; refuse a folder that is not one (no .dryrun/ inside) and not empty."""
    if _inside(root, dest):
        raise DryRunError(f"workspace {dest}: would contain the project itself; choose another --keep")
    if dest.exists():
        if not dest.is_dir():
            raise DryRunError(f"workspace {dest}: is a file")
        if any(dest.iterdir()) and not (dest / PRIVATE).is_dir():
            raise DryRunError(f"workspace {dest}: exists, is not empty and is not a dry-run workspace "
                              f"(no {PRIVATE}/ inside); choose another --keep or empty it")
        shutil.rmtree(dest)
    dest.mkdir(parents=True)


def report_outputs(dvc_yaml: dict, runs: list[str]) -> list[str]:
    """Every path under reports/ that a stage of dvc.yaml writes (outs, metrics, plots), `${key}` expanded."""
    found = []
    for stage in (dvc_yaml.get("stages") or {}).values():
        body = stage.get("do", stage)
        for kind in ("outs", "metrics", "plots"):
            for entry in body.get(kind) or []:
                path = next(iter(entry)) if isinstance(entry, dict) else entry
                found += [path.replace("${key}", run) for run in runs] if "${key}" in path else [path]
    return [p for p in found if p.startswith("reports/")]


def clear_committed_results(ws: Path) -> None:
    """Remove the copy's committed results (the quick profile's metrics, plots, pages, tables, figures), so
    that every result in the workspace is the dry run's own. Inputs (claims.yaml) stay."""
    dvc_yaml = yaml.safe_load((ws / "dvc.yaml").read_text())
    runs = list((yaml.safe_load((ws / "params.yaml").read_text()) or {}).get("runs") or {})
    for rel in {*report_outputs(dvc_yaml, runs), "reports/metrics", "reports/protocols", "reports/plots",
                DEFAULT_PLAN.as_posix()}:
        path = ws / rel
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()


def write_params(ws: Path, runs: list[str] | None) -> list[str]:
    """The copy's params.yaml: `profile: paper`, profiles.paper updated by OVERRIDES, `runs:` cut to `runs`.
    Validated as every stage will read it. Returns the runs kept."""
    from ganrepro.config import ConfigError, load_params

    path = ws / "params.yaml"
    params = yaml.safe_load(path.read_text())
    params["profile"] = "paper"
    params["profiles"]["paper"] = merged(params["profiles"]["paper"], OVERRIDES)
    if runs:
        unknown = [r for r in runs if r not in params["runs"]]
        if unknown:
            raise DryRunError(f"--runs: unknown run {', '.join(map(repr, unknown))}; valid: {', '.join(params['runs'])}")
        params["runs"] = {name: params["runs"][name] for name in runs}
    header = ("# params.yaml of the paper dry run (ganrepro.dryrun): the project's, with profile: paper and\n"
              "# profiles.paper updated by ganrepro.dryrun.OVERRIDES. Not a paper-scale configuration.\n")
    path.write_text(header + yaml.safe_dump(params, sort_keys=False, width=110))
    try:
        load_params(path)
    except ConfigError as e:
        raise DryRunError(f"the dry run's params.yaml does not validate: {e}") from None
    return list(params["runs"])


def git(ws: Path, *args: str) -> None:
    out = subprocess.run(["git", *args], cwd=ws, capture_output=True, text=True, env={**os.environ, **GIT_IDENTITY})
    if out.returncode != 0:
        raise DryRunError(f"git {' '.join(args)} in {ws}: {out.stderr.strip() or out.stdout.strip()}")


def make_workspace(root: Path, ws: Path, runs: list[str] | None) -> list[str]:
    fresh_folder(ws, root)
    (ws / PRIVATE).mkdir()
    files = project_files(root, exclude=ws)
    for f in files:
        (ws / f).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(root / f, ws / f)
    kept = write_params(ws, runs)
    clear_committed_results(ws)
    git(ws, "init", "-q")
    (ws / ".git" / "info").mkdir(parents=True, exist_ok=True)
    with open(ws / ".git" / "info" / "exclude", "a") as f:
        f.write(f"/{PRIVATE}/\n")
    git(ws, "add", "-A")
    git(ws, "commit", "-q", "-m", "paper dry run workspace (ganrepro.dryrun)")
    say(f"workspace {ws}: {len(files)} project files, committed to its own git repo; runs: {', '.join(kept)}")
    return kept


# ---------------------------------------------------------------- data, weights, probes
def needed_datasets(ws: Path) -> list[str]:
    from ganrepro import pipeline
    from ganrepro.config import load_params

    return pipeline.datasets(load_params(ws / "params.yaml"))


def build_fixtures(ws: Path, names: list[str], base_url: str) -> list:
    """Each dataset's fixture; returns a few images of each (for the Inception BatchNorm calibration)."""
    from ganrepro.dryrun import fixtures

    private = ws / PRIVATE
    images = []
    for name in names:
        got = fixtures.build(name, ws / "data" / "raw", private / "manifests", private / "served", base_url)
        where = "served from " + base_url if name in fixtures.MANIFEST_SETS else f"data/raw/{name}/"
        say(f"fixture {name}: {len(got)} synthetic images, {where}" if got else f"fixture {name}: none needed (offline set)")
        images += got[:16]
    return images


def write_weights(torch_home: Path, images: list) -> None:
    import numpy as np
    import torch

    from ganrepro.data.preprocess import to_array
    from ganrepro.standin_weights import write_all

    batch = torch.from_numpy(np.stack([to_array(img, 3, 64) for img in images]))  # (N, 3, 64, 64) uint8
    batch = batch[torch.randperm(len(batch), generator=torch.Generator().manual_seed(0))]  # every set in the first 64
    for path in write_all(torch_home, batch):
        say(f"stand-in weights: {path.name} (random weights"
            + (", BatchNorm calibrated on the fixtures)" if "inception" in path.name else ")"))


def probe_downloads(names: list[str]) -> dict[str, str]:
    """Each torchvision dataset's real download code, up to its first network request (gdown missing: fails here)."""
    from ganrepro.data.datasets import TORCHVISION_SETS
    from ganrepro.data.download import probe

    probes = {}
    for name in names:
        if name in TORCHVISION_SETS:
            probes[name] = probe(name)
            say(f"probe {name}: its download reached {probes[name]}")
    return probes


# ---------------------------------------------------------------- dvc repro
def stage_env(ws: Path) -> dict:
    private = ws / PRIVATE
    env = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_TRACKING_URI", "GANREPRO_ROOT")}
    venv_bin = str(Path(sys.executable).parent)
    no_proxy = ",".join(filter(None, [env.get("NO_PROXY") or env.get("no_proxy"), "127.0.0.1", "localhost"]))
    env.update(
        PATH=f"{venv_bin}{os.pathsep}{env.get('PATH', '')}",
        PYTHONPATH=os.pathsep.join(filter(None, [str(ws / "src"), env.get("PYTHONPATH")])),  # the copy's code
        PYTHONUNBUFFERED="1",
        TORCH_HOME=str(private / "torch"),
        GANREPRO_MANIFESTS=str(private / "manifests"),
        NO_PROXY=no_proxy, no_proxy=no_proxy,
        CUDA_VISIBLE_DEVICES="",
        **GIT_IDENTITY,
    )
    return env


def repro(ws: Path, env: dict) -> dict[str, float]:
    """`dvc repro` in `ws`, its output streamed through; returns seconds per stage, in the order run.

    A stage's time runs from DVC's "Running stage" line to the next one (or the end)."""
    dvc = Path(sys.executable).parent / "dvc"
    cmd = [str(dvc) if dvc.exists() else "dvc", "repro"]
    say(f"{' '.join(cmd)} in {ws}")
    log = open(ws / PRIVATE / "repro.log", "wb")
    clock = open(ws / PRIVATE / "stage-starts.tsv", "a")  # stage, wall-clock start: survives even a SIGKILL
    proc = subprocess.Popen(cmd, cwd=ws, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    starts: list[tuple[str, float]] = []
    failed: tuple[str, str] | None = None
    tail: list[bytes] = []
    pending = b""
    out = sys.stdout.buffer

    def seconds_so_far(end: float) -> dict[str, float]:
        return {name: round(((starts[i + 1][1] if i + 1 < len(starts) else end) - t), 1)
                for i, (name, t) in enumerate(starts)}

    try:
        while chunk := os.read(proc.stdout.fileno(), 1 << 16):
            now = time.perf_counter()
            out.write(chunk)
            out.flush()
            log.write(chunk)
            pending += chunk
            *lines, pending = pending.split(b"\n")
            for line in lines:
                if m := RUNNING.search(line):
                    starts.append((m.group(1).decode(), now))
                    clock.write(f"{starts[-1][0]}\t{time.time():.1f}\n")
                    clock.flush()
                if m := FAILED.search(line):
                    failed = (m.group(1).decode(), m.group(2).decode(errors="replace").strip(": "))
                tail = (tail + [line.split(b"\r")[-1]])[-40:]
        rc = proc.wait()
    except BaseException as e:  # Ctrl-C, SIGTERM: stop DVC (it stops its stage), keep the times so far
        proc.terminate()
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close(), clock.close()
        stage = starts[-1][0] if starts else "(before any stage)"
        raise DryRunError(f"interrupted ({type(e).__name__}: {e}) in stage {stage!r}",
                          seconds_so_far(time.perf_counter())) from e
    end = time.perf_counter()
    log.close(), clock.close()
    seconds = seconds_so_far(end)
    if rc != 0:
        stage = failed[0] if failed else (starts[-1][0] if starts else "(before any stage)")
        why = failed[1] if failed else f"dvc exited with {rc}"
        raise DryRunError(f"dvc repro failed in stage {stage!r} ({why}); full log: {ws / PRIVATE / 'repro.log'}; "
                          f"last lines:\n" + b"\n".join(tail).decode(errors="replace"), seconds)
    return seconds


def check_every_stage_ran(seconds: dict, runs: list[str]) -> None:
    expected = FIXED_STAGES + [f"{stage}@{run}" for run in runs for stage in ("train_run", "evaluate_run")]
    missing = [s for s in expected if s not in seconds]
    if missing:
        raise DryRunError(f"dvc repro did not run these stages: {', '.join(missing)} (ran: {', '.join(seconds)})")


# ---------------------------------------------------------------- the whole dry run
def dry_run(runs: list[str] | None = None, workspace: Path | None = None, plan: Path | None = None) -> Summary:
    from ganrepro.dryrun.serve import serve

    t0 = time.perf_counter()
    root = project_root()
    ws = Path(workspace or root / DEFAULT_WORKSPACE).resolve()
    plan = Path(plan or root / DEFAULT_PLAN).resolve()
    say(f'{BANNER}. profiles.paper overrides (ganrepro.dryrun.OVERRIDES):\n'
        + yaml.safe_dump(OVERRIDES, sort_keys=False, width=110).rstrip())
    kept = make_workspace(root, ws, runs)
    summary = Summary(workspace=str(ws), plan=str(plan), runs=kept, overrides=OVERRIDES)
    names = needed_datasets(ws)
    summary.probes = probe_downloads(names)  # before the server starts: the probe cuts this process's network
    private = ws / PRIVATE
    (private / "served").mkdir(parents=True, exist_ok=True)
    with serve(private / "served") as base_url:
        images = build_fixtures(ws, names, base_url)
        write_weights(private / "torch", images)
        summary.setup_seconds = round(time.perf_counter() - t0, 1)
        t1 = time.perf_counter()
        try:
            summary.stage_seconds = repro(ws, stage_env(ws))
        except DryRunError as e:  # keep what ran, with its times, then stop
            summary.stage_seconds = e.stage_seconds
            finish(summary, t0, t1, failed=str(e).splitlines()[0])
            raise
        finish(summary, t0, t1)
    check_every_stage_ran(summary.stage_seconds, kept)

    from ganrepro.report.plan import write_plan

    write_plan(ws, plan, OVERRIDES, summary.stage_seconds)
    say(f"plan written to {plan}; pages in {ws / 'reports'}/*.md; the workspace stays")
    return summary


def finish(summary: Summary, t0: float, t1: float, failed: str | None = None) -> None:
    """Totals, .dryrun/summary.json and the table of stage times (also after a failure)."""
    now = time.perf_counter()
    summary.repro_seconds, summary.total_seconds = round(now - t1, 1), round(now - t0, 1)
    summary.failed = failed
    path = Path(summary.workspace) / PRIVATE / "summary.json"
    path.write_text(json.dumps(asdict(summary), indent=2) + "\n")
    print_times(summary)


def print_times(s: Summary) -> None:
    width = max(map(len, s.stage_seconds), default=5)
    rows = [f"  {name:<{width}}  {sec:8.1f} s" for name, sec in s.stage_seconds.items()]
    say("seconds per stage:\n" + "\n".join(rows)
        + f"\n  {'setup (copy, fixtures, weights, probes)':<{width}}  {s.setup_seconds:8.1f} s"
        + f"\n  {'dvc repro':<{width}}  {s.repro_seconds:8.1f} s"
        + f"\n  {'total':<{width}}  {s.total_seconds:8.1f} s")
