"""A step's elementwise cross products as few ciphertexts: each mask that several products share
is encrypted once (a vertex cover of the step's product graph), and squares take one direction.

The cross terms of ``c = a * b`` are ``a_0 b_1 + a_1 b_0``; either operand may be the one each
party encrypts (the job is symmetric).  A recurrent step multiplies one mask by several others
(a gate's mask meets the state's, the candidate's, the gradient's), so the products form a
graph on their operands, and it is enough that one end of every edge is encrypted: a vertex
cover.  Greedily (the operand on most products first), each chosen operand ``u`` becomes one
:class:`MulJob` ``(n,) * (n, r)``: ``u`` encrypted ONCE, answered with the ``r`` operands it
meets.  Answers (``r`` per encryption) are as many as before; encryptions fewer.

"The same operand" is the same view of the same memory (pointer, shape, strides: a mask
referenced by several products, expanded alike), which the request list's structure fixes, so
both parties build the same jobs.  Operands are taken as expanded to the product's shape.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

import numpy as np
import torch

from protocols.randomness.he_matmul import operand_key
from protocols.randomness.he_products import MulJob


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


def slot_jobs(
    products: list[tuple[torch.Tensor, torch.Tensor]],
) -> tuple[list[tuple[MulJob, np.ndarray, np.ndarray]], Callable]:
    """The jobs for this party's elementwise products ``a_i * b_i`` (int64 ring tensors of one
    shape each), and ``assemble``: the jobs' shares (flat int64, one per job, in order) to each
    product's share of its cross terms (flat, in the order of ``products``)."""
    jobs, plans = [], []
    for shared, members in cover(products):
        lefts, rights = [], []
        for i in members:
            a, b = products[i]
            u, v = (a, b) if operand_key(a) == shared else (b, a)
            lefts.append(u)
            rights.append(v.reshape(-1))
        u = lefts[0].reshape(-1)
        n, reps = u.numel(), len(members)
        right = torch.stack(rights, 1)  # (n, reps)
        jobs.append(
            (
                MulJob(n, reps),
                np.ascontiguousarray(u.numpy()),
                np.ascontiguousarray((right if reps > 1 else right[:, 0]).numpy()),
            )
        )
        plans.append((members, n, reps))

    def assemble(shares: list[np.ndarray]) -> list[np.ndarray]:
        out: list = [None] * len(products)
        for share, (members, n, reps) in zip(shares, plans):
            cols = share.reshape(n, reps)
            for q, i in enumerate(members):
                out[i] = np.ascontiguousarray(cols[:, q])
        return out

    return jobs, assemble


def square_job(squares: list[torch.Tensor], rank: int) -> tuple[MulJob, np.ndarray, np.ndarray]:
    """ONE slot job for every square's cross term ``2 a_0 a_1`` (``squares``: this party's
    flat shares), in half the slots of a product's: their elements ``u`` (S) are cut into
    halves ``h1``, ``h2`` (``ceil(S/2)`` each, ``h2`` padded with 0).  Party 0 encrypts ``h1``
    and answers with ``2 h2``; party 1 encrypts ``h2`` and answers with ``2 h1``.  So each
    half's cross term is made in ONE direction: a party's decrypted part is its share of one
    half's ``2 u_0 u_1``, its masks its share of the other's (:func:`square_shares`)."""
    u = torch.cat(squares).numpy()
    h = -(-len(u) // 2)
    halves = (u[:h], np.concatenate([u[h:], np.zeros(2 * h - len(u), np.int64)]))
    return MulJob(h), halves[rank], 2 * halves[1 - rank]  # 2x wraps mod 2^64


def square_shares(dec: np.ndarray, mask: np.ndarray, rank: int, squares: list) -> np.ndarray:
    """This party's share of ``2 u_0 u_1`` for every square's element ``u``, in order."""
    h1, h2 = (dec, mask) if rank == 0 else (mask, dec)
    return np.concatenate([h1, h2])[: sum(int(u.numel()) for u in squares)]
