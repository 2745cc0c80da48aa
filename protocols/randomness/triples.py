"""Correlated randomness for multiplication and truncation: where Beaver triples come from.

The requests are :mod:`protocols.randomness.requests`; a session's ``triples`` is one of two
sources, each
with ``begin(key, next_key)`` / ``end()`` around a training step and ``fetch(requests)``
returning, per request, the tuple of this party's shares: ``(a, b, c)`` for a product or an AND
gate, ``(a,)`` for a mask, ``(c,)`` for a mask product, ``(r, theta_r)`` for wraps and
``(r_xor, r_arith)`` for a bit.

:class:`DealerTriples` (TTP, the secure default).  Party ``i`` shares a PRG stream with the
dealer (:mod:`protocols.randomness.streams`), so it draws its own shares of ``a``, ``b`` (and, for
``i > 0``, of ``c``) locally (:class:`PartyShares`).  Only party 0's share of ``c`` needs the
dealer: the dealer rebuilds ``a``, ``b`` from all streams and sends ``c0 = a*b - sum_{i>0} c_i``
(:class:`protocols.randomness.dealer.DealerAnswers`).  Unlike CrypTen's provider (one dealer round
trip
per request), :meth:`DealerTriples.fetch` asks for a whole list of requests in ONE round trip,
and a recorded step plan lets a whole training step's triples arrive in ONE round trip at the
start of the step (:meth:`DealerTriples.begin`).  The dealer owns no data and sees only random
values; it must not collude with a party (threat model in the README).

:class:`FirstPartyTriples` (TFP) delegates to CrypTen's TrustedFirstParty: party 0 generates
every triple and could therefore decrypt everything.  A simulation mode; the CLI says so loudly.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence

import torch

from protocols.errors import ProtocolError
from protocols.randomness.provider import RandomnessProvider
from protocols.randomness.requests import MaskRequest, Request
from protocols.randomness.streams import RingStream, plan_stream

BULK_FUNCTION = "mpcrnn_bulk"


class PartyShares(RandomnessProvider):
    """A data party's own shares, drawn from its stream in request order.  Party 0 draws no
    ``c`` (nor ``theta_r``, nor the arithmetic share of a bit): its slot is left ``None`` for
    the dealer's answer."""

    def __init__(self, stream: RingStream, rank: int) -> None:
        self.stream, self.rank = stream, rank

    def _unless_party0(self, size) -> torch.Tensor | None:
        return None if self.rank == 0 else self.stream.draw(size)

    def mask(self, req):
        return [self.stream.draw(req.size)], None

    def mask_product(self, req, a, b):
        return [self._unless_party0(req.output_size())]  # c only; a and b are the masks

    def product(self, req):
        a, b = self.stream.draw(req.size_a), self.stream.draw(req.size_b)
        return [a, b, self._unless_party0(req.output_size())]

    def and_triple(self, req):  # XOR shares, c = a & b: the same draws
        a, b = self.stream.draw(req.size_a), self.stream.draw(req.size_b)
        return [a, b, self._unless_party0(req.output_size())]

    def wraps(self, req):
        return [self.stream.draw(req.size), self._unless_party0(req.size)]

    def bit(self, req):  # (r XOR share in {0, 1}, r arithmetic share at scale 1)
        return [self.stream.draw(req.size) & 1, self._unless_party0(req.size)]


class DealerTriples:
    """TTP source: bulk requests to the dealer process (rank ``world_size``).

    Step plans: between :meth:`begin` and :meth:`end` the requests of a training step are
    recorded under a public key (the batch shape); the next step with the same key asks the
    dealer for ALL of them in one round trip at :meth:`begin` and consumes them in order.
    Every party issues the same requests in the same order (same code, public shapes), so the
    plan is the same at every party; a mismatch is a bug and raises :class:`ProtocolError`.

    Prefetch: ``begin(key, next_key)`` with the next step's (public) key also asks the dealer,
    right away, for the next step's plan, which the dealer computes while the parties run this
    step.  Each replayed plan draws from its own stream
    (:func:`protocols.randomness.streams.plan_stream`,
    by a plan index every party counts alike), so prefetching never reorders anybody's draws; a
    prefetched plan that is not used (the next key differs) is dropped and its index never
    reused.

    transport: the process's communicator (:mod:`protocols.network.communicator`): its rank and
        its dealer link.  seed: the bulk seed this party shares with the dealer; this object
        owns the one bulk stream of the process (:mod:`protocols.randomness.streams`).
    """

    def __init__(self, stats, transport, seed: int) -> None:
        self.stats = stats
        self.transport = transport
        self.rank = transport.get_rank()
        self.stream = RingStream(seed)
        self.seed = seed
        self._plans: dict = {}
        self._recording: list | None = None
        self._key = None
        self._queue: deque | None = None
        self._plan_stream: RingStream | None = None
        self._n_plans = 0  # plan indices handed out (public: every party counts alike)
        self._pending: tuple | None = None  # (key, index, party 0's ticket or None)

    def begin(self, key, next_key=None) -> None:
        self._key = key
        plan = self._plans.get(key)
        if plan is None:
            self._drop_pending()
            self._recording = []
            return
        if self._pending is not None and self._pending[0] == key:
            _, index, ticket = self._pending
            self._pending = None
        else:
            self._drop_pending()
            index, ticket = self._request_plan(plan)
        self._plan_stream = plan_stream(self.seed, index)
        if self.rank == 0:
            c0s = iter(self._collect(ticket))
            self._queue = deque((group, [next(c0s) for _ in group]) for group in plan)
        else:
            self._queue = deque((group, None) for group in plan)
        if next_key is not None and next_key in self._plans:
            index, ticket = self._request_plan(self._plans[next_key])
            self._pending = (next_key, index, ticket)

    def _request_plan(self, plan) -> tuple[int, tuple | None]:
        """A fresh plan index; party 0 asks the dealer for that plan's c0s (not waiting)."""
        index = self._n_plans
        self._n_plans += 1
        if self.rank != 0:
            return index, None
        return index, self._send_request([r for group in plan for r in group], plan_index=index)

    def _drop_pending(self) -> None:
        if self._pending is not None:
            _, _, ticket = self._pending
            if ticket is not None:
                self._collect(ticket)  # the dealer's answer must still be received, then forgotten
            self._pending = None

    def end(self) -> None:
        if self._recording is not None:
            self._plans[self._key] = self._recording
        if self._queue:
            raise ProtocolError(
                f"internal: {len(self._queue)} prefetched triple groups were not used"
            )
        self._recording, self._queue, self._plan_stream = None, None, None

    def _send_request(self, requests: list[Request], plan_index: int | None) -> tuple:
        """Party 0: send one bulk request (drawn from the bulk stream, or from plan
        ``plan_index``'s streams) and post the receive of its answer; returns the ticket for
        :meth:`_collect`.  Answers come back in request order on the one dealer link, so a
        posted receive is completed (in order) by the next read from the dealer."""
        sizes = [r.output_size() for r in requests]
        total = sum(int(torch.Size(s).numel()) for s in sizes)
        msg = {
            "function": BULK_FUNCTION,
            "device": None,
            "args": (tuple(r.wire() for r in requests),),
            "kwargs": {"plan": plan_index},
        }
        c = self.transport
        c.send_obj(msg, c.get_ttp_rank(), c.ttp_group)
        return c.links.post_recv(c.get_ttp_rank(), 8 * total), sizes

    def _collect(self, ticket: tuple) -> list[torch.Tensor]:
        posted, sizes = ticket
        data = self.transport.links.wait(posted)
        flat = (
            torch.frombuffer(data, dtype=torch.long)
            if len(data)
            else torch.empty(0, dtype=torch.long)
        )
        self.stats.add("dealer", 0)  # party 0 sends only the request; it receives 8 * total bytes
        out, pos = [], 0
        for size in sizes:
            n = int(torch.Size(size).numel())
            out.append(flat[pos : pos + n].reshape(size))
            pos += n
        return out

    def fetch(self, requests: Sequence[Request]) -> list[tuple[torch.Tensor, ...]]:
        """This party's shares for every request (party 0: with the dealer's ``c0`` filled in,
        from the prefetched plan or ONE dealer round trip)."""
        replaying = self._queue is not None
        if self._recording is not None:
            self._recording.append(tuple(requests))
        prefetched = None
        if replaying:
            if not self._queue:
                raise ProtocolError("internal: the step issued more triple requests than its plan")
            group, prefetched = self._queue.popleft()
            if tuple(group) != tuple(requests):
                raise ProtocolError("internal: triple requests differ from the recorded step plan")
        stream = self._plan_stream if replaying else self.stream
        drawn = PartyShares(stream, self.rank).answer(requests)
        if self.rank == 0 and requests:
            if prefetched is None:
                prefetched = self._collect(self._send_request(list(requests), plan_index=None))
            for req, item, c0 in zip(requests, drawn, prefetched):
                if not isinstance(req, MaskRequest):
                    item[-1] = c0
        return [tuple(d) for d in drawn]


class FirstPartyTriples(RandomnessProvider):
    """TFP source (simulation only): CrypTen's TrustedFirstParty, one request at a time."""

    def begin(self, key, next_key=None) -> None:  # no dealer: nothing to prefetch
        pass

    def end(self) -> None:
        pass

    def fetch(self, requests: Sequence[Request]) -> list[tuple[torch.Tensor, ...]]:
        from crypten.mpc.provider.tfp_provider import TrustedFirstParty

        self._tfp = TrustedFirstParty()
        return self.answer(requests)

    @staticmethod
    def _party0(plain: torch.Tensor) -> torch.Tensor:
        """This party's share of ``plain``, which party 0 knows in the clear."""
        from crypten.mpc.primitives import ArithmeticSharedTensor

        return ArithmeticSharedTensor(plain, precision=0, src=0).share

    def mask(self, req):
        from crypten.common.rng import generate_random_ring_element

        plain = generate_random_ring_element(torch.Size(req.size))  # party 0's, in the clear
        return (self._party0(plain),), plain

    def mask_product(self, req, a, b):
        return (self._party0(req.combine(a, b)),)

    def product(self, req):
        a, b, c = self._tfp.generate_additive_triple(
            torch.Size(req.size_a), torch.Size(req.size_b), req.op.value
        )
        return (a.share, b.share, c.share)

    def and_triple(self, req):
        a, b, c = self._tfp.generate_binary_triple(torch.Size(req.size_a), torch.Size(req.size_b))
        return (a.share, b.share, c.share)

    def wraps(self, req):
        r, theta = self._tfp.wrap_rng(torch.Size(req.size))
        return (r.share, theta.share)

    def bit(self, req):
        r_arith, r_bin = self._tfp.B2A_rng(torch.Size(req.size))
        return (r_bin.share, r_arith.share)
