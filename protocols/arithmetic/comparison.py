"""Comparison-based functions on shares, built on the sign-bit circuit of
:mod:`protocols.arithmetic.sign_bit`.

Used once per training step (never per time step): ReLU for gradient value clipping, the bucket
bits of :mod:`protocols.arithmetic.norm_clip`, and the row max inside
:mod:`protocols.arithmetic.softmax`.  All of
their dealer randomness comes in the step's bulk round trip (:mod:`protocols.randomness.triples`);
CrypTen's
own comparisons (one dealer round trip per AND level, all-reduce openings) are used only by the
naive baseline (:func:`softmax_shares`) and by rare calls outside training steps.

Rounds (3 parties): ReLU / ge_bits: 9 (sign bit) + 1 (the product with the bit, for ReLU);
row max over C classes: pairwise 9 + ceil(log2(C - 1)) + 1 (13 for C = 9), C(C-1)/2 comparisons
a row; above 16 classes a tournament, 10 ceil(log2 C) rounds and C - 1 comparisons a row.
"""

from __future__ import annotations

import math

import torch

from protocols.arithmetic.multiply import Product, multiply_many
from protocols.arithmetic.sharing import held_by_party0
from protocols.arithmetic.sign_bit import nonnegative_bits


def relu_shares(session, x_shared: torch.Tensor) -> torch.Tensor:
    """``[max(x, 0)]`` for shares at scale 2^f: ``x * [x >= 0]`` (the bit at scale 1: no
    truncation)."""
    bits = nonnegative_bits(session, x_shared)
    (out,) = multiply_many(session, [Product.mul(x_shared, bits, 0)])
    return out


def ge_bits(session, x_shared: torch.Tensor, thresholds: torch.Tensor) -> torch.Tensor:
    """Shares of the 0/1 bits ``[x >= threshold]`` (public thresholds at scale 2^f, broadcasting
    against x), at scale 1 (an integer 0 or 1, usable as a multiplication operand with shift
    0).  ONE sign-bit circuit for the whole tensor."""
    from protocols.arithmetic.sharing import add_public

    return nonnegative_bits(session, add_public(session, x_shared, -thresholds))


PAIRWISE_MAX_UP_TO = 16  # row_max: pairwise up to this many columns, a tournament above


def row_max(session, x: torch.Tensor) -> torch.Tensor:
    """``[max_j x_ij]`` for (N, C) shares at scale 2^f, shape (N, 1): pairwise (few rounds, C(C-1)/2
    comparisons a row) for C <= :data:`PAIRWISE_MAX_UP_TO` (a classifier's head), else a
    tournament (C - 1 comparisons a row: a language model's vocabulary).  Both exact."""
    if x.shape[1] > PAIRWISE_MAX_UP_TO:
        return tournament_max(session, x)
    return pairwise_max(session, x)


def tournament_max(session, x: torch.Tensor) -> torch.Tensor:
    """``[max_j x_ij]`` for (N, C) shares, shape (N, 1), by halving: each level compares the
    first half of the remaining columns with the second, ``m = b + [a >= b] (a - b)`` (one
    sign-bit circuit and one scale-1 product, no truncation: exact), an odd column passes
    through.  ceil(log2 C) levels of 9 + 1 rounds, C - 1 comparisons a row in all (against
    C(C-1)/2 pairwise: 36 instead of 666 at C = 37, 255 instead of 32,640 at C = 256)."""
    level = x
    while level.shape[1] > 1:
        half = level.shape[1] // 2
        a, b = level[:, :half], level[:, half : 2 * half]
        ge = nonnegative_bits(session, a - b)  # (N, half) at scale 1
        (picked,) = multiply_many(session, [Product.mul(a - b, ge, 0)])
        level = torch.cat([b + picked, level[:, 2 * half :]], 1)
    return level


def pairwise_max(session, x: torch.Tensor) -> torch.Tensor:
    """``[max_j x_ij]`` for (N, C) shares at scale 2^f, shape (N, 1).

    Pairwise: one sign-bit circuit over all C(C-1)/2 differences ``x_i - x_j`` (i < j) gives
    ``[x_i >= x_j]``, and ``[x_i > x_j] = 1 - [x_j >= x_i]``; ``first_max_i = prod_{j<i} [x_i > x_j]
    * prod_{j>i} [x_i >= x_j]`` is 1 for exactly one i per row (the first maximum, so ties
    cannot double-count), by a product tree of ceil(log2(C - 1)) rounds of scale-1 products;
    then ``max = sum_i x_i first_max_i`` in one more round.  Exact (no approximation).
    """
    n, c = x.shape
    if c == 1:
        return x.clone()
    iu, ju = torch.triu_indices(c, c, offset=1)
    ge = nonnegative_bits(session, x[:, iu] - x[:, ju])  # (N, C(C-1)/2): [x_i >= x_j], i < j
    one = held_by_party0(session, torch.ones_like(ge))
    # bits[:, i, k]: the k-th factor of row i's product (C - 1 factors)
    factors: list[list[torch.Tensor]] = [[] for _ in range(c)]
    for pair, (i, j) in enumerate(zip(iu.tolist(), ju.tolist())):
        factors[i].append(ge[:, pair])  # j > i: x_i >= x_j
        factors[j].append(one[:, pair] - ge[:, pair])  # for row j, i < j: x_j > x_i
    level = torch.stack([torch.stack(f, 1) for f in factors], 1)  # (N, C, C-1)
    for _ in range(math.ceil(math.log2(c - 1))):
        k = level.shape[2]
        half = k // 2
        (prod,) = multiply_many(
            session, [Product.mul(level[:, :, :half], level[:, :, half : 2 * half], 0)]
        )
        level = torch.cat([prod, level[:, :, 2 * half :]], 2)
    first_max = level[:, :, 0]  # (N, C) at scale 1
    (picked,) = multiply_many(session, [Product.mul(x, first_max, 0)])
    return picked.sum(1, keepdim=True)


def argmax_onehot(session, x_shared: torch.Tensor, dim: int) -> torch.Tensor:
    """Shares (scale 2^f) of the one-hot argmax of ``[x]`` along ``dim``: 1 at the maximum.

    CrypTen's ``MPCTensor.argmax(one_hot=True)`` (its comparison tree, its own openings of
    masked values; with a dealer, one dealer round trip per comparison level).  Nothing but
    uniformly masked values is opened.  Used outside training steps (``--reveal-metrics``)."""
    return on_crypten(session, x_shared, lambda t: t.argmax(dim, one_hot=True))


def softmax_shares(session, logits_shared: torch.Tensor) -> torch.Tensor:
    """CrypTen's own row-wise softmax of (N, C) logits (the naive baseline; mpcrnn uses
    :func:`protocols.arithmetic.softmax.softmax_rows`)."""
    return on_crypten(session, logits_shared, lambda t: t.softmax(1))


def on_crypten(session, x_shared: torch.Tensor, op) -> torch.Tensor:
    """``op`` (a function of a CrypTen ``MPCTensor``) applied to the shares ``[x]`` at the
    session's precision; returns the result's shares.  The one place protocols reach into
    CrypTen's share representation."""
    from crypten.mpc import MPCTensor

    x = MPCTensor.from_shares(x_shared, precision=session.fp.frac_bits)
    return op(x)._tensor.share
