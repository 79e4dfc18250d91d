import pytest

from ganrepro.registry import Registry, UnknownNameError


def test_get_returns_registered_entry_and_unknown_lists_valid_names():
    reg = Registry("widget")
    reg.register("b")(2)
    reg.register("a")(1)
    assert reg.get("a") == 1 and reg.names() == ["a", "b"]
    with pytest.raises(UnknownNameError, match=r"model.widget: unknown widget 'c'; valid: a, b"):
        reg.get("c", key="model.widget")


def test_registering_a_name_twice_is_an_error():
    reg = Registry("widget")
    reg.register("a")(1)
    with pytest.raises(ValueError, match="twice"):
        reg.register("a")(2)


def test_every_registered_model_objective_loss_and_metric_name_builds():
    from ganrepro.losses import LOSSES
    from ganrepro.metrics.features import FEATURES
    from ganrepro.metrics.lpips import LPIPS
    from ganrepro.models import MODELS
    from ganrepro.objectives import OBJECTIVES

    assert {"dcgan"} <= set(MODELS.names())
    assert {"gan"} <= set(OBJECTIVES.names())
    assert {"bce", "wasserstein", "hinge"} <= set(LOSSES.names())
    assert {"inception", "digit_classifier"} <= set(FEATURES.names())
    assert {"lpips_alex", "lpips_digit"} <= set(LPIPS.names())
    for name in MODELS.names():
        fam = MODELS.get(name)
        G, D = fam.build(fam.Arch(), img_size=32, channels=1, n_classes=10)
        assert G.sample_z(2).shape[0] == 2
