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
:mod:`protocols.arithmetic.multiply`).  Failure probability per element ~|x|/2^63 (CrypTen ignores
``eta_xr``, as we do); :class:`protocols.arithmetic.fixed_point.FixedPoint` bounds |x| via
``check_range``.
"""

from __future__ import annotations

import torch

from protocols.arithmetic.reveal import _split_like, gather_masked
from protocols.randomness.requests import WrapsRequest


def count_wraps(shares: list):
    """Wraps of a sum of int64 shares (all of one shape; torch tensors or numpy arrays),
    elementwise::

        theta = (sum_i s_i over the integers - (sum_i s_i mod 2^64, as signed int64)) / 2^64

    Adding the shares in order, ``prev + cur`` overflows iff ``prev`` and ``cur`` have one sign
    and the wrapped sum the other: ``((prev ^ next) & (cur ^ next)) < 0``; that wrap is +1 when
    ``prev >= 0`` and -1 when ``prev < 0``.  Used instead of CrypTen's ``count_wraps`` (at the
    parties and the dealer alike): half its tensor operations, and exact where CrypTen's is not:
    ``-2^63 + -2^63`` wraps down once, which CrypTen's counts as no wrap.
    """
    prev, theta = shares[0], None
    for cur in shares[1:]:
        nxt = prev + cur
        step = (((prev ^ nxt) & (cur ^ nxt)) >> 63) & ((prev >> 63) | 1)  # 0, or +1 / -1
        if theta is None:
            theta = step
        else:
            theta += step
        prev = nxt
    return theta if theta is not None else prev ^ prev


def needs_wraps(session) -> bool:
    return session.world_size > 2


def truncate_many(session, xs: list[torch.Tensor], wraps=None, bits=None) -> list[torch.Tensor]:
    """Return ``[x / 2^bits]`` for each ``[x]``.

    bits: None (f for all), or one entry per x: an int or an int64 tensor broadcasting against
        that x (per-column shifts, used by the polynomial evaluator).
    wraps: pre-fetched ``(r, theta_r)`` shares covering the concatenation of ``xs`` (one
        :class:`protocols.randomness.requests.WrapsRequest` of n), or None to fetch them here.
    """
    if bits is None:
        bits = [session.fp.frac_bits] * len(xs)
    if not needs_wraps(session):
        return [shift_right_trunc(x, b) for x, b in zip(xs, bits)]
    flat = torch.cat([x.reshape(-1) for x in xs])
    if all(isinstance(b, int) and b == bits[0] for b in bits):
        shift = bits[0]
    else:  # per-element shifts, flattened like ``flat``
        shift = torch.cat(
            [
                torch.as_tensor(b, dtype=torch.int64).expand(x.shape).reshape(-1)
                for x, b in zip(xs, bits)
            ]
        )
        shift = shift.numpy()
    if wraps is None:
        (wraps,) = session.triples.fetch([WrapsRequest((flat.numel(),))])
    # the ring arithmetic on numpy views of the same memory: numpy's int64 operations wrap like
    # torch's, without torch's per-operation dispatch cost at these sizes
    x, r, theta_r = flat.numpy(), wraps[0].numpy(), wraps[1].numpy()
    z = x + r
    gathered = gather_masked(session, torch.from_numpy(z), "truncate")
    theta_x = count_wraps([x, r]) - theta_r
    if session.rank == 0:
        theta_x += count_wraps([g.numpy() for g in gathered])
    # theta_x * 2^64 / 2^shift, in two shifts so that shift = 0 gives 0 (a shift by 64 is not)
    out = shift_right_trunc(x, shift) - ((theta_x << (63 - shift)) << 1)
    return _split_like(torch.from_numpy(out), xs)


def shift_right_trunc(x, k):
    """``x / 2^k`` rounded toward zero, as ``torch.div(x, 2**k, rounding_mode="trunc")``, for
    int64 ``x`` (a torch tensor or numpy array) and ``k`` an int in [0, 63] or an int64 tensor /
    array of such (broadcasting): ``>>`` floors, so negative ``x`` get ``2^k - 1`` added first
    (cheaper than ``div``)."""
    return (x + ((x >> 63) & ((1 << k) - 1))) >> k
