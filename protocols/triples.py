"""Correlated randomness for multiplication and truncation: where Beaver triples come from.

Request kinds (all sizes public):
* ``("mul", size_a, size_b)`` / ``("matmul", size_a, size_b)``: shares of ``a``, ``b`` and
  ``c = a * b`` (broadcasting) or ``c = a @ b``, uniformly random in Z_{2^64}.
* ``("wraps", size)``: shares of a random ``r`` and of ``theta_r``, the number of times the
  shares of ``r`` wrap around 2^64 (CrypTen's truncation for more than two parties).

Two sources:

:class:`DealerTriples` (TTP, the secure default).  Party ``i`` shares a PRG seed with the dealer
(CrypTen's ``TTPClient`` generator), so it draws its own shares of ``a``, ``b`` (and, for
``i > 0``, of ``c``) locally.  Only party 0's share of ``c`` needs the dealer: the dealer rebuilds
``a``, ``b`` from all seeds and sends ``c0 = a*b - sum_{i>0} c_i``.  Unlike CrypTen's provider
(one dealer round trip per request), :meth:`DealerTriples.fetch` asks for a whole list of
requests in ONE round trip.  The dealer owns no data and sees only random values; it must not
collude with a party (threat model in the README).

:class:`FirstPartyTriples` (TFP) delegates to CrypTen's TrustedFirstParty: party 0 generates every
triple and could therefore decrypt everything.  A simulation mode; the CLI says so loudly.
"""

from __future__ import annotations

from typing import Sequence

import torch

BULK_FUNCTION = "mpcrnn_bulk"

Request = tuple  # ("mul"|"matmul", size_a, size_b) or ("wraps", size)


def output_size(req: Request) -> tuple[int, ...]:
    """Size of ``c`` (or ``theta_r``) for a request."""
    if req[0] == "wraps":
        return tuple(req[1])
    a = torch.empty(req[1], dtype=torch.int64, device="meta")
    b = torch.empty(req[2], dtype=torch.int64, device="meta")
    return tuple(getattr(torch, req[0])(a, b).shape)


def _rand(size, generator) -> torch.Tensor:
    from crypten.common.rng import generate_random_ring_element

    return generate_random_ring_element(tuple(size), generator=generator)


class DealerTriples:
    """TTP source: bulk requests to the dealer process (rank ``world_size``)."""

    def __init__(self, stats) -> None:
        self.stats = stats

    def fetch(self, requests: Sequence[Request]) -> list[tuple[torch.Tensor, ...]]:
        import crypten.communicator as comm
        from crypten.mpc.provider.ttp_provider import TTPClient

        client = TTPClient.get()
        gen = client.get_generator()
        rank = comm.get().get_rank()
        drawn = []
        for req in requests:
            if req[0] == "wraps":
                r = _rand(req[1], gen)
                theta = None if rank == 0 else _rand(req[1], gen)
                drawn.append([r, theta])
            else:
                a, b = _rand(req[1], gen), _rand(req[2], gen)
                c = None if rank == 0 else _rand(output_size(req), gen)
                drawn.append([a, b, c])
        if rank == 0 and requests:
            sizes = [output_size(r) for r in requests]
            total = sum(int(torch.Size(s).numel()) for s in sizes)
            ttp = comm.get().get_ttp_rank()
            msg = {"function": BULK_FUNCTION, "device": None, "args": (tuple(map(_plain, requests)),), "kwargs": {}}
            comm.get().send_obj(msg, ttp, client.ttp_group)
            flat = torch.empty(total, dtype=torch.long)
            import torch.distributed as dist

            dist.broadcast(flat, ttp, group=client.comm_group)
            self.stats.add("dealer", 0)
            pos = 0
            for item, size in zip(drawn, sizes):
                n = int(torch.Size(size).numel())
                item[-1] = flat[pos : pos + n].reshape(size)
                pos += n
        return [tuple(d) for d in drawn]


def _plain(req: Request) -> tuple:
    return tuple(tuple(int(v) for v in x) if not isinstance(x, str) else x for x in req)


class FirstPartyTriples:
    """TFP source (simulation only): CrypTen's TrustedFirstParty, one request at a time."""

    def fetch(self, requests: Sequence[Request]) -> list[tuple[torch.Tensor, ...]]:
        from crypten.mpc.provider.tfp_provider import TrustedFirstParty

        tfp = TrustedFirstParty()
        out = []
        for req in requests:
            if req[0] == "wraps":
                r, theta = tfp.wrap_rng(torch.Size(req[1]))
                out.append((r.share, theta.share))
            else:
                a, b, c = tfp.generate_additive_triple(torch.Size(req[1]), torch.Size(req[2]), req[0])
                out.append((a.share, b.share, c.share))
        return out
