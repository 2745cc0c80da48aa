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

An operand that enters several products of one call (the same tensor object: ``x * x``, or
``r`` in ``g r`` and ``h r``) is opened ONCE, under one mask ``a``: each such operand gets a
:class:`~protocols.randomness.requests.MaskRequest`, and each product that uses one a
:class:`~protocols.randomness.requests.MaskProductRequest` ``c = op(a, b)`` of its two masks.
Opening
``x - a`` once reveals nothing more than opening it once per product under fresh masks: every
opened value is still masked by its own uniform ``a``, used for no other opened value.

Rounds per call: 1 dealer round trip (party 0 only; TTP), 1 opening, 1 truncation gather
(world size > 2).  Bytes per party: 8 * |x| for each distinct operand x of the call, for the
opening (8 * (|x| + |y|) per product with operands of its own), + 8 * |z| for truncation.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from protocols.arithmetic.reveal import open_masked
from protocols.arithmetic.truncation import needs_wraps, truncate_many
from protocols.errors import ProtocolError
from protocols.randomness.requests import (
    BILINEAR,
    MaskProductRequest,
    MaskRequest,
    Op,
    ProductRequest,
    WrapsRequest,
)


@dataclass(frozen=True, eq=False)
class Product:
    """One product of two shares, ``op(x, y)``, for :func:`multiply_many`.

    shift: how the product is truncated: None = by f (both operands at scale 2^f); 0 = not at
        all (an operand at scale 1, e.g. a 0/1 mask); an int or an int64 tensor (broadcasting
        over the product) = by that many bits.
    """

    op: Op
    x: torch.Tensor
    y: torch.Tensor
    shift: int | torch.Tensor | None = None

    @classmethod
    def mul(cls, x: torch.Tensor, y: torch.Tensor, shift=None) -> Product:
        """``[x * y]`` (elementwise, broadcasting)."""
        return cls(Op.MUL, x, y, shift)

    @classmethod
    def matmul(cls, x: torch.Tensor, y: torch.Tensor, shift=None) -> Product:
        """``[x @ y]``."""
        return cls(Op.MATMUL, x, y, shift)

    @classmethod
    def of(cls, op: str | Op, x: torch.Tensor, y: torch.Tensor, shift=None) -> Product:
        """From an op's name (``"mul"`` / ``"matmul"``) or :class:`Op`."""
        return cls(Op(op), x, y, shift)


def multiply_many(
    session, pairs: Sequence[Product], also_truncate: Sequence[tuple] = ()
) -> list[torch.Tensor]:
    """Products of many independent pairs of shares; see the module docstring for the protocol.

    also_truncate: extra ``(share, bits)`` to divide by 2^bits in the same truncation round
        (their results are appended after the products).
    """
    if not pairs and not also_truncate:
        return []
    shifts = [session.fp.frac_bits if p.shift is None else p.shift for p in pairs]
    trunc = [not (isinstance(b, int) and b == 0) for b in shifts]
    requests, shared, product_at = _plan_requests(pairs)
    n_trunc = sum(math.prod(requests[i].output_size()) for i, t in zip(product_at, trunc) if t)
    n_trunc += sum(x.numel() for x, _ in also_truncate)
    wrapped = bool(n_trunc) and needs_wraps(session)
    if wrapped:
        requests.append(WrapsRequest((n_trunc,)))
    fetched = session.triples.fetch(requests)
    wraps = fetched[-1] if wrapped else None
    masked = [t - fetched[pos][0] for t, pos in shared.values()]  # each shared operand once
    opened_at = {t_id: i for i, t_id in enumerate(shared)}
    triples, at = [], []  # at[i]: positions of pair i's eps and delta in ``masked``
    for p, pos in zip(pairs, product_at):
        if isinstance(requests[pos], ProductRequest):
            a, b, c = fetched[pos]
            at.append((len(masked), len(masked) + 1))
            masked += [p.x - a, p.y - b]
        else:
            (c,) = fetched[pos]
            a, b = (fetched[shared[id(t)][1]][0] for t in (p.x, p.y))
            at.append((opened_at[id(p.x)], opened_at[id(p.y)]))
        triples.append((a, b, c))
    opened = open_masked(session, masked, "beaver") if masked else []
    products = [
        beaver_combine(session, BILINEAR[p.op], c, opened[i], b, a, opened[j])
        for p, (a, b, c), (i, j) in zip(pairs, triples, at)
    ]
    to_trunc = [z for z, t in zip(products, trunc) if t] + [x for x, _ in also_truncate]
    if to_trunc:
        bits = [b for b, t in zip(shifts, trunc) if t] + [b for _, b in also_truncate]
        done = iter(truncate_many(session, to_trunc, wraps=wraps, bits=bits))
        products = [next(done) if t else z for z, t in zip(products, trunc)]
        products += list(done)
    return products


def _plan_requests(pairs: Sequence[Product]) -> tuple[list, dict, list[int]]:
    """The randomness requests of ``pairs``: one ProductRequest for a pair whose operands are
    its own; for an operand used by several products (a square counts twice), ONE MaskRequest
    and a MaskProductRequest per product.  Returns (requests, shared operands as id ->
    (operand, its MaskRequest's position), each pair's product request position)."""
    uses: dict[int, int] = {}  # id(operand) -> products using it
    for p in pairs:
        for t in (p.x, p.y):
            uses[id(t)] = uses.get(id(t), 0) + 1
    requests: list = []
    shared: dict[int, tuple[torch.Tensor, int]] = {}
    product_at = []
    for p in pairs:
        if uses[id(p.x)] == 1 and uses[id(p.y)] == 1:  # operands of its own: one triple
            requests.append(ProductRequest(p.op, tuple(p.x.shape), tuple(p.y.shape)))
        else:  # the masks of shared operands once, then c = op(a, b) from them
            for t in (p.x, p.y):
                if id(t) not in shared:
                    shared[id(t)] = (t, len(requests))
                    requests.append(MaskRequest(tuple(t.shape)))
            pos = len(requests)
            back = (pos - shared[id(p.x)][1], pos - shared[id(p.y)][1])
            requests.append(MaskProductRequest(p.op, tuple(p.x.shape), tuple(p.y.shape), *back))
        product_at.append(len(requests) - 1)
    return requests, shared, product_at


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
        requests: list = [MaskRequest(tuple(w.shape))]
        for shape, transpose in uses:
            pos = len(requests)
            requests += [
                MaskRequest(tuple(shape)),
                MaskProductRequest(Op.MATMUL, shape, tuple(w.shape), 1, pos + 1, transpose),
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
            raise ProtocolError(
                "internal: more products with a fixed operand than it was prepared for"
            )
        want_shape, want_tr, a_x, c = self._uses.popleft()
        if (want_shape, want_tr) != (shape, transpose):
            raise ProtocolError(
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
