"""A step's elementwise cross products as few ciphertexts: products that share a mask are grouped
by it (a vertex cover of the step's product graph), both cross terms of a product come back
in ONE answer, and squares take one direction.

The cross terms of ``c = a * b`` are ``a_0 b_1 + a_1 b_0``; either operand may be the one each
party encrypts (the job is symmetric).  A recurrent step multiplies one mask by several others
(a gate's mask meets the state's, the candidate's, the gradient's), so the products form a
graph on their operands, and one end of every edge is enough to group by: a vertex cover.
Greedily (the operand on most products first), each chosen operand ``u`` with the ``r``
operands ``v_q`` it meets becomes one :class:`DualJob` (``Enc(u) v'_q + Enc(v_q) u'``, both
cross terms in one answer), cut into halves by element: party 0 encrypts the first half of
``[u | v_1 .. v_r]`` and answers the second, party 1 the other way round.  Against each party
encrypting all of ``u`` and answering the peer's with each ``v_q`` (two answers per product
element, one each way; 2 encryptions per element of ``u``), that is one answer per product
element and ``1 + r`` encryptions per element of ``u``, in all.  An answer costs about
twice an encryption (re-randomization, switch, flood, the peer's decryption).

"The same operand" is the same view of the same memory (pointer, shape, strides: a mask
referenced by several products, expanded alike), which the request list's structure fixes, so
both parties build the same jobs.  Operands are taken as expanded to the product's shape.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

import numpy as np
import torch

from protocols.randomness.he_jobs import DualJob, MulJob
from protocols.randomness.he_matmul import operand_key


def cover(products: list[tuple[torch.Tensor, torch.Tensor]]) -> list[tuple[tuple, list[int]]]:
    """``[(the encrypted operand's key, [product indices])]``: the operand on the most products
    not yet covered, then the next.  The same at both parties: ties go to the operand seen
    first (product index, then left before right), never to a pointer's value."""
    ends = [(operand_key(a), operand_key(b)) for a, b in products]
    first: dict[tuple, tuple[int, int]] = {}
    for i, pair in enumerate(ends):
        for side, k in enumerate(pair):
            first.setdefault(k, (i, side))
    left = set(range(len(products)))
    groups = []
    while left:
        degree = Counter(k for i in left for k in set(ends[i]))
        best = min(degree, key=lambda k: (-degree[k], first[k]))
        members = sorted(i for i in left if best in ends[i])
        groups.append((best, members))
        left -= set(members)
    return groups


def halves(z: np.ndarray, rank: int) -> tuple[np.ndarray, np.ndarray]:
    """``z``'s rows cut into two halves of ``ceil(n/2)`` (the second padded with zero rows):
    ``(this party's, the peer's)``, party 0's the first."""
    h = -(-len(z) // 2)
    pad = np.zeros((2 * h - len(z),) + z.shape[1:], z.dtype)
    parts = (z[:h], np.concatenate([z[h:], pad]))
    return np.ascontiguousarray(parts[rank]), np.ascontiguousarray(parts[1 - rank])


def join_halves(dec: np.ndarray, mask: np.ndarray, rank: int, n: int) -> np.ndarray:
    """The share of a job cut by :func:`halves`: this party's decrypted part is its half's,
    its masks the peer's half's; rows back in order, padding dropped."""
    first, second = (dec, mask) if rank == 0 else (mask, dec)
    return np.concatenate([first, second])[:n]


def slot_jobs(
    products: list[tuple[torch.Tensor, torch.Tensor]], rank: int
) -> tuple[list[tuple[DualJob, np.ndarray, np.ndarray]], Callable]:
    """The jobs for this party's (``rank``) elementwise products ``a_i * b_i`` (int64 ring
    tensors of one shape each), and ``assemble``: the jobs' ``(decrypted, mask)`` share pairs
    (flat int64, one pair per job, in order) to each product's share of its cross terms (flat,
    in the order of ``products``)."""
    jobs, plans = [], []
    for shared, members in cover(products):
        uv = [
            (a, b) if operand_key(a) == shared else (b, a)
            for a, b in (products[i] for i in members)
        ]
        # (n, 1 + reps): [u | v_1 .. v_r], u the shared operand, v_q the one product q meets
        z = torch.stack([uv[0][0].reshape(-1)] + [v.reshape(-1) for _, v in uv], 1).numpy()
        mine, theirs = halves(z, rank)
        jobs.append((DualJob(len(mine), len(members)), mine, theirs))
        plans.append((members, len(z)))

    def assemble(pairs: list[tuple[np.ndarray, np.ndarray]]) -> list[np.ndarray]:
        out: list = [None] * len(products)
        for (dec, mask), (members, n) in zip(pairs, plans):
            reps = len(members)
            cols = join_halves(dec.reshape(-1, reps), mask.reshape(-1, reps), rank, n)
            for q, i in enumerate(members):
                out[i] = np.ascontiguousarray(cols[:, q])
        return out

    return jobs, assemble


def square_job(squares: list[torch.Tensor], rank: int) -> tuple[MulJob, np.ndarray, np.ndarray]:
    """ONE slot job for every square's cross term ``2 a_0 a_1`` (``squares``: this party's
    flat shares), in half the slots of a product's: their elements ``u`` (S) are cut into
    halves (:func:`halves`).  Party 0 encrypts the first and answers with ``2 x`` the second;
    party 1 the other way round.  So each half's cross term is made in ONE direction: a
    party's decrypted part is its share of one half's ``2 u_0 u_1``, its masks its share of the
    other's (:func:`square_shares`)."""
    mine, theirs = halves(torch.cat(squares).numpy(), rank)
    return MulJob(len(mine)), mine, 2 * theirs  # 2x wraps mod 2^64


def square_shares(dec: np.ndarray, mask: np.ndarray, rank: int, squares: list) -> np.ndarray:
    """This party's share of ``2 u_0 u_1`` for every square's element ``u``, in order."""
    return join_halves(dec, mask, rank, sum(int(u.numel()) for u in squares))
