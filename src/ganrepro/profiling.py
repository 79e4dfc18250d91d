"""Peak memory and time per generator step of a model, measured the same way for every model.

    CUDA: torch.cuda.max_memory_allocated() after reset_peak_memory_stats(), around `steps` steps.
    CPU:  the peak of the running sum of bytes allocated minus freed, as recorded op by op by
          torch.profiler(profile_memory=True), in op start order, over the same steps.
Both count tensor memory held by the allocator (weights, optimiser state, activations, grads),
not the process's RSS. Time is wall-clock per step (CUDA-synchronised), after `warmup` steps; the
epoch time is that median step time x the generator steps in one pass over the data.

Beside them, at no extra step: the parameter counts of G and D, and the first (untimed) step's
floating-point operations, counted by torch.utils.flop_counter.FlopCounterMode (matmuls,
convolutions and attention, forward and backward; elementwise ops and the optimiser are not
counted), and its dispatched ATen ops (views and the optimisers' steps not counted), a floor on
the kernels the step launches on a GPU. One step = one generator step with its n_critic critic
steps, as the loop trains it.
"""
from __future__ import annotations

import contextlib
import datetime
import platform
import statistics
import time

import torch
from torch.profiler import ProfilerActivity, profile
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import FlopCounterMode

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


def n_params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


class OpCounter(TorchDispatchMode):
    """Counts the ATen ops dispatched while active, except views (no kernel) and whatever runs inside
    an optimiser's `step` (Adam launches a handful of fused foreach kernels on CUDA but one op per
    tensor on CPU, so counting it here would overstate a GPU's launches)."""

    def __init__(self):
        super().__init__()
        self.ops, self._paused = 0, 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if not self._paused and not func.is_view and func.namespace == "aten":  # not profiler.record_function
            self.ops += 1
        return func(*args, **(kwargs or {}))

    @contextlib.contextmanager
    def outside_optimisers(self):
        def pause(*_):
            self._paused += 1

        def resume(*_):
            self._paused -= 1

        from torch.optim.optimizer import register_optimizer_step_post_hook, register_optimizer_step_pre_hook

        handles = [register_optimizer_step_pre_hook(pause), register_optimizer_step_post_hook(resume)]
        try:
            with self:
                yield self
        finally:
            for h in handles:
                h.remove()


class _GlobalOnly:
    """Stands in for FlopCounterMode's ModuleTracker: every FLOP is counted under "Global" only."""

    parents = {"Global"}

    def __enter__(self):
        return self

    def __exit__(self, *args):
        return None


class StepFlopCounter(FlopCounterMode):
    """FlopCounterMode's total, without its per-module breakdown. The breakdown's ModuleTracker puts
    backward hooks on module inputs that make torch.autograd.grad on a leaf fail ("A leaf node was
    passed to _will_engine_execute_node"), which is what WGAN-GP's gradient penalty calls."""

    def __init__(self):
        super().__init__(display=False)
        self.mod_tracker = _GlobalOnly()


@contextlib.contextmanager
def counting(out: dict):
    """FLOPs and ATen ops of what runs inside, into out["flops"] and out["ops"]."""
    flops, ops = StepFlopCounter(), OpCounter()
    with flops, ops.outside_optimisers():
        yield
    out["flops"], out["ops"] = flops.get_total_flops(), ops.ops


def synchronizer(device: torch.device):
    """Waits for the device's queued work, before a clock is read (a no-op on CPU)."""
    return torch.cuda.synchronize if device.type == "cuda" else (lambda: None)


def profile_run(cfg: RunConfig, processed: dict, steps: int, warmup: int) -> dict:
    device = resolve_device(cfg.device)
    seed_everything(cfg.seed)
    images = processed["images"]
    data = batches(images, processed["labels"], cfg.batch_size, cfg.seed, device)
    sync = synchronizer(device)

    counted: dict = {}

    def run_steps(objective, n, count_first: bool = False) -> list[float]:
        """n timed steps; with count_first, the first is also counted (FLOPs, ops): a warmup step."""
        times = []
        for i in range(n):
            sync()
            t = time.perf_counter()
            with counting(counted) if count_first and i == 0 else contextlib.nullcontext():
                train_step(objective, data)
            sync()
            times.append(time.perf_counter() - t)
        return times

    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
        G, D, objective = build(cfg, images.shape[1], processed["n_classes"], device)
        first = max(warmup, 1)  # the counted step is never a timed one (the counters slow it down)
        times = run_steps(objective, first + steps, count_first=True)[first:]
        peak = torch.cuda.max_memory_allocated(device)
        method = "torch.cuda.max_memory_allocated"
    else:
        with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
            G, D, objective = build(cfg, images.shape[1], processed["n_classes"], device)
            run_steps(objective, max(warmup, 1), count_first=True)  # the peak needs at least one full step
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
        "params_g": n_params(G),
        "params_d": n_params(D),
        "n_critic": objective.n_critic,
        "flops_per_step": counted["flops"],  # one G step with its n_critic D steps, forward + backward
        "aten_ops_per_step": counted["ops"],
        "flops_method": "torch.utils.flop_counter.FlopCounterMode, first step (matmul/conv/attention only)",
        "date": datetime.date.today().isoformat(),
        "model_settings": describe_arch(cfg.family, cfg.arch),  # e.g. a DEQ's solver and backward
        **environment(device),
    }
