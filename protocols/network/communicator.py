"""CrypTen's communicator over the run's own links (no torch.distributed, no gloo, no TCPStore).

CrypTen reaches the network only through ``crypten.communicator.get()``, which returns
``DistributedCommunicator.instance``.  :func:`install` puts a :class:`MeshCommunicator` there:
a subclass (so CrypTen's isinstance checks hold) whose every method moves bytes over
:class:`protocols.network.links.Links`, i.e. over the mutually authenticated TLS connections of
:mod:`protocols.network.channels` (or plain TCP with ``--insecure-plaintext-transport``).  CrypTen's
own openings and comparisons, its PRZS seeds (``crypten._setup_prng``), its TTP requests and
seeds, and our dealer's requests, answers and stream seeds all travel there.

Groups are tuples of ranks: ``main_group`` the data parties, ``ttp_group`` every process,
``ttp_comm_group`` party 0 and the dealer.  Statistics are CrypTen's own (its ``_logging``
decorator on every method, as in ``DistributedCommunicator``), so rounds and bytes count
exactly as before.  Objects from peers are read with CrypTen's ``serial.restricted_loads``,
never plain ``pickle.loads``.

Collectives are point to point: ``all_reduce`` sends one's share to every other party and sums
the received ones in rank order (one round, all messages in flight at once); ``reduce`` and
``gather`` send to the destination; ``broadcast`` sends from the source.  ``isend`` sends at
once (CrypTen uses it for 8-byte seeds); ``irecv`` posts a receive that completes in order.
"""

from __future__ import annotations

import functools
import pickle

import torch
from torch.distributed import ReduceOp  # the enum only: nothing of torch.distributed runs

from protocols.errors import ProtocolError
from protocols.runtime import load_crypten


class _Done:
    """A completed isend."""

    def wait(self) -> None:
        return None

    def is_completed(self) -> bool:
        return True


class _Posted:
    """An irecv: the bytes land in ``tensor`` (in place) on :meth:`wait`."""

    def __init__(self, links, ticket, tensor: torch.Tensor) -> None:
        self.links, self.ticket, self.tensor = links, ticket, tensor

    def wait(self) -> None:
        data = self.links.wait(self.ticket)
        self.tensor.copy_(_from_bytes(data, self.tensor))

    def is_completed(self) -> bool:
        return self.ticket.data is not None


def _to_bytes(t: torch.Tensor) -> bytes:
    return t.detach().contiguous().cpu().numpy().tobytes()


def _from_bytes(buf, like: torch.Tensor) -> torch.Tensor:
    if len(buf) == 0:
        return torch.empty(like.shape, dtype=like.dtype)
    return torch.frombuffer(buf, dtype=like.dtype).reshape(like.shape)


def _nbytes(t: torch.Tensor) -> int:
    return t.numel() * t.element_size()


def _combine(values: list[torch.Tensor], op) -> torch.Tensor:
    """Reduce in rank order (so float sums are bit-identical at every party)."""
    out = values[0].clone()
    for v in values[1:]:
        if op == ReduceOp.BXOR:
            out ^= v
        elif op == ReduceOp.SUM:
            out += v
        else:
            raise ProtocolError(f"reduce op {op} is not supported by mpcrnn's communicator")
    return out


def _restricted_loads(data: bytes):
    """A peer's object, read with CrypTen's restricted unpickler (never plain pickle.loads)."""
    from crypten.common import serial

    return serial.restricted_loads(data)


class _MeshMethods:
    """CrypTen's communicator interface over :class:`protocols.network.links.Links`; mixed into
    CrypTen's ``DistributedCommunicator`` by :func:`communicator_class`, which also wraps every
    exchange in CrypTen's counting decorator (the names in ``_LOGGED``)."""

    BYTES_PER_ELEMENT = 8

    def __init__(
        self, rank: int, world_size: int, links, has_dealer: bool, rendezvous: str, secure: bool
    ) -> None:
        # DistributedCommunicator.__init__ would start torch.distributed: not called
        self.rank, self.world_size, self.links = rank, world_size, links
        self.rendezvous = rendezvous
        self.distributed_backend = "mpcrnn-tls" if secure else "mpcrnn-plaintext"
        self.secure = secure
        self.reset_communication_stats()
        self._name = f"rank{rank}"
        total = world_size + (1 if has_dealer else 0)
        self.main_group = tuple(range(world_size))
        self.ttp_group = tuple(range(total))
        self.ttp_comm_group = (0, total - 1) if total > 1 else None
        self.ttp_initialized = self.has_dealer = has_dealer

    @classmethod
    def is_initialized(cls) -> bool:
        from crypten.communicator.distributed_communicator import DistributedCommunicator

        return DistributedCommunicator.instance is not None

    @classmethod
    def shutdown(cls) -> None:
        from crypten.communicator.distributed_communicator import DistributedCommunicator

        inst = DistributedCommunicator.instance
        DistributedCommunicator.instance = None
        if inst is not None and inst.links is not None:
            inst.links.close()

    def _others(self, group) -> list[int]:
        return [r for r in (self.main_group if group is None else group) if r != self.rank]

    # ------------------------------------------------------------------ point to point

    def send(self, tensor, dst):
        self.links.send_bytes(dst, _to_bytes(tensor))

    def recv(self, tensor, src=None):
        return _from_bytes(self.links.recv_bytes(src, _nbytes(tensor)), tensor).clone()

    def isend(self, tensor, dst):
        self.links.send_bytes(dst, _to_bytes(tensor))
        return _Done()

    def irecv(self, tensor, src=None):
        return _Posted(self.links, self.links.post_recv(src, _nbytes(tensor)), tensor)

    # ------------------------------------------------------------------ collectives

    def scatter(self, scatter_list, src, size=None, device=None):
        if src == self.rank:
            self.links.transfer({r: _to_bytes(scatter_list[r]) for r in self._others(None)}, {})
            return scatter_list[self.rank]
        if size is None:
            size = scatter_list[self.rank].size()
        like = torch.empty(size, dtype=torch.long)
        return _from_bytes(self.links.recv_bytes(src, _nbytes(like)), like).clone()

    def reduce(self, input, dst, op=ReduceOp.SUM, batched=False):
        items = list(input) if batched else [input]
        flat = (
            torch.cat([t.reshape(-1) for t in items]) if items else torch.empty(0, dtype=torch.long)
        )
        if self.rank != dst:
            self.links.send_bytes(dst, _to_bytes(flat))
            return None
        others = self._others(None)
        got = self.links.transfer({}, {r: _nbytes(flat) for r in others})
        values = [flat if r == self.rank else _from_bytes(got[r], flat) for r in self.main_group]
        return _split(_combine(values, op), items, batched)

    def all_reduce(self, input, op=ReduceOp.SUM, batched=False):
        items = list(input) if batched else [input]
        flat = (
            torch.cat([t.reshape(-1) for t in items]) if items else torch.empty(0, dtype=torch.long)
        )
        received = dict(zip(self._others(None), self.links.exchange(flat.contiguous())))
        values = [flat if r == self.rank else received[r] for r in self.main_group]
        return _split(_combine(values, op), items, batched)

    def gather(self, tensor, dst):
        if self.rank != dst:
            self.links.send_bytes(dst, _to_bytes(tensor))
            return [None]
        got = self.links.transfer({}, {r: _nbytes(tensor) for r in self._others(None)})
        return [
            tensor.clone() if r == self.rank else _from_bytes(got[r], tensor).clone()
            for r in self.main_group
        ]

    def all_gather(self, tensor):
        received = dict(zip(self._others(None), self.links.exchange(tensor.contiguous())))
        return [tensor.clone() if r == self.rank else received[r].clone() for r in self.main_group]

    def broadcast(self, input, src, group=None, batched=False):
        items = list(input) if batched else [input]
        if self.rank == src:
            payload = b"".join(_to_bytes(t) for t in items)
            self.links.transfer({r: payload for r in self._others(group)}, {})
            return input
        data = self.links.recv_bytes(src, sum(_nbytes(t) for t in items))
        pos = 0
        for t in items:
            n = _nbytes(t)
            t.data.copy_(_from_bytes(data[pos : pos + n], t))
            pos += n
        return input

    def barrier(self):
        self.links.exchange(torch.empty(0, dtype=torch.long))

    # ------------------------------------------------------------------ objects

    def send_obj(self, obj, dst, group=None):
        self.links.send_bytes(dst, pickle.dumps(obj))

    def recv_obj(self, src, group=None):
        return _restricted_loads(bytes(self.links.recv_message(src)))

    def broadcast_obj(self, obj, src, group=None):
        if self.rank == src:
            payload = pickle.dumps(obj)
            for r in self._others(group):
                self.links.send_bytes(r, payload)
            return obj
        return _restricted_loads(bytes(self.links.recv_message(src)))

    # ------------------------------------------------------------------ identity

    def get_world_size(self):
        return self.world_size

    def get_rank(self):
        return self.rank

    def get_ttp_rank(self):
        return self.world_size

    def get_distributed_backend(self):
        return self.distributed_backend


_LOGGED = (
    "send",
    "recv",
    "isend",
    "irecv",
    "scatter",
    "reduce",
    "all_reduce",
    "gather",
    "all_gather",
    "broadcast",
    "barrier",
    "send_obj",
    "recv_obj",
    "broadcast_obj",
)


@functools.cache
def communicator_class():
    """``MeshCommunicator``: CrypTen's ``DistributedCommunicator`` (so its isinstance checks
    hold) with :class:`_MeshMethods`, each exchange counted by CrypTen's own ``_logging``
    decorator; defined on first use (CrypTen is imported through
    :func:`protocols.runtime.load_crypten`, never at this module's import)."""
    load_crypten()
    from crypten.communicator.communicator import _logging
    from crypten.communicator.distributed_communicator import DistributedCommunicator

    logged = {name: _logging(getattr(_MeshMethods, name)) for name in _LOGGED}
    return type("MeshCommunicator", (_MeshMethods, DistributedCommunicator), logged)


def shutdown() -> None:
    """Close this process's links and forget its communicator (safe to call twice)."""
    if communicator_class.cache_info().currsize:  # defined: a communicator may be installed
        communicator_class().shutdown()


def _split(flat: torch.Tensor, like: list[torch.Tensor], batched: bool):
    out, pos = [], 0
    for t in like:
        n = t.numel()
        out.append(flat[pos : pos + n].reshape(t.shape))
        pos += n
    return out if batched else out[0]


def install(inst) -> None:
    """Make ``inst`` (a :func:`communicator_class` instance) CrypTen's communicator
    (``crypten.communicator.get()``)."""
    from crypten import communicator as comm_pkg
    from crypten.communicator.distributed_communicator import DistributedCommunicator

    # CrypTen asks DistributedCommunicator.is_initialized(), which asks torch.distributed: ask
    # for our instance instead (a class attribute set here, once per process; idempotent)
    DistributedCommunicator.is_initialized = classmethod(lambda cls: cls.instance is not None)
    setattr(comm_pkg, "__use_threads", False)
    DistributedCommunicator.instance = inst
