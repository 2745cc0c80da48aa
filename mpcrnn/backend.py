"""The arithmetic the cells need, on plaintext tensors or on secret shares.

The cells (:mod:`mpcrnn.cells`) are written once against this interface, so the plaintext
mirror and the MPC run execute the same sequence of operations with the same polynomials.
Linear operations (``+``, ``-``, indexing, ``cat``, ``sum``, transpose) act directly on the
values: on shares they are local.  Everything non-linear goes through a backend method that
takes a *list* of independent operations, which the shared backend runs in one round.

Values: :class:`PlainBackend` uses float64 tensors; :class:`SharedBackend` uses int64 shares at
scale 2^f (see :mod:`protocols.arithmetic.fixed_point`).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from mpcrnn.config import ActivationConfig
from protocols.arithmetic.multiply import Product
from protocols.arithmetic.polynomial import (
    OddPolynomial,
    fit_tanh,
    odd_chebyshev_sum,
    sigmoid_from_tanh,
)
from protocols.randomness.requests import BILINEAR


def _product(pair) -> Product:
    """A :class:`protocols.arithmetic.multiply.Product`, or the cells' ``(op, x, y[, shift])`` for
    one."""
    return pair if isinstance(pair, Product) else Product.of(*pair)


class Activations:
    """Per-column activation tables: 's' = sigmoid, 't' = tanh, for a gate layout string."""

    def __init__(self, cfg: ActivationConfig) -> None:
        self.cfg = cfg
        self.tanh: OddPolynomial = fit_tanh(cfg.degree, cfg.bound)
        self.sigmoid: OddPolynomial = sigmoid_from_tanh(self.tanh)
        self._cache: dict = {}

    def tables(self, layout: str, hidden: int):
        """(Chebyshev coeffs (K, G), offsets (G,), bounds (G,), sigmoid mask (G,)) for a layout like
        'sst' (GRU r,z,n) with ``hidden`` columns per letter."""
        key = (layout, hidden)
        if key not in self._cache:
            polys = [self.sigmoid if c == "s" else self.tanh for c in layout]
            coeffs = torch.tensor([p.coeffs for p in polys], dtype=torch.float64).T  # (K, len)
            coeffs = coeffs.repeat_interleave(hidden, dim=1)
            offsets = torch.tensor(
                [p.offset for p in polys], dtype=torch.float64
            ).repeat_interleave(hidden)
            bounds = torch.tensor([p.bound for p in polys], dtype=torch.float64).repeat_interleave(
                hidden
            )
            is_sig = torch.tensor([c == "s" for c in layout]).repeat_interleave(hidden)
            self._cache[key] = (coeffs, offsets, bounds, is_sig)
        return self._cache[key]


class PlainBackend:
    """float64 torch; ``exact=True`` uses torch.sigmoid/tanh instead of the polynomials."""

    shared = False

    def __init__(self, act_cfg: ActivationConfig) -> None:
        self.acts = Activations(act_cfg)
        self.exact = act_cfg.exact
        self.max_abs_preactivation = 0.0  # guard evidence: largest |x| fed to an activation

    def begin_step(self, key, next_key=None) -> None:
        pass

    def end_step(self) -> None:
        pass

    def mul_many(self, pairs: Sequence[tuple]) -> list[torch.Tensor]:
        """Each ("mul" | "matmul", x, y) or Product: x * y or x @ y."""
        return [BILINEAR[p.op](p.x, p.y) for p in map(_product, pairs)]

    def fixed_operand(self, w: torch.Tensor, uses) -> torch.Tensor:
        return w

    def matmul_fixed(self, x: torch.Tensor, w: torch.Tensor, transpose: bool) -> torch.Tensor:
        return x @ (w.t() if transpose else w)

    def act_many(self, items: Sequence[tuple[torch.Tensor, str, int]]) -> list[torch.Tensor]:
        out = []
        for x, layout, hidden in items:
            coeffs, offsets, bounds, is_sig = self.acts.tables(layout, hidden)
            ratio = (x.abs() / bounds).max().item() if x.numel() else 0.0
            self.max_abs_preactivation = max(self.max_abs_preactivation, ratio)
            if self.exact:
                out.append(torch.where(is_sig, torch.sigmoid(x), torch.tanh(x)))
            else:  # the same Chebyshev expansion as on shares, per column
                u = x / bounds
                out.append(odd_chebyshev_sum(u, coeffs, offsets + torch.zeros_like(x)))
        return out

    def const(self, value, like: torch.Tensor) -> torch.Tensor:
        return torch.full_like(like, float(value))

    def add_const(self, x: torch.Tensor, value) -> torch.Tensor:
        return x + value

    def lincomb_many(
        self, combos: Sequence[Sequence[tuple[float, torch.Tensor]]]
    ) -> list[torch.Tensor]:
        return [sum(c * v for c, v in combo) for combo in combos]

    def clip_value(self, x: torch.Tensor, c: float) -> torch.Tensor:
        return x.clamp(-c, c)

    def masked_sign(self, g: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
        """m * (2 [g >= 0] - 1): +-1 where the 0/1 mask m is 1 (sign(0) = +1, as on shares),
        0 elsewhere."""
        return m * torch.where(g >= 0, 1.0, -1.0).to(g.dtype)

    def clip_norm(self, x: torch.Tensor, c: float) -> torch.Tensor:
        return self.clip_rows(x.reshape(1, -1), c).reshape(x.shape)

    def clip_rows(self, x: torch.Tensor, c: float, ratio_bits: int | None = None) -> torch.Tensor:
        from protocols.arithmetic.norm_clip import RATIO_BITS, clip_rows_to_norm_plain

        return clip_rows_to_norm_plain(x, c, ratio_bits or RATIO_BITS)

    def softmax(self, logits: torch.Tensor) -> torch.Tensor:
        return torch.softmax(logits, dim=1)

    def adam_zeros(self, flat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return torch.zeros_like(flat), torch.zeros_like(flat)

    def adam_moments(self, g, m, v, c1: float, c2: float, v_shift: int = 0):
        """Bias-corrected moments: m + c1 (g - m), v + c2 (g^2 - v) (exact, float64; ``v_shift``
        is a fixed-point matter)."""
        from protocols.arithmetic.adam import moments_plain

        return moments_plain(g, m, v, c1, c2)

    def adam_direction(self, m, v, lr: float, eps: float, grad_bound: float, v_shift: int = 0):
        """lr m / (sqrt(v) + eps): torch.optim.Adam's step on the bias-corrected moments."""
        from protocols.arithmetic.adam import direction_plain

        return direction_plain(m, v, lr, eps)


class SharedBackend:
    """int64 shares; every call is one batched protocol (see each method's round count)."""

    shared = True

    def __init__(self, session, act_cfg: ActivationConfig) -> None:
        if act_cfg.exact:
            from protocols.errors import ConfigError

            raise ConfigError("exact activations exist only in plaintext; MPC uses the polynomials")
        self.s = session
        self.acts = Activations(act_cfg)

    def begin_step(self, key, next_key=None) -> None:
        """A training step of public shape ``key`` starts: with a recorded plan for this key, all
        of its triples come from the dealer now, in one round trip.  ``next_key``: the next
        step's public shape (None if no step follows): its triples are asked for now, so the
        dealer computes them while this step runs."""
        self.s.triples.begin(key, next_key)

    def end_step(self) -> None:
        self.s.triples.end()

    def mul_many(self, pairs: Sequence[tuple]) -> list[torch.Tensor]:
        """1 opening (+1 truncation gather for > 2 parties)."""
        from protocols.arithmetic.multiply import multiply_many

        return multiply_many(self.s, [_product(p) for p in pairs])

    def fixed_operand(self, w: torch.Tensor, uses):
        """``w`` as the right operand of the products ``uses`` ((shape, transpose) in order):
        opened once for all of them (:class:`protocols.arithmetic.multiply.FixedOperand`)."""
        from protocols.arithmetic.multiply import FixedOperand

        return FixedOperand(self.s, w, uses)

    def matmul_fixed(self, x: torch.Tensor, fixed, transpose: bool) -> torch.Tensor:
        """``x @ W^T`` or ``x @ W``: 1 opening (+1 truncation gather for > 2 parties)."""
        from protocols.arithmetic.multiply import multiply_fixed

        return multiply_fixed(self.s, x, fixed, transpose)

    def act_many(self, items: Sequence[tuple[torch.Tensor, str, int]]) -> list[torch.Tensor]:
        """One shared power tree for all items: 2*ceil(log2 degree)+1 rounds (> 2 parties)."""
        from protocols.arithmetic.polynomial import evaluate_many

        xs, cs, offs, bds = [], [], [], []
        for x, layout, hidden in items:
            coeffs, offsets, bounds, _ = self.acts.tables(layout, hidden)
            xs.append(x)
            cs.append(coeffs)
            offs.append(offsets)
            bds.append(bounds)
        return evaluate_many(self.s, xs, cs, offs, bds)

    def const(self, value, like: torch.Tensor) -> torch.Tensor:
        from protocols.arithmetic.sharing import public

        return public(self.s, torch.full(like.shape, float(value), dtype=torch.float64))

    def add_const(self, x: torch.Tensor, value) -> torch.Tensor:
        from protocols.arithmetic.sharing import add_public

        return add_public(self.s, x, value)

    def lincomb_many(
        self, combos: Sequence[Sequence[tuple[float, torch.Tensor]]]
    ) -> list[torch.Tensor]:
        """sum_i c_i [v_i] with public c_i: local at scale 2^(2f), then ONE batched truncation."""
        from protocols.arithmetic.truncation import truncate_many

        sums = []
        for combo in combos:
            acc = None
            for c, v in combo:
                term = v * int(self.s.fp.encode(c))
                acc = term if acc is None else acc + term
            sums.append(acc)
        return truncate_many(self.s, sums)

    def clip_value(self, x: torch.Tensor, c: float) -> torch.Tensor:
        """clamp(x, -c, c) = x - relu(x - c) + relu(-x - c): one sign-bit circuit over both
        halves at once (:func:`protocols.arithmetic.comparison.relu_shares`, 9 + 1 rounds for 3
        parties)."""
        from protocols.arithmetic.comparison import relu_shares

        lo_hi = torch.cat([self.add_const(x, -c), self.add_const(-x, -c)])
        r = relu_shares(self.s, lo_hi)
        n = x.shape[0]
        return x - r[:n] + r[n:]

    def masked_sign(self, g: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
        """m * (2 [g >= 0] - 1) at scale 2^f: one sign-bit circuit over g (9 rounds for 3 parties),
        then one product with the mask (the bit at scale 1: no truncation).  Exact for every g
        as shared; a g whose true value is within a few 2^-16 of 0 may have been rounded across
        0 by the fixed-point arithmetic before it got here."""
        from protocols.arithmetic.multiply import multiply_many
        from protocols.arithmetic.sign_bit import nonnegative_bits

        bits = nonnegative_bits(self.s, g)
        (mb,) = multiply_many(self.s, [Product.mul(m, bits, 0)])
        return 2 * mb - m

    def clip_norm(self, x: torch.Tensor, c: float) -> torch.Tensor:
        """x * min(1, c / ||x||) for the whole tensor (torch's clip_grad_norm_ without its 1e-6):
        :func:`protocols.arithmetic.norm_clip.clip_rows_to_norm` on one row (~40 rounds)."""
        return self.clip_rows(x.reshape(1, -1), c).reshape(x.shape)

    def clip_rows(self, x: torch.Tensor, c: float, ratio_bits: int | None = None) -> torch.Tensor:
        """Each row of (R, D) to norm <= c, all rows in the same rounds
        (protocols.arithmetic.norm_clip);
        rows above 2^(ratio_bits/2) c are zeroed."""
        from protocols.arithmetic.norm_clip import RATIO_BITS, clip_rows_to_norm

        return clip_rows_to_norm(self.s, x, c, ratio_bits or RATIO_BITS)

    def softmax(self, logits: torch.Tensor) -> torch.Tensor:
        """Exact row max (sign-bit circuit), then batched exp and bounded reciprocal
        (protocols.arithmetic.softmax)."""
        from protocols.arithmetic.softmax import softmax_rows

        return softmax_rows(self.s, logits)

    def adam_zeros(self, flat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """m^ at 2^f, v^ at 2^(2f - v_shift) (protocols.arithmetic.adam): zero shares."""
        return torch.zeros_like(flat), torch.zeros_like(flat)

    def adam_moments(self, g, m, v, c1: float, c2: float, v_shift: int = 0):
        """1 opening (g^2, kept at 2^(2f - v_shift)) + 1 truncation gather
        (protocols.arithmetic.adam.moments)."""
        from protocols.arithmetic.adam import moments

        return moments(self.s, g, m, v, c1, c2, v_shift)

    def adam_direction(self, m, v, lr: float, eps: float, grad_bound: float, v_shift: int = 0):
        """[lr m / (sqrt(v) + eps)] on shares, v (at 2^(2f - v_shift)) < v_top(grad_bound)
        (protocols.arithmetic.adam.direction)."""
        from protocols.arithmetic.adam import direction, v_top_for

        return direction(self.s, m, v, lr, eps, v_top_for(grad_bound), v_shift)
