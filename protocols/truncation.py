"""Truncation: divide fixed-point shares by 2^f after a multiplication, many tensors at once.

Two parties (or one): each party truncates its own share locally (SecureML; CrypTen's
``div_`` for world size <= 2).  Zero rounds.  Wrong by one unit in the last place, and wrong by
about 2^(64-f) with probability ~|x|/2^63 per element (the shares' sum wraps).

More than two parties (CrypTen's ``beaver.truncate``, batched): with dealer randomness
``[r]``, ``[theta_r]`` (wraps of r's shares):

1. ``[z] = [x] + [r]``; each party computes ``beta`` = wraps of its (x_i, r_i) pair.
2. Gather ``z_i`` to party 0 (ONE round for every tensor in the batch); party 0 computes
   ``theta_z`` = wraps of the z shares.  ``z`` is uniformly random, so this reveals nothing.
3. ``[theta_x] = theta_z + [beta] - [theta_r]``; each share is divided by 2^f locally and
   corrected by ``[theta_x] * 2^64 / 2^f``.

Rounds: 1 gather + the dealer request (batched with the multiplication's triples by
:mod:`protocols.multiply`).  Failure probability per element ~|x|/2^63 (CrypTen ignores
``eta_xr``, as we do); :class:`protocols.fixed_point.FixedPoint` bounds |x| via ``check_range``.
"""

from __future__ import annotations

import torch

from protocols.reveal import _split_like, gather_masked


def needs_wraps(session) -> bool:
    return session.world_size > 2


def truncate_many(session, xs: list[torch.Tensor], wraps=None, bits=None) -> list[torch.Tensor]:
    """Return ``[x / 2^bits]`` for each ``[x]``.

    bits: None (f for all), or one entry per x: an int or an int64 tensor broadcasting against
        that x (per-column shifts, used by the polynomial evaluator).
    wraps: pre-fetched ``(r, theta_r)`` shares covering the concatenation of ``xs`` (one
        ``("wraps", (n,))`` request), or None to fetch them here.
    """
    if bits is None:
        bits = [session.fp.frac_bits] * len(xs)
    divisors = [torch.as_tensor(1, dtype=torch.int64) << torch.as_tensor(b, dtype=torch.int64) for b in bits]
    if not needs_wraps(session):
        return [x.div(d, rounding_mode="trunc") for x, d in zip(xs, divisors)]
    from crypten.common.util import count_wraps

    flat = torch.cat([x.reshape(-1) for x in xs])
    divisor = torch.cat([d.expand(x.shape).reshape(-1) for x, d in zip(xs, divisors)])
    if wraps is None:
        (wraps,) = session.triples.fetch([("wraps", (flat.numel(),))])
    r, theta_r = wraps
    beta = count_wraps([flat, r])
    gathered = gather_masked(session, flat + r, "truncate")
    theta_x = beta - theta_r
    if session.rank == 0:
        theta_x = theta_x + count_wraps(gathered)
    out = flat.div(divisor, rounding_mode="trunc") - theta_x * (4 * (int(2**62) // divisor))
    return _split_like(out, xs)
