"""Stage download: fetch (or, offline, copy from installed packages) every dataset the profile needs.

Writes data/raw/<dataset>/. URL datasets are sha256-checked; torchvision ones md5-checked.
"""
from ganrepro import cli, paths, pipeline
from ganrepro.config import load_params
from ganrepro.data.datasets import DATASETS


def download_all(names: list[str]) -> None:
    for name in names:
        print(f"download {name}: {DATASETS.get(name).description}")
        DATASETS.get(name).download(paths.RAW / name)


def main() -> None:
    download_all(pipeline.datasets(load_params()))


if __name__ == "__main__":
    cli.main(main, "download")
