"""Comparison-based functions through CrypTen's circuits (binary sharing, A2B/B2A).

Used once per training step (not per time step): ReLU for gradient clipping, inverse square
root for clipping by norm, and the max inside :mod:`protocols.softmax`.  CrypTen draws the binary triples from its configured provider;
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


def inv_sqrt_shares(session, x_shared: torch.Tensor) -> torch.Tensor:
    """1/sqrt(x) for x >= 1 (CrypTen's Newton-Raphson, its default initial guess)."""
    session.stats.add("inv_sqrt", 0)
    return _mpc(session, x_shared).inv_sqrt()._tensor.share
