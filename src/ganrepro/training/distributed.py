"""Data-parallel training under `torchrun --nproc_per_node N` (one process per GPU, or CPU processes).

torchrun sets RANK, LOCAL_RANK and WORLD_SIZE; `setup()` then joins the process group (NCCL on
CUDA, gloo on CPU). Each rank reads a disjoint shard of every epoch (the DistributedSampler rule,
see loop.batches) and, after every backward, the gradients are averaged over the ranks:

    g <- (1/N) sum_r g_r          (all_reduce, SUM, then / N)

which is what DistributedDataParallel's reducer does. We average explicitly, in `Objective.step`,
rather than wrap G and D in DDP, because the objectives call model methods other than forward
(FastGAN's D.features and decoders, BEGAN's D.reconstruct, G.sample_z, gradient penalties), and
DDP only synchronises gradients of graphs built through its own forward. Parameters are broadcast
from rank 0 at the start, so every rank holds the same weights at every step. Only rank 0 logs to
MLflow and writes checkpoints, samples and metric files.
"""
from __future__ import annotations

import os

import torch
import torch.distributed as dist


def world_size() -> int:
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def rank() -> int:
    """This process's rank: from the process group, or torchrun's RANK before it is joined."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank()
    return int(os.environ.get("RANK", "0"))


def is_main() -> bool:
    return rank() == 0


def setup() -> torch.device | None:
    """Join the process group if torchrun started us; return this rank's CUDA device, if any."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1 or dist.is_initialized():
        return None
    cuda = torch.cuda.is_available()
    dist.init_process_group(backend="nccl" if cuda else "gloo")
    if cuda:
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
        torch.cuda.set_device(device)
        return device
    return None


def broadcast_parameters(*modules: torch.nn.Module) -> None:
    """Rank 0's parameters and buffers to every rank."""
    if world_size() == 1:
        return
    for module in modules:
        for t in [*module.parameters(), *module.buffers()]:
            dist.broadcast(t.data, src=0)


def average_gradients(optimizer: torch.optim.Optimizer) -> None:
    """g <- mean over ranks of g, for every parameter the optimiser steps."""
    n = world_size()
    if n == 1:
        return
    for group in optimizer.param_groups:
        for p in group["params"]:
            if p.grad is not None:
                dist.all_reduce(p.grad, op=dist.ReduceOp.SUM)
                p.grad.div_(n)


def teardown() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
