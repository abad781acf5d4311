"""One run over several processes: what the hand-written training loops need from torch.distributed.

`accelerate launch --multi_gpu --num_processes N` (or torchrun) starts N copies of the same
command and tells each who it is in the environment: WORLD_SIZE, RANK, LOCAL_RANK, MASTER_ADDR,
MASTER_PORT. `init_distributed` reads them and joins the process group (nccl on CUDA, each rank
on GPU LOCAL_RANK; gloo on the CPU). Without them (a plain process) it returns a one-process
`Dist` whose collectives return their input, so a recipe reads the same either way.

The conventions the recipes (encoder.py, grpo.py) follow:
- every rank holds the same weights and takes the same optimizer step on gradients averaged over
  the ranks (`Dist.wrap`: DistributedDataParallel; `Dist.average_gradients` where a loop has no
  single forward to wrap), so N processes see N times the data per step;
- each rank draws its own data from seeds that name the rank (`rank_seed`); rank 0 draws what a
  plain process draws;
- numbers a run reports are averaged over the ranks (`Dist.mean`);
- rank 0 alone writes files; the others wait (`Dist.main_first`, `Dist.barrier`).

Waits for rank 0's one-time work (synthesis, a feature cache, a validation pass) use a gloo group
with a day's timeout (`WAIT_TIMEOUT`); the training collectives keep torch's default.
"""

from __future__ import annotations

import atexit
import os
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta

import numpy as np
import torch

from agent.core.errors import BinauraError

#: How long ranks wait at a barrier for rank 0's one-time work before torch gives up.
WAIT_TIMEOUT = timedelta(hours=24)
_ENV = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")
_wait_group = None  # the gloo group of the long waits and the Python-object collectives


@dataclass(frozen=True)
class Dist:
    """This process's place in the run: rank of world_size, and the device it trains on."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        """Rank 0: the process that writes the run's files and prints its progress."""
        return self.rank == 0

    @property
    def active(self) -> bool:
        """More than one process: the collectives communicate."""
        return self.world_size > 1

    def barrier(self) -> None:
        """Every rank waits here until all have arrived (up to WAIT_TIMEOUT)."""
        if self.active:
            torch.distributed.barrier(group=_wait_group)

    @contextmanager
    def main_first(self) -> Iterator[None]:
        """Rank 0 runs the block first (building what the others then only read); the others run
        it after rank 0 has finished. Guard work that writes a shared file with `if dist.is_main`
        inside, or make the block find the file there when the others enter it."""
        if self.active and not self.is_main:
            self.barrier()
        yield
        if self.active and self.is_main:
            self.barrier()

    def mean(self, values: dict[str, float]) -> dict[str, float]:
        """Each value averaged over the ranks (every rank must pass the same keys), in the input's order."""
        if not self.active:
            return dict(values)
        keys = sorted(values)  # the same order on every rank, however each built its dict
        t = torch.tensor([float(values[k]) for k in keys], dtype=torch.float64, device=self.device)
        torch.distributed.all_reduce(t)
        mean = dict(zip(keys, (t / self.world_size).tolist()))
        return {k: mean[k] for k in values}

    def sum(self, value: torch.Tensor) -> torch.Tensor:
        """A tensor summed over the ranks (a new tensor; the input is left as it was)."""
        if not self.active:
            return value.clone()
        t = value.detach().clone().to(self.device)
        torch.distributed.all_reduce(t)
        return t.to(value.device)

    def gather(self, obj) -> list:
        """Every rank's `obj` (picklable), in rank order, on every rank."""
        if not self.active:
            return [obj]
        out = [None] * self.world_size
        torch.distributed.all_gather_object(out, obj, group=_wait_group)
        return out

    def broadcast(self, obj):
        """Rank 0's `obj` on every rank: for decisions that must be the same everywhere (when to stop)."""
        if not self.active:
            return obj
        box = [obj]
        torch.distributed.broadcast_object_list(box, src=0, group=_wait_group)
        return box[0]

    def average_gradients(self, params: Iterable[torch.Tensor]) -> None:
        """Replace each parameter's gradient by its mean over the ranks (a missing gradient counts
        as zeros): what DistributedDataParallel does, for a loop that calls the model through
        several methods instead of one forward. One all-reduce of the flattened gradients."""
        if not self.active:
            return
        params = [p for p in params if p.requires_grad]
        grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
        flat = torch.cat([g.reshape(-1) for g in grads]).to(self.device)
        torch.distributed.all_reduce(flat)
        flat /= self.world_size
        for p, chunk in zip(params, flat.split([g.numel() for g in grads])):
            p.grad = chunk.view_as(p).to(p.device, p.dtype).clone()

    def broadcast_parameters(self, params: Iterable[torch.Tensor]) -> None:
        """Copy rank 0's values into these tensors on every rank (one broadcast of them flattened):
        the ranks start from the same weights, as DistributedDataParallel makes them at its start."""
        if not self.active:
            return
        params = list(params)
        flat = torch.cat([p.detach().reshape(-1).to(self.device, torch.float32) for p in params])
        torch.distributed.broadcast(flat, src=0)
        with torch.no_grad():
            for p, chunk in zip(params, flat.split([p.numel() for p in params])):
                p.copy_(chunk.view_as(p))

    def wrap(self, module: torch.nn.Module, **ddp_kwargs) -> torch.nn.Module:
        """The module in DistributedDataParallel (gradients averaged over the ranks during
        backward, rank 0's weights and buffers broadcast at the start), or the module itself in a
        plain process. Train through the wrapper's forward; save and evaluate the module."""
        if not self.active:
            return module
        from torch.nn.parallel import DistributedDataParallel  # noqa: PLC0415

        ids = [self.device.index] if self.device.type == "cuda" else None
        return DistributedDataParallel(module, device_ids=ids, **ddp_kwargs)


def _env_int(name: str) -> int:
    try:
        return int(os.environ[name])
    except ValueError:
        raise BinauraError(f"{name}={os.environ[name]!r} in the environment: expected an integer, as "
                           f"`accelerate launch` / torchrun set it") from None


def launched_world_size() -> int:
    """WORLD_SIZE as a launcher set it (1 when it did not)."""
    return _env_int("WORLD_SIZE") if "WORLD_SIZE" in os.environ else 1


def init_distributed(device: str = "auto") -> Dist:
    """This process's `Dist`; joins the launcher's process group on the first call (later calls,
    and a group a library such as transformers' Trainer set up, reuse it).

    device: "auto" (CUDA when present), "cuda" or "cpu", as the recipes' configs name it. Under a
    launcher with CUDA, rank r trains on GPU LOCAL_RANK over nccl; on the CPU over gloo."""
    global _wait_group  # noqa: PLW0603
    if device not in ("auto", "cpu", "cuda"):
        raise BinauraError(f"device must be auto, cpu or cuda, got {device!r}")
    cuda = device == "cuda" or (device == "auto" and torch.cuda.is_available())
    if device == "cuda" and not torch.cuda.is_available():
        raise BinauraError("--device cuda: torch sees no CUDA device")
    world = launched_world_size()
    if world <= 1:
        return Dist(device=torch.device("cuda" if cuda else "cpu"))
    missing = [k for k in _ENV if k not in os.environ]
    if missing:
        raise BinauraError(f"WORLD_SIZE={world} but {', '.join(missing)} unset: start several processes with "
                           f"`accelerate launch` or torchrun, which set them all")
    rank, local = _env_int("RANK"), _env_int("LOCAL_RANK")
    if cuda:
        if local >= torch.cuda.device_count():
            raise BinauraError(f"rank {rank}: LOCAL_RANK {local} but {torch.cuda.device_count()} CUDA device(s) "
                               f"here; start at most one process per GPU")
        torch.cuda.set_device(local)
    dev = torch.device("cuda", local) if cuda else torch.device("cpu")
    dist = torch.distributed
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if cuda else "gloo", init_method="env://", rank=rank,
                                world_size=world)
        atexit.register(_destroy)
    elif dist.get_world_size() != world:
        raise BinauraError(f"a process group of {dist.get_world_size()} ranks exists, the launcher said {world}")
    backend = str(dist.get_backend())
    if ("nccl" if cuda else "gloo") not in backend:
        raise BinauraError(f"device {device!r}, but the process group runs on {backend} "
                           f"(nccl is CUDA's, gloo the CPU's)")
    if _wait_group is None:
        _wait_group = dist.new_group(backend="gloo", timeout=WAIT_TIMEOUT)
    return Dist(rank=rank, world_size=world, local_rank=local, device=dev)


def _destroy() -> None:
    global _wait_group  # noqa: PLW0603
    if torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()
    _wait_group = None


def rank_seed(rank: int, *key: int) -> list[int]:
    """numpy seed entropy of `rank`'s draws for the draw named by `key` (e.g. seed, step): the key
    itself on rank 0, so that rank 0 draws what a plain process draws; key + [rank] on the others."""
    return [*key] if rank == 0 else [*key, rank]


def seed_int(entropy: list[int]) -> int:
    """An integer seed (for torch.manual_seed) from numpy seed entropy."""
    return int(np.random.SeedSequence(entropy).generate_state(1, np.uint64)[0] >> 1)


__all__ = ["WAIT_TIMEOUT", "Dist", "init_distributed", "launched_world_size", "rank_seed", "seed_int"]
