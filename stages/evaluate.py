"""Stage evaluate: FID, KID, Inception Score and LPIPS of one trained run, its FID-vs-step curve,
and the spread of FID over its training seeds (profiles.<profile>.seeds).

Writes reports/metrics/evaluate/<run>.json (the values) and reports/protocols/evaluate/<run>.json
(their protocols), the curve
reports/plots/<run>_fid.csv (one row per training snapshot), and logs them onto the training's MLflow run.
A run whose training is a copy (ganrepro.reuse) copies its source's evaluation too, where that was
computed from the same settings, trained G, real statistics and code; its MLflow run is its own.
A missing or unreadable checkpoint, snapshot or weight file stops it before any metric is computed.
"""
import pandas as pd

from ganrepro import cli, paths, pipeline, records, reuse
from ganrepro.config import eval_config, load_params
from ganrepro.data.preprocess import load_processed
from ganrepro.evaluation import check_weight_files, evaluate, fid_curve
from ganrepro.tracking import EvaluationTracker
from ganrepro.training.checkpoint import check_checkpoint, load_checkpoint
from ganrepro.utils import atomic_path, resolve_device


def main() -> None:
    params = load_params()
    run = pipeline.run(params, cli.run_name())
    pipeline.check_resolved(f"{run.name}.eval.json", pipeline.evaluate_config(params, run))
    cfg, device = eval_config(params, run.name), resolve_device(params.active.device)
    processed = load_processed(pipeline.processed_file(run))
    checkpoints = [out_dir / "checkpoint.pt" for _, out_dir in pipeline.seed_runs(run, params.active.seeds)]
    for path in [*checkpoints, *pipeline.snapshots(run)]:
        check_checkpoint(path)
    check_weight_files(cfg)  # every weight file too, before any metric is computed
    ckpt = load_checkpoint(checkpoints[0])
    source = (ckpt.get("copied_from") or {}).get("run")
    fingerprint = reuse.evaluation_fingerprint(pipeline.evaluate_config(params, run),
                                               reuse.training_of(pipeline.run_dir(run)),
                                               [paths.FID_STATS, paths.FEATURE_NETS])
    with EvaluationTracker(ckpt) as tracker:  # onto the training's run (a copy: a run of its own)
        results, curve = copied_evaluation(params, run, fingerprint) if source else (None, None)
        if results is None:
            results = evaluate(run, processed, checkpoints[0], cfg, device, other_seeds=checkpoints[1:])
            curve = fid_curve(run, processed, pipeline.snapshots(run), cfg, device)
        results = reuse.mark(results, source) | {reuse.EVALUATION: fingerprint}
        tracker.log_evaluation(results, curve)  # all computed first: a failure logs none of it
    with atomic_path(paths.PLOTS / f"{run.name}_fid.csv") as tmp:
        curve.to_csv(tmp, index=False)
    records.write(pipeline.metrics_file("evaluate", run), results, "evaluate", pipeline.metrics_key(run))


def copied_evaluation(params, run, fingerprint: str) -> tuple[dict | None, pd.DataFrame | None]:
    """The evaluation record and FID curve of the first other run of the same training (ganrepro.reuse.key)
    whose evaluation was computed with this fingerprint; else (None, None)."""
    for other in pipeline.runs(params):
        metrics, curve = pipeline.metrics_file("evaluate", other), paths.PLOTS / f"{other.name}_fid.csv"
        if other.name == run.name or reuse.key(other) != reuse.key(run) or not (metrics.exists() and curve.exists()):
            continue
        record = records.read(metrics, pipeline.metrics_key(other))
        if record.pop(reuse.EVALUATION, None) == fingerprint:
            print(f"evaluate {run.name}: the same evaluation as {other.name}'s (ganrepro.reuse), copied")
            record.pop(reuse.SAME, None)
            return record, pd.read_csv(curve)
    return None, None


if __name__ == "__main__":
    cli.main(main, "evaluate")
