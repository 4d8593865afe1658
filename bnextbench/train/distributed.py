"""The processes of one run under torchrun: who this process is, its process group, and the few collectives
the training loop needs.

torchrun starts one process per GPU (or per CPU slot) and gives each RANK, WORLD_SIZE and LOCAL_RANK in its
environment; a process started otherwise is a world of one and every collective here returns its input.
Rank 0 alone writes the store, the checkpoints and the progress; every rank trains, and after each epoch
:meth:`World.check_replicas` proves that all of them hold bitwise the same weights and buffers.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import signal
from dataclasses import dataclass
from itertools import islice
from typing import Any, Iterable, Iterator, Mapping, TypeVar

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from ..errors import BnextbenchError

Item = TypeVar("Item")


class ReplicasDiffer(BnextbenchError):
    """The processes of a run hold different weights: the data-parallel run is no longer one run."""


class Terminated(BnextbenchError):
    """SIGTERM reached a process of the group: torchrun ends the survivors this way once one process failed."""


class PeerLost(BnextbenchError):
    """A collective failed because another process of the group is gone."""


def _environment_int(name: str) -> int:
    value = os.environ[name]
    try:
        return int(value)
    except ValueError:
        raise BnextbenchError(f"torchrun's {name} must be an integer, got {value!r}") from None


def state_digest(state: Mapping[str, torch.Tensor]) -> str:
    """SHA-256 of a state_dict: names, dtypes, shapes and the bytes of every tensor, so two digests are equal
    exactly when the states are bitwise equal (a float sum could hide a swapped or cancelled difference)."""
    digest = hashlib.sha256()
    for name, tensor in state.items():
        digest.update(f"{name}:{tensor.dtype}:{tuple(tensor.shape)};".encode())
        digest.update(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


@dataclass(frozen=True)
class World:
    """This process's place among the processes of a run; ``World()`` is a single process, not under torchrun."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0
    local_size: int = 1  # processes on this node
    launched: bool = False  # started by torchrun: the process group is formed, even for a world of one

    @classmethod
    def from_environment(cls) -> World:
        """The world torchrun describes in this process's environment, else a single process."""
        if "WORLD_SIZE" not in os.environ:
            return cls()
        rank, size = _environment_int("RANK"), _environment_int("WORLD_SIZE")
        local_rank, local_size = _environment_int("LOCAL_RANK"), _environment_int("LOCAL_WORLD_SIZE")
        if not 0 <= rank < size:
            raise BnextbenchError(f"torchrun's RANK {rank} is outside its WORLD_SIZE {size}")
        return cls(rank, size, local_rank, local_size, launched=True)

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def device(self, chosen: torch.device) -> torch.device:
        """The device of this process given the one chosen for the run: under torchrun each process takes the
        GPU of its local rank (one GPU per process, NCCL's rule); the CPU is shared."""
        if not self.launched or chosen.type != "cuda":
            return chosen
        if chosen.index not in (None, self.local_rank):
            raise BnextbenchError(f"under torchrun each process uses the GPU of its local rank; "
                                  f"use --device cuda, not {chosen}")
        if self.local_rank >= torch.cuda.device_count():
            raise BnextbenchError(f"torchrun started local rank {self.local_rank} but this node has "
                                  f"{torch.cuda.device_count()} GPU(s); use --nproc-per-node "
                                  f"{torch.cuda.device_count()}")
        return torch.device("cuda", self.local_rank)

    @contextlib.contextmanager
    def group(self, device: torch.device) -> Iterator[None]:
        """Form the process group for the run's duration: NCCL between GPUs, gloo on the CPU.

        SIGTERM becomes :class:`Terminated` meanwhile, so that rank 0 can record the run as interrupted when
        torchrun ends the group after another process failed (its default would end the process unrecorded).
        """
        if not self.launched:
            yield
            return
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo",
                                device_id=device if device.type == "cuda" else None)
        previous = signal.signal(signal.SIGTERM, _raise_terminated)
        try:
            yield
        finally:
            signal.signal(signal.SIGTERM, previous)
            dist.destroy_process_group()

    def _collective(self, operation: str):
        """``operation`` of torch.distributed, its failures :class:`PeerLost`."""
        function = getattr(dist, operation)

        def call(*args: Any, **kwargs: Any) -> Any:
            with _group_errors(f"in {operation}"):
                return function(*args, **kwargs)
        return call

    @contextlib.contextmanager
    def stepping(self) -> Iterator[None]:
        """Around a training step through :meth:`wrap`'s model: under torchrun its failures are
        :class:`PeerLost` (DistributedDataParallel all-reduces the gradients inside backward, and autograd
        passes a failed all-reduce on as a plain RuntimeError, whatever the backend's own error type)."""
        if not self.launched:
            yield
            return
        with _group_errors("during a training step"):
            yield

    def _tensor(self, values: list[float]) -> torch.Tensor:
        on_gpu = dist.get_backend() == dist.Backend.NCCL
        return torch.tensor(values, dtype=torch.float64,
                            device=torch.device("cuda", torch.cuda.current_device()) if on_gpu else "cpu")

    def sum(self, values: list[float]) -> list[float]:
        """Element-wise sums of ``values`` over all processes (float64: integer counts stay exact to 2^53)."""
        if not self.launched:
            return values
        total = self._tensor(values)
        self._collective("all_reduce")(total)
        return total.tolist()

    def mean(self, value: float) -> float:
        """The average of ``value`` over all processes (the same on every process)."""
        return self.sum([value])[0] / self.size if self.launched else value

    def share(self, value: Item) -> Item:
        """Rank 0's ``value`` (any picklable object) on every process."""
        if not self.launched:
            return value
        box = [value]
        self._collective("broadcast_object_list")(box, src=0)
        return box[0]

    def mine(self, items: Iterable[Item]) -> Iterator[Item]:
        """This process's share of ``items``: every size-th item from the rank-th."""
        return islice(items, self.rank, None, self.size)

    def wrap(self, model: nn.Module, device: torch.device) -> nn.Module:
        """``model`` to train: itself for one process, else DistributedDataParallel around it (which first gives
        every process rank 0's weights and buffers). On GPUs BatchNorm becomes SyncBatchNorm, normalising over
        the global batch; gloo on the CPU has no SyncBatchNorm, so there each process normalises over its own
        share of the batch. The modules of ``model`` are converted in place and keep their parameters."""
        if not self.launched:
            return model
        if device.type == "cuda":
            model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
        return DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)

    def align_buffers(self, model: nn.Module) -> None:
        """Give every process rank 0's buffers (BatchNorm statistics, tau)."""
        if self.launched:
            for buffer in model.buffers():
                self._collective("broadcast")(buffer, src=0)

    def check_replicas(self, model: nn.Module, when: str) -> str | None:
        """Under torchrun: the digest (:func:`state_digest`) of ``model``'s state on this process, once every
        process is known to hold the same (different states end the run with :class:`ReplicasDiffer`).
        A single process has nothing to compare: None."""
        if not self.launched:
            return None
        digest = state_digest(model.state_dict())
        digests = [""] * self.size
        self._collective("all_gather_object")(digests, digest)
        differing = [rank for rank, other in enumerate(digests) if other != digests[0]]
        if differing:
            raise ReplicasDiffer(f"the processes hold different weights {when}: rank(s) "
                                 f"{', '.join(map(str, differing))} differ from rank 0")
        return digest


@contextlib.contextmanager
def _group_errors(where: str) -> Iterator[None]:
    """A RuntimeError while the processes communicate (torch.distributed's DistError is one; gloo's and NCCL's
    failures reach Python as one or the other) becomes :class:`PeerLost` with its first line; out-of-memory
    keeps its type."""
    try:
        yield
    except torch.OutOfMemoryError:
        raise
    except RuntimeError as exc:
        first_line = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
        # The run ends here; torchrun's SIGTERM, on its way, must not cut short the record of why.
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        raise PeerLost(f"the process group broke {where}: {first_line}") from None


def _raise_terminated(number: int, frame: Any) -> None:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # once: the record of the interruption must not be cut short
    raise Terminated("stopped by SIGTERM (torchrun ends every process of a run once one of them has failed)")
