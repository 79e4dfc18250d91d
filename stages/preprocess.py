"""Stage preprocess: data/raw/<dataset>/ -> data/processed/<dataset>-<size>px.pt (uint8 tensors)."""
from ganrepro import cli, paths, pipeline
from ganrepro.config import load_params
from ganrepro.data.preprocess import preprocess


def main() -> None:
    params = load_params()
    pipeline.check_resolved("data.json", pipeline.data_config(params))
    for name, size in pipeline.processed_sets(params):
        preprocess(name, paths.RAW / name, paths.PROCESSED, size, verify=params.active.verify_downloads)


if __name__ == "__main__":
    cli.main(main, "preprocess")
