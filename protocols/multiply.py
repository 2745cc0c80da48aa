"""Beaver multiplication of many independent share pairs in one round.

For each pair ``([x], [y])`` and op in {``mul`` (elementwise, broadcasting), ``matmul``}:

1. Take a triple ``[a], [b], [c = op(a, b)]`` (all requests of the batch, plus the truncation
   masks, in ONE dealer round trip).
2. Open ``eps = [x] - [a]`` and ``delta = [y] - [b]`` for every pair in ONE all-reduce
   (uniformly masked: reveals nothing).
3. ``[z] = [c] + op(eps, [b]) + op([a], delta) + op(eps, delta)`` (the public term added by
   party 0 only).
4. Truncate every ``[z]`` whose operands were both at scale 2^f (ONE more round for more than
   two parties, none for two).  Operands marked integer-scale (e.g. a 0/1 mask shared at scale
   1) skip truncation.

A square (``x`` and ``y`` the same tensor object) opens ``x`` once under one mask ``a``, with
``c = a * a`` from the dealer (:mod:`protocols.triples` kinds ``mask`` / ``maskmul``).

Rounds per call: 1 dealer round trip (party 0 only; TTP), 1 opening, 1 truncation gather
(world size > 2).  Bytes per party: 8 * (|x| + |y|) for the opening (8 * |x| for a square)
+ 8 * |z| for truncation.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from protocols.reveal import open_masked
from protocols.triples import output_size
from protocols.truncation import needs_wraps, truncate_many

Pair = tuple  # (op, x_shared, y_shared) or (op, x_shared, y_shared, shift)
# shift: None = truncate by f (both operands at scale 2^f); 0 = no truncation (an operand at
# scale 1, e.g. a 0/1 mask); an int or int64 tensor (broadcasting over the product) = that many bits.


def multiply_many(
    session, pairs: Sequence[Pair], also_truncate: Sequence[tuple] = ()
) -> list[torch.Tensor]:
    """Products of many independent pairs of shares; see the module docstring for the protocol.

    also_truncate: extra ``(share, bits)`` to divide by 2^bits in the same truncation round
        (their results are appended after the products).
    """
    if not pairs and not also_truncate:
        return []
    ops = [p[0] for p in pairs]
    shifts = [session.fp.frac_bits if len(p) < 4 or p[3] is None else p[3] for p in pairs]
    trunc = [not (isinstance(b, int) and b == 0) for b in shifts]
    # a square (x * x, the same tensor twice) opens x once: one mask a and c = a * a
    square = [op == "mul" and p[1] is p[2] for op, p in zip(ops, pairs)]
    requests, out_sizes = [], []
    for op, p, sq in zip(ops, pairs, square):
        shape = tuple(p[1].shape)
        if sq:
            requests += [("mask", shape), ("maskmul", shape, shape, 1, 1)]
        else:
            requests.append((op, shape, tuple(p[2].shape)))
        out_sizes.append(output_size(requests[-1]))
    n_trunc = sum(int(torch.Size(s).numel()) for s, t in zip(out_sizes, trunc) if t)
    n_trunc += sum(x.numel() for x, _ in also_truncate)
    if n_trunc and needs_wraps(session):
        requests.append(("wraps", (n_trunc,)))
    fetched = iter(session.triples.fetch(requests))
    triples = []
    for sq in square:
        if sq:
            (a,), (c,) = next(fetched), next(fetched)
            triples.append((a, a, c))
        else:
            triples.append(next(fetched))
    wraps = next(fetched) if n_trunc and needs_wraps(session) else None

    masked, at = [], []  # at[i]: positions of pair i's eps and delta in ``masked``
    for (op, x, y, *_), (a, b, _c), sq in zip(pairs, triples, square):
        at.append((len(masked), len(masked)) if sq else (len(masked), len(masked) + 1))
        masked += [x - a] if sq else [x - a, y - b]
    opened = open_masked(session, masked, "beaver") if masked else []
    products = []
    for i, ((op, *_), (a, b, c)) in enumerate(zip(pairs, triples)):
        products.append(
            beaver_combine(session, getattr(torch, op), c, opened[at[i][0]], b, a, opened[at[i][1]])
        )
    to_trunc = [z for z, t in zip(products, trunc) if t] + [x for x, _ in also_truncate]
    if to_trunc:
        bits = [b for b, t in zip(shifts, trunc) if t] + [b for _, b in also_truncate]
        done = iter(truncate_many(session, to_trunc, wraps=wraps, bits=bits))
        products = [next(done) if t else z for z, t in zip(products, trunc)]
        products += list(done)
    return products


class FixedOperand:
    """A shared matrix ``W`` that is the right operand of many matmuls in one step: the
    recurrent weight, in ``h_(t-1) @ W^T`` at every forward time step and ``g_t @ W`` at every
    backward one.  ``W`` is opened ONCE, as ``E = W - A`` under one mask ``A``; each product
    ``X @ W'`` (``W'`` = ``W`` or ``W^T``) opens only ``X - A_X`` and takes ``c = A_X @ A'`` from
    the dealer::

        [X @ W'] = [c] + e @ [A'] + [A_X] @ E' + e @ E'      (e = X - A_X; e @ E': party 0)

    At W1 (GRU, H = 32, T = 29) that opens W_hh's 3072 elements once instead of 56 times a step.
    Every use's shape is public and known in advance, so all masks and products are ONE request
    list, fetched here; :func:`multiply_fixed` consumes the uses in the order given.

    uses: ``(shape of X, transpose)`` per product, in the order they will be made.
    """

    def __init__(
        self, session, w: torch.Tensor, uses: Sequence[tuple[tuple[int, ...], bool]]
    ) -> None:
        from collections import deque

        self.w = w
        requests: list[tuple] = [("mask", tuple(w.shape))]
        for shape, transpose in uses:
            pos = len(requests)
            requests += [
                ("mask", tuple(shape)),
                ("maskmatmul", tuple(shape), tuple(w.shape), 1, pos + 1, int(transpose)),
            ]
        fetched = session.triples.fetch(requests)
        self.mask = fetched[0][0]
        self.opened: torch.Tensor | None = None  # E = W - A, once the first product opened it
        self._uses = deque(
            (tuple(shape), bool(tr), fetched[1 + 2 * i][0], fetched[2 + 2 * i][0])
            for i, (shape, tr) in enumerate(uses)
        )

    def take(self, shape: tuple[int, ...], transpose: bool) -> tuple[torch.Tensor, torch.Tensor]:
        """The next prepared use's ``(A_X, c)``; it must be the ``(shape, transpose)`` prepared."""
        if not self._uses:
            raise RuntimeError(
                "internal: more products with a fixed operand than it was prepared for"
            )
        want_shape, want_tr, a_x, c = self._uses.popleft()
        if (want_shape, want_tr) != (shape, transpose):
            raise RuntimeError(
                f"internal: fixed-operand use {shape}, transpose={transpose} "
                f"where {want_shape}, transpose={want_tr} was prepared"
            )
        return a_x, c


def beaver_combine(session, f, c, eps, b, a, delta) -> torch.Tensor:
    """``[f(x, y)] = [c] + f(eps, [b]) + f([a], delta) + f(eps, delta)`` (the public term at
    party 0 only), for ``eps = x - a`` and ``delta = y - b`` opened and ``c = f(a, b)``;
    ``f`` is ``torch.mul`` or ``torch.matmul`` (bilinear)."""
    z = c + f(eps, b) + f(a, delta)
    return z + f(eps, delta) if session.rank == 0 else z


def multiply_fixed(session, x: torch.Tensor, fixed: FixedOperand, transpose: bool) -> torch.Tensor:
    """``[x @ W^T]`` (``transpose``) or ``[x @ W]`` with the next prepared use of ``fixed``
    (truncated); 1 opening (``x``'s, plus ``W``'s the first time) + 1 truncation gather."""
    a_x, c = fixed.take(tuple(x.shape), bool(transpose))
    first = fixed.opened is None
    masked = [x - a_x] + ([fixed.w - fixed.mask] if first else [])
    opened = open_masked(session, masked, "beaver")
    if first:
        fixed.opened = opened[1]
    e = opened[0]
    A, E = (fixed.mask.t(), fixed.opened.t()) if transpose else (fixed.mask, fixed.opened)
    (z,) = truncate_many(session, [beaver_combine(session, torch.matmul, c, e, A, a_x, E)])
    return z
