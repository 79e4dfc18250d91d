"""The CPU peak-memory method sees allocations that are freed before the end; parameter, FLOP and op
counts of one training step."""
import pytest
import torch
from torch.profiler import ProfilerActivity, profile

from conftest import fake_processed, tiny_run
from ganrepro.profiling import MIB, OpCounter, cpu_memory, cpu_peak_bytes, profile_run


def test_cpu_peak_counts_tensors_alive_together_not_the_net_change():
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        keep = [torch.ones(2_500_000) for _ in range(4)]  # 4 x 10 MB alive at once
        del keep
        torch.ones(2_500_000)  # 10 MB, freed at once
    assert 40e6 <= cpu_peak_bytes(prof) < 41e6


def test_cpu_memory_carries_the_running_sum_across_profiler_windows():
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as first:
        keep = torch.ones(2_500_000)  # 10 MB, still alive when the next window opens
    peak, end = cpu_memory(first)
    assert 10e6 <= peak < 10.1e6 and end == peak
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as second:
        torch.ones(2_500_000)  # 10 MB more, freed at once
    assert 20e6 <= cpu_memory(second, start=end)[0] < 20.1e6  # on top of the 10 MB from before
    assert cpu_peak_bytes(second) < 10.1e6  # alone, the window sees only its own
    del keep


def test_profile_run_reports_memory_time_and_environment():
    out = profile_run(tiny_run(), fake_processed(), steps=2, warmup=1)
    assert out["peak_memory_mb"] > 0 and out["seconds_per_step"] > 0 and out["steps_timed"] == 2
    assert out["device"].startswith("cpu") and out["torch"] == torch.__version__
    bigger = profile_run(tiny_run(batch_size=16), fake_processed(n=32), steps=1, warmup=1)
    assert bigger["peak_memory_mb"] > out["peak_memory_mb"]  # activations grow with the batch


def test_a_deq_profile_names_its_solver_and_backward():
    """Table 1's DEQ memory and time depend on them, so the protocol column must say which."""
    from ganrepro.models.deq import Arch
    arch = Arch(z_dim=8, ngf=4, ndf=4, f_solver="anderson", f_max_iter=3).model_dump()
    deq = dict(preset="deq_gan", family="deq", objective={"name": "deq_wgan", "n_critic": 1})
    out = profile_run(tiny_run(**deq, arch=arch), fake_processed(), steps=1, warmup=1)
    assert out["model_settings"] == {"deq_solver": "anderson <=3 steps f_tol 0.001", "deq_backward": "1-step JFB"}
    out = profile_run(tiny_run(**deq, arch={**arch, "ift": True}), fake_processed(), steps=1, warmup=1)
    assert out["model_settings"]["deq_backward"] == "IFT"
    assert profile_run(tiny_run(), fake_processed(), steps=1, warmup=1)["model_settings"] == {}  # DCGAN: none


# ---------------------------------------------------------------- parameters and FLOPs of one step
def test_profile_run_counts_the_parameters_of_g_and_d():
    from ganrepro.models import build_models

    run = tiny_run()
    out = profile_run(run, fake_processed(), steps=1, warmup=1)
    G, D = build_models(run.family, run.arch, run.img_size, 1, 10)
    assert out["params_g"] == sum(p.numel() for p in G.parameters())
    assert out["params_d"] == sum(p.numel() for p in D.parameters())
    assert out["params_g"] != out["params_d"]  # so that swapping them fails too


def test_the_flops_of_one_step_scale_with_the_batch():
    small = profile_run(tiny_run(batch_size=4), fake_processed(), steps=1, warmup=1)
    big = profile_run(tiny_run(batch_size=8), fake_processed(), steps=1, warmup=1)
    assert small["flops_per_step"] > 0 and small["aten_ops_per_step"] > 0
    assert big["flops_per_step"] == pytest.approx(2 * small["flops_per_step"], rel=0.01)  # convolutions: linear
    assert big["params_g"] == small["params_g"]


def test_one_step_is_one_generator_step_with_its_n_critic_critic_steps():
    """f(n_critic) = g + n_critic x d: each critic step adds the same FLOPs. Also runs WGAN-GP's gradient
    penalty (autograd.grad on a leaf) under the counter, which FlopCounterMode's module tracker breaks."""
    wgan = dict(family="wgan_gp", arch={"z_dim": 8, "ngf": 4, "ndf": 4}, betas=(0.0, 0.9))
    flops = {n: profile_run(tiny_run(**wgan, objective={"name": "wgan_gp", "n_critic": n}), fake_processed(n=32),
                            steps=1, warmup=1)["flops_per_step"] for n in (1, 2, 3)}
    assert flops[2] > flops[1] > 0
    assert flops[3] - flops[1] == pytest.approx(2 * (flops[2] - flops[1]), rel=0.01)


def test_the_op_count_leaves_out_views_and_optimiser_steps():
    x = torch.ones(3, requires_grad=True)
    x.grad = torch.ones(3)
    opt = torch.optim.SGD([x], lr=0.1)
    counter = OpCounter()
    with counter.outside_optimisers():
        y = x.detach().view(3) * 2  # detach and view: no kernel; mul: one
        opt.step()  # its ops are not counted
    assert counter.ops == 1 and not torch.equal(x.detach(), torch.ones(3))  # the step did run
    with counter.outside_optimisers():
        y + 1
    assert counter.ops == 2


# ---------------------------------------------------------------- memory protocols (DEQ-GAN Table 1)
def test_the_reference_protocol_holds_its_sampling_pass_inside_the_peak():
    """`reference`: our window plus G on n fresh z with autograd on (wgan_gradient_penalty.py:236-239
    @ 7366c8b). A tiny DCGAN's G keeps some 24 KB of activations per 32px sample for its backward."""
    from ganrepro.config import ReferenceSampling

    def peak(protocol, **sampling):
        return profile_run(tiny_run(), fake_processed(), steps=1, warmup=1, memory_protocol=protocol,
                           sampling=ReferenceSampling(**sampling))

    ours = peak("ours")
    small, big = peak("reference", n=64), peak("reference", n=512)
    no_grad = peak("reference", n=512, grad=False)
    assert ours["memory_protocol"] == "ours" and "reference" not in ours["memory_method"]
    assert big["memory_protocol"] == "reference" and big["memory_sampling"] == {"n": 512, "every": 100, "grad": True}
    assert "with G on 512 z (grad) every 100 steps" in big["memory_method"]
    assert small["peak_memory_mb"] >= ours["peak_memory_mb"]
    assert big["peak_memory_mb"] - small["peak_memory_mb"] > 5  # 448 more samples' graph: ~10 MB
    assert no_grad["peak_memory_mb"] < big["peak_memory_mb"] - 3  # no graph kept


def test_a_profile_only_row_reshapes_the_data_to_its_setting():
    from ganrepro.config import ProfileOnly, ProfilingConfig, ReferenceSampling
    from ganrepro.profiling import at_shape, profile_only_row

    shaped = at_shape(fake_processed(n=8, channels=1, size=16), channels=3, size=32, n_classes=1)
    assert shaped["images"].shape == (8, 3, 32, 32) and shaped["images"].dtype == torch.uint8
    assert torch.equal(shaped["images"][:, 0], shaped["images"][:, 2]) and set(shaped["labels"].tolist()) == {0}
    assert at_shape(fake_processed(n=2, channels=3), channels=1, size=32, n_classes=10)["images"].shape == (2, 1, 32, 32)

    arch = {"z_dim": 8, "ngf": 4, "ndf": 4, "conditional": False, "critic_norm": "instance_affine"}
    cfg = tiny_run(name="w@reference", preset="wgan_gp_ref", family="wgan_gp", arch=arch, dataset="pokemon",
                   data="pokemon", objective={"name": "wgan_gp", "n_critic": 1}, batch_size=1)
    processed = {**fake_processed(n=8, size=16), "dataset": "mnist5k"}
    entry = ProfileOnly(memory_protocol="reference", sampling=ReferenceSampling(n=16))
    counts = ProfilingConfig(steps=3, warmup=1, profile_only={"steps": 1, "warmup": 1})  # the rows' own counts
    row = profile_only_row(cfg, entry, processed, "w", counts)
    assert row["img_size"] == 32 and row["batch_size"] == 1 and row["n_images"] == 8 and row["steps_timed"] == 1
    assert row["memory_protocol"] == "reference" and row["memory_sampling"]["n"] == 16
    assert row["profile_only"] == {"run": "w", "preset": "wgan_gp_ref", "trained": False}
    assert row["data"] == "mnist5k 1x16px -> 3x32px (pokemon's shape)"
    assert row["model_settings"] == {"wgan_conditional": False, "wgan_critic_norm": "instance_affine"}
