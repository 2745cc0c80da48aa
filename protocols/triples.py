"""Correlated randomness for multiplication and truncation: where Beaver triples come from.

Request kinds (all sizes public):
* ``("mul", size_a, size_b)`` / ``("matmul", size_a, size_b)``: shares of ``a``, ``b`` and
  ``c = a * b`` (broadcasting) or ``c = a @ b``, uniformly random in Z_{2^64}.
* ``("wraps", size)``: shares of a random ``r`` and of ``theta_r``, the number of times the
  shares of ``r`` wrap around 2^64 (CrypTen's truncation for more than two parties).
* ``("and", size, size)``: XOR shares of ``a``, ``b`` and ``c = a & b`` (binary AND gates).
* ``("bit", size)``: XOR shares (0/1) of a random bit ``r`` and arithmetic shares of the same
  ``r`` at scale 1 (B2A conversion).
* ``("mask", size)``: shares of a random ``a``, the one mask of an operand that is opened once
  and multiplied several times (the polynomial evaluator's powers).  Nothing from the dealer.
* ``("maskmul", size_a, size_b, back_a, back_b)``: shares of ``c = a * b`` (broadcasting) where
  ``a`` and ``b`` are the masks of the ``("mask", ..)`` requests ``back_a`` and ``back_b``
  positions earlier in the same request list (equal for a square).
* ``("maskmatmul", size_a, size_b, back_a, back_b, transpose_b)``: the same for ``c = a @ b``
  (``a @ b^T`` when ``transpose_b`` is 1): a recurrent weight opened once per step and used by
  every time step's matmul (:class:`protocols.multiply.FixedOperand`).

Two sources:

:class:`DealerTriples` (TTP, the secure default).  Party ``i`` shares a PRG seed with the dealer
(a bulk stream seeded by the dealer at start-up, separate from CrypTen's TTP stream), so it
draws its own shares of ``a``, ``b`` (and, for
``i > 0``, of ``c``) locally.  Only party 0's share of ``c`` needs the dealer: the dealer rebuilds
``a``, ``b`` from all seeds and sends ``c0 = a*b - sum_{i>0} c_i``.  Unlike CrypTen's provider
(one dealer round trip per request), :meth:`DealerTriples.fetch` asks for a whole list of
requests in ONE round trip, and a recorded step plan lets a whole training step's triples
arrive in ONE round trip at the start of the step (:meth:`DealerTriples.begin`).  The dealer owns no data and sees only random values; it must not
collude with a party (threat model in the README).

:class:`FirstPartyTriples` (TFP) delegates to CrypTen's TrustedFirstParty: party 0 generates every
triple and could therefore decrypt everything.  A simulation mode; the CLI says so loudly.
"""

from __future__ import annotations

import functools
import struct
from collections import deque
from collections.abc import Sequence

import torch

BULK_FUNCTION = "mpcrnn_bulk"

Request = tuple  # ("mul"|"matmul"|"and", size_a, size_b), ("wraps"|"bit"|"mask", size),
#                  ("maskmul", size_a, size_b, back_a, back_b) or
#                  ("maskmatmul", size_a, size_b, back_a, back_b, transpose_b)

MASK_PRODUCTS = ("maskmul", "maskmatmul")


def mask_references(requests: Sequence[Request]) -> None:
    """Check that every ``maskmul`` / ``maskmatmul`` names two ``mask`` requests earlier in the
    same list, of its operand sizes (raises ``ValueError``: a bug in the caller, never
    data-dependent)."""
    for pos, req in enumerate(requests):
        if req[0] not in MASK_PRODUCTS:
            continue
        for size, back in ((req[1], req[3]), (req[2], req[4])):
            ref = pos - int(back)
            if (
                not (0 < int(back) <= pos)
                or requests[ref][0] != "mask"
                or tuple(requests[ref][1]) != tuple(size)
            ):
                raise ValueError(
                    f"{req[0]} at {pos}: expected a mask of size {tuple(size)} {back} requests back"
                )


def mask_product(req: Request, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``c`` of a ``maskmul`` / ``maskmatmul`` request from its two masks (the dealer's side)."""
    if req[0] == "maskmul":
        return a * b
    return a @ (b.transpose(-2, -1) if req[5] else b)


@functools.lru_cache(maxsize=4096)
def broadcast(a: tuple[int, ...], b: tuple[int, ...]) -> tuple[int, ...]:
    """torch's broadcasting of two shapes, cached: ``torch.broadcast_shapes`` cost ~0.17 ms a
    call, ~10% of a W1 training step (profiled), for a few hundred distinct shapes."""
    return tuple(torch.broadcast_shapes(a, b))


def output_size(req: Request) -> tuple[int, ...]:
    """Size of ``c`` (or ``theta_r``) for a request: broadcasting for mul, (.., n, k) @ (.., k, m)
    -> (.., n, m) for matmul of 2-D (or batched) operands."""
    if req[0] in ("wraps", "bit"):
        return tuple(req[1])
    if req[0] == "mask":  # the dealer sends nothing for a mask
        return (0,)
    if req[0] == "and":
        if tuple(req[1]) != tuple(req[2]):
            raise ValueError(f"and triple: shapes {req[1]} and {req[2]} differ")
        return tuple(req[1])
    if req[0] in ("mul", "maskmul"):
        return broadcast(tuple(req[1]), tuple(req[2]))
    a, b = tuple(req[1]), tuple(req[2])
    if req[0] == "maskmatmul" and req[5] and len(b) >= 2:
        b = b[:-2] + (b[-1], b[-2])
    if len(a) < 2 or len(b) < 2 or a[-1] != b[-2]:
        raise ValueError(f"matmul triple: shapes {a} and {b} do not chain")
    batch = broadcast(a[:-2], b[:-2])
    return batch + (a[-2], b[-1])


class RingStream:
    """A party's stream of uniform ring elements (Z_2^64 as int64), shared with the dealer.

    numpy's PCG64, 64 raw bits per element: measured 1.7-1.9x faster than torch's Mersenne
    Twister ``randint`` over the full int64 range at W1's request sizes (1.7 vs 3.1 ns per
    element at 9216 elements); drawing randomness was the dealer's largest cost.  Like CrypTen's
    generators it is a statistical PRG, not a cryptographic one; the seeds come from
    ``os.urandom`` at the dealer (README, threat model).
    """

    def __init__(self, seed: int) -> None:
        import numpy as np

        self._bits = np.random.PCG64(seed)

    def draw(self, size) -> torch.Tensor:
        import numpy as np

        size = tuple(int(d) for d in size)
        n = 1
        for d in size:
            n *= d
        return torch.from_numpy(self._bits.random_raw(n).view(np.int64)).view(size)


def plan_stream(seed: int, index: int) -> RingStream:
    """The stream of the ``index``-th replayed step plan for the party whose bulk seed is
    ``seed``: SHA-256(seed, index), so the dealer can compute a plan's randomness ahead of time
    (while the parties run the step before) without the order of other requests mattering."""
    import hashlib

    digest = hashlib.sha256(f"mpcrnn-plan:{seed}:{index}".encode()).digest()
    return RingStream(int.from_bytes(digest[:16], "little"))


SEED = struct.Struct("<q")


def send_dealer_seeds(world_size: int) -> tuple[list[torch.Generator], list[RingStream], list[int]]:
    """The dealer, once at start-up: a fresh seed per party for CrypTen's TTP generator and one
    for mpcrnn's bulk stream (separate, so that bulk requests fetched ahead of use never
    desynchronize from CrypTen's on-demand requests), each sent only to its party over the
    dealer's authenticated link.  Returns CrypTen's per-party generators, the bulk streams and
    the bulk seeds."""
    import os

    import crypten.communicator as comm

    links = comm.get().links
    crypten_seeds = [SEED.unpack(os.urandom(8))[0] for _ in range(world_size)]
    bulk_seeds = [int.from_bytes(os.urandom(8), "little") >> 1 for _ in range(world_size)]
    for rank in range(world_size):
        links.send_bytes(rank, SEED.pack(crypten_seeds[rank]) + SEED.pack(bulk_seeds[rank]))
    generators = []
    for seed in crypten_seeds:
        g = torch.Generator(device="cpu")
        g.manual_seed(seed)
        generators.append(g)
    return generators, [RingStream(seed) for seed in bulk_seeds], bulk_seeds


def receive_dealer_seeds() -> None:
    """A data party, once at start-up: the dealer's two seeds (see :func:`send_dealer_seeds`).
    CrypTen's TTP client gets its generator (built here: CrypTen's own set-up would receive
    its seed over torch.distributed); the bulk stream goes on the communicator, which every
    session of this process shares."""
    import crypten.communicator as comm
    from crypten.mpc.provider.ttp_provider import TTPClient

    c = comm.get()
    data = c.links.recv_bytes(c.get_ttp_rank(), 2 * SEED.size)
    crypten_seed, bulk_seed = SEED.unpack_from(data, 0)[0], SEED.unpack_from(data, SEED.size)[0]
    inner = TTPClient._TTPClient__TTPClient  # CrypTen's singleton class (name-mangled)
    client = inner.__new__(inner)
    client.ttp_group, client.comm_group = c.ttp_group, c.ttp_comm_group
    client.generator = torch.Generator(device="cpu")
    client.generator.manual_seed(crypten_seed)
    client.generator_cuda = None
    TTPClient._TTPClient__instance = client
    c.bulk_seed = bulk_seed
    c.bulk_stream = RingStream(bulk_seed)


class DealerTriples:
    """TTP source: bulk requests to the dealer process (rank ``world_size``).

    Step plans: between :meth:`begin` and :meth:`end` the requests of a training step are
    recorded under a public key (the batch shape); the next step with the same key asks the
    dealer for ALL of them in one round trip at :meth:`begin` and consumes them in order.
    Every party issues the same requests in the same order (same code, public shapes), so the
    plan is the same at every party; a mismatch is a bug and raises.

    Prefetch: ``begin(key, next_key)`` with the next step's (public) key also asks the dealer,
    right away, for the next step's plan; the dealer computes it while the parties run this
    step (measured at W1: party 0 waited 0.17-0.19 s of a 0.8 s step for the dealer at every
    step start).  Each replayed plan draws from its own stream (:func:`plan_stream`, by a
    plan index every party counts alike), so prefetching never reorders anybody's draws; a
    prefetched plan that is not used (the next key differs) is dropped and its index never
    reused.
    """

    def __init__(self, stats) -> None:
        import crypten.communicator as comm

        self.stats = stats
        self.stream = (
            comm.get().bulk_stream
        )  # one per process, on the transport, shared by its sessions
        self.seed = comm.get().bulk_seed
        self._plans: dict = {}
        self._recording: list | None = None
        self._key = None
        self._queue: deque | None = None
        self._plan_stream: RingStream | None = None
        self._n_plans = 0  # plan indices handed out (public: every party counts alike)
        self._pending: tuple | None = None  # (key, index, party 0: (work, flat, sizes) or None)

    def begin(self, key, next_key=None) -> None:
        import crypten.communicator as comm

        self._key = key
        plan = self._plans.get(key)
        if plan is None:
            self._drop_pending()
            self._recording = []
            return
        rank0 = comm.get().get_rank() == 0
        if self._pending is not None and self._pending[0] == key:
            _, index, ticket = self._pending
            self._pending = None
        else:
            self._drop_pending()
            index, ticket = self._request_plan(plan)
        self._plan_stream = plan_stream(self.seed, index)
        if rank0:
            c0s = iter(self._collect(ticket))
            self._queue = deque((group, [next(c0s) for _ in group]) for group in plan)
        else:
            self._queue = deque((group, None) for group in plan)
        if next_key is not None and next_key in self._plans:
            index, ticket = self._request_plan(self._plans[next_key])
            self._pending = (next_key, index, ticket)

    def _request_plan(self, plan) -> tuple[int, tuple | None]:
        """A fresh plan index; party 0 asks the dealer for that plan's c0s (not waiting)."""
        import crypten.communicator as comm

        index = self._n_plans
        self._n_plans += 1
        if comm.get().get_rank() != 0:
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
            raise RuntimeError(
                f"internal: {len(self._queue)} prefetched triple groups were not used"
            )
        self._recording, self._queue, self._plan_stream = None, None, None

    def _round_trip(self, requests: list) -> list[torch.Tensor]:
        """Rank 0 only: party 0's share of every c (or theta_r), in one dealer round trip."""
        return self._collect(self._send_request(requests, plan_index=None))

    def _send_request(self, requests: list, plan_index: int | None) -> tuple:
        """Rank 0: send one bulk request (drawn from the bulk stream, or from plan ``plan_index``'s
        streams) and post the receive of its answer; returns the ticket for :meth:`_collect`.
        Answers come back in request order on the one dealer link, so a posted receive is
        completed (in order) by the next read from the dealer: no reader thread."""
        import crypten.communicator as comm
        from crypten.mpc.provider.ttp_provider import TTPClient

        client = TTPClient.get()
        sizes = [output_size(r) for r in requests]
        total = sum(int(torch.Size(s).numel()) for s in sizes)
        msg = {
            "function": BULK_FUNCTION,
            "device": None,
            "args": (tuple(map(_plain, requests)),),
            "kwargs": {"plan": plan_index},
        }
        c = comm.get()
        c.send_obj(msg, c.get_ttp_rank(), client.ttp_group)
        return c.links.post_recv(c.get_ttp_rank(), 8 * total), sizes

    def _collect(self, ticket: tuple) -> list[torch.Tensor]:
        import crypten.communicator as comm

        posted, sizes = ticket
        data = comm.get().links.wait(posted)
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
        import crypten.communicator as comm

        stream = self._plan_stream if self._queue is not None else self.stream
        rank = comm.get().get_rank()
        if self._recording is not None:
            self._recording.append(tuple(requests))
        prefetched = None
        if self._queue is not None:
            if not self._queue:
                raise RuntimeError("internal: the step issued more triple requests than its plan")
            group, prefetched = self._queue.popleft()
            if tuple(group) != tuple(requests):
                raise RuntimeError("internal: triple requests differ from the recorded step plan")
        mask_references(requests)
        drawn = []
        for req in requests:
            if req[0] == "mask":
                drawn.append([stream.draw(req[1])])
            elif req[0] in MASK_PRODUCTS:  # c only; a and b are the referenced masks
                drawn.append([None if rank == 0 else stream.draw(output_size(req))])
            elif req[0] == "wraps":
                r = stream.draw(req[1])
                theta = None if rank == 0 else stream.draw(req[1])
                drawn.append([r, theta])
            elif req[0] == "bit":  # (r XOR share in {0, 1}, r arithmetic share at scale 1)
                r_bin = stream.draw(req[1]) & 1
                r_arith = None if rank == 0 else stream.draw(req[1])
                drawn.append([r_bin, r_arith])
            else:  # mul / matmul (arithmetic) or and (XOR shares, c = a & b): same draws
                a, b = stream.draw(req[1]), stream.draw(req[2])
                c = None if rank == 0 else stream.draw(output_size(req))
                drawn.append([a, b, c])
        if rank == 0 and requests:
            c0s = prefetched if prefetched is not None else self._round_trip(list(requests))
            for req, item, c0 in zip(requests, drawn, c0s):
                if req[0] != "mask":
                    item[-1] = c0
        return [tuple(d) for d in drawn]


def _plain(req: Request) -> tuple:
    return tuple(
        x if isinstance(x, str) else int(x) if isinstance(x, int) else tuple(int(v) for v in x)
        for x in req
    )


class FirstPartyTriples:
    """TFP source (simulation only): CrypTen's TrustedFirstParty, one request at a time."""

    def begin(self, key, next_key=None) -> None:  # no dealer: nothing to prefetch
        pass

    def end(self) -> None:
        pass

    def fetch(self, requests: Sequence[Request]) -> list[tuple[torch.Tensor, ...]]:
        from crypten.common.rng import generate_random_ring_element
        from crypten.mpc.primitives import ArithmeticSharedTensor
        from crypten.mpc.provider.tfp_provider import TrustedFirstParty

        tfp = TrustedFirstParty()
        mask_references(requests)
        out, plain = [], {}  # plain: party 0's masks in the clear (TFP: party 0 makes every triple)
        for pos, req in enumerate(requests):
            if req[0] == "mask":
                plain[pos] = generate_random_ring_element(torch.Size(req[1]))
                out.append((ArithmeticSharedTensor(plain[pos], precision=0, src=0).share,))
            elif req[0] in MASK_PRODUCTS:
                c = mask_product(req, plain[pos - req[3]], plain[pos - req[4]])
                out.append((ArithmeticSharedTensor(c, precision=0, src=0).share,))
            elif req[0] == "wraps":
                r, theta = tfp.wrap_rng(torch.Size(req[1]))
                out.append((r.share, theta.share))
            elif req[0] == "and":
                a, b, c = tfp.generate_binary_triple(torch.Size(req[1]), torch.Size(req[2]))
                out.append((a.share, b.share, c.share))
            elif req[0] == "bit":
                r_arith, r_bin = tfp.B2A_rng(torch.Size(req[1]))
                out.append((r_bin.share, r_arith.share))
            else:
                a, b, c = tfp.generate_additive_triple(
                    torch.Size(req[1]), torch.Size(req[2]), req[0]
                )
                out.append((a.share, b.share, c.share))
        return out
