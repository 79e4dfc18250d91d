"""Stage fid_stats: real-data feature statistics per (dataset, size, backend, dims), cached in data/fid_stats/.

Computed once; `evaluate` reads them (mean, covariance and the first real features, for KID).
Inception's are computed only if its weights are in the torch cache (after adding them:
`dvc repro -f fid_stats`).
"""
from ganrepro import cli, pipeline
from ganrepro.config import eval_config, load_params
from ganrepro.data.preprocess import load_processed
from ganrepro.evaluation import real_stats_for
from ganrepro.utils import resolve_device


def main() -> None:
    params = load_params()
    pipeline.check_resolved("fid_stats.json", pipeline.fid_stats_config(params))
    for run in pipeline.runs(params):
        files = real_stats_for(run, load_processed(pipeline.processed_file(run)), eval_config(params, run.name),
                               resolve_device(params.active.device))
        print("\n".join(f"real stats: {f}" for f in files))


if __name__ == "__main__":
    cli.main(main, "fid_stats")
