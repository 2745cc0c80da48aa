"""Bringing parties up and down: in-process (one party, unit tests) or N processes over gloo.

Ranks: data parties are ``0..world_size-1``; the dealer (TTP), when present, is rank
``world_size`` (CrypTen's convention).  Every blocking wait on a peer inherits ``timeout_s``
from the process group, so a dead or silent peer turns into a :class:`PartyError`, never a hang.

Rendezvous is a torch.distributed init method: ``tcp://host:port`` for several hosts, or
``file:///path`` (one fresh file per run, so concurrent runs on one machine never collide on a
port).  ``GLOO_SOCKET_IFNAME`` in the environment picks the interface gloo binds to; we leave it
to torch, which reads it.
"""

from __future__ import annotations

import datetime
import os
from dataclasses import dataclass

from protocols.errors import AgreementError, ConfigError, PartyError, expected_got
from protocols.runtime import load_crypten

PROVIDERS = ("TTP", "TFP")

# What the bytes between parties and the dealer mean; bumped whenever that changes (2: the
# triple streams moved to numpy's PCG64, and the mask / maskmul requests arrived).  Hosts on
# different releases would otherwise compute garbage silently (their triple shares no longer
# match), so every process compares it right after joining, before anything is shared.
WIRE_PROTOCOL = 2


@dataclass(frozen=True)
class PartySpec:
    """Who this process is in the run.

    rank: 0..world_size-1 for data parties, world_size for the dealer.
    world_size: number of data parties (the dealer is not counted).
    rendezvous: torch.distributed init method, e.g. ``tcp://10.0.0.1:29500`` or ``file:///tmp/x``.
    provider: ``TTP`` (dealer process, secure) or ``TFP`` (party 0 makes all triples: simulation).
    timeout_s: limit on every wait for a peer, including the rendezvous itself.
    """

    rank: int
    world_size: int
    rendezvous: str
    provider: str = "TTP"
    timeout_s: float = 60.0

    @property
    def has_dealer(self) -> bool:
        return self.provider == "TTP"

    @property
    def is_dealer(self) -> bool:
        return self.has_dealer and self.rank == self.world_size

    def validate(self) -> None:
        if self.provider not in PROVIDERS:
            raise ConfigError(expected_got("provider", " or ".join(PROVIDERS), self.provider))
        if self.world_size < 1:
            raise ConfigError(expected_got("world size (data parties)", ">= 1", self.world_size))
        top = self.world_size if self.has_dealer else self.world_size - 1
        if not 0 <= self.rank <= top:
            raise ConfigError(expected_got("rank", f"0..{top}", self.rank))
        if not (self.rendezvous.startswith("tcp://") or self.rendezvous.startswith("file://")):
            raise ConfigError(
                expected_got("rendezvous", "tcp://host:port or file:///path", self.rendezvous)
            )
        if self.timeout_s <= 0:
            raise ConfigError(expected_got("timeout_s", "> 0", self.timeout_s))


def init_party(spec: PartySpec) -> None:
    """Join the run as a data party or the dealer: process group, CrypTen communicator, PRNGs.

    Raises:
        PartyError: the rendezvous did not complete within ``timeout_s``.
    """
    spec.validate()
    crypten = load_crypten()
    import torch
    import torch.distributed as dist
    from crypten import communicator as comm_pkg
    from crypten.communicator import DistributedCommunicator
    from crypten.config import cfg

    torch.set_num_threads(1)
    cfg.mpc.provider = spec.provider
    total = spec.world_size + (1 if spec.has_dealer else 0)
    timeout = datetime.timedelta(seconds=spec.timeout_s)
    try:
        dist.init_process_group(
            backend="gloo",
            init_method=spec.rendezvous,
            world_size=total,
            rank=spec.rank,
            timeout=timeout,
        )
        versions: list = [None] * total
        dist.all_gather_object(versions, WIRE_PROTOCOL)
        mismatch = check_wire_protocol(versions, spec.world_size)
        if mismatch:
            _teardown()
            raise AgreementError(mismatch)
        inst = DistributedCommunicator.__new__(DistributedCommunicator)
        inst.distributed_backend = "gloo"
        inst.rendezvous = spec.rendezvous
        inst.world_size = spec.world_size
        inst.rank = spec.rank
        inst.reset_communication_stats()
        inst._name = f"rank{spec.rank}"
        inst.ttp_group = dist.new_group(list(range(total)), timeout=timeout)
        if total > 1:
            inst.ttp_comm_group = dist.new_group([0, total - 1], timeout=timeout)
        inst.main_group = dist.new_group(list(range(spec.world_size)), timeout=timeout)
        inst.ttp_initialized = spec.has_dealer
        DistributedCommunicator.instance = inst
        setattr(comm_pkg, "__use_threads", False)
        if not spec.is_dealer:
            crypten._setup_prng()
            if spec.has_dealer:
                from protocols.triples import setup_bulk_stream

                crypten.mpc.provider.ttp_provider.TTPClient._init()
                setup_bulk_stream(False, spec.world_size)
            if spec.world_size > 1:
                from protocols import links

                _LINKS["current"] = links.connect(spec.rank, spec.world_size, _rendezvous_store(),
                                                  links.local_address(spec.rendezvous), spec.timeout_s)
    except (RuntimeError, ValueError) as exc:  # gloo reports timeouts/refusals as RuntimeError
        _teardown()
        raise PartyError(
            f"rank {spec.rank}: could not join the run at {spec.rendezvous} within "
            f"{spec.timeout_s:g} s ({_first_line(exc)}). Check that every party and the dealer "
            f"use the same rendezvous and world size and are running"
        ) from None
    _seed_local_generator()


_LINKS: dict = {}  # this process's protocols.links.Links (a data party of a multi-party run), like CrypTen's communicator


def current_links():
    """This process's direct links to the other data parties, or None (one party, the dealer)."""
    return _LINKS.get("current")


def _rendezvous_store():
    from protocols.errors import InstallError

    try:
        from torch.distributed.distributed_c10d import _get_default_store
    except ImportError:  # pragma: no cover - a torch version change
        raise InstallError("torch.distributed has no _get_default_store (torch version change?)") from None
    return _get_default_store()


def _seed_local_generator() -> None:
    """CrypTen seeds its generators from torch's global RNG; re-seed the local one from the OS."""
    import crypten
    import torch

    for gen in crypten.generators["local"].values():
        gen.manual_seed(int.from_bytes(os.urandom(8), "little") >> 1)
    del torch


def init_in_process() -> None:
    """A single party in this process (world size 1, TFP): the fast path for unit tests.

    It uses the same gloo communicator as real runs (a process group of one over a fresh
    ``file://`` rendezvous), so every CrypTen code path is the one used with N parties.  Shares
    equal plaintext here: this checks the arithmetic of every protocol (fixed point, truncation,
    polynomial trees, BPTT), not the secrecy; the multi-process tests do that.
    """
    import tempfile

    crypten = load_crypten()
    if crypten.is_initialized():
        return
    path = tempfile.mkdtemp(prefix="mpcrnn-inproc-")
    init_party(PartySpec(0, 1, f"file://{path}/rendezvous", "TFP", 30.0))


def shutdown() -> None:
    """Leave the run; safe to call twice or after a failed init."""
    _teardown()


def check_wire_protocol(versions: list, world_size: int) -> str | None:
    """The error message if any process (rank order; rank ``world_size`` is the dealer) runs
    another wire protocol than rank 0, else None."""
    for rank, version in enumerate(versions):
        if version != versions[0]:
            who = "the dealer" if rank == world_size else f"party {rank}"
            return expected_got(f"{who}'s mpcrnn wire protocol", f"{versions[0]} (party 0's)", version,
                                "every party and the dealer must run the same mpcrnn release")
    return None


def _teardown() -> None:
    links = _LINKS.pop("current", None)
    if links is not None:
        links.close()
    try:
        import torch.distributed as dist
        from crypten.communicator import DistributedCommunicator

        DistributedCommunicator.instance = None
        if dist.is_initialized():
            dist.destroy_process_group()
    except Exception:  # noqa: BLE001 - best effort on the way out
        pass


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:200] if text else type(exc).__name__
