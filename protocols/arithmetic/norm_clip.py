"""Clip each row of a shared matrix to Euclidean norm at most ``c``: ``x_r * min(1, c / ||x_r||)``.

Used for per-example gradient clipping (DP-SGD), for bounding each party's update before a
secure average (FedAvg) and for clipping a whole gradient by norm (one row).

Protocol, for ``[x]`` of shape (R, D) at scale 2^f (f = 16), all rows at once::

    s_r    = ||x_r||^2 / c^2                1 multiplication, 2 truncations (the squares
                                            of x / 2^floor(log2 c) for c >= 2, are summed at
                                            scale 2^2f: one rounding per row)
    b_rk   = [s_r >= 2^k],  k = 0 .. K      ONE sign-bit circuit (arithmetic.sign_bit, 9 rounds),
    kept_r = [s_r >= -1/2]                  with this threshold too
    A_r    = 2^(-j/2),  A2_r = 2^-j   for s_r in [2^j, 2^(j+1)), 0 <= j < K
             (1 for 0 <= s_r < 1, and 0 for s_r >= 2^K or s_r < -1/2)
                                            linear in the bits: local, public constants
    t_r    = 1 + b_r0 * (s_r * A2_r - 1) + b_rK       in [1, 2): 2 sequential multiplications
    y_r    ~ 1 / sqrt(t_r)                            Newton: y <- y (3 - t y^2) / 2 from y0 = 0.85
                                                      (the first step is linear), 3 more steps
    out_r  = (x_r * A_r) * y_r                        x*A in parallel with s*A2; 1 multiplication

For s_r >= 1: out_r = x_r / sqrt(s_r) (norm c); for s_r < 1: A = 1, t = 1, y -> 1, out_r = x_r.
Rows with s_r >= 2^K (norm above 2^(K/2) c, 1024 c for the default K = 20) come out as ZERO:
such a row is dropped rather than passed with an unbounded norm, so the output norm bound
``<= c (1 + CLIP_RELATIVE_ERROR)`` holds for every input.  So do rows whose s_r comes out below
-1/2 (one more threshold in the same circuit, ``A = A2 = 0``): with more than two parties
CrypTen's truncation fails with probability ~|value| 2^-63 by about 2^64 / 2^f, and the sum of
squares of a large row (5000 c: ~2^55.5 at scale 2^2f) is the largest value truncated here; a
failure gives a garbage s_r of either sign, which is now dropped whichever (a negative one was
passed UNCLIPPED: seen once in the full suite, ``tests/test_norm_clip.py``).

A and A2 are built at scale 2^G (G = 11 + K/2: 21 by default, 17 for DP) from the 0/1 bits (exact
powers of two for A2), so the small factors keep 11 significant bits; the products are truncated
by G bits.

Error: Newton from y0 = 0.85 on t in [1, 2) leaves a relative error below 2e-7 after 4 steps;
fixed point adds a few units of 2^-16 in t and y, and below 5e-4 relative in A.  The norm of an
output row is at most ``c * (1 + CLIP_RELATIVE_ERROR)`` (measured on shares in the tests: below
1e-4); callers that need a hard bound (DP sensitivity) clip to ``c / (1 + CLIP_RELATIVE_ERROR)``.

Rounds (3 parties + dealer, measured): 37 openings and truncation gathers (9 of them the sign-bit
circuit; one more for c >= 2), independent of R and D, plus, outside a training step's
prefetched plan, one dealer round trip per randomness request for party 0 (25 more).  Public: R,
D, c, K.
"""

from __future__ import annotations

import math

import torch

RATIO_BITS = 20  # K: rows with ||x|| >= 2^(K/2) c are zeroed (default: 1024 c)
DP_RATIO_BITS = 12  # K for DP-SGD: rows above 64 C are zeroed (a valid clip: norm 0 <= C)
NEWTON_STEPS = 4  # from y0 = 0.85 on [1, 2): relative error < 2e-7 before rounding
Y0 = 0.85
CLIP_RELATIVE_ERROR = 1e-3  # documented bound on (output norm / c - 1); tests measure < 1e-4


def scale_bits(ratio_bits: int) -> int:
    """G, the scale of the bucket factors: A >= 2^(-(K-1)/2) keeps 11 significant bits (relative
    precision 5e-4).  Kept as small as that allows: the product x*A is truncated from scale
    2^(f+G), and a truncation fails with probability ~|value| 2^(f+G-63) (CrypTen's ignored
    wrap)."""
    return 11 + ratio_bits // 2


def _bucket_constants(K: int, G: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Integer coefficients (scale 2^G) of b_1..b_K in A and A2: A = 1 + sum_j b_j (a_j - a_{j-1})
    with a_j = 2^(-j/2) (A2: 2^-j) and a_K = 0.  Differences of ENCODED values, so the sums
    telescope exactly: A is exactly 0 for rows beyond the range, whatever the rounding."""
    a = torch.tensor([2.0 ** (-j / 2) for j in range(K)] + [0.0], dtype=torch.float64)
    a2 = torch.tensor([2.0 ** (-j) for j in range(K)] + [0.0], dtype=torch.float64)
    enc_a, enc_a2 = (torch.round(v * 2.0**G).to(torch.int64) for v in (a, a2))
    return enc_a[1:] - enc_a[:-1], enc_a2[1:] - enc_a2[:-1]


def clip_rows_to_norm(
    session, x: torch.Tensor, c: float, ratio_bits: int = RATIO_BITS
) -> torch.Tensor:
    """Each row of ``[x]`` (R, D) scaled to norm <= c; rows above 2^(ratio_bits/2) c become 0.

    Returns shares of shape (R, D) at scale 2^f.  See the module docstring for the protocol.
    """
    from protocols.arithmetic.comparison import ge_bits
    from protocols.arithmetic.multiply import Product, multiply_many
    from protocols.arithmetic.sharing import add_public
    from protocols.errors import ConfigError, expected_got

    if x.dim() != 2:
        raise ConfigError(
            expected_got("rows to clip", "a 2-D (rows, values) tensor", tuple(x.shape))
        )
    if not c > 0:
        raise ConfigError(expected_got("clipping norm", "> 0", c))
    f, G, K = session.fp.frac_bits, scale_bits(ratio_bits), ratio_bits
    if not 1 <= K <= 30:  # s < 2^K at scale 2^f stays far inside the ring; A2 >= 2^-K at scale 2^G
        raise ConfigError(expected_got("ratio bits", "1..30", K))
    from protocols.arithmetic.truncation import truncate_many

    # the squares of x / 2^h, h = floor(log2 c) for c >= 2 (one truncation round more): a row
    # carried at S times its size and clipped at S C then squares and sums the integers of the
    # unscaled row (a truncation fails with probability ~|integer| 2^-63); at scale 2^(2f),
    # summed before the truncation by f, so that its rounding does not bias ||x||^2 by D ulps
    h = min(f // 2, max(0, math.floor(math.log2(c))))
    (xh,) = truncate_many(session, [x], bits=[h]) if h else (x,)
    (sq,) = multiply_many(session, [Product.mul(xh, xh, 0)])
    (ss,) = truncate_many(session, [sq.sum(1)])  # ||x||^2 / 4^h at 2^f
    s = _scale(session, ss, 4.0**h / c**2)  # (R,): ||x||^2 / c^2
    # s >= -1/2 first: an honest s is >= 0, a failed truncation (module docstring) is ~2^64 off
    thresholds = torch.tensor([-0.5] + [2.0**k for k in range(K + 1)], dtype=torch.float64)
    bits = ge_bits(
        session, s.unsqueeze(1).expand(-1, K + 2).contiguous(), thresholds
    )  # (R, K+2) at scale 1: [s >= -1/2], [s >= 2^0], ..., [s >= 2^K]
    kept, bits = bits[:, 0], bits[:, 1:]
    da, da2 = _bucket_constants(K, G)
    A = (bits[:, 1:] * da).sum(1) + kept * (1 << G)  # (R,) scale 2^G; 0 for a dropped row
    A2 = (bits[:, 1:] * da2).sum(1) + kept * (1 << G)
    sA2, xA = multiply_many(session, [Product.mul(s, A2, G), Product.mul(x, A.unsqueeze(1), G)])
    (t,) = multiply_many(session, [Product.mul(bits[:, 0], add_public(session, sA2, -1.0), 0)])
    t = add_public(session, t, 1.0) + bits[:, K] * (1 << f)  # in [1, 2); 1 for dropped rows (A = 0)
    y = add_public(session, _scale(session, t, -0.5 * Y0**3), 1.5 * Y0)  # first Newton step
    for _ in range(NEWTON_STEPS - 1):
        (y2,) = multiply_many(session, [Product.mul(y, y)])
        (ty2,) = multiply_many(session, [Product.mul(t, y2)])
        (y,) = multiply_many(
            session, [Product.mul(y, add_public(session, -ty2, 3.0), f + 1)]
        )  # /2 folded in
    (out,) = multiply_many(session, [Product.mul(xA, y.unsqueeze(1))])
    return out


def _scale(session, x: torch.Tensor, k: float) -> torch.Tensor:
    """``[k x]`` for a public real k: local product at scale 2^(2f), one truncation."""
    from protocols.arithmetic.truncation import truncate_many

    (out,) = truncate_many(session, [x * int(session.fp.encode(k))])
    return out


def clip_rows_to_norm_plain(
    x: torch.Tensor, c: float, ratio_bits: int = RATIO_BITS
) -> torch.Tensor:
    """The plaintext definition the protocol computes: x_r * min(1, c/||x_r||), and 0 for rows
    with ||x_r||^2 / c^2 >= 2^ratio_bits."""
    s = (x * x).sum(1) / c**2
    factor = torch.where(s < 1, torch.ones_like(s), 1.0 / torch.sqrt(s.clamp(min=1.0)))
    factor = torch.where(s >= 2.0**ratio_bits, torch.zeros_like(s), factor)
    return x * factor.unsqueeze(1)


def max_norm_ratio(ratio_bits: int = RATIO_BITS) -> float:
    """Largest ||x_r|| / c that is clipped (larger rows are zeroed)."""
    return math.sqrt(2.0**ratio_bits)
