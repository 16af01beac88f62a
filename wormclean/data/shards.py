"""Which share of a training stream a process and its DataLoader workers take, when torchrun starts several
processes (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK`` in the environment, which DataLoader workers inherit)."""

from __future__ import annotations

import os
from dataclasses import dataclass


@dataclass(frozen=True)
class ProcessGroup:
    """This process's place among the processes of one training run (rank 0 of 1 when run alone)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        """The process that writes the outputs."""
        return self.rank == 0

    @property
    def active(self) -> bool:
        """Several processes train together."""
        return self.world_size > 1


def launched_group() -> ProcessGroup:
    """The :class:`ProcessGroup` torchrun announced in the environment (rank 0 of 1 without torchrun)."""
    return ProcessGroup(
        rank=int(os.environ.get("RANK", 0)),
        world_size=int(os.environ.get("WORLD_SIZE", 1)),
        local_rank=int(os.environ.get("LOCAL_RANK", 0)),
    )


def stream_shard(worker: int, n_workers: int) -> tuple[int, int]:
    """The share of a data stream a DataLoader worker of this process takes: ``(shard, n_shards)``.

    The workers of all processes are numbered ``rank * n_workers + worker``, so that every process draws other
    videos and patches; alone (rank 0 of 1) a worker's shard is its id.
    """
    group = launched_group()
    return group.rank * n_workers + worker, group.world_size * n_workers
