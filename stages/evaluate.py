"""Stage evaluate: FID, KID, Inception Score and LPIPS of one trained run, its FID-vs-step curve,
and the spread of FID over its training seeds (profiles.<profile>.seeds).

Writes reports/metrics/evaluate/<run>.json (values with their protocols), the curve
reports/plots/<run>_fid.csv (one row per training snapshot), and logs an MLflow run.
A missing or unreadable checkpoint, snapshot or weight file stops it before any metric is computed.
"""
from ganrepro import cli, paths, pipeline
from ganrepro.config import eval_config, load_params
from ganrepro.data.preprocess import load_processed
from ganrepro.evaluation import check_weight_files, evaluate, fid_curve
from ganrepro.tracking import Tracker, flatten
from ganrepro.training.checkpoint import check_checkpoint
from ganrepro.utils import atomic_path, resolve_device, write_json


def main() -> None:
    params = load_params()
    run = pipeline.run(params, cli.run_name())
    cfg, device = eval_config(params, run.name), resolve_device(params.active.device)
    processed = load_processed(pipeline.processed_file(run))
    checkpoints = [out_dir / "checkpoint.pt" for _, out_dir in pipeline.seed_runs(run, params.active.seeds)]
    for path in [*checkpoints, *pipeline.snapshots(run)]:
        check_checkpoint(path)
    check_weight_files(cfg)  # every weight file too, before any metric is computed
    with Tracker(f"{run.name}-eval", stage="evaluate", profile=run.profile) as tracker:
        tracker.log_config(run.model_dump(mode="json") | {"eval": cfg.model_dump()})
        results = evaluate(run, processed, checkpoints[0], cfg, device, other_seeds=checkpoints[1:])
        curve = fid_curve(run, processed, pipeline.snapshots(run), cfg, device)
        tracker.log_metrics({k: v for k, v in flatten(results).items() if k.endswith(".value")})
        for row in curve.to_dict("records"):
            tracker.log_metrics({k: v for k, v in row.items() if k != "step"}, step=int(row["step"]))
    with atomic_path(paths.PLOTS / f"{run.name}_fid.csv") as tmp:
        curve.to_csv(tmp, index=False)
    write_json(pipeline.metrics_file("evaluate", run), results)


if __name__ == "__main__":
    cli.main(main, "evaluate")
