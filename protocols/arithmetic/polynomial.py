"""Odd polynomials for tanh (and sigmoid through it), fitted in numpy, evaluated on shares.

Approximation (stated, tested in ``tests/test_polynomial.py``), in the Chebyshev basis::

    tanh(x)    ~ P(x) = sum_{k odd <= D} c_k T_k(x / B)                    for |x| <= B
    sigmoid(v) = (1 + tanh(v/2)) / 2 ~ 1/2 + sum_k (c_k / 2) T_k(v / 2B)    for |v| <= 2B

B is a power of two (so ``x / B`` is a free shift of the fixed point), ``c`` minimizes the max
error on [-B, B] (Lawson's iteratively reweighted least squares on 4001 Chebyshev nodes).  The
Chebyshev basis keeps every |T_k(u)| <= 1 and every |c_k| <= 1.3 (degree >= 3), so 16
fractional bits lose nothing to cancellation (the monomial basis needs coefficients up to ~500
on the same intervals).  mpcrnn's default: degree 23, B = 8: max |error| 0.0069 for tanh on [-8, 8],
0.0035 for sigmoid on [-16, 16] (degree 15: 0.033 / 0.0165).  Outside the interval the
polynomial is unbounded (T_k(u) grows like (2u)^k / 2): mpcrnn's guard is public input
scaling plus the measured pre-activation range (docs/approximations.md, "The guard").

Evaluation on shares, for many inputs at once with per-column coefficients (so every gate of a
step, sigmoid and tanh alike, shares ONE tree):

1. ``u = x / B`` (a truncation by log2 B bits, batched with level 1).  Level 1:
   ``T_2 = 2 u^2 - 1``.  Level j: ``T_k = 2 T_i T_j - T_(j-i)`` with j the largest power of two
   below k (``T_(2j) = 2 T_j^2 - 1``); the factor 2 and the 1/B of each ``u`` operand are folded
   into the product's truncation shift.  Degree D needs ceil(log2 D) levels; each level is ONE
   opening of the operands it uses first (each operand is opened once, under its own mask, and
   reused by every product it enters: :func:`evaluate_many`) and ONE batched truncation.
2. ``offset + sum_k c_k T_k`` is a local product with public coefficients at scale 2^(2f),
   followed by ONE batched truncation; the offset is added by party 0.

Rounds (world size > 2): 2 * ceil(log2 D) + 1; (world size <= 2): ceil(log2 D).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from protocols.arithmetic.multiply import beaver_combine
from protocols.arithmetic.reveal import open_masked
from protocols.arithmetic.sharing import add_public, held_by_party0
from protocols.arithmetic.truncation import needs_wraps, truncate_many
from protocols.errors import ConfigError, expected_got
from protocols.randomness.requests import MaskProductRequest, MaskRequest, Op, WrapsRequest


@dataclass(frozen=True)
class OddPolynomial:
    """``offset + sum_k coeffs[k] * T_(2k+1)(x / bound)``, valid on [-bound, bound] within
    ``max_error``; ``bound`` is a power of two."""

    coeffs: tuple[float, ...]
    offset: float
    bound: float
    max_error: float
    name: str

    @property
    def degree(self) -> int:
        return 2 * len(self.coeffs) - 1

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """Plaintext evaluation (float64), the same polynomial as on shares."""
        u = x / self.bound
        return odd_chebyshev_sum(u, self.coeffs, torch.zeros_like(u) + self.offset)


def odd_chebyshev(u, degree: int):
    """``T_1(u), T_3(u), .., T_degree(u)`` (torch tensors or numpy arrays, elementwise), by the
    recurrence ``T_(k+1) = 2 u T_k - T_(k-1)``: the one plaintext place it is written."""
    t_prev = np.ones_like(u) if isinstance(u, np.ndarray) else torch.ones_like(u)
    t_cur = u
    for k in range(1, degree + 1):
        if k % 2 == 1:
            yield t_cur
        t_prev, t_cur = t_cur, 2 * u * t_cur - t_prev


def odd_chebyshev_sum(u, coeffs, start):
    """``start + sum_k coeffs[k] T_(2k+1)(u)``, the terms added in order of k (``coeffs``: a
    sequence of scalars, or of per-column rows)."""
    out = start
    for c, t in zip(coeffs, odd_chebyshev(u, 2 * len(coeffs) - 1)):
        out = out + c * t
    return out


def _cheb_odd(u: np.ndarray, degree: int) -> np.ndarray:
    """(len(u), (degree+1)//2) matrix of T_1, T_3, .., T_degree at u."""
    return np.stack(list(odd_chebyshev(u, degree)), 1)


def fit_tanh(degree: int = 15, bound: float = 8.0) -> OddPolynomial:
    """Near-minimax odd Chebyshev expansion of tanh on [-bound, bound] (bound a power of two)."""
    if degree < 1 or degree % 2 == 0 or degree > 31:
        raise ConfigError(expected_got("tanh polynomial degree", "odd, 1..31", degree))
    if bound not in (1.0, 2.0, 4.0, 8.0, 16.0):
        raise ConfigError(
            expected_got("tanh polynomial interval bound", "a power of two in 1..16", bound)
        )
    u = np.cos(np.linspace(0.0, np.pi, 4001))
    design = _cheb_odd(u, degree)
    target = np.tanh(bound * u)
    weights = np.ones_like(u)
    coeffs = np.linalg.lstsq(design, target, rcond=None)[0]
    for _ in range(80):
        coeffs = np.linalg.lstsq(design * weights[:, None], target * weights, rcond=None)[0]
        resid = np.abs(design @ coeffs - target)
        weights = weights * (1.0 + resid / resid.max())
        weights /= weights.max()
    grid = np.linspace(-1.0, 1.0, 200001)
    err = float(np.abs(_cheb_odd(grid, degree) @ coeffs - np.tanh(bound * grid)).max())
    return OddPolynomial(tuple(float(c) for c in coeffs), 0.0, float(bound), err, "tanh")


def sigmoid_from_tanh(tanh_poly: OddPolynomial) -> OddPolynomial:
    """sigmoid(v) = 1/2 + P(v/2)/2: same T_k(v / 2B), coefficients halved, error halved."""
    coeffs = tuple(c / 2.0 for c in tanh_poly.coeffs)
    return OddPolynomial(coeffs, 0.5, 2 * tanh_poly.bound, tanh_poly.max_error / 2, "sigmoid")


def power_plan(degree: int, odd_only: bool = True) -> list[list[tuple[int, int, int]]]:
    """Levels of (k, i, j) meaning x^k = x^i * x^j, covering every odd power up to ``degree``
    (every power with ``odd_only=False``)."""
    needed: set[int] = set()

    def need(k: int) -> None:
        if k in needed or k == 1:
            return
        needed.add(k)
        p = 1 << (k.bit_length() - 1)
        if p == k:
            need(k // 2)
        else:
            need(p)
            need(k - p)

    for k in range(3 if odd_only else 2, degree + 1, 2 if odd_only else 1):
        need(k)
    level = {1: 0}
    for k in sorted(needed):
        p = 1 << (k.bit_length() - 1)
        i, j = (k // 2, k // 2) if p == k else (k - p, p)
        level[k] = max(level[i], level[j]) + 1
    depth = max(level.values())
    plan: list[list[tuple[int, int, int]]] = [[] for _ in range(depth)]
    for k in sorted(needed):
        p = 1 << (k.bit_length() - 1)
        i, j = (k // 2, k // 2) if p == k else (k - p, p)
        plan[level[k] - 1].append((k, i, j))
    return plan


def evaluate_many(
    session,
    xs: Sequence[torch.Tensor],
    coeffs: Sequence[torch.Tensor],
    offsets: Sequence[torch.Tensor],
    bounds: Sequence[torch.Tensor],
) -> list[torch.Tensor]:
    """Evaluate ``offset + sum_k coeffs[k] * T_(2k+1)(x / bound)`` on each shared ``x``.

    Args:
        xs: shares, shapes (..., G).
        coeffs: per input, float64 (K, G): Chebyshev coefficients per column.
        offsets: per input, float64 (G,).
        bounds: per input, float64 (G,): each column's interval bound (a power of two).

    Every operand of the power tree (``x`` for T_1, then T_2, T_3, T_4, T_5, T_7, T_8 for
    degree 15) is opened ONCE, masked by its own random ``a``, at the first level that uses it;
    each product ``T_i T_j`` then needs only ``c = a_i a_j`` from the dealer::

        [T_i T_j] = [c] + e_i [a_j] + [a_i] e_j + e_i e_j     (e = T - a, public; e_i e_j: party 0)

    Degree 15 opens 7 operands instead of the 20 (two per product) of independent Beaver triples,
    in the same rounds.  Each ``e`` is a different value under a fresh uniform mask, so the
    openings reveal nothing.  All the randomness (masks, products, every level's truncation
    masks) is ONE request list.
    """
    plan = _TreePlan.of(xs, coeffs)
    shifts = [
        torch.log2(torch.as_tensor(b, dtype=torch.float64)).round().to(torch.int64) for b in bounds
    ]
    masks, cs, wraps = _tree_randomness(session, xs, plan)
    value = [{1: x} for x in xs]  # the operand share of T_k; T_1 = u is x (scale 2^f * B)
    cheb: list[dict] = [{} for _ in xs]  # cheb[n][k] = share of T_k(u) at scale 2^f (k >= 1)
    opened: dict[tuple[int, int], torch.Tensor] = {}
    for level in range(plan.levels):
        new = [nk for nk in plan.operands if plan.first_use[nk] == level]
        if new:
            masked = [value[n][k] - masks[(n, k)] for n, k in new]
            opened.update(zip(new, open_masked(session, masked, "beaver")))
        zs, where = _level_products(session, level, plan, shifts, masks, cs, opened)
        if level == 0:  # u = x / B, truncated with level 1's products
            zs += list(xs)
            where += [(n, 1, 0, 0, b) for n, b in enumerate(shifts)]
        bits = [w[4] for w in where]
        for (n, k, i, j, _), z in zip(
            where, truncate_many(session, zs, wraps=wraps[level], bits=bits)
        ):
            if k == 1:
                cheb[n][1] = z
            elif i == j:  # T_2j = 2 T_j^2 - 1
                cheb[n][k] = z - session_one(session, z)
            else:  # T_(i+j) = 2 T_i T_j - T_(j-i)
                cheb[n][k] = z - cheb[n][j - i]
            if k > 1:
                value[n][k] = cheb[n][k]
    out = truncate_many(session, _weighted_sums(session, cheb, coeffs), wraps=wraps[plan.levels])
    return [add_public(session, y, off) for y, off in zip(out, offsets)]


def _weighted_sums(session, cheb: list[dict], coeffs) -> list[torch.Tensor]:
    """``sum_k c_k [T_(2k+1)]`` per input, local, at scale 2^(2f) (public coefficients)."""
    sums = []
    for n, c in enumerate(coeffs):
        c_enc = session.fp.encode(c)
        acc = None
        for k in range(c.shape[0]):
            term = cheb[n][2 * k + 1] * c_enc[k]
            acc = term if acc is None else acc + term
        sums.append(acc)
    return sums


@dataclass(frozen=True)
class _TreePlan:
    """The power trees of every input: ``products[p] = (level, n, k, i, j)`` (input n's T_k from
    T_i T_j), and the level at which each operand ``(n, k)`` is first used (and opened)."""

    levels: int
    products: list
    first_use: dict
    operands: list  # (n, k), in order of first use

    @classmethod
    def of(cls, xs, coeffs) -> _TreePlan:
        plans = [power_plan(2 * c.shape[0] - 1) for c in coeffs]
        depth = max((len(p) for p in plans), default=0)
        first_use: dict[tuple[int, int], int] = {}
        products = []
        for n, plan in enumerate(plans):
            for level, prods in enumerate(plan):
                for k, i, j in prods:
                    products.append((level, n, k, i, j))
                    for m in (i, j):
                        first_use.setdefault((n, m), level)
        operands = sorted(first_use, key=lambda nk: (first_use[nk], nk))
        # degree 1 has no products, but u = x / B is still truncated: at least one level
        return cls(max(depth, 1), products, first_use, operands)


def _tree_randomness(session, xs, plan: _TreePlan):
    """ONE request list: a mask per operand, ``c = a_i a_j`` per product and (world size > 2)
    every level's truncation wraps; returns ``(masks by (n, k), cs, wraps per level)``."""
    at = {nk: pos for pos, nk in enumerate(plan.operands)}
    requests: list = [MaskRequest(tuple(xs[n].shape)) for n, _ in plan.operands]
    for pos, (_, n, _k, i, j) in enumerate(plan.products, start=len(plan.operands)):
        shape = tuple(xs[n].shape)
        back_a, back_b = pos - at[(n, i)], pos - at[(n, j)]
        requests.append(MaskProductRequest(Op.MUL, shape, shape, back_a, back_b))
    level_sizes = [
        sum(xs[n].numel() for lv, n, *_ in plan.products if lv == level)
        for level in range(plan.levels)
    ]
    level_sizes[0] += sum(x.numel() for x in xs)  # u = x / B, truncated with level 1's products
    sums_size = sum(x.numel() for x in xs)
    wrapped = needs_wraps(session)
    if wrapped:
        requests += [WrapsRequest((n,)) for n in level_sizes + [sums_size]]
    fetched = session.triples.fetch(requests)
    n_ops, n_prods = len(plan.operands), len(plan.products)
    masks = {nk: fetched[at[nk]][0] for nk in plan.operands}
    cs = [fetched[n_ops + p][0] for p in range(n_prods)]
    wraps = fetched[n_ops + n_prods :] if wrapped else [None] * (plan.levels + 1)
    return masks, cs, wraps


def _level_products(session, level, plan: _TreePlan, shifts, masks, cs, opened):
    """The untruncated ``2 T_i T_j`` of one level (Beaver with the opened operands) and, per
    product, ``(n, k, i, j, truncation bits)``."""
    f = session.fp.frac_bits
    zs, where = [], []
    for p, (lv, n, k, i, j) in enumerate(plan.products):
        if lv != level:
            continue
        e_i, e_j = opened[(n, i)], opened[(n, j)]
        zs.append(beaver_combine(session, torch.mul, cs[p], e_i, masks[(n, j)], masks[(n, i)], e_j))
        # an x operand carries scale 2^f * B: shift log2 B more; 2 T_i T_j: one bit less
        where.append((n, k, i, j, f - 1 + shifts[n] * ((i == 1) + (j == 1))))
    return zs, where


def session_one(session, like: torch.Tensor) -> torch.Tensor:
    """The public constant 1 at scale 2^f as a sharing (party 0 holds it)."""
    return held_by_party0(session, torch.full(like.shape, session.fp.scale, dtype=torch.int64))


def rounds(degree: int, world_size: int) -> int:
    """Communication rounds of one :func:`evaluate_many` call (dealer round trips excluded):
    one opening per level, and (world size > 2) one truncation per level plus the final one."""
    depth = math.ceil(math.log2(degree)) if degree > 1 else 0
    return depth + max(depth, 1) + 1 if world_size > 2 else depth
