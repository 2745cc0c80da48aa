"""Analytic noise bounds for an HE product answer (:mod:`protocols.randomness.he_products`): how
wide the flood must be, how wide it may be, and the statistical distance it leaves.

One answer, for one plaintext prime ``t`` at ring degree ``N``: A's fresh symmetric encryption
``ct`` of ``x`` at the top data level (modulus ``Q0``) decrypts to ``round(Q0 x / t) + e``,
so its noise is ``v = e + eps`` with ``e`` SEAL's error (centered binomial, eta = 21: every
coefficient a sum of 42 independent bits with signs, ``|e_i| <= 21``) and ``eps`` the
rounding of the scaling, ``|eps_i| <= 1/2``.  B multiplies by its plaintext ``y`` (coefficients
centered, ``|y_j| <= (t-1)/2``) and sums ``K`` such products (the k-blocks of a packed matrix
product; ``K = 1`` elementwise), so the noise that depends on B's operand is, per coefficient::

    sum_k (e_k * y_k + eps_k * y_k)        (negacyclic products in Z[x] / (x^N + 1))

* ``eps`` part, worst case: ``K N (1/2) (t-1)/2``.
* ``e`` part, with probability ``>= 1 - 2^-TAIL`` per coefficient (Hoeffding over the
  ``42 N K`` signed bits, each of range ``|y_j|``): ``||y||_2 sqrt(21 K ln(2^(TAIL+1)))`` with
  ``||y||_2 <= sqrt(N) (t-1)/2``.

B adds its mask (its own), a fresh public-key encryption of zero (re-randomizing ``c1``: from
here on the ciphertext's uniform part is independent of ``y``, under RLWE) and switches down to
the answer level (modulus ``Q'``): the operand's noise becomes ``v Q'/Q0`` (the switch's own
rounding is taken on a re-randomized ciphertext).  B then adds a flood ``f`` uniform in
``[-2^W, 2^W)``: per coefficient the statistical distance between ``d + f`` and ``f`` is at
most ``|d| / 2^(W+1)``, so the flood buys ``W + 1 - log2(bound)`` bits per coefficient
(``log2 N`` fewer for a whole answer, by the union bound).

Correctness (decryption exact): BFV decrypts ``round(t (Delta m + v) / Q')`` correctly when
``|v| < Q'/(2t) - r (t-1)/t`` with ``r = Q' mod t``; the answer's total noise is the flood, the
operand's part at its WORST case (``e`` at ``|e_i| <= 21``), the switch's rounding
``(1 + ||s||_1)/2 <= (N + 1)/2`` (ternary secret), the switched encryption of zero (at most
``2 * 21 N + 21 + (N + 1)/2`` before the switch) and the mask's rounding (below 1).
:func:`flood_width` takes the largest ``W`` (at most 59: the flood is built from int64
coefficients below every 60-bit modulus) that keeps it exact.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

TAIL = 64  # bits: each coefficient's high-probability bound fails with probability <= 2^-64
CBD_ETA = 21  # SEAL 4's error sampler: centered binomial, 2 x 21 bits per coefficient
MAX_FLOOD_BITS = 59  # the flood's coefficients are int64 values below every modulus


def dependent_noise(degree: int, t: int, terms: int, worst: bool = False) -> float:
    """Bound on one coefficient of the noise that depends on the evaluator's operand, at the
    product's level, for a sum of ``terms`` products (``K``); ``worst``: the error's worst
    case instead of its ``2^-TAIL`` tail bound."""
    y_max = (t - 1) / 2
    eps = terms * degree * 0.5 * y_max
    if worst:
        return eps + terms * degree * CBD_ETA * y_max
    y_norm = math.sqrt(degree) * y_max
    return eps + y_norm * math.sqrt(CBD_ETA * terms * math.log(2.0 ** (TAIL + 1)))


def flood_width(degree: int, t: int, q_top: int, q_answer: int, max_terms: int) -> int:
    """The largest ``W <= 59`` with ``2^W`` + every other noise below BFV's decryption bound at
    the answer level (module docstring); ``q_top``/``q_answer``: the product's and the
    answer's ciphertext moduli.  Negative where no flood fits."""
    ratio = q_answer / q_top
    worst = dependent_noise(degree, t, max_terms, worst=True) * ratio
    # the encryption of zero at the top level: u e_pk + e_1 + e_2 s (ternary u, s) and the
    # rounding of its own switch from the key level, bounded without that switch's division
    zero = (2 * CBD_ETA * degree + CBD_ETA + (degree + 1) // 2) * ratio
    rest = math.ceil(worst) + math.ceil(zero) + (degree + 1) // 2 + 2
    room = q_answer // (2 * t) - q_answer % t - rest - 1
    return min(MAX_FLOOD_BITS, room.bit_length() - 1) if room > 0 else -1


@dataclass(frozen=True)
class FloodBound:
    """One prime's flood: its width ``W`` and the statistical security it gives at the largest
    sum of products (``max_terms``), per coefficient and per answer ciphertext."""

    width: int
    dependent_bits: float  # log2 of the operand's noise bound at the answer level
    coefficient_bits: float  # -log2 of one coefficient's statistical distance
    answer_bits: float  # -log2 of one answer's (N coefficients, union bound)


def flood_bound(degree: int, t: int, q_top: int, q_answer: int, max_terms: int) -> FloodBound:
    """:func:`flood_width` and what it buys (module docstring)."""
    width = flood_width(degree, t, q_top, q_answer, max_terms)
    dep = math.log2(dependent_noise(degree, t, max_terms) * q_answer / q_top)
    per = width + 1 - dep
    return FloodBound(width, dep, per, per - math.log2(degree))
