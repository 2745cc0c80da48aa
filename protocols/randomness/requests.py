"""Requests for correlated randomness: one small frozen type per kind, all sizes public.

* :class:`ProductRequest` (``op`` MUL or MATMUL): shares of ``a``, ``b`` and ``c = a * b``
  (broadcasting) or ``c = a @ b``, uniformly random in Z_{2^64}.
* :class:`AndRequest`: XOR shares of ``a``, ``b`` and ``c = a & b`` (binary AND gates).
* :class:`WrapsRequest`: shares of a random ``r`` and of ``theta_r``, the number of times the
  shares of ``r`` wrap around 2^64 (truncation for more than two parties).
* :class:`BitRequest`: XOR shares (0/1) of a random bit ``r`` and arithmetic shares of the same
  ``r`` at scale 1 (B2A conversion).
* :class:`MaskRequest`: shares of a random ``a``, the one mask of an operand that is opened once
  and multiplied several times.  Nothing from the dealer.
* :class:`MaskProductRequest`: shares of ``c = op(a, b)`` (``a @ b^T`` for MATMUL when
  ``transpose_b``) where ``a`` and ``b`` are the masks of the :class:`MaskRequest` s ``back_a``
  and ``back_b`` positions earlier in the same request list (equal for a square).

Who answers them: :class:`protocols.randomness.provider.RandomnessProvider` (one method per kind).
On the
wire to the dealer a request travels as the plain tuple of :meth:`wire` (strings and integers:
CrypTen's restricted unpickler accepts nothing else); :func:`from_wire` reads it back.
"""

from __future__ import annotations

import enum
import functools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

import torch

from protocols.errors import ProtocolError

Size = tuple[int, ...]


class Op(enum.Enum):
    """A bilinear product of two operands (Beaver triples exist for exactly these)."""

    MUL = "mul"  # elementwise, broadcasting
    MATMUL = "matmul"  # (.., n, k) @ (.., k, m) -> (.., n, m)


# The one table from a product's name to its function (never getattr(torch, name)).
BILINEAR = {Op.MUL: torch.mul, Op.MATMUL: torch.matmul}


def _size(size) -> Size:
    return tuple(int(d) for d in size)


@functools.lru_cache(maxsize=4096)
def broadcast(a: Size, b: Size) -> Size:
    """torch's broadcasting of two shapes, cached (a few hundred distinct shapes per run)."""
    return tuple(torch.broadcast_shapes(a, b))


def product_size(op: Op, a: Size, b: Size, transpose_b: bool = False) -> Size:
    """Size of ``op(a, b)``: broadcasting for MUL; (.., n, k) @ (.., k, m) -> (.., n, m) for
    MATMUL of 2-D (or batched) operands, ``b`` transposed first when ``transpose_b``."""
    if op is Op.MUL:
        return broadcast(a, b)
    if transpose_b and len(b) >= 2:
        b = b[:-2] + (b[-1], b[-2])
    if len(a) < 2 or len(b) < 2 or a[-1] != b[-2]:
        raise ProtocolError(f"matmul triple: shapes {a} and {b} do not chain")
    return broadcast(a[:-2], b[:-2]) + (a[-2], b[-1])


_MASK_PRODUCT_KIND = {Op.MUL: "maskmul", Op.MATMUL: "maskmatmul"}  # names on the wire


def _freeze_sizes(req, *names: str) -> None:
    for name in names:
        object.__setattr__(req, name, _size(getattr(req, name)))


@dataclass(frozen=True)
class _OneSize:
    """A request for ``size`` values of one kind (``KIND`` on the wire)."""

    KIND: ClassVar[str]
    size: Size

    def __post_init__(self) -> None:
        _freeze_sizes(self, "size")

    def output_size(self) -> Size:
        return self.size

    def wire(self) -> tuple:
        return (self.KIND, self.size)


class MaskRequest(_OneSize):
    KIND = "mask"

    def output_size(self) -> Size:
        return (0,)  # the dealer sends nothing for a mask


class WrapsRequest(_OneSize):
    KIND = "wraps"


class BitRequest(_OneSize):
    KIND = "bit"


@dataclass(frozen=True)
class ProductRequest:
    op: Op
    size_a: Size
    size_b: Size

    def __post_init__(self) -> None:
        _freeze_sizes(self, "size_a", "size_b")

    def output_size(self) -> Size:
        return product_size(self.op, self.size_a, self.size_b)

    def wire(self) -> tuple:
        return (self.op.value, self.size_a, self.size_b)


@dataclass(frozen=True)
class AndRequest:
    size_a: Size
    size_b: Size

    def __post_init__(self) -> None:
        _freeze_sizes(self, "size_a", "size_b")

    def output_size(self) -> Size:
        if self.size_a != self.size_b:
            raise ProtocolError(f"and triple: shapes {self.size_a} and {self.size_b} differ")
        return self.size_a

    def wire(self) -> tuple:
        return ("and", self.size_a, self.size_b)


@dataclass(frozen=True)
class MaskProductRequest:
    op: Op
    size_a: Size
    size_b: Size
    back_a: int
    back_b: int
    transpose_b: bool = False  # MATMUL only: c = a @ b^T

    def __post_init__(self) -> None:
        _freeze_sizes(self, "size_a", "size_b")
        object.__setattr__(self, "back_a", int(self.back_a))
        object.__setattr__(self, "back_b", int(self.back_b))
        object.__setattr__(self, "transpose_b", bool(self.transpose_b))

    @property
    def kind(self) -> str:
        return _MASK_PRODUCT_KIND[self.op]

    def output_size(self) -> Size:
        return product_size(self.op, self.size_a, self.size_b, self.transpose_b)

    def combine(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """``c`` from the two referenced masks (in the clear: the dealer's or party 0's side)."""
        if self.op is Op.MUL:
            return a * b
        return a @ (b.transpose(-2, -1) if self.transpose_b else b)

    def wire(self) -> tuple:
        head = (self.kind, self.size_a, self.size_b, self.back_a, self.back_b)
        return head + (int(self.transpose_b),) if self.op is Op.MATMUL else head


Request = MaskRequest | ProductRequest | AndRequest | WrapsRequest | BitRequest | MaskProductRequest


def from_wire(item: tuple) -> Request:
    """The request a plain tuple from :meth:`wire` stands for (the dealer's side)."""
    kind, *rest = item
    try:
        if kind in ("mul", "matmul"):
            return ProductRequest(Op(kind), *rest)
        if kind in ("maskmul", "maskmatmul"):
            return MaskProductRequest(Op(kind[len("mask") :]), *rest)
        one = {"mask": MaskRequest, "wraps": WrapsRequest, "bit": BitRequest, "and": AndRequest}
        return one[kind](*rest)
    except (KeyError, TypeError, ValueError):
        raise ProtocolError(f"unknown randomness request {str(item)[:80]}") from None


def check_mask_references(requests: Sequence[Request]) -> None:
    """Check that every :class:`MaskProductRequest` names two :class:`MaskRequest` s earlier in
    the same list, of its operand sizes.

    Raises:
        ProtocolError: a bug in the caller (never data-dependent); nothing was drawn.
    """
    for pos, req in enumerate(requests):
        if not isinstance(req, MaskProductRequest):
            continue
        for size, back in ((req.size_a, req.back_a), (req.size_b, req.back_b)):
            ref = pos - back
            if (
                not (0 < back <= pos)
                or not isinstance(requests[ref], MaskRequest)
                or requests[ref].size != size
            ):
                raise ProtocolError(
                    f"{req.kind} at {pos}: expected a mask of size {size} {back} requests back"
                )
