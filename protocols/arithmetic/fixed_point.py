"""Fixed-point encoding in the ring Z_{2^64} (CrypTen's encoding, made explicit).

A real ``v`` is stored as the int64 ``round(v * 2^f)``; arithmetic wraps mod 2^64 silently.
A product of two encoded values carries scale ``2^(2f)`` and must be truncated by ``f`` bits.

Safe range: truncation (local for 2 parties, wrap-counting for more) is correct except with
probability about ``|x| / 2^63`` per element for an element ``x`` at scale ``2^(2f)``
(CrypTen's ``eta_xr``/SecureML failure).  :meth:`FixedPoint.check_range` turns a configuration whose
declared value bound makes that probability or an outright overflow too likely into a
:class:`PrecisionError` before any data is shared.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from protocols.errors import PrecisionError, expected_got

RING_BITS = 64


@dataclass(frozen=True)
class FixedPoint:
    """Fixed-point format.

    frac_bits: fractional bits ``f`` (CrypTen's ``encoder.precision_bits``; default 16, resolution
        1.5e-5).  A product before truncation has scale ``2^(2f)``.
    """

    frac_bits: int = 16

    @property
    def scale(self) -> int:
        return 1 << self.frac_bits

    def encode(self, value: torch.Tensor | float) -> torch.Tensor:
        """Real tensor (any float dtype) -> int64 at scale 2^f (round to nearest)."""
        t = torch.as_tensor(value, dtype=torch.float64)
        return torch.round(t * self.scale).to(torch.int64)

    def decode(self, value: torch.Tensor) -> torch.Tensor:
        """int64 at scale 2^f -> float64."""
        return value.to(torch.float64) / self.scale

    def max_safe_product(self, failure_per_element: float = 2.0**-30) -> float:
        """Largest |real| product whose double-scale encoding keeps truncation failure below
        ``failure_per_element`` (failure prob ~ |x| * 2^(2f) / 2^63)."""
        return failure_per_element * 2.0 ** (RING_BITS - 1 - 2 * self.frac_bits)

    def check_range(self, bound: float, what: str, failure_per_element: float = 2.0**-30) -> None:
        """Raise PrecisionError if values up to ``bound`` (as products) are unsafe in this
        format."""
        if not 8 <= self.frac_bits <= 24:
            raise PrecisionError(
                expected_got("fixed-point fractional bits", "8..24", self.frac_bits)
            )
        limit = self.max_safe_product(failure_per_element)
        if bound > limit:
            raise PrecisionError(
                expected_got(
                    f"largest |value| of {what}",
                    f"<= {limit:.3g} with {self.frac_bits} fractional bits "
                    f"(truncation failure <= 2^{math.log2(failure_per_element):.0f} per element)",
                    f"{bound:.3g}",
                    "lower frac_bits, tighten the declared value bounds, or clip gradients harder",
                )
            )
