"""Ring arithmetic between Z_2^64 and a CRT basis of plaintext primes (the HE products' glue).

A homomorphic product is computed modulo each plaintext prime ``t_0 .. t_{L-1}`` (each < 2^60,
SEAL's limit), so an integer ``z`` in ``[0, M)``, ``M = prod t_j``, travels as its residues
``z mod t_j``.  The evaluator hides the exact integer sum ``s`` (``0 <= s < bound``) of the
products under a mask ``r`` drawn uniformly from ``[0, span)`` with ``span >= 2^sigma * bound``
and ``span + bound <= M``, so ``z = s + r`` never wraps modulo ``M``: the decryptor's
``z mod 2^64`` and the evaluator's ``-r mod 2^64`` are additive shares of ``s mod 2^64``,
exactly, and ``z`` is within statistical distance ``bound / span <= 2^-sigma`` of a value
independent of ``s``.

The mask is drawn in mixed radix, ``r = w_0 + w_1 P_1 + .. + w_{L-1} P_{L-1}`` with
``P_j = t_0 .. t_{j-1}``, ``w_j`` uniform below ``t_j`` (the last below ``t_{L-1} - ceil(bound /
P_{L-1})``), so ``span = W P_{L-1}``.  Randomness: ``os.urandom`` with rejection sampling.

All arrays are numpy ``uint64`` (ring elements are their two's-complement bits); products
modulo a prime by a constant use Shoup's precomputed quotient (:func:`mulmod`).
"""

from __future__ import annotations

import os

import numpy as np

from protocols.errors import ConfigError, expected_got

U64 = np.uint64
_PIECE = 1 << 13


def uniform_below(bound: int, n: int) -> np.ndarray:
    """``n`` independent values uniform in ``[0, bound)`` (``2 <= bound <= 2^64``), from
    ``os.urandom`` by rejection (each try accepted with probability > 1/2)."""
    bits = (bound - 1).bit_length()
    out = np.empty(n, dtype=U64)
    filled = 0
    while filled < n:
        want = n - filled
        draw = np.frombuffer(os.urandom(8 * (2 * want + 16)), dtype=U64)
        if bits < 64:
            draw = draw & U64((1 << bits) - 1)
        if bound < (1 << 64):
            draw = draw[draw < U64(bound)]
        take = min(want, draw.size)
        out[filled : filled + take] = draw[:take]
        filled += take
    return out


def random_ring(n: int) -> np.ndarray:
    """``n`` uniform elements of Z_2^64 (as uint64) from ``os.urandom``."""
    return np.frombuffer(os.urandom(8 * n), dtype=U64).copy()


def mulhi(a: np.ndarray, c: int) -> np.ndarray:
    """``floor(a * c / 2^64)`` elementwise for uint64 ``a`` and ``0 <= c < 2^64`` (32-bit limbs:
    every partial product and sum fits 64 bits)."""
    lo32 = U64(0xFFFFFFFF)
    a0, a1 = a & lo32, a >> U64(32)
    c0, c1 = U64(c & 0xFFFFFFFF), U64(c >> 32)
    a1c0, a0c1 = a1 * c0, a0 * c1
    mid = ((a0 * c0) >> U64(32)) + (a1c0 & lo32) + (a0c1 & lo32)
    return a1 * c1 + (a1c0 >> U64(32)) + (a0c1 >> U64(32)) + (mid >> U64(32))


def mulmod(a: np.ndarray, c: int, t: int) -> np.ndarray:
    """``a * c mod t`` elementwise, for uint64 ``a`` and ``0 <= c < t < 2^63`` (Shoup's
    multiplication by a constant: with ``c' = floor(c 2^64 / t)`` and ``q = floor(a c' / 2^64)``,
    ``a c - q t`` lies in ``[0, 2t)``, computed modulo 2^64; one conditional subtraction)."""
    if c == 1:
        return a % U64(t)
    flat = a.reshape(-1)
    shoup, out = (c << 64) // t, np.empty_like(flat)
    for s in range(0, flat.size, _PIECE):  # pieces: small temporaries stay in malloc's cache
        x = flat[s : s + _PIECE]
        with np.errstate(over="ignore"):
            r = x * U64(c) - mulhi(x, shoup) * U64(t)
        out[s : s + _PIECE] = np.where(r >= U64(t), r - U64(t), r)
    return out.reshape(a.shape)


class CrtBasis:
    """Plaintext primes ``t_0 .. t_{L-1}`` (pairwise coprime, each < 2^60) and the masks and
    reconstruction of integers below their product ``M``."""

    def __init__(self, primes: tuple[int, ...], sigma: int) -> None:
        self.primes = tuple(int(t) for t in primes)
        self.sigma = int(sigma)
        self.radix = [1]  # P_j = t_0 .. t_{j-1}
        for t in self.primes[:-1]:
            self.radix.append(self.radix[-1] * t)
        self.modulus = self.radix[-1] * self.primes[-1]

    def mask_span(self, bound: int) -> tuple[int, int]:
        """``(W, span)``: the last mixed-radix digit's range and the mask range for sums below
        ``bound``.

        Raises:
            ConfigError: the basis is too small for ``bound`` with ``sigma`` bits of slack."""
        last = self.radix[-1]
        w = self.primes[-1] - -(-bound // last)
        span = w * last
        if w < 1 or span < (bound << self.sigma):
            raise ConfigError(
                expected_got(
                    "HE plaintext primes' product",
                    f">= 2^{self.sigma} x {bound.bit_length()}-bit sums",
                    f"{self.modulus.bit_length()} bits",
                    "use more plaintext primes ([he] primes in the run file)",
                )
            )
        return w, span

    def draw_mask(self, bound: int, n: int) -> tuple[list[np.ndarray], np.ndarray]:
        """A mask ``r`` uniform in ``[0, span)`` per element: its residues modulo each prime
        (list of L uint64 arrays, shape (n,)) and ``-r mod 2^64`` (the evaluator's share)."""
        w_last, _ = self.mask_span(bound)
        digits = [uniform_below(t, n) for t in self.primes[:-1]] + [uniform_below(w_last, n)]
        residues = []
        for i, t in enumerate(self.primes):
            acc = np.zeros(n, dtype=U64)
            for j in range(i + 1):
                term = mulmod(digits[j] % U64(t), self.radix[j] % t, t)
                acc = (acc + term) % U64(t)
            residues.append(acc)
        with np.errstate(over="ignore"):
            low = np.zeros(n, dtype=U64)
            for j, d in enumerate(digits):
                low = low + d * U64(self.radix[j] % (1 << 64))
            return residues, (U64(0) - low)

    def to_ring(self, residues: list[np.ndarray]) -> np.ndarray:
        """``z mod 2^64`` for the ``z`` in ``[0, M)`` with the given residues (Garner's
        mixed-radix reconstruction, uint64 arrays of one shape)."""
        digits = [residues[0].astype(U64)]
        for i in range(1, len(self.primes)):
            t = self.primes[i]
            acc = np.zeros_like(digits[0])
            for j, v in enumerate(digits):
                acc = (acc + mulmod(v % U64(t), self.radix[j] % t, t)) % U64(t)
            diff = (residues[i].astype(U64) + U64(t) - acc) % U64(t)
            digits.append(mulmod(diff, pow(self.radix[i] % t, -1, t), t))
        with np.errstate(over="ignore"):
            out = np.zeros_like(digits[0])
            for j, v in enumerate(digits):
                out = out + v * U64(self.radix[j] % (1 << 64))
        return out

    def residues(self, ring: np.ndarray) -> list[np.ndarray]:
        """Each ring element (uint64, read as an integer in ``[0, 2^64)``) modulo each prime."""
        return [ring % U64(t) for t in self.primes]
