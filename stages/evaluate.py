"""Stage evaluate: FID, KID, Inception Score and LPIPS of one trained run, its FID-vs-step curve,
and the spread of FID over its training seeds (profiles.<profile>.seeds).

Writes reports/metrics/evaluate/<run>.json (the values) and reports/protocols/evaluate/<run>.json
(their protocols), the curve
reports/plots/<run>_fid.csv (one row per training snapshot), and logs them onto the training's MLflow run.
A missing or unreadable checkpoint, snapshot or weight file stops it before any metric is computed.
"""
from ganrepro import cli, paths, pipeline, records
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
    with EvaluationTracker(load_checkpoint(checkpoints[0])) as tracker:  # onto the training's run
        results = evaluate(run, processed, checkpoints[0], cfg, device, other_seeds=checkpoints[1:])
        curve = fid_curve(run, processed, pipeline.snapshots(run), cfg, device)
        tracker.log_evaluation(results, curve)  # all computed first: a failure logs none of it
    with atomic_path(paths.PLOTS / f"{run.name}_fid.csv") as tmp:
        curve.to_csv(tmp, index=False)
    records.write(pipeline.metrics_file("evaluate", run), results, "evaluate", pipeline.metrics_key(run))


if __name__ == "__main__":
    cli.main(main, "evaluate")
