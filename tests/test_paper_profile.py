"""The paper profile resolves every run at the papers' sizes, and every model builds and runs there."""
import pytest
import torch
import yaml

from conftest import ROOT
from ganrepro import pipeline
from ganrepro.config import Params
from ganrepro.data.datasets import DATASETS
from ganrepro.models import build_models
from ganrepro.objectives import OBJECTIVES


@pytest.fixture(scope="module")
def paper():
    data = yaml.safe_load((ROOT / "params.yaml").read_text())
    data["profile"] = "paper"
    return Params.model_validate(data)


def test_every_paper_run_resolves_to_its_papers_data_and_size(paper):
    runs = {r.name: r for r in pipeline.runs(paper)}
    assert set(runs) == {"experiment", *paper.runs}
    assert all(not r.substituted and r.device == "auto" for r in runs.values())
    assert runs["dcgan_cifar10"].img_size == 64 and runs["fastgan_m3_vangogh"].img_size == 256
    assert runs["deq_pokemon_3b_lr2e4"].arch["n_branches"] == 3 and runs["deq_pokemon_3b_lr2e4"].lr_g == 2e-4
    assert runs["began_celeba_g07"].objective["gamma"] == 0.7
    assert {"cifar10", "celeba", "pokemon", "vangogh", "mnist", "fashion_mnist"} <= set(pipeline.datasets(paper))


@pytest.mark.parametrize("preset", ["dcgan", "sagan", "wgan_gp", "deq_gan", "deq_gan_3b", "began", "fastgan_m3"])
def test_each_preset_builds_at_paper_scale(paper, preset):
    name = next(n for n, spec in paper.runs.items() if spec.preset == preset)
    run = pipeline.run(paper, name)
    cls = OBJECTIVES.get(run.objective["name"])
    cls.Args.model_validate({k: v for k, v in run.objective.items() if k != "name"})
    spec = DATASETS.get(run.data)
    torch.manual_seed(0)
    G, D = build_models(run.family, run.arch, run.img_size, spec.channels, spec.n_classes)
    G.eval(), D.eval()
    with torch.no_grad():
        x = G(G.sample_z(1), torch.zeros(1, dtype=torch.long))
        assert x.shape == (1, spec.channels, run.img_size, run.img_size)
        assert torch.isfinite(D(x, torch.zeros(1, dtype=torch.long))).all()
