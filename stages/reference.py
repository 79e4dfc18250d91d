"""Stage reference: the yardsticks every FID and IS is read against, under the runs' own protocol.

    real    n_fake real images against the real statistics: the floor a perfect G would score
    noise   uniform noise images: what "nothing learned" scores

one set per (data, size, FID dims) the runs use (ganrepro.pipeline.reference_sets). Writes
reports/metrics/reference.json (the numbers, keyed `<data>_<size>px_<dims>d`) and its protocols; the pages print
them as rows beside every run's FID and IS.
"""
from ganrepro import cli, paths, pipeline, records
from ganrepro.config import eval_config, load_params
from ganrepro.data.preprocess import load_processed
from ganrepro.evaluation import reference
from ganrepro.utils import resolve_device

METRICS = paths.METRICS / "reference.json"


def main() -> None:
    params = load_params()
    pipeline.check_resolved("reference.json", pipeline.reference_config(params))
    device = resolve_device(params.active.device)
    out = {}
    for key, name in pipeline.reference_sets(params).items():
        run = pipeline.run(params, name)
        out[key] = reference(run, load_processed(pipeline.processed_file(run)), eval_config(params, name), device)
        print(f"reference {key}: " + ", ".join(f"{which} FID {b}={r['value']}" for which in ("real", "noise")
                                               for b, r in out[key][which]["fid"].items() if "value" in r))
    records.write(METRICS, out, "evaluate")


if __name__ == "__main__":
    cli.main(main, "reference")
