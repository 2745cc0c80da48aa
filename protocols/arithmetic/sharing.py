"""Secret-sharing a party's own values, without communication.

``[x] = PRZS + (x encoded, added by src only)``: every party draws a pseudo-random sharing of
zero from the pairwise seeds CrypTen set up (``prev``/``next`` generators), so the owner's
value is masked by randomness it does not know alone.  Public: the shape (all parties must pass
the same ``shape``).  Zero rounds.
"""

from __future__ import annotations

import torch

from protocols.errors import ConfigError, expected_got


def share(
    session,
    value: torch.Tensor | None,
    *,
    src: int,
    shape: tuple[int, ...],
    scale_bits: int | None = None,
) -> torch.Tensor:
    """Share ``value`` (float, held by ``src``; others pass None) at scale 2^scale_bits."""
    from crypten.mpc.primitives import ArithmeticSharedTensor

    bits = session.fp.frac_bits if scale_bits is None else scale_bits
    if session.rank == src:
        if value is None or tuple(value.shape) != tuple(shape):
            got = None if value is None else tuple(value.shape)
            raise ConfigError(expected_got("shape of the value to share", tuple(shape), got))
    if session.world_size == 1:
        return torch.round(value.to(torch.float64) * (1 << bits)).to(torch.int64)
    przs = ArithmeticSharedTensor.PRZS(torch.Size(shape)).share
    if session.rank == src:
        przs = przs + torch.round(value.to(torch.float64) * (1 << bits)).to(torch.int64)
    return przs


def held_by_party0(session, encoded: torch.Tensor) -> torch.Tensor:
    """A public ring value (already encoded, int64) as a trivial sharing: party 0 holds it, the
    others hold zeros of its shape.  The one place that decides who holds a public constant."""
    return encoded if session.rank == 0 else torch.zeros_like(encoded)


def public(session, value: torch.Tensor | float, scale_bits: int | None = None) -> torch.Tensor:
    """A public value as a (trivial) sharing at scale 2^scale_bits (party 0 holds it)."""
    bits = session.fp.frac_bits if scale_bits is None else scale_bits
    enc = torch.round(torch.as_tensor(value, dtype=torch.float64) * (1 << bits)).to(torch.int64)
    return held_by_party0(session, enc)


def add_public(session, x_shared: torch.Tensor, value: torch.Tensor | float) -> torch.Tensor:
    """``[x] + c`` for public ``c`` (encoded at scale 2^f): party 0 adds it."""
    return x_shared + public(session, value)
