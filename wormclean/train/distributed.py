"""Training on several processes, one per GPU (or CPU share): ``torchrun --nproc_per_node N -m wormclean fit ...``.

torchrun starts N copies of the command and tells each its place through environment variables (``RANK``,
``WORLD_SIZE``, ``LOCAL_RANK``). Each process trains the same net on its own share of the patch stream
(:func:`~wormclean.data.shards.stream_shard`); DistributedDataParallel averages the gradients, so the weights
stay the same everywhere, and only rank 0 writes the model files, the log and the plot. A checkpoint holds the
plain net and its optimizer state, so a run resumes on any number of processes.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator

import torch
import torch.distributed as dist
from torch import nn

from wormclean.data.shards import ProcessGroup, launched_group

log = logging.getLogger(__name__)


@contextlib.contextmanager
def process_group(device: torch.device) -> Iterator[tuple[ProcessGroup, torch.device]]:
    """Join the processes torchrun started (NCCL on GPUs, gloo on CPUs) for the duration of a run.

    Yields this process's group and its device: on CUDA the GPU of its local rank. Alone, nothing is set up.
    """
    group = launched_group()
    if not group.active:
        yield group, device
        return
    if device.type == "cuda":
        device = torch.device("cuda", group.local_rank)
        torch.cuda.set_device(device)
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    log.info("process %d of %d, on %s", group.rank, group.world_size, device)
    try:
        yield group, device
    finally:
        dist.destroy_process_group()


def parallel(net: nn.Module, group: ProcessGroup, device: torch.device) -> nn.Module:
    """The net as trained by this process: wrapped in DistributedDataParallel when several processes train."""
    if not group.active:
        return net
    return nn.parallel.DistributedDataParallel(net, device_ids=[device.index] if device.type == "cuda" else None)


def any_rank(flag: bool, group: ProcessGroup, device: torch.device) -> bool:
    """True on every process if ``flag`` is true on any (so that all stop at the same step)."""
    if not group.active:
        return flag
    value = torch.tensor([int(flag)], device=device)
    dist.all_reduce(value, op=dist.ReduceOp.MAX)
    return bool(value.item())
