"""The CPU peak-memory method sees allocations that are freed before the end."""
import torch
from torch.profiler import ProfilerActivity, profile

from conftest import fake_processed, tiny_run
from ganrepro.profiling import MIB, cpu_peak_bytes, profile_run


def test_cpu_peak_counts_tensors_alive_together_not_the_net_change():
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        keep = [torch.ones(2_500_000) for _ in range(4)]  # 4 x 10 MB alive at once
        del keep
        torch.ones(2_500_000)  # 10 MB, freed at once
    assert 40e6 <= cpu_peak_bytes(prof) < 41e6


def test_profile_run_reports_memory_time_and_environment():
    out = profile_run(tiny_run(), fake_processed(), steps=2, warmup=1)
    assert out["peak_memory_mb"] > 0 and out["seconds_per_step"] > 0 and out["steps_timed"] == 2
    assert out["device"].startswith("cpu") and out["torch"] == torch.__version__
    bigger = profile_run(tiny_run(batch_size=16), fake_processed(n=32), steps=1, warmup=1)
    assert bigger["peak_memory_mb"] > out["peak_memory_mb"]  # activations grow with the batch
