"""Gaussian noise that no single party knows: every data party adds its own part of it.

Target: ``z ~ N(0, s^2)`` per element (DP-SGD: ``s = sigma * C``), with p data parties.

1. Party i draws ``z_i ~ N(0, s^2 / (p - 1))`` elementwise from its OWN generator (the OS's
   CSPRNG, ``os.urandom``, in real runs; a seeded ``torch.Generator`` only in tests) and rounds
   it to the fixed-point grid 2^-f.
2. ``[z] = sum_i share(z_i, src=i)``: p PRZS sharings, ZERO rounds, nothing opened.

Result: ``z = sum_i z_i ~ N(0, p/(p-1) s^2)``.  Calibration: a party j that knows ``z_j`` and
subtracts it from whatever it later learns still faces ``sum_{i != j} z_i ~ N(0, s^2)``, the
full target.  Outside observers face ``p/(p-1) s^2`` (1.5x the variance for p = 3, 2x for
p = 2): the cost of trusting no single party with the noise.  p = 1 (in-process unit tests
only): one draw of variance s^2.

Threat covered: any ONE semi-honest data party (the dealer sees no value that depends on z).
Not covered: coalitions; two colluding parties of p know 2/(p-1) of the variance (with p = 3,
all of it), so the guarantee against a coalition of k parties needs ``s^2 (p-1)/(p-k)`` per
draw, which this module does not do.  Malicious parties (one could add no noise at all; the
others' noise still gives s^2 against the *others*, but not against an outsider if two skip).

Caveats (stated, not bounded here):

* Sampling: the accountant assumes an exact continuous Gaussian.  Real runs use Box-Muller on
  53-bit uniforms from ``os.urandom`` (tails cut at |z| <= 8.6 standard deviations, mass
  ~1e-17); each draw is then rounded to 2^-f (1.5e-5), far coarser than float64's spacing,
  which removes the low-order-bit pattern of Mironov's attack on floating-point Laplace/Gaussian
  samplers (CCS 2012).  The released noise is a sum of (p-1) or p *rounded* Gaussians, not
  exactly a Gaussian; a discrete Gaussian sampler (Canonne, Kamath, Steinke 2020) would make the
  accounting exact.
* Fixed point: every value is on the grid 2^-f, so rounding adds variance <= 2^-2f / 12 per
  draw (negligible) and does not depend on the data.

Public: the shape, s, p.  Secret: every z_i (to all but its owner) and z (to everyone).
"""

from __future__ import annotations

import math
import os

import torch


def per_party_std(std_target: float, world_size: int) -> float:
    """Standard deviation of each party's draw: ``s / sqrt(p - 1)`` (``s`` for p = 1)."""
    return std_target / math.sqrt(max(world_size - 1, 1))


def standard_normal(shape: tuple[int, ...], generator: torch.Generator | None) -> torch.Tensor:
    """float64 N(0, 1) draws.  ``generator=None``: Box-Muller on 53-bit uniforms from the OS's
    CSPRNG (``os.urandom``); otherwise ``torch.randn`` from that (seeded, test-only) generator."""
    if generator is not None:
        return torch.randn(shape, generator=generator, dtype=torch.float64)
    n = math.prod(shape)
    raw = torch.frombuffer(bytearray(os.urandom(16 * max(n, 1))), dtype=torch.int64)[: 2 * n]
    u = ((raw >> 11) & ((1 << 53) - 1)).to(torch.float64)  # 53 uniform bits, non-negative
    u1 = (u[:n] + 1.0) / 2.0**53  # (0, 1]: log is finite
    u2 = u[n:] / 2.0**53  # [0, 1)
    return (torch.sqrt(-2.0 * torch.log(u1)) * torch.cos(2.0 * math.pi * u2)).reshape(shape)


def own_draw(
    shape: tuple[int, ...],
    std_target: float,
    world_size: int,
    frac_bits: int,
    generator: torch.Generator | None,
) -> torch.Tensor:
    """This party's z_i (float64, on the 2^-f grid): what step 1 computes."""
    z = standard_normal(shape, generator) * per_party_std(std_target, world_size)
    return torch.round(z * 2.0**frac_bits) / 2.0**frac_bits


def joint_gaussian(
    session, shape: tuple[int, ...], std_target: float, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Shares of ``z = sum_i z_i`` (int64 at scale 2^f), see the module docstring.  Zero rounds.

    generator: THIS party's generator; None (real runs) draws from ``os.urandom``.
    """
    from protocols.arithmetic.sharing import share
    from protocols.errors import ConfigError, expected_got

    if not (std_target >= 0 and math.isfinite(std_target)):
        raise ConfigError(
            expected_got("noise standard deviation", "a finite number >= 0", std_target)
        )
    mine = own_draw(tuple(shape), std_target, session.world_size, session.fp.frac_bits, generator)
    total = None
    for src in range(session.world_size):
        part = share(session, mine if src == session.rank else None, src=src, shape=tuple(shape))
        total = part if total is None else total + part
    return total


def joint_gaussian_plain(
    shape: tuple[int, ...], std_target: float, generators: list[torch.Generator], frac_bits: int
) -> torch.Tensor:
    """The mirror: ``sum_i z_i`` for p = len(generators) simulated parties (float64).  With the
    same generators as the parties' it returns exactly the value :func:`joint_gaussian` shares."""
    p = len(generators)
    return sum(own_draw(tuple(shape), std_target, p, frac_bits, g) for g in generators)
