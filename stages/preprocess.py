"""Stage preprocess: data/raw/<dataset>/ -> data/processed/<dataset>-<size>px.pt (uint8 tensors)."""
from ganrepro import cli, paths, pipeline
from ganrepro.config import load_params
from ganrepro.data.preprocess import preprocess


def main() -> None:
    for name, size in pipeline.processed_sets(load_params()):
        preprocess(name, paths.RAW / name, paths.PROCESSED, size)


if __name__ == "__main__":
    cli.main(main, "preprocess")
