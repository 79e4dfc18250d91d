"""Stage feature_net: train the digit classifier whose features give the offline FID."""
import torch

from ganrepro import cli, paths, pipeline, records
from ganrepro.config import load_params
from ganrepro.data.preprocess import load_processed, processed_path
from ganrepro.metrics.digit_classifier import INPUT_SIZE, train_classifier
from ganrepro.metrics.features import DIGIT_CLASSIFIER
from ganrepro.utils import save_torch


def main() -> None:
    cfg = load_params().active.feature_net
    pipeline.check_resolved("feature_net.json", cfg.model_dump(mode="json"))
    data = load_processed(processed_path(paths.PROCESSED, pipeline.FEATURE_NET_DATA, INPUT_SIZE))
    torch.set_num_threads(max(torch.get_num_threads(), 1))
    net, metrics = train_classifier(data["images"], data["labels"], cfg)
    save_torch(DIGIT_CLASSIFIER, net.state_dict())
    records.write(paths.METRICS / "feature_net.json", metrics, "feature_net")
    print(f"digit classifier: {metrics}")


if __name__ == "__main__":
    cli.main(main, "feature_net")
