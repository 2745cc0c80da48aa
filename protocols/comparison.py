"""Comparison-based functions through CrypTen's circuits (binary sharing, A2B/B2A).

Used once per training step (not per time step): ReLU for gradient clipping, the bucket bits
of :mod:`protocols.norm_clip`, and the max inside :mod:`protocols.softmax`.  CrypTen draws the binary triples from its configured provider;
with TTP our dealer process answers those requests too (:mod:`protocols.dealer`).

Rounds (CrypTen 0.4.1, 3 parties): ReLU ~ 1 + log2(64) + 2; softmax ~ max (log-reduction over C
classes) + exp (8 squarings) + reciprocal (10 Newton steps): on the order of 80-100 rounds, once
per step.  Accuracy: CrypTen's defaults (exp relative error < 1e-3 for inputs in [-16, 0],
reciprocal to ~1e-4 on [1, C]).
"""

from __future__ import annotations

import torch


def _mpc(session, x_shared: torch.Tensor):
    from crypten.mpc import MPCTensor

    return MPCTensor.from_shares(x_shared, precision=session.fp.frac_bits)


def relu_shares(session, x_shared: torch.Tensor) -> torch.Tensor:
    session.stats.add("comparison", 0)
    return _mpc(session, x_shared).relu()._tensor.share


def softmax_shares(session, logits_shared: torch.Tensor) -> torch.Tensor:
    """CrypTen's own row-wise softmax of (N, C) logits (the naive baseline; mpcrnn uses
    :func:`protocols.softmax.softmax_rows`)."""
    return _mpc(session, logits_shared).softmax(1)._tensor.share


def ge_bits(session, x_shared: torch.Tensor, thresholds: torch.Tensor) -> torch.Tensor:
    """Shares of the 0/1 bits ``[x >= threshold]`` (public thresholds broadcasting against x),
    at scale 1 (an integer 0 or 1, usable as a multiplication operand with shift 0).  ONE
    CrypTen comparison circuit for the whole tensor."""
    from protocols.errors import InstallError
    from protocols.sharing import add_public

    session.stats.add("comparison", 0)
    bits = _mpc(session, add_public(session, x_shared, -thresholds)).ge(0)
    if bits.encoder.scale != 1:  # CrypTen 0.4.1 returns comparison bits at scale 1; anything else is a version change
        raise InstallError(f"comparison bits: expected scale 1, got {bits.encoder.scale} (CrypTen version change?)")
    return bits._tensor.share
