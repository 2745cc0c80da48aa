"""Odd polynomials for tanh (and sigmoid through it), fitted in numpy, evaluated on shares.

Approximation (stated, tested in ``tests/test_polynomial.py``)::

    tanh(u)    ~ T(u) = sum_{k=0}^{K-1} c_k u^(2k+1)          for |u| <= B
    sigmoid(v) = (1 + tanh(v/2)) / 2 ~ 1/2 + sum_k (c_k / 2^(2k+2)) v^(2k+1)   for |v| <= 2B

``c`` minimizes the max error on [-B, B] (Lawson's iteratively reweighted least squares on
4001 Chebyshev nodes, 80 iterations: near-minimax).  Default: degree 7, B = 4: max |error| of
tanh 0.038 on [-4, 4] (sigmoid: 0.019 on [-8, 8]).  Outside the interval the polynomial is
unbounded (|T(u)| grows like c_K |u|^(2K+1)): mpcrnn's guard is public input scaling to
[-1, 1] plus the measured pre-activation range on the real data (README, ``fit_report``).

Evaluation on shares, for many inputs at once with per-column coefficients (so every gate of a
step, sigmoid and tanh alike, shares ONE power tree):

1. Odd powers x, x^3, .., x^D are built level by level: level 1 is x^2; a power k at level j
   is x^(k - p) * x^p with p the largest power of two below k.  Degree D needs
   ceil(log2 D) levels; each level is ONE batched :func:`multiply_many` call over all inputs.
   Powers are held as ``u^k``, ``u = x / s`` with ``s`` the power of two >= B (folded into the
   truncation shift, free), so tiny high-order coefficients lose no precision.
2. ``sum_k C_k * x^(2k+1)`` is a local product with public coefficients at scale 2^(2f),
   followed by ONE batched truncation; the constant term is added by party 0.

Rounds (world size > 2): 2 * ceil(log2 D) + 1; (world size <= 2): ceil(log2 D).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch

from protocols.errors import ConfigError, expected_got
from protocols.multiply import multiply_many
from protocols.truncation import truncate_many


@dataclass(frozen=True)
class OddPolynomial:
    """``offset + sum_k coeffs[k] * x^(2k+1)``, valid on [-bound, bound] within ``max_error``."""

    coeffs: tuple[float, ...]
    offset: float
    bound: float
    max_error: float
    name: str

    @property
    def degree(self) -> int:
        return 2 * len(self.coeffs) - 1

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """Plaintext evaluation (float64), same formula as on shares."""
        out = torch.zeros_like(x) + self.offset
        for k, c in enumerate(self.coeffs):
            out = out + c * x ** (2 * k + 1)
        return out


def fit_tanh(degree: int = 7, bound: float = 4.0) -> OddPolynomial:
    """Near-minimax odd polynomial for tanh on [-bound, bound]."""
    if degree < 1 or degree % 2 == 0 or degree > 15:
        raise ConfigError(expected_got("tanh polynomial degree", "odd, 1..15", degree))
    if not 0.5 <= bound <= 16:
        raise ConfigError(expected_got("tanh polynomial interval bound", "0.5..16", bound))
    x = np.cos(np.linspace(0.0, np.pi, 4001)) * bound
    powers = np.arange(1, degree + 1, 2)
    design = x[:, None] ** powers
    target = np.tanh(x)
    weights = np.ones_like(x)
    coeffs = np.linalg.lstsq(design, target, rcond=None)[0]
    for _ in range(80):
        coeffs = np.linalg.lstsq(design * weights[:, None], target * weights, rcond=None)[0]
        resid = np.abs(design @ coeffs - target)
        weights = weights * (1.0 + resid / resid.max())
        weights /= weights.max()
    grid = np.linspace(-bound, bound, 200001)
    err = float(np.abs((grid[:, None] ** powers) @ coeffs - np.tanh(grid)).max())
    return OddPolynomial(tuple(float(c) for c in coeffs), 0.0, bound, err, "tanh")


def sigmoid_from_tanh(tanh_poly: OddPolynomial) -> OddPolynomial:
    """sigmoid(v) = 1/2 + T(v/2)/2: coefficients c_k / 2^(2k+2), interval doubled, error halved."""
    coeffs = tuple(c / 2.0 ** (2 * k + 2) for k, c in enumerate(tanh_poly.coeffs))
    return OddPolynomial(coeffs, 0.5, 2 * tanh_poly.bound, tanh_poly.max_error / 2, "sigmoid")


def power_plan(degree: int) -> list[list[tuple[int, int, int]]]:
    """Levels of (k, i, j) meaning x^k = x^i * x^j, covering every odd power up to ``degree``."""
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

    for k in range(3, degree + 1, 2):
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


def evaluate_many(session, xs: Sequence[torch.Tensor], coeffs: Sequence[torch.Tensor], offsets: Sequence[torch.Tensor], bounds: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    """Evaluate ``offset + sum_k coeffs[k] * x^(2k+1)`` on each shared ``x``.

    Args:
        xs: shares, shapes (..., G).
        coeffs: per input, float64 (K, G): the polynomial in x, per column.
        offsets: per input, float64 (G,).
        bounds: per input, float64 (G,): each column's interval bound B.

    Precision: powers are kept as ``u^k`` with ``u = x / s``, ``s = 2^ceil(log2 B)`` (so |u| <= 1
    inside the interval and the coefficients ``c_k s^(2k+1)`` are O(1) at 2^-f resolution).
    Dividing by s costs nothing: it is folded into each product's truncation shift.
    """
    plans = [power_plan(2 * c.shape[0] - 1) for c in coeffs]
    f = session.fp.frac_bits
    shifts = [torch.ceil(torch.log2(torch.as_tensor(b, dtype=torch.float64))).clamp(min=0).to(torch.int64) for b in bounds]
    powers = [{1: x} for x in xs]  # powers[n][1] = x; powers[n][k>1] = u^k
    for depth in range(max((len(p) for p in plans), default=0)):
        pairs, where = [], []
        for n, pw in enumerate(powers):
            for k, i, j in plans[n][depth] if depth < len(plans[n]) else []:
                pairs.append(("mul", pw[i], pw[j], f + shifts[n] * ((i == 1) + (j == 1))))
                where.append((n, k))
        for (n, k), z in zip(where, multiply_many(session, pairs)):
            powers[n][k] = z
    sums = []
    for n, x in enumerate(xs):
        s = (torch.ones(()) * 2.0) ** shifts[n].to(torch.float64)
        acc = x * session.fp.encode(coeffs[n][0])
        for k in range(1, coeffs[n].shape[0]):
            acc = acc + powers[n][2 * k + 1] * session.fp.encode(coeffs[n][k] * s ** (2 * k + 1))
        sums.append(acc)
    out = truncate_many(session, sums)
    result = []
    for y, off in zip(out, offsets):
        result.append(y + session.fp.encode(off) if session.rank == 0 else y)
    return result


def rounds(degree: int, world_size: int) -> int:
    """Communication rounds of one :func:`evaluate_many` call (dealer round trips excluded)."""
    depth = math.ceil(math.log2(degree)) if degree > 1 else 0
    return 2 * depth + 1 if world_size > 2 else depth
