"""``--provider he``: the two data parties make every triple themselves with homomorphic
encryption (:mod:`protocols.randomness.he_products`); no dealer process exists.

Party ``p`` draws its own shares ``a_p``, ``b_p`` (``os.urandom``).  A product ``c = a * b``
with ``a = a_0 + a_1``, ``b = b_0 + b_1`` needs the cross terms ``a_0 b_1`` and ``a_1 b_0``;
both parties run the same job list, each ENCRYPTING its left operands under its own key and
EVALUATING the peer's ciphertexts with its right operands, so::

    c_p = a_p * b_p + [a_p * b_(1-p)]_p  (decrypted)  + [a_(1-p) * b_p]_p  (mask share)

Per kind (all exact over Z_2^64):

* products and mask products: MUL with broadcasting, operands expanded to the output shape
  first, both cross terms of an element in one answer, each element made in one direction
  (:mod:`protocols.randomness.he_slots`); MATMUL per batch entry, the products that share an
  operand stacked into one and each taken in its cheaper orientation
  (:mod:`protocols.randomness.he_matmul`), ``k`` split into chunks below the CRT basis' limit;
* squares (a mask product of one mask with itself): the one cross term ``2 a_0 a_1``, each
  element made in ONE direction, so half the ciphertexts of a product
  (:mod:`protocols.randomness.he_slots`);
* AND triples (XOR shares of 64-bit words): not HE but random oblivious transfer, extended
  (IKNP) from 128 base OTs each way that ONE HE product batch makes when the provider starts
  (:mod:`protocols.randomness.ot_extension`): one OT each way per bit, 16 bytes sent per bit
  by each party, against 64 one-prime slots (~56 bytes) per bit as HE bit products;
* B2A bits: ``r = r_0 xor r_1 = r_0 + r_1 - 2 r_0 r_1``; the two cross terms are both
  ``r_0 r_1``, so the job with left = right = ``r_p`` gives shares of ``2 r_0 r_1`` directly;
* wraps: not needed with two parties (truncation is local), refused.

One :meth:`fetch` is two exchanges with the peer (ciphertexts; answers) and, with AND
requests, a third (the OT extension's matrices), each a size then the payload, over the run's
authenticated links with the run's timeout.
"""

from __future__ import annotations

import os
import struct
from collections import deque
from collections.abc import Sequence
from dataclasses import replace

import numpy as np
import torch

from protocols.errors import ConfigError, ProtocolError, expected_got
from protocols.randomness.he_context import HeKeys, HeParams, PeerMessageError, pack, unpack
from protocols.randomness.he_crt import random_ring
from protocols.randomness.he_jobs import BitJob, MatJob, MulJob
from protocols.randomness.he_matmul import stack
from protocols.randomness.he_prefetch import Overlap, Prefetch
from protocols.randomness.he_products import HeProducts
from protocols.randomness.he_slots import slot_jobs, square_job, square_shares
from protocols.randomness.he_workers import HeWorkers, join, split
from protocols.randomness.ot_extension import KAPPA, SEED, RandomOt, and_shares, random_bits
from protocols.randomness.provider import RandomnessProvider
from protocols.randomness.requests import Op, Request, broadcast, product_size
from protocols.stats import CommStats

SIZE = struct.Struct("<Q")
MAX_PAYLOAD = 1 << 31
OT_BATCH = 1 << 22  # random OTs per exchange (a multiple of 128: 64 MB per message)


def _rand(size) -> torch.Tensor:
    n = int(torch.Size(size).numel())
    return torch.from_numpy(random_ring(n).view(np.int64)).reshape(tuple(size))


class HomomorphicTriples(RandomnessProvider):
    """Two data parties' HE randomness source (``session.triples`` with ``--provider he``).

    links: the run's :class:`protocols.network.links.Links`; rank: 0 or 1; names: process
    names by rank (errors name the peer).  The HE keys are made here and the public keys
    swapped at once (construction is part of joining the run).

    Raises:
        ConfigError: not exactly two data parties.
        PeerMessageError: the peer's keys are malformed or for other parameters.
    """

    def __init__(
        self, stats, links, rank: int, world_size: int, params: HeParams, names, workers: int = 1
    ):
        if world_size != 2:
            raise ConfigError(needs_two(world_size))
        self.stats, self.links, self.rank = stats, links, rank
        self._sink = stats  # where _swap counts bytes (a prefetch thread: its own counters)
        self.peer = 1 - rank
        self.peer_name = names[self.peer]
        self.keys = HeKeys(params)
        self.products = HeProducts(self.keys)
        self.keys.set_peer(self._swap(self.keys.public_bytes(), "he_keys"), self.peer_name)
        self.work = HeWorkers(self.products, workers, links.timeout_s)
        self.ot = self._base_ots()
        # the next step's plan on a thread beside this step (he_prefetch); False only where a
        # benchmark or test compares (the same at both parties: their HE links must agree)
        self.prefetch = True
        self._jobs: list = []
        self._ands: list = []
        self._mats: list = []
        self._muls: list = []
        self._mul_shares = iter(())
        self._squares: list = []
        self._square_share = np.zeros(0, np.int64)
        self._mat_shares = iter(())
        self._and_triples = iter(())
        self._plans: dict = {}
        self._key, self._recording, self._queue = None, None, None
        self._ahead: Prefetch | None = None
        self._ready: tuple | None = None  # (key, answers) of a finished prefetch
        self.overlap = Overlap()

    # ---- the exchange ----------------------------------------------------------------------
    def _swap(self, payload: bytes, kind: str, expect: int | None = None) -> bytearray:
        """Send ``payload`` to the peer and receive its message of the same step (sizes first,
        then both payloads in flight at once); ``expect``: the only size accepted."""
        got = self.links.transfer({self.peer: SIZE.pack(len(payload))}, {self.peer: SIZE.size})
        (n,) = SIZE.unpack(bytes(got[self.peer]))
        if n > MAX_PAYLOAD or (expect is not None and n != expect):
            want = f"<= {MAX_PAYLOAD}" if expect is None else str(expect)
            raise PeerMessageError(expected_got(f"{self.peer_name}'s {kind} message size", want, n))
        got = self.links.transfer({self.peer: payload}, {self.peer: n})
        self._sink.add(kind, len(payload) + SIZE.size, rounds=2)
        return got[self.peer]

    def _cross(self, jobs, lefts, rights) -> list[tuple[np.ndarray, np.ndarray]]:
        """This party's shares of ``left_p * right_(1-p)`` (decrypted) and of
        ``left_(1-p) * right_p`` (its masks) per job; the slot jobs of each kind are merged into
        one (full ciphertexts)."""
        merged, where = [], []
        kinds = dict.fromkeys((type(j), j.reps) for j in jobs if not isinstance(j, MatJob))
        for kind in kinds:  # slot jobs of one kind and one count of right operands: one job
            at = [i for i, j in enumerate(jobs) if (type(j), getattr(j, "reps", 0)) == kind]
            merged.append(
                (
                    replace(jobs[at[0]], n=sum(jobs[i].n for i in at)),
                    np.concatenate([lefts[i] for i in at]),
                    np.concatenate([rights[i] for i in at]),
                )
            )
            where.append(at)
        for i, j in enumerate(jobs):
            if isinstance(j, MatJob):
                merged.append((j, lefts[i], rights[i]))
                where.append([i])
        got = self._exchange(*(list(col) for col in zip(*merged))) if merged else []
        out = [None] * len(jobs)
        for at, (dec, mask) in zip(where, got):
            cuts = np.cumsum([self.products.out_size(jobs[i]) for i in at])[:-1]
            for i, d, e in zip(at, np.split(dec, cuts), np.split(mask, cuts)):
                out[i] = (d, e)
        return out

    def _exchange(self, jobs, lefts, rights) -> list[tuple[np.ndarray, np.ndarray]]:
        """The two exchanges of one batch of jobs (see :meth:`_cross`); slot jobs are cut into
        pieces first, the same at both parties (:func:`protocols.randomness.he_workers.split`),
        and the work runs on this party's HE workers."""
        if not jobs:
            return []
        prod, work, peer = self.products, self.work, self.peer_name
        pieces, xs, ys, owner = split(jobs, lefts, rights, prod.degree)
        mine = self._swap(pack(work.encrypt(pieces, xs)), "he_offline")
        theirs = unpack(mine, prod.total(pieces, "in"), f"{peer}'s HE ciphertexts")
        answers, masks = work.evaluate(pieces, ys, theirs, peer)
        back = self._swap(pack(answers), "he_offline")
        got = work.decrypt(
            pieces, unpack(back, prod.total(pieces, "out"), f"{peer}'s HE answers"), peer
        )
        return list(zip(join(got, owner, len(jobs)), join(masks, owner, len(jobs))))

    # ---- oblivious transfer ----------------------------------------------------------------
    def _base_ots(self) -> RandomOt:
        """128 base OTs each way from ONE batch of HE products (run once, at the start).

        Party p's ``Delta`` bits (each over two 64-bit words of a seed) meet the peer's seed
        differences ``k_1 - k_0`` in slots ``[256 p, 256 p + 256)``: the two shares add to
        ``Delta_i (k_1,i - k_0,i)`` mod 2^64; the peer then sends ``k_0,i + its share``, and p adds
        its own: ``k_(Delta_i),i``.  The peer learns nothing of ``Delta`` (its share is a mask),
        p nothing of the other seed (the peer's share is uniform to p)."""
        delta = os.urandom(SEED)
        pairs = [(os.urandom(SEED), os.urandom(SEED)) for _ in range(KAPPA)]
        words = 2 * KAPPA  # two 64-bit words per seed
        k0 = np.frombuffer(b"".join(k for k, _ in pairs), dtype=np.int64)
        k1 = np.frombuffer(b"".join(k for _, k in pairs), dtype=np.int64)
        bits = np.unpackbits(np.frombuffer(delta, np.uint8), bitorder="little")
        left, right = np.zeros(2 * words, np.int64), np.zeros(2 * words, np.int64)
        mine, theirs = (
            slice(words * self.rank, words * (self.rank + 1)),
            slice(words * self.peer, words * (self.peer + 1)),
        )
        left[mine] = np.repeat(bits, 2)
        right[theirs] = k1 - k0
        ((dec, mask),) = self._exchange([MulJob(2 * words)], [left], [right])
        share = dec + mask
        got = self._swap((k0 + share[theirs]).tobytes(), "he_ot", expect=8 * words)
        chosen = (np.frombuffer(got, dtype=np.int64) + share[mine]).tobytes()
        return RandomOt(delta, [chosen[i : i + SEED] for i in range(0, len(chosen), SEED)], pairs)

    def _and_words(self, sizes: list) -> list[tuple[torch.Tensor, ...]]:
        """This party's AND triples (XOR shares of 64-bit words) for each size: batches of at
        most ``OT_BATCH`` random OTs each way, one exchange each (this party's ``u`` out, the
        peer's in: 16 bytes per OT, so a batch's messages stay below 64 MB)."""
        counts = [int(torch.Size(s).numel()) for s in sizes]
        if not sum(counts):
            return []
        pieces = []
        for start in range(0, 64 * sum(counts), OT_BATCH):
            m = min(OT_BATCH, 64 * sum(counts) - start)
            choices = random_bits(m)
            # in this process: on 2 workers the 16 MB pieces' round trips cost more than they
            # saved (benchmarks/results/he_workers.md)
            u, got = self.ot.receive(choices, m)
            theirs = self._swap(u.tobytes(), "he_ot", expect=u.nbytes)
            sent = self.ot.send(np.frombuffer(theirs, np.uint8).reshape(u.shape), m)
            pieces.append(and_shares(sent, got, choices))
        words = [
            torch.from_numpy(np.concatenate([p[i] for p in pieces]).view(np.int64).copy())
            for i in range(3)
        ]
        out, at = [], 0
        for size, n in zip(sizes, counts):
            out.append(tuple(w[at : at + n].reshape(tuple(size)) for w in words))
            at += n
        return out

    # ---- the provider ----------------------------------------------------------------------
    def begin(self, key, next_key=None) -> None:
        """Start a training step.  The first step with ``key`` records its request groups; a
        later one takes the whole recorded plan in ONE batch (two exchanges, every ciphertext
        full) and :meth:`fetch` serves it group by group.  Both parties issue the same requests
        (public shapes), so their plans agree.

        ``next_key`` with a recorded plan: that plan is computed on a thread over the HE links
        while this step runs (:mod:`protocols.randomness.he_prefetch`), and taken here at the
        next ``begin``; a prefetch for another key than the one begun is dropped."""
        self._key = key
        self._join()
        ready, self._ready = self._ready, None
        plan = self._plans.get(key)
        if plan is None:
            self._recording = []
            return
        if ready is not None and ready[0] == key:
            answers = iter(ready[1])
        else:
            answers = iter(self._compute([r for group in plan for r in group]))
        self._queue = deque((group, [next(answers) for _ in group]) for group in plan)
        if self.prefetch and next_key is not None and next_key in self._plans:
            ahead = [r for group in self._plans[next_key] for r in group]
            self._sink = CommStats()  # only the thread exchanges until _join
            self._ahead = Prefetch(next_key, lambda: self._compute(ahead), self._sink)

    def _join(self) -> None:
        """Wait for a running prefetch (its answers kept for the next ``begin``); its traffic
        joins this party's counters."""
        ahead, self._ahead = self._ahead, None
        if ahead is None:
            return
        self._sink = self.stats
        try:
            self._ready = (ahead.key, ahead.wait(self.overlap))
        finally:
            for kind, n in ahead.stats.bytes_sent.items():
                self.stats.add(kind, n, rounds=ahead.stats.rounds[kind])

    def end(self) -> None:
        if self._recording is not None:
            self._plans[self._key] = self._recording
        if self._queue:
            raise ProtocolError(f"internal: {len(self._queue)} HE triple groups were not used")
        self._recording, self._queue = None, None

    def fetch(self, requests: Sequence[Request]) -> list[tuple[torch.Tensor, ...]]:
        """This party's shares for every request: from the step's plan, or computed now (two
        exchanges with the peer for the list)."""
        if self._recording is not None:
            self._recording.append(tuple(requests))
        if self._queue is None:
            self._join()  # the HE links carry one computation at a time
            return self._compute(requests)
        if not self._queue:
            raise ProtocolError("internal: the step issued more triple requests than its plan")
        group, answers = self._queue.popleft()
        if tuple(group) != tuple(requests):
            raise ProtocolError("internal: triple requests differ from the recorded step plan")
        return answers

    def job_list(self, requests: Sequence[Request]):
        """``(finishers, jobs, route)``: the requests' product jobs (B2A bits; elementwise
        products, each shared mask encrypted once, :mod:`protocols.randomness.he_slots`; the
        squares; matrix products stacked by shared operand,
        :mod:`protocols.randomness.he_matmul`), and ``route``: the jobs' ``(decrypted, mask)``
        share pairs to each product's share (the bits' returned as an iterator)."""
        self._jobs, self._ands, self._mats, self._squares, self._muls = [], [], [], [], []
        pending = self.answer(requests)
        bits = list(self._jobs)
        mul_jobs, mul_assemble = slot_jobs(self._muls, self.rank)
        squares = [square_job(self._squares, self.rank)] if self._squares else []
        mat_jobs, mat_assemble = stack(self._mats, self.products.degree, self.products.k_max)

        def route(pairs):
            it = iter(pairs)
            part = [[next(it) for _ in g] for g in (bits, mul_jobs, squares, mat_jobs)]
            self._mul_shares = iter(mul_assemble(part[1]))
            if squares:
                self._square_share = square_shares(*part[2][0], self.rank, self._squares)
            self._mat_shares = iter(mat_assemble([d + e for d, e in part[3]]))
            return iter([d + e for d, e in part[0]])

        return pending, bits + mul_jobs + squares + mat_jobs, route

    def _compute(self, requests: Sequence[Request]) -> list[tuple[torch.Tensor, ...]]:
        pending, every, route = self.job_list(requests)
        jobs, lefts, rights = (list(c) for c in zip(*every)) if every else ([], [], [])
        cross = route(self._cross(jobs, lefts, rights))
        self._and_triples = iter(self._and_words(self._ands))
        return [tuple(finish(cross)) for finish in pending]

    def _job(self, job, left: np.ndarray, right: np.ndarray) -> None:
        self._jobs.append((job, np.ascontiguousarray(left), np.ascontiguousarray(right)))

    def _bilinear(self, op: Op, a: torch.Tensor, b: torch.Tensor):
        """Queue the cross terms of ``op(a, b)``; returns the finisher of ``c_p``."""
        if op is Op.MUL:
            size = broadcast(tuple(a.shape), tuple(b.shape))
            self._muls.append((a.expand(size), b.expand(size)))  # jobs: he_slots.slot_jobs
            return lambda cross: a * b + torch.from_numpy(next(self._mul_shares)).reshape(size)
        size = product_size(op, tuple(a.shape), tuple(b.shape))
        batch = size[:-2]
        a_e = a.expand(batch + tuple(a.shape[-2:])).reshape((-1,) + tuple(a.shape[-2:]))
        b_e = b.expand(batch + tuple(b.shape[-2:])).reshape((-1,) + tuple(b.shape[-2:]))
        n, m = a.shape[-2], b.shape[-1]
        self._mats.extend(zip(a_e, b_e))  # 2-D views; stacked into jobs by he_matmul.stack

        def finish(cross):
            out = torch.matmul(a, b).reshape((-1, n, m)).clone()
            for e in range(out.shape[0]):
                out[e] += torch.from_numpy(next(self._mat_shares))
            return out.reshape(size)

        return finish

    def mask(self, req):
        a = _rand(req.size)
        return (lambda cross: (a,)), a

    def mask_product(self, req, a, b):
        if req.op is Op.MUL and req.back_a == req.back_b:  # a square: one cross term
            return self._square(a)
        if req.op is Op.MATMUL and req.transpose_b:
            b = b.transpose(-2, -1)
        finish = self._bilinear(req.op, a, b)
        return lambda cross: (finish(cross),)

    def _square(self, a: torch.Tensor):
        """Queue ``a * a``'s cross term ``2 a_0 a_1`` (:func:`he_slots.square_job`)."""
        at = sum(int(u.numel()) for u in self._squares)
        self._squares.append(a.reshape(-1))
        return lambda cross: (
            a * a + torch.from_numpy(self._square_share[at : at + a.numel()]).reshape(a.shape),
        )

    def product(self, req):
        a, b = _rand(req.size_a), _rand(req.size_b)
        finish = self._bilinear(req.op, a, b)
        return lambda cross: (a, b, finish(cross))

    def and_triple(self, req):
        self._ands.append(tuple(req.output_size()))  # ProtocolError unless the sizes agree
        return lambda cross: next(self._and_triples)

    def bit(self, req):
        r = _rand(req.size) & 1
        self._job(BitJob(r.numel()), r.reshape(-1).numpy(), r.reshape(-1).numpy())
        return lambda cross: (r, r - torch.from_numpy(next(cross)).reshape(r.shape))

    def wraps(self, req):
        raise ProtocolError(
            "internal: wraps requested with --provider he (two parties truncate locally)"
        )


def needs_two(world_size: int) -> str:
    """The one line that refuses ``--provider he`` for another number of data parties."""
    return expected_got(
        "data parties with --provider he",
        "2 (the HE provider makes triples between two parties; more would need pairwise "
        "products and the binary wraps circuit, not built)",
        world_size,
        "use --provider ttp for more parties",
    )
