"""Secure aggregation: the weighted mean of one vector per party, computed on secret shares.

Each party ``i`` holds a plaintext vector ``u_i`` (D,) (for FedAvg: its model update).  The
protocol returns shares of::

    mean = sum_i w_i * clip(u_i) / sum_i w_i            (D,)

with public weights ``w_i`` (row counts, or all 1) and, optionally,
``clip(u) = u * min(1, C/||u||)`` applied on shares (:mod:`protocols.arithmetic.norm_clip`), so
that no
party can dominate the mean with a huge update, and no party learns whether (or by how much)
another party's update was clipped.

Steps:

1. every party shares its own ``u_i`` (PRZS masking, zero rounds,
:mod:`protocols.arithmetic.sharing`):
   p sharings of shape (D,), stacked to ``[U]`` (p, D);
2. optional: ``[U] <- clip_rows_to_norm([U], C)`` (~45 rounds with the dealer, any D);
3. ``[mean] = sum_i (w_i / W) [U_i]``: local products with the encoded public coefficients at
   scale 2^(2f), summed, ONE truncation (1 gather round for more than two parties).

Nothing is opened here: the caller opens ``[mean]`` through
:func:`protocols.arithmetic.reveal.reveal`,
where it is ledgered.  What the opened mean tells a party: the weighted sum of the OTHER
parties' (clipped) vectors, given its own.  With two parties that is the other party's vector
itself; secure aggregation hides an individual vector only among three or more parties.

Error: each encoded input is within 2^-17 of u_i, each coefficient within 2^-17 of w_i/W, the
truncation adds at most 1 unit of 2^-16: ``|mean - exact| <= (max|u| + 3) * 2^-16`` per entry.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch


def weighted_mean(
    session, own: torch.Tensor, weights: Sequence[float], clip_norm: float = 0.0
) -> torch.Tensor:
    """Shares (D,) at scale 2^f of ``sum_i w_i clip(u_i) / sum_i w_i``.

    own: this party's float vector u_rank (D,); D is public and must be equal at every party.
    weights: one public, non-negative weight per party (same list everywhere), not all zero.
    clip_norm: C > 0 bounds every party's vector to norm C on shares; 0 disables clipping.

    Raises:
        ConfigError: weights of the wrong length or sign, all zero, a negative clip_norm, a
            non-1-D vector, or values outside the fixed-point range.
    """
    from protocols.arithmetic.norm_clip import clip_rows_to_norm
    from protocols.arithmetic.sharing import share
    from protocols.arithmetic.truncation import truncate_many
    from protocols.errors import ConfigError, expected_got

    p = session.world_size
    w = [float(v) for v in weights]
    if len(w) != p:
        raise ConfigError(expected_got("aggregation weights", f"one per party ({p})", len(w)))
    if any(not v >= 0 for v in w) or sum(w) <= 0:
        raise ConfigError(expected_got("aggregation weights", "non-negative, not all zero", w))
    if not clip_norm >= 0:
        raise ConfigError(expected_got("update clipping norm", ">= 0", clip_norm))
    if own.dim() != 1:
        raise ConfigError(expected_got("vector to aggregate", "1-D (D,)", tuple(own.shape)))
    limit = 2.0 ** (62 - 2 * session.fp.frac_bits - 1)
    biggest = float(own.abs().max()) if own.numel() else 0.0
    if not bool(torch.isfinite(own).all()) or biggest >= limit:
        # says only that a value is out of range, never which value
        raise ConfigError(
            expected_got(
                "vector entries", f"finite and below {limit:g} in magnitude", "a value outside"
            )
        )
    if clip_norm > 0 and float(own.norm()) >= 2.0 ** ((62 - 2 * session.fp.frac_bits) / 2 - 1):
        raise ConfigError(expected_got("norm of the vector to clip", "below 2^14", "a larger norm"))
    D = own.shape[0]
    U = torch.stack(
        [
            share(session, own if src == session.rank else None, src=src, shape=(D,))
            for src in range(p)
        ]
    )
    if clip_norm > 0:
        U = clip_rows_to_norm(session, U, clip_norm)
    total = sum(w)
    acc = sum(U[i] * int(session.fp.encode(w[i] / total)) for i in range(p))
    (mean,) = truncate_many(session, [acc])
    return mean
