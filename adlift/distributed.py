"""The ranks of a ``torchrun`` launch, and the few collectives protection needs (torch.distributed).

``torchrun --nproc-per-node=N $(which adlift) protect ...`` starts N copies of the command with
``RANK``/``WORLD_SIZE``/``MASTER_ADDR``... in their environment; :func:`init_from_env` joins them into
one process group (gloo on CPU, NCCL on CUDA) and every copy then works on its share of the views
(:func:`shard`). Without those variables, or with ``WORLD_SIZE=1``, everything here is a no-op on a
single :class:`Group` of one rank, so the library and the plugin run unchanged in one process.

Collectives that fail because another rank died or timed out raise :class:`~adlift.errors.RankStopped`
(one line; the rank that failed prints its own error): no rank hangs. Sizes are known on every rank
before a collective, and nothing is pickled: only tensors travel between ranks.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import os
from collections.abc import Iterator, Sequence
from typing import TypeVar

import torch

from adlift.errors import AdLiftError, RankStopped

T = TypeVar("T")

#: Seconds a rank waits for the others in one collective before the run stops with an error.
DEFAULT_TIMEOUT_S = 600.0

#: Longest error message a rank shares with the others (UTF-8 bytes; longer ones are cut).
_MESSAGE_BYTES = 1024


@dataclasses.dataclass(frozen=True)
class Group:
    """Where this process stands in a run: its rank among ``world_size`` processes."""

    rank: int = 0
    """This process' rank, 0 .. world_size - 1 (rank 0 writes outputs, checkpoints and progress)."""

    world_size: int = 1
    """Number of processes working on the run."""

    backend: str = "none"
    """torch.distributed backend (gloo, nccl), or none for one process."""

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Whether this rank writes files, checkpoints and progress (rank 0)."""
        return self.rank == 0

    def describe(self) -> str:
        """E.g. "2 ranks (gloo)" or "1 process"."""
        return f"{self.world_size} ranks ({self.backend})" if self.distributed else "1 process"


def launched() -> bool:
    """Whether this process was started by torchrun (or similar) as one of several ranks."""
    return int(os.environ.get("WORLD_SIZE", "1") or 1) > 1


def current() -> Group:
    """The initialised process group's view of this process, else one process."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return Group(dist.get_rank(), dist.get_world_size(), str(dist.get_backend()))
    return Group()


def init_from_env(device: torch.device, timeout_s: float = DEFAULT_TIMEOUT_S) -> Group:
    """Join the ranks torchrun started (a no-op in one process); returns this process' :class:`Group`.

    The backend is NCCL for a CUDA ``device`` and gloo otherwise; ``timeout_s`` bounds every collective,
    so a rank whose peer disappeared stops instead of hanging."""
    if not launched():
        return current()
    import torch.distributed as dist

    if not dist.is_available():
        raise AdLiftError("this torch build has no torch.distributed; run without torchrun")
    if timeout_s <= 0:
        raise AdLiftError(f"the distributed timeout must be > 0 seconds, got {timeout_s}")
    if not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        if backend == "nccl":
            torch.cuda.set_device(device)
        try:
            dist.init_process_group(backend, timeout=datetime.timedelta(seconds=timeout_s))
        except (RuntimeError, ValueError) as e:
            raise AdLiftError(f"cannot join the other ranks ({backend}): {first_line(e)}") from None
    return current()


def local_device(device: torch.device) -> torch.device:
    """A rank's own GPU under torchrun (``cuda:$LOCAL_RANK``) for a CUDA device; others unchanged."""
    if device.type == "cuda" and launched():
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return device


def shutdown() -> None:
    """Leave the process group (end of a run; a no-op in one process)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[0] if text else error.__class__.__name__


def shard(items: Sequence[T], group: Group) -> list[T]:
    """This rank's share of ``items``: every ``world_size``-th item from index ``rank`` (all in one process)."""
    return list(items[group.rank :: group.world_size])


@contextlib.contextmanager
def collective(what: str) -> Iterator[None]:
    """Turn a collective's failure (a peer died, closed its connection or timed out) into RankStopped."""
    try:
        yield
    except RuntimeError as e:  # gloo/NCCL errors are RuntimeErrors (DistBackendError is one)
        raise RankStopped(f"stopped while {what}: another rank failed or timed out ({first_line(e)})") from None


def all_reduce_sum_(tensor: torch.Tensor, group: Group, what: str = "combining results") -> torch.Tensor:
    """Sum ``tensor`` over the ranks, in place (every rank gets the same bits); returns it. A tensor
    away from the backend's device (a CPU tensor under NCCL) travels through a copy."""
    if group.distributed:
        import torch.distributed as dist

        device = collective_device(group)
        work = tensor if tensor.device == device else tensor.to(device)
        with collective(what):
            dist.all_reduce(work, op=dist.ReduceOp.SUM)
        if work is not tensor:
            tensor.copy_(work)
    return tensor


def broadcast_bytes(data: bytes | None, group: Group, src: int = 0) -> bytes:
    """Rank ``src``'s ``data`` on every rank (e.g. a checkpoint file read on rank 0 only)."""
    if not group.distributed:
        return data if data is not None else b""
    import torch.distributed as dist

    device = collective_device(group)
    size = torch.tensor([len(data) if data is not None else 0], dtype=torch.int64, device=device)
    with collective("sharing a file"):
        dist.broadcast(size, src)
        buffer = torch.empty(int(size.item()), dtype=torch.uint8, device=device)
        if group.rank == src and data:
            buffer.copy_(torch.frombuffer(bytearray(data), dtype=torch.uint8))
        if buffer.numel():
            dist.broadcast(buffer, src)
    return bytes(buffer.cpu().numpy().tobytes())


def gather_messages(message: str | None, group: Group) -> list[str | None]:
    """Every rank's ``message`` (None = nothing to say), in rank order, on every rank."""
    if not group.distributed:
        return [message]
    import torch.distributed as dist

    device = collective_device(group)
    rows = torch.zeros(group.world_size, _MESSAGE_BYTES + 1, dtype=torch.uint8, device=device)
    if message is not None:
        data = message.encode("utf-8")[:_MESSAGE_BYTES]
        rows[group.rank, 0] = 1
        rows[group.rank, 1 : 1 + len(data)] = torch.frombuffer(bytearray(data), dtype=torch.uint8).to(device)
    # Each rank fills its own row only (the others are zero), so the maximum is every rank's row.
    with collective("comparing the ranks' status"):
        dist.all_reduce(rows, op=dist.ReduceOp.MAX)
    out: list[str | None] = []
    for row in rows.cpu():
        if int(row[0]) == 0:
            out.append(None)
        else:
            out.append(bytes(row[1:].numpy().tobytes()).rstrip(b"\0").decode("utf-8", errors="replace"))
    return out


@contextlib.contextmanager
def agreed(group: Group, what: str = "preparing") -> Iterator[None]:
    """Run a block on every rank; if it raised AdLiftError on any rank, every rank stops, and the error
    is printed once (by rank 0): "rank 1 of 2: ..." when only some ranks failed, the plain line when all
    failed alike. Use around work that may fail before the first collective (reading inputs)."""
    if not group.distributed:
        yield
        return
    error: str | None = None
    try:
        yield
    except AdLiftError as e:
        error = str(e)
    messages = gather_messages(error, group)
    failed = [(rank, m) for rank, m in enumerate(messages) if m is not None]
    if not failed:
        return
    if group.rank != 0:
        raise RankStopped(f"stopped while {what}", quiet=True)
    distinct = {m for _, m in failed}
    if len(failed) == group.world_size and len(distinct) == 1:
        error = AdLiftError(failed[0][1])
    else:
        error = AdLiftError("; ".join(f"rank {rank} of {group.world_size}: {m}" for rank, m in failed))
    error.names_ranks = True  # the message says which ranks failed: no "[rank 0 of N]" prefix
    raise error


def collective_device(group: Group) -> torch.device:
    """Where tensors for collectives live: the rank's GPU for NCCL, the CPU for gloo."""
    if group.backend == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")
