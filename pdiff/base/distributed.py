"""Data-parallel training with PyTorch DDP under `torchrun` (gloo on CPU, NCCL on CUDA).

Switched on by torchrun's environment (``WORLD_SIZE`` > 1) or by ``model.distributed`` = N >= 2, in which
case the `train` and `collect` stages re-launch themselves with ``torchrun --nproc_per_node=N``.

Every rank draws the same shuffled minibatch from the same seeded generator and takes its own shard of it
(``idx[rank::world]``); DDP averages gradients over the ranks, and each rank's mean loss is scaled by
``world * n_local / n_global`` so that the update equals the single-process update on the whole minibatch,
also when the last minibatch does not split evenly. Models with BatchNorm compute batch statistics per
shard (SyncBatchNorm on CUDA), so only BatchNorm-free models (or collection, where BatchNorm is frozen in
eval mode) match single-process training exactly. Only rank 0 writes artifacts and logs curves.
"""
from __future__ import annotations

import os
import sys
from dataclasses import dataclass

import torch
from torch import nn

from pdiff import PdiffError

TORCHRUN_VARS = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")


@dataclass
class Context:
    rank: int
    world: int
    local_rank: int
    backend: str
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def launched_by_torchrun(env=os.environ) -> bool:
    return all(v in env for v in TORCHRUN_VARS) and int(env["WORLD_SIZE"]) > 1


def is_main(ctx: Context | None) -> bool:
    """True in single-process runs and on rank 0."""
    return ctx is None or ctx.is_main


def relaunch_with_torchrun(nproc: int, script: str, argv: list[str] | None = None) -> list[str]:
    """The command that runs ``script`` under torchrun with ``nproc`` local processes."""
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}", script,
            *(argv or [])]


def maybe_relaunch(nproc: int, script: str) -> None:
    """If ``model.distributed`` asks for N >= 2 processes and we are not yet under torchrun, run this stage
    under torchrun and exit with its status (the parent writes nothing)."""
    if nproc >= 2 and not launched_by_torchrun():
        import subprocess

        sys.stdout.flush()
        raise SystemExit(subprocess.call(relaunch_with_torchrun(nproc, script, sys.argv[1:])))


def init(device: torch.device) -> Context | None:
    """Join the process group when launched by torchrun (None otherwise): NCCL with one GPU per local rank on
    CUDA, gloo on CPU."""
    if not launched_by_torchrun():
        return None
    import torch.distributed as dist

    rank, world, local = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"]), int(os.environ["LOCAL_RANK"])
    if device.type == "cuda":
        if local >= torch.cuda.device_count():
            raise PdiffError(f"torchrun started local rank {local} but only {torch.cuda.device_count()} GPUs are "
                             f"visible; lower --nproc_per_node / model.distributed.")
        device = torch.device("cuda", local)
        torch.cuda.set_device(device)
        backend = "nccl"
    else:
        backend = "gloo"
    if not dist.is_initialized():
        dist.init_process_group(backend=backend)
    return Context(rank, world, local, backend, device)


def finish(ctx: Context | None) -> None:
    if ctx is not None:
        import torch.distributed as dist

        if dist.is_initialized():
            dist.barrier()
            dist.destroy_process_group()


def wrap(model: nn.Module, ctx: Context | None, sync_bn: bool = True) -> nn.Module:
    """DDP around ``model``; the model itself when not distributed. With ``sync_bn`` on CUDA, BatchNorm layers
    become SyncBatchNorm in place (call this before building the optimizer: the layers' parameters are new)."""
    if ctx is None:
        return model
    from torch.nn.parallel import DistributedDataParallel as DDP

    if sync_bn and ctx.device.type == "cuda":
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    ids = [ctx.device.index] if ctx.device.type == "cuda" else None
    return DDP(model, device_ids=ids)


def shard(idx: torch.Tensor, ctx: Context | None) -> torch.Tensor:
    """This rank's share of one global minibatch of indices."""
    if ctx is None:
        return idx
    if len(idx) < ctx.world:
        raise PdiffError(f"a minibatch of {len(idx)} examples cannot be split over {ctx.world} processes; use a "
                         f"batch size (and a dataset size modulo it) of at least {ctx.world}.")
    return idx[ctx.rank::ctx.world]


def loss_scale(n_local: int, n_global: int, ctx: Context | None) -> float:
    """Factor on a rank's mean loss so DDP's gradient average equals the gradient of the global mean."""
    return 1.0 if ctx is None else ctx.world * n_local / n_global


def all_mean(value: float, ctx: Context | None) -> float:
    """Mean of a float over the ranks (for logging a global loss)."""
    if ctx is None:
        return value
    import torch.distributed as dist

    t = torch.tensor([value], dtype=torch.float64,
                     device=ctx.device if ctx.backend == "nccl" else torch.device("cpu"))
    dist.all_reduce(t)
    return float(t.item()) / ctx.world
