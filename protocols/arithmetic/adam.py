"""Adam's per-parameter arithmetic on shares: bias-corrected moments and ``lr m / (sqrt(v) + eps)``.

The optimizer (:func:`mpcrnn.train.adam_update`) keeps the BIAS-CORRECTED moments
``m^_t = m_t / (1 - b1^t)`` and ``v^_t = v_t / (1 - b2^t)`` (torch's ``m_t``, ``v_t``), which obey
the same moving averages with public per-step weights (``c_t = (1 - b) / (1 - b^t)``, 1 at t = 1)::

    m^_t = m^_(t-1) + c1_t (g - m^_(t-1))        v^_t = v^_(t-1) + c2_t (g^2 - v^_(t-1))
    theta_t = theta_(t-1) - lr_t m^_t / (sqrt(v^_t) + eps)

so ``v^`` always has the magnitude of g^2, never the tiny ``(1 - b2) g^2`` of the first steps.

Precision (f = 16 fractional bits, the ring Z_2^64):

- ``g``, ``m^``: scale 2^f.  ``v^``: scale 2^(2f) = 2^32 (resolution 2.3e-10 in v, i.e. sqrt(v)
  is resolved to 1.5e-5 near 0 and to ~1e-5 relative above 2^-16): ``g^2`` is a Beaver square
  kept at 2^(2f) without truncation.  At 2^-16, v of typical gradients (1e-6..1e-10) would vanish.
- The moving-average weights ``c_t`` (1 at t = 1, where the moments become g and g^2 exactly)
  are encoded with ~16 significant bits (at 2^(f+s),
  s = min(6, floor(log2 1/c))): relative error <= 2^-13 per weight; the average stays an exact
  convex combination (``v + c (g^2 - v)``), so v^ is off by at most that relative amount.
  A truncation of ``c (g^2 - v^)`` at 2^(2f+f+s) fails (CrypTen's ignored wrap) with probability
  about ``|g^2 - v^| 2^-16`` per element (|g| <= 1: at most 2^-16, typical |g| ~ 1e-2: 2^-29).

Reciprocal ``1 / (sqrt(v) + eps)`` over v in [0, v_top) (v_top = 4^P > bound on g^2):

1. Buckets over ``K - 1`` public thresholds ``thr_j = v_top 16^-j``, j = 1..K-1: the element
   is in bucket n (``v in [v_top 16^-n, v_top 16^-(n-1))``, n = K: everything below).
   K - 1 = ceil((J + P + log2(1/eps)) / 2), J = TAIL_BITS, so that
   ``E_K = eps 4^(K-1) / sqrt(v_top) >= 2^J``.  A BINARY SEARCH (:func:`bucket_search`) finds
   ``n - 1`` as L = ceil(log2 K) bits, one sign-bit circuit (:mod:`protocols.arithmetic.sign_bit`,
   9 rounds)
   on one copy of v per level, against a threshold that is a public table of the bits found so
   far (a multilinear polynomial in them); the products of the bits come one round per level.
   Any public function of n is then that multilinear polynomial, exact on encoded integers.
   At the default eps 1e-3 (K - 1 = 5): 3 comparisons per element where comparing with every
   threshold at once took 5 (the sign-bit circuit is most of the optimizer's bytes), for 20
   more rounds; at eps 2^-13 (K - 1 = 7) still 3.  Where every threshold stays >= 8 units at
   that scale (K - 1 <= 6), the search runs on v / v_top at 2^29 (one truncation) with two
   comparisons per 64-bit word (:func:`search_shift`, :func:`_search`): 8 rounds and 96 bytes
   per comparison instead of 9 and 216.
2. ``t = v 16^(n-1) / v_top`` in [1/16, 1): an exact integer product (no truncation; the value
   is <= v_top at 2^32) and one truncation by 2f - f + 2P bits (|value| <= 2^34: failure 2^-30).
3. ``s ~ sqrt(t)`` by Goldschmidt from the linear guess ``y0 = 2.94 - 2.24 t`` (relative error
   0.30 on [1/16, 1]): ``g = t y0, h = y0 / 2; r = 1/2 - g h; g += g r; h += h r`` (2 products
   per iteration), 4 iterations: relative error 2.7e-6.  The tail bucket (t < 1/16) is off by
   at most ~0.02 in these units (measured on shares), against ``E_K >= 2^J = 1``: < 2% of the
   denominator, only in that bucket (v < eps^2, where the step is about lr |m| / eps).
4. ``1 / (sqrt(v) + eps) = R_n / (s + E_n)``, ``R_n = 4^(n-1) / sqrt(v_top)``, ``E_n = eps R_n``.
   With ``z_n = 1 / (0.625 + E_n)`` (public, linear in the bits) ``d = (s + E_n) z_n`` lies in
   [0.4, 1.6]; the step is ``N / d`` with ``N = lr R_n z_n m``, by Goldschmidt division
   (``f = 2 - d; N *= f; d *= f``, ONE product round per iteration, 4 iterations: relative
   error 0.6^16 = 2.8e-4).  N is carried at 2^(f+8).

Error of the computed step against ``lr m / (sqrt(v) + eps)`` (exact v, m as shared): relative
below ``ADAM_RELATIVE_ERROR`` = 1e-3 (``ADAM_TAIL_RELATIVE_ERROR`` = 2% where v < eps^2)
(Goldschmidt 3e-6 and 2.8e-4, the public constants' encoding ~2e-5, a few units of 2^-16 in t,
s, d: ~4e-4; measured in tests/test_adam.py) plus a few units of 2^-16 absolute (the update
lands on theta at 2^-16), and up to ~2^-16 / eps relative where v is within a few units of
2^-32 of 0 (its resolution).

Rounds (3 parties + dealer, counted): moments 1 opening + 2 truncation gathers; the reciprocal
and step: 1 + L x 8 (sign bits on lanes) + L - 1 (bit products) + 2 + 1 + 2 x 2 x 4 + 2 x 5 +
... ~= 57 at L = 3.  Bytes per element: the L comparisons and the ~40 distinct Beaver operands
(an operand of several products of one round is opened once).  Opens nothing (every opening is
masked).
"""

from __future__ import annotations

import math

import torch

from protocols.arithmetic.sharing import held_by_party0

TAIL_BITS = 0  # J: E_K >= 2^J in the lowest bucket (its sqrt is off by <= 0.012: 1.2% of E_K)
SQRT_ITERATIONS = 4  # Goldschmidt sqrt on [1/16, 1): 2.7e-6 relative
DIVISION_ITERATIONS = 4  # Goldschmidt division on [0.4, 1.6]: 0.6^16 = 2.8e-4 relative
Y0 = (2.94, 2.24)  # 1/sqrt(t) ~ 2.94 - 2.24 t on [1/16, 1]: max relative error 0.30
Z_CENTER = 0.625  # z_n = 1 / (0.625 + E_n): d in [0.4, 1.6]
N_EXTRA_BITS = 8  # the numerator N is carried at 2^(f + 8)
ADAM_RELATIVE_ERROR = 1e-3
ADAM_TAIL_RELATIVE_ERROR = 0.02  # in the lowest bucket (v < eps^2)
MIN_EPS = 2.0**-13  # smaller eps: 1/eps steps on values at the 2^-16 resolution
SEARCH_SCALE_BITS = 29  # the bucket search compares v / v_top at 2^29: exact up to v = 4 v_top


def v_top_for(grad_bound: float) -> float:
    """The smallest power of 4 >= ``grad_bound^2`` (v = E[g^2] <= grad_bound^2; v = v_top gives
    t = 1, inside the Goldschmidt range, and rounding adds only units of 2^-32)."""
    return 4.0 ** math.ceil(math.log(max(grad_bound, 2.0**-8) ** 2, 4) - 1e-9)


def n_thresholds(eps: float, v_top: float) -> int:
    """K - 1: bucket thresholds per element (see the module docstring)."""
    P = round(math.log(v_top, 4))
    return max(1, math.ceil((TAIL_BITS + P + math.log2(1.0 / eps)) / 2))


def effective_weight(c: float, frac_bits: int) -> tuple[int, int]:
    """``c`` encoded with ~16 significant bits: (integer, scale bits)."""
    s = 0 if c >= 0.5 else min(6, int(math.floor(math.log2(1.0 / c))))
    return int(round(c * 2.0 ** (frac_bits + s))), frac_bits + s


def moments(
    session,
    g: torch.Tensor,
    m: torch.Tensor,
    v: torch.Tensor,
    c1: float,
    c2: float,
    v_shift: int = 0,
):
    """``(m + c1 (g - m), v + c2 (g^2 - v))``; g, m at 2^f, v at 2^(2f - v_shift).  1 opening (the
    square) + 1 truncation gather (+ the square's truncation with ``v_shift``).  The same
    requests every step (c = 1 at t = 1 included): a training step's randomness plan is recorded
    once per batch shape and replayed.

    ``v_shift``: for a gradient carried at S times its size (mpcrnn.train.grad_scale, v_shift =
    2 log2 S), v = S^2 v_unscaled is kept at 2^(2f - v_shift), i.e. as the integers of the
    unscaled run's v at 2^(2f), and the square is that of g / S (one truncation round more):
    every integer truncated here is the unscaled run's, so a truncation fails (CrypTen's ignored
    wrap, probability ~|integer| 2^-63) no more often than without the scale (the scaled square
    at 2^(2f) would fail S^2 = 1024 times more often)."""
    from protocols.arithmetic.multiply import Product, multiply_many
    from protocols.arithmetic.truncation import truncate_many

    f = session.fp.frac_bits
    (gs,) = truncate_many(session, [g], bits=[v_shift // 2]) if v_shift else (g,)  # g / S
    (sq,) = multiply_many(session, [Product.mul(gs, gs, 0)])  # g^2 at 2^(2f - v_shift)
    (k1, b1), (k2, b2) = effective_weight(c1, f), effective_weight(c2, f)
    dm, dv = truncate_many(session, [(g - m) * k1, (sq - v) * k2], bits=[b1, b2])
    return m + dm, v + dv


def moments_plain(g, m, v, c1: float, c2: float):
    return m + c1 * (g - m), v + c2 * (g * g - v)


def _monomial_coefficients(values: list[int], levels: int) -> dict[int, int]:
    """{subset mask S: c_S} with ``sum_S c_S prod_(k in S) x_k = values[i(x)]`` for every bit
    vector x (x_1 the most significant bit of the index i), exact on integers: the Moebius
    transform of the table (the multilinear extension)."""
    coef = list(values) + [values[-1]] * (2**levels - len(values))
    for k in range(levels):  # bit k of the mask <-> x_(levels - k)
        for mask in range(2**levels):
            if mask >> k & 1:
                coef[mask] -= coef[mask ^ (1 << k)]
    return {mask: c for mask, c in enumerate(coef) if c}


def _multilinear(session, monomials: dict[int, torch.Tensor], values: list[int], levels: int):
    """Shares of ``values[i]`` (encoded integers) for the element's index i, from the shares of
    every monomial of its bits (``monomials[S]``, S != 0); the constant term via party 0."""
    coef = _monomial_coefficients(values, levels)
    out = None
    for mask, c in coef.items():
        if mask == 0:
            continue
        term = monomials[mask] * c
        out = term if out is None else out + term
    const = coef.get(0, 0)
    shape = next(iter(monomials.values())).shape
    base = held_by_party0(session, torch.full(shape, const, dtype=torch.int64))
    return base if out is None else out + base


def bucket_search(
    session, v: torch.Tensor, thr: torch.Tensor, lane_bits: int = 64
) -> tuple[dict, int]:
    """Binary search of v's bucket over descending public thresholds ``thr`` (K - 1, encoded
    like v): the index ``i = #{j : v < thr_j}`` in [0, K) as bits ``x_1 .. x_L`` (MSB first),
    L = ceil(log2 K), and every product of them: ``({mask: shares of prod x_k}, L)``.

    Level l compares v with ``thr_(mid(P))`` for the prefix P of the bits so far, a public
    table of P, hence a multilinear polynomial in the prefix bits (:func:`_multilinear`): ONE
    sign-bit circuit on D elements per level, then one product round for the new monomials.
    Thresholds past K - 1 repeat the last (empty buckets).  Rounds: L x 9 + (L - 1).
    lane_bits = 32 (two comparisons per word, 8 rounds each): the caller guarantees
    ``|v - thr_j| < 2^31`` for every threshold.
    """
    from protocols.arithmetic.multiply import Product, multiply_many
    from protocols.arithmetic.sign_bit import negative_bits

    levels = max(1, math.ceil(math.log2(len(thr) + 1)))
    table = torch.cat([thr, thr[-1:].expand(2**levels - 1 - len(thr))])  # thr_1 .. thr_(2^L - 1)
    monomials: dict[int, torch.Tensor] = {}
    for level in range(levels):
        span = 2 ** (levels - level)  # indices per prefix value
        mids = [int(table[P * span + span // 2 - 1]) for P in range(2**level)]
        if level == 0:
            cut = held_by_party0(session, torch.full_like(v, mids[0]))
        else:
            cut = _multilinear(session, monomials, mids, level)
        bit = negative_bits(session, v - cut, lane_bits)  # x = [v < thr_mid]
        # the new bit enters as the least significant of the prefix: shift the old masks up
        old = {mask << 1: mono for mask, mono in monomials.items()}
        products = (
            multiply_many(session, [Product.mul(mono, bit, 0) for mono in old.values()])
            if old
            else []
        )
        monomials = {**old, 1: bit, **{mask | 1: p for mask, p in zip(old, products)}}
    return monomials, levels


def _buckets(eps: float, v_top: float, frac_bits: int, v_bits: int | None = None):
    """Public per-bucket constants: thresholds (encoded at v's scale 2^v_bits, default 2^(2f)),
    F_n = 16^(n-1), z_n (as encoded at 2^f), E_n z_n, R_n z_n."""
    v_bits = 2 * frac_bits if v_bits is None else v_bits
    K1 = n_thresholds(eps, v_top)
    K = K1 + 1
    thr = torch.tensor(
        [round(v_top * 16.0**-j * 2.0**v_bits) for j in range(1, K)], dtype=torch.int64
    )
    F = [16.0 ** (n - 1) for n in range(1, K + 1)]
    R = [4.0 ** (n - 1) / math.sqrt(v_top) for n in range(1, K + 1)]
    z = [
        round(2.0**frac_bits / (Z_CENTER + eps * r)) / 2.0**frac_bits for r in R
    ]  # as encoded: cancels exactly
    return thr, F, R, z


def direction(
    session,
    m: torch.Tensor,
    v: torch.Tensor,
    lr: float,
    eps: float,
    v_top: float,
    v_shift: int = 0,
) -> torch.Tensor:
    """Shares of ``lr m / (sqrt(v) + eps)`` at 2^f for m at 2^f, v at 2^(2f - v_shift) in
    [0, v_top).  See the module docstring for the protocol and its error.  ``v_shift``
    (:func:`moments`): with a gradient at S times its size, v_top is S^2 times larger and v is
    kept 2 log2 S bits lower, so every integer here (the thresholds, v F, the search's lanes)
    is the unscaled run's."""
    from protocols.arithmetic.multiply import Product, multiply_many
    from protocols.arithmetic.truncation import truncate_many

    f = session.fp.frac_bits
    P = round(math.log(v_top, 4))
    v_bits = 2 * f - v_shift
    thr, F, R, z = _buckets(eps, v_top, f, v_bits)
    vv = v.reshape(-1)
    mm = m.reshape(-1)
    monomials, levels = _search(session, vv, thr, P, v_bits)

    def per_bucket(values: list[float], scale_bits: int) -> torch.Tensor:
        enc = [round(x * 2.0**scale_bits) for x in values]
        return _multilinear(session, monomials, enc, levels)

    Fn = per_bucket(F, 0)  # integer 16^(n-1)
    zn = per_bucket(z, f)  # z_n at 2^f
    Ez = per_bucket([eps * r * zz for r, zz in zip(R, z)], f)  # E_n z_n at 2^f
    q_bits = 24
    Qn = per_bucket([lr * r * zz for r, zz in zip(R, z)], q_bits)  # lr R_n z_n at 2^24
    vF, N = multiply_many(
        session, [Product.mul(vv, Fn, 0), Product.mul(mm, Qn, q_bits - N_EXTRA_BITS)]
    )
    (t,) = truncate_many(session, [vF], bits=[v_bits - f + 2 * P])  # t = v F / v_top at 2^f
    a, b = Y0
    bt, bt2 = truncate_many(session, [t * int(round(b * 2.0**f)), t * int(round(b / 2 * 2.0**f))])
    y0 = _affine(session, bt, -1.0, a)  # y0 = a - b t
    h = _affine(session, bt2, -1.0, a / 2)  # h0 = y0 / 2
    g, u = multiply_many(session, [Product.mul(t, y0), Product.mul(t, zn)])  # g0 = t y0, u = t z_n
    gz = None
    for it in range(SQRT_ITERATIONS):
        pairs = [Product.mul(g, h)] + ([Product.mul(u, y0)] if gz is None else [])
        out = multiply_many(session, pairs)
        gh = out[0]
        if gz is None:
            gz = out[1]  # z_n t y0
        r = _affine(session, gh, -1.0, 0.5)
        last = it == SQRT_ITERATIONS - 1
        pairs = [Product.mul(gz, r)] + ([] if last else [Product.mul(g, r), Product.mul(h, r)])
        out = multiply_many(session, pairs)
        gz = gz + out[0]
        if not last:
            g, h = g + out[1], h + out[2]
    d = gz + Ez  # (s + E_n) z_n in [0.4, 1.6]
    for it in range(DIVISION_ITERATIONS):
        fac = _affine(session, d, -1.0, 2.0)
        last = it == DIVISION_ITERATIONS - 1
        pairs = [Product.mul(N, fac, f + (N_EXTRA_BITS if last else 0))] + (
            [] if last else [Product.mul(d, fac)]
        )
        out = multiply_many(session, pairs)
        N = out[0]
        if not last:
            d = out[1]
    return N.reshape(m.shape)


def search_shift(
    thr: torch.Tensor, P: int, frac_bits: int, v_bits: int | None = None
) -> int | None:
    """Bits to drop from v (at 2^v_bits, default 2^(2f), in [0, v_top = 4^P]) so that the
    bucket search compares on 32-bit lanes: v / v_top at 2^29, when every threshold
    ``2^(29 - 4j)`` stays an exact integer >= 8 there (K - 1 <= 6: the default eps and clip,
    and DP's); None otherwise (the
    search then runs on whole words).  A lane holds |v - thr| < 2^31, i.e. v < 4 v_top: the
    same headroom over the gradient bound as the whole-word search, whose linear guess for
    1/sqrt(t) turns negative at t = 1.3 (v above v_top comes from a bound exceeded, e.g. by L2
    weight decay added to a clipped gradient)."""
    shift = (2 * frac_bits if v_bits is None else v_bits) + 2 * P - SEARCH_SCALE_BITS
    if shift < 0 or bool((thr & ((1 << shift) - 1) != 0).any()) or int(thr.min() >> shift) < 8:
        return None
    return shift


def _search(
    session, vv: torch.Tensor, thr: torch.Tensor, P: int, v_bits: int | None = None
) -> tuple[dict, int]:
    """The bucket search, on two comparisons per word where :func:`search_shift` allows: v is
    first divided by 2^shift (one truncation round; the +-1 unit of its rounding can move an
    element across a threshold only when v is within 2^-28 v_top of it (<= 1/4 of the lowest
    threshold), where t then lies that much outside [1/16, 1), inside the approximations'
    margins)."""
    from protocols.arithmetic.truncation import truncate_many

    shift = search_shift(thr, P, session.fp.frac_bits, v_bits)
    if shift is None or session.world_size == 1:
        return bucket_search(session, vv, thr)
    (small,) = truncate_many(session, [vv], bits=[shift]) if shift else (vv,)
    return bucket_search(session, small, thr >> shift, lane_bits=32)


def direction_plain(m, v, lr: float, eps: float):
    """The definition (torch.optim.Adam's, on the bias-corrected moments)."""
    return lr * m / (torch.sqrt(v) + eps)


def _affine(session, x: torch.Tensor, k: int, c: float) -> torch.Tensor:
    """``k x + c`` for a public integer k and public c: local."""
    from protocols.arithmetic.sharing import add_public

    return add_public(session, x * int(k), c)
