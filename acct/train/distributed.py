"""Running under `torchrun`: the process group, and the few collectives the trainer needs.

acct never launches processes itself. `torchrun --nproc_per_node N -m acct train ...` starts N
copies of the same command with RANK / WORLD_SIZE / LOCAL_RANK set; `init()` reads them and
joins the process group (NCCL on CUDA, one device per process = cuda:LOCAL_RANK; gloo on CPU).
A plain run, or `torchrun --nproc_per_node 1`, gets `SINGLE`: no process group, and every
helper here is a no-op returning its input, so a single process pays nothing.

Owns:
- `Distributed`: rank, world size, device, and the collectives (all-reduce of tensors, an
  agreed boolean, row gathers, object gathers, barrier, "rank 0 does it, everyone learns the
  outcome"). Host-side agreement (stop flags, objects, barriers) goes through a gloo group even
  when training uses NCCL, so it never waits on the GPU stream.
- `session()`: tears the group down on the way out, with a barrier first on a clean exit (a
  gloo rank that destroys its group while a peer is still in a collective aborts).
- `RankTrace`: with ACCT_DEBUG_RANK_DIR set, every rank appends what it decided (its pid,
  curriculum weights, how it finished, digests of its parameters and RNG state) to
  DIR/rank-<r>.jsonl, so tests can check that ranks agree bit for bit. Off (and free) otherwise.

ACCT_DIST_TIMEOUT_S (default 1800) bounds how long a rank waits in any collective.
"""

from __future__ import annotations

import atexit
import contextlib
import datetime
import hashlib
import json
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import torch
from torch import Tensor

from acct.errors import AcctError, UsageError

T = TypeVar("T")

TRACE_ENV = "ACCT_DEBUG_RANK_DIR"
TIMEOUT_ENV = "ACCT_DIST_TIMEOUT_S"


def launched() -> tuple[int, int, int]:
    """(rank, world_size, local_rank) from the launcher's environment; (0, 1, 0) without one."""
    env = os.environ
    if "WORLD_SIZE" not in env and "RANK" not in env:
        return 0, 1, 0
    try:
        world = int(env.get("WORLD_SIZE", "1"))
        rank = int(env.get("RANK", "0"))
        local = int(env.get("LOCAL_RANK", str(rank)))
    except ValueError:
        raise UsageError("RANK, WORLD_SIZE and LOCAL_RANK must be integers (launch with torchrun)") from None
    if world < 1 or not 0 <= rank < world or local < 0:
        raise UsageError(f"inconsistent launcher environment: RANK={rank} WORLD_SIZE={world} LOCAL_RANK={local}")
    return rank, world, local


def rank_seed(seed: int, rank: int, step: int = 0) -> int:
    """A seed for rank `rank` > 0 that is unrelated to the run seed's own stream (and to other ranks')."""
    digest = hashlib.blake2b(f"rank,{seed},{rank},{step}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") & ((1 << 63) - 1)


class RankTrace:
    """Append-only JSONL of one rank's decisions, written only when ACCT_DEBUG_RANK_DIR is set."""

    def __init__(self, rank: int) -> None:
        root = os.environ.get(TRACE_ENV)
        self.path = Path(root) / f"rank-{rank}.jsonl" if root else None
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)

    @property
    def enabled(self) -> bool:
        return self.path is not None

    def write(self, kind: str, **fields: Any) -> None:
        if self.path is None:
            return
        # json writes floats with repr(), which round-trips exactly: equal lines mean equal bits.
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps({"event": kind, **fields}) + "\n")


def parameter_digest(module: torch.nn.Module) -> str:
    """sha256 of every parameter's bytes, in state-dict order (for the rank trace)."""
    h = hashlib.sha256()
    for name, value in module.state_dict().items():
        h.update(name.encode())
        h.update(value.detach().cpu().contiguous().view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


@dataclass
class Distributed:
    """This process's place in the job, and the collectives the trainer uses.

    With `world_size == 1` nothing here touches torch.distributed.
    """

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    backend: str | None = None
    cpu_group: Any = None  # gloo group for host-side agreement; None = the default group

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    # -- tensors (on `device`, through the training backend) ------------------------------------

    def all_reduce_(self, tensor: Tensor, op: str = "sum") -> Tensor:
        """Reduce `tensor` in place across ranks (sum, max or min) and return it."""
        if self.enabled:
            import torch.distributed as dist

            ops = {"sum": dist.ReduceOp.SUM, "max": dist.ReduceOp.MAX, "min": dist.ReduceOp.MIN}
            dist.all_reduce(tensor, op=ops[op])
        return tensor

    def all_reduce_sum(self, tensor: Tensor) -> None:
        """In-place sum: the callback `Curriculum.step(..., all_reduce=...)` expects."""
        self.all_reduce_(tensor, "sum")

    def all_gather_rows(self, x: Tensor) -> Tensor:
        """Concatenate every rank's `x` (same shape everywhere) along dim 0, in rank order.

        The other ranks' rows arrive detached; this rank's rows are `x` itself, so gradients
        flow into the local part only.
        """
        if not self.enabled:
            return x
        import torch.distributed as dist

        parts = [torch.empty_like(x) for _ in range(self.world_size)]
        dist.all_gather(parts, x.detach().contiguous())
        parts[self.rank] = x
        return torch.cat(parts, dim=0)

    # -- host-side agreement (gloo) -------------------------------------------------------------

    def any(self, flag: bool) -> bool:
        """True on every rank if `flag` is true on any rank."""
        if not self.enabled:
            return bool(flag)
        import torch.distributed as dist

        t = torch.tensor([1 if flag else 0], dtype=torch.int32)
        dist.all_reduce(t, op=dist.ReduceOp.MAX, group=self.cpu_group)
        return bool(t.item())

    def all_gather_object(self, obj: T) -> list[T]:
        """Every rank's `obj` (picklable), in rank order."""
        if not self.enabled:
            return [obj]
        import torch.distributed as dist

        out: list[Any] = [None] * self.world_size
        dist.all_gather_object(out, obj, group=self.cpu_group)
        return out

    def gather_strided(self, local: Sequence[T], total: int) -> list[T]:
        """Reassemble a list sharded as `items[rank::world_size]` into its original order.

        Shards differ in length by at most one; nothing is padded, so no item is duplicated.
        """
        if not self.enabled:
            return list(local)
        shards = self.all_gather_object(list(local))
        out: list[Any] = [None] * total
        for r, shard in enumerate(shards):
            out[r::self.world_size] = shard
        return out

    def check_same(self, value: Any, what: str) -> None:
        """Raise on every rank if ranks disagree about `value` (e.g. a data fingerprint)."""
        if not self.enabled:
            return
        values = self.all_gather_object(value)
        if any(v != values[0] for v in values):
            raise AcctError(f"ranks disagree about {what}: {values}; every rank must see the same data and files")

    def barrier(self) -> None:
        if self.enabled:
            import torch.distributed as dist

            dist.barrier(group=self.cpu_group)

    def on_main(self, fn: Callable[[], T]) -> T:
        """Run `fn` on rank 0 only; every rank returns its result or raises its error.

        Doubles as a barrier: the other ranks wait for rank 0's outcome, so a rank-0 failure
        (a full disk, a refused run directory) ends every rank instead of leaving them hanging.
        """
        if not self.enabled:
            return fn()
        import torch.distributed as dist

        payload: list[Any] = [None]
        error: BaseException | None = None
        if self.is_main:
            try:
                payload[0] = ("ok", fn())
            except AcctError as exc:
                error, payload[0] = exc, ("error", type(exc), str(exc))
            except BaseException as exc:  # noqa: BLE001 - re-raised below, after telling the others
                error, payload[0] = exc, ("error", AcctError, f"rank 0 failed: {type(exc).__name__}: {exc}")
        dist.broadcast_object_list(payload, src=0, group=self.cpu_group)
        if error is not None:
            raise error
        kind, *rest = payload[0]
        if kind == "error":
            raise rest[0](rest[1])
        return rest[0]


SINGLE = Distributed()
_current: Distributed | None = None


def current() -> Distributed:
    """The job this process belongs to (SINGLE until `init` joined a group)."""
    return _current or SINGLE


def init(device: torch.device | str = "auto") -> Distributed:
    """Join the torchrun job described by the environment (once per process; later calls return it).

    `device` is the device kind training wants ("auto", "cpu", "cuda" or a torch.device);
    under torchrun on CUDA each process takes cuda:LOCAL_RANK and the NCCL backend, on CPU gloo.
    """
    global _current
    rank, world, local = launched()
    kind = device.type if isinstance(device, torch.device) else str(device)
    if kind == "auto":
        kind = "cuda" if torch.cuda.is_available() else "cpu"
    if _current is not None:
        if _current.device.type != kind:
            raise UsageError(f"this process already joined a {_current.device.type} job; cannot train on {kind}")
        return _current
    if world == 1:
        return SINGLE

    import torch.distributed as dist

    if kind == "cuda":
        if not torch.cuda.is_available():
            raise UsageError("--device cuda was asked for but no CUDA device is available; use --device cpu")
        if local >= torch.cuda.device_count():
            raise UsageError(
                f"LOCAL_RANK {local} has no GPU ({torch.cuda.device_count()} visible): "
                "use --nproc_per_node up to the number of GPUs"
            )
        dev = torch.device("cuda", local)
        torch.cuda.set_device(dev)
        backend = "nccl"
    else:
        dev = torch.device("cpu")
        backend = "gloo"
    try:
        timeout = datetime.timedelta(seconds=float(os.environ.get(TIMEOUT_ENV, "1800")))
    except ValueError:
        raise UsageError(f"{TIMEOUT_ENV} must be a number of seconds") from None
    if not dist.is_initialized():
        dist.init_process_group(backend=backend, timeout=timeout, device_id=dev if backend == "nccl" else None)
    # Stop flags, objects and barriers stay on the host: a gloo group beside NCCL.
    cpu_group = dist.new_group(backend="gloo", timeout=timeout) if backend == "nccl" else None
    _current = Distributed(rank, world, local, dev, backend, cpu_group)
    atexit.register(_destroy)
    return _current


def _destroy() -> None:
    global _current
    _current = None
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def shutdown(clean: bool = True) -> None:
    """Leave the job: barrier (on a clean exit only: after an error a peer may never arrive), then destroy."""
    if _current is None:
        return
    try:
        if clean:
            _current.barrier()
    finally:
        _destroy()


@contextlib.contextmanager
def session() -> Iterator[None]:
    """Tear down, at the end of the block, a process group that was joined inside it."""
    owned = _current is None
    clean = False
    try:
        yield
        clean = True
    finally:
        if owned:
            shutdown(clean)
