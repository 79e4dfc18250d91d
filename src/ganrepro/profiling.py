"""Peak memory and time per generator step of a model, measured the same way for every model.

    CUDA: torch.cuda.max_memory_allocated() after reset_peak_memory_stats(), around `steps` steps.
    CPU:  the peak of the running sum of bytes allocated minus freed, as recorded op by op by
          torch.profiler(profile_memory=True), in op start order, over the same steps.
Both count tensor memory held by the allocator (weights, optimiser state, activations, grads),
not the process's RSS. Time is wall-clock per step (CUDA-synchronised), after `warmup` steps; the
epoch time is that median step time x the generator steps in one pass over the data.
"""
from __future__ import annotations

import platform
import statistics
import time

import torch
from torch.profiler import ProfilerActivity, profile

from ganrepro.config import RunConfig
from ganrepro.models import describe_arch
from ganrepro.training.loop import batches, build, train_step
from ganrepro.utils import resolve_device, seed_everything

MIB = 2**20


def environment(device: torch.device) -> dict:
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or platform.machine()
    return {"device": f"{device.type}: {name}", "torch": torch.__version__, "threads": torch.get_num_threads()}


def cpu_memory(prof, start: int = 0) -> tuple[int, int]:
    """(peak, end) of the running sum of bytes allocated - freed, op by op in start order, from `start`
    (what was allocated before this profiler window, when a measurement spans several)."""
    running, peak = start, 0
    for e in sorted(prof.events(), key=lambda e: e.time_range.start):
        running += e.self_cpu_memory_usage
        peak = max(peak, running)
    return peak, running


def cpu_peak_bytes(prof) -> int:
    return cpu_memory(prof)[0]


def synchronizer(device: torch.device):
    """Waits for the device's queued work, before a clock is read (a no-op on CPU)."""
    return torch.cuda.synchronize if device.type == "cuda" else (lambda: None)


def profile_run(cfg: RunConfig, processed: dict, steps: int, warmup: int) -> dict:
    device = resolve_device(cfg.device)
    seed_everything(cfg.seed)
    images = processed["images"]
    data = batches(images, processed["labels"], cfg.batch_size, cfg.seed, device)
    sync = synchronizer(device)

    def run_steps(objective, n) -> list[float]:
        times = []
        for _ in range(n):
            sync()
            t = time.perf_counter()
            train_step(objective, data)
            sync()
            times.append(time.perf_counter() - t)
        return times

    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
        G, D, objective = build(cfg, images.shape[1], processed["n_classes"], device)
        times = run_steps(objective, warmup + steps)[warmup:]
        peak = torch.cuda.max_memory_allocated(device)
        method = "torch.cuda.max_memory_allocated"
    else:
        with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
            G, D, objective = build(cfg, images.shape[1], processed["n_classes"], device)
            run_steps(objective, max(warmup, 1))  # the peak needs at least one full step
        peak = cpu_peak_bytes(prof)
        times = run_steps(objective, steps)  # timed outside the profiler, which slows ops down
        method = "torch.profiler peak allocated (CPU)"
    return {
        "peak_memory_mb": round(peak / MIB, 2),
        "seconds_per_step": round(statistics.median(times), 5),
        # an epoch = one pass over the data; each generator step eats n_critic batches
        "seconds_per_epoch": round(statistics.median(times) * len(images) / (cfg.batch_size * objective.n_critic), 3),
        "n_images": len(images),
        "steps_timed": len(times),
        "batch_size": cfg.batch_size,
        "img_size": cfg.img_size,
        "memory_method": method,
        "model_settings": describe_arch(cfg.family, cfg.arch),  # e.g. a DEQ's solver and backward
        **environment(device),
    }
