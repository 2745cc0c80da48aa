"""A step's matrix cross products as few HE product jobs: products that share an operand are
stacked into one, and each is taken in the orientation that sends fewer ciphertexts.

A recurrent layer's step multiplies ONE weight mask ``b`` (k, m) by a different ``a_t`` (n, k)
at each of T time steps (forward ``a_t @ b``, backward ``g_t @ b^T``).  Taken one by one, each
product encrypts its own left operand and answers its own few outputs: T small jobs.  Here::

    right shared:  a_1 @ b, ..., a_T @ b  =  rows of  [a_1; ...; a_T] @ b     (sum n_t, k) @ (k, m)
    left shared:   a @ b_1, ..., a @ b_T  =  columns of  a @ [b_1 | ... | b_T]

and the stacked product ``X @ Y`` is sent either as is (each party encrypts its share of ``X``)
or transposed, ``(X Y)^T = Y^T X^T`` (each party encrypts its share of ``Y^T``: the shared
weight mask, ONCE per step), whichever :func:`mat_cost` counts fewer ciphertexts for.  The
cross terms stay exact: with left/right swapped for both parties, the job gives shares of
``Y_0^T X_1^T + Y_1^T X_0^T = (X_1 Y_0 + X_0 Y_1)^T``.

"The same operand" is the same view of the same memory (pointer, shape, strides), which comes
from the request list's structure (a :class:`MaskRequest` referenced by several products, or
one operand broadcast over a batch), so both parties build the same jobs.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

import numpy as np
import torch

from protocols.randomness.he_jobs import MatJob, mat_blocks


def operand_key(t: torch.Tensor) -> tuple:
    """ "The same operand": the same view of the same memory (also :mod:`he_slots`)."""
    return (t.data_ptr(), tuple(t.shape), tuple(t.stride()))


def mat_cost(n: int, k: int, m: int, degree: int, k_max: int) -> int:
    """Ciphertexts per prime (in plus out) of ``(n, k) @ (k, m)`` with ``k`` cut at ``k_max``."""
    total = 0
    for c0 in range(0, k, k_max):
        kc = min(k_max, k - c0)
        nb, kb, mb = mat_blocks(n, kc, m, degree)
        rows = -(-n // nb)
        total += rows * -(-kc // kb) + rows * -(-m // mb)
    return total


def _groups(mats: list[tuple[torch.Tensor, torch.Tensor]]) -> dict[tuple, list[int]]:
    """Product indices by shared operand: the right one where another product has it, else the
    left one where another has it, else alone."""
    rights = Counter(operand_key(b) for _, b in mats)
    lefts = Counter(operand_key(a) for a, _ in mats)
    groups: dict[tuple, list[int]] = {}
    for i, (a, b) in enumerate(mats):
        if rights[operand_key(b)] == 1 and lefts[operand_key(a)] > 1:
            g = ("left", operand_key(a))
        else:
            g = ("right", operand_key(b))
        groups.setdefault(g, []).append(i)
    return groups


def stack(
    mats: list[tuple[torch.Tensor, torch.Tensor]], degree: int, k_max: int
) -> tuple[list[tuple[MatJob, np.ndarray, np.ndarray]], Callable]:
    """The jobs for this party's 2-D products ``a_i (n_i, k_i) @ b_i (k_i, m_i)`` (int64 ring
    tensors), and ``assemble``: the jobs' shares (flat int64, one per job, in order) to each
    product's share of its cross terms, ``(n_i, m_i)`` int64 arrays in the order of ``mats``."""
    jobs, plans = [], []
    empty = [i for i, (a, b) in enumerate(mats) if 0 in a.shape or 0 in b.shape]
    live = [i for i in range(len(mats)) if i not in set(empty)]
    for (side, _), at in _groups([mats[i] for i in live]).items():
        members = [live[i] for i in at]
        if side == "right":
            x = torch.cat([mats[i][0] for i in members], 0)  # (sum n_i, k)
            y = mats[members[0]][1]  # (k, m)
        else:
            x = mats[members[0]][0]  # (n, k)
            y = torch.cat([mats[i][1] for i in members], 1)  # (k, sum m_i)
        (n, k), m = x.shape, y.shape[1]
        flip = mat_cost(m, k, n, degree, k_max) < mat_cost(n, k, m, degree, k_max)
        left, right = (y.T, x.T) if flip else (x, y)
        rows, cols = left.shape[0], right.shape[1]
        chunks = 0
        for c0 in range(0, k, k_max):
            kc = min(k_max, k - c0)
            jobs.append(
                (
                    MatJob(rows, kc, cols),
                    np.ascontiguousarray(left[:, c0 : c0 + kc].numpy()),
                    np.ascontiguousarray(right[c0 : c0 + kc].numpy()),
                )
            )
            chunks += 1
        plans.append((side, members, flip, rows, cols, chunks))

    def assemble(shares: list[np.ndarray]) -> list[np.ndarray]:
        out: list = [None] * len(mats)
        for i in empty:  # no products to add: the cross terms are 0
            out[i] = np.zeros((mats[i][0].shape[0], mats[i][1].shape[1]), np.int64)
        it = iter(shares)
        for side, members, flip, rows, cols, chunks in plans:
            total = sum(next(it).reshape(rows, cols) for _ in range(chunks))  # wraps mod 2^64
            total = total.T if flip else total  # (sum n_i, m) or (n, sum m_i)
            axis = 0 if side == "right" else 1  # rows of the stacked a's, or columns of the b's
            sizes = [mats[i][axis].shape[axis] for i in members]
            parts = np.split(total, np.cumsum(sizes)[:-1], axis=axis)
            for i, part in zip(members, parts):
                out[i] = np.ascontiguousarray(part)
        return out

    return jobs, assemble
