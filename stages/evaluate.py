"""Stage evaluate: FID (every available backend) and LPIPS diversity of one trained run.

Writes reports/metrics/evaluate/<run>.json (values with their protocols) and logs an MLflow run.
"""
from ganrepro import cli, pipeline
from ganrepro.config import load_params
from ganrepro.data.preprocess import load_processed
from ganrepro.evaluation import evaluate
from ganrepro.tracking import Tracker, flatten
from ganrepro.utils import resolve_device, write_json


def main() -> None:
    params = load_params()
    run = pipeline.run(params, cli.run_name())
    with Tracker(f"{run.name}-eval", stage="evaluate", profile=run.profile) as tracker:
        results = evaluate(run, load_processed(pipeline.processed_file(run)), pipeline.run_dir(run) / "checkpoint.pt",
                           params.active.eval, resolve_device(params.active.device))
        tracker.log_config(run.model_dump(mode="json") | {"eval": params.active.eval.model_dump()})
        tracker.log_metrics({k: v for k, v in flatten(results).items() if k.endswith(".value")})
    write_json(pipeline.metrics_file("evaluate", run), results)


if __name__ == "__main__":
    cli.main(main, "evaluate")
