"""The dealer (trusted third party) process: owns no data, answers randomness requests.

It serves CrypTen's own TTP requests (used by CrypTen ops we call, e.g. the argmax behind
``--reveal-metrics``) and mpcrnn's bulk requests (:mod:`protocols.randomness.triples`): one
message with a list of requests, answered by one tensor holding party 0's share of every ``c`` (or
``theta_r``) in order (:class:`DealerAnswers`).

What party 0 may ask is checked first (:mod:`protocols.randomness.dealer_checks`: an explicit
table of request kinds, every size bounded before anything is allocated); anything else stops
the dealer with one :class:`ProtocolError` line naming party 0.  Every wait has the run's
timeout: if party 0 stops talking for ``timeout_s`` or any party
dies, the links raise :class:`PartyError` naming the peer instead of waiting forever.  Its
seeds, the requests and the answers travel only on its authenticated links
(:mod:`protocols.network.channels`).
"""

from __future__ import annotations

import torch

from protocols.arithmetic.truncation import count_wraps
from protocols.randomness.dealer_checks import check_bulk, check_crypten, check_message
from protocols.randomness.provider import RandomnessProvider
from protocols.randomness.requests import BILINEAR
from protocols.randomness.streams import RingStream, plan_stream, send_dealer_seeds
from protocols.randomness.triples import BULK_FUNCTION

_NOTHING = torch.empty(0, dtype=torch.long)


class DealerAnswers(RandomnessProvider):
    """Party 0's share of every ``c`` (or ``theta_r``, or bit), flat, from every party's stream
    (``streams[i]`` is party i's, drawn in the same order as :class:`PartyShares` draws it)."""

    def __init__(self, streams: list[RingStream]) -> None:
        self.streams = streams

    def _sum(self, size, streams=None) -> torch.Tensor:
        """Sum over the parties' streams (all, or ``streams``) of their next draw of ``size``."""
        out = None
        for g in self.streams if streams is None else streams:
            d = g.draw(size)
            out = d if out is None else out + d
        return out

    def _xor(self, size, streams=None, mask: int = -1) -> torch.Tensor:
        """XOR over the parties' streams of their next draw of ``size`` (``& mask``)."""
        out = None
        for g in self.streams if streams is None else streams:
            d = g.draw(size) & mask
            out = d if out is None else out ^ d
        return out

    def _party0_share(self, value: torch.Tensor, size) -> torch.Tensor:
        """``value`` minus the shares parties 1.. draw for it (what party 0 must hold)."""
        return (value - self._sum(size, self.streams[1:])).reshape(-1)

    def mask(self, req):
        return _NOTHING, self._sum(req.size)

    def mask_product(self, req, a, b):
        return self._party0_share(req.combine(a, b), req.output_size())

    def product(self, req):
        a, b = self._sum(req.size_a), self._sum(req.size_b)
        return self._party0_share(BILINEAR[req.op](a, b), req.output_size())

    def and_triple(self, req):
        a, b = self._xor(req.size_a), self._xor(req.size_b)
        return ((a & b) ^ self._xor(req.output_size(), self.streams[1:])).reshape(-1)

    def wraps(self, req):
        theta = count_wraps([g.draw(req.size) for g in self.streams])
        return self._party0_share(theta, req.size)

    def bit(self, req):
        # every party draws its XOR share bit, then (rank > 0) its arithmetic share
        return self._party0_share(self._xor(req.size, mask=1), req.size)


def serve(session) -> int:
    """Run the dealer loop until party 0 sends ``terminate``; returns the number of requests.

    session: the dealer's :class:`protocols.session.MpcSession` (rank ``world_size``).

    Raises:
        ProtocolError: party 0 sent a request the dealer does not answer (named, one line).
        PartyError: party 0 is gone or silent for the run's timeout."""
    from crypten.mpc.provider.ttp_provider import TTPServer

    c = session.transport
    # CrypTen's request handlers, without its torch.distributed set-up
    server = TTPServer.__new__(TTPServer)  # only the methods of dealer_checks' table are called
    server.ttp_group = c.ttp_group
    server.comm_group = c.ttp_comm_group
    server.device = "cpu"
    server.generators, bulk_streams, seeds = send_dealer_seeds(c.links, c.get_world_size())
    server.generators_cuda = [None] * len(server.generators)
    links = c.links
    ttp_rank = c.get_ttp_rank()
    served = 0
    while True:
        message = c.recv_obj(0, server.ttp_group)  # PartyError if party 0 is gone
        if message == "terminate":
            return served
        served += 1
        message = check_message(message)
        if message["function"] == BULK_FUNCTION:
            requests, plan = check_bulk(message, len(seeds))
            streams = bulk_streams if plan is None else [plan_stream(s, plan) for s in seeds]
            parts = DealerAnswers(streams).answer(requests)
            result = torch.cat(parts) if parts else _NOTHING
            links.send_bytes(0, result.contiguous().numpy().tobytes())
            continue
        # CrypTen's own request format (TTPServer loop body), its function from the table
        name, args = check_crypten(message)
        result = _CRYPTEN[name](server, *args)
        c.send_obj(result.size(), 0, server.ttp_group)
        c.broadcast(result, ttp_rank, server.comm_group)


def _additive(server, size0, size1, op: str):
    return server.additive(size0, size1, op)


_CRYPTEN = {  # dealer_checks.CRYPTEN_FUNCTIONS' names -> CrypTen's TTPServer methods
    "additive": _additive,
    "square": lambda server, size: server.square(size),
    "binary": lambda server, size0, size1: server.binary(size0, size1),
    "wraps": lambda server, size: server.wraps(size),
    "B2A": lambda server, size: server.B2A(size),
}


def stop_dealer(session) -> None:
    """Called by party 0 at the end of a run: tell the dealer to exit (no-op elsewhere)."""
    c = session.transport
    if session.rank == 0 and session.has_dealer:
        c.send_obj("terminate", c.get_ttp_rank(), c.ttp_group)
