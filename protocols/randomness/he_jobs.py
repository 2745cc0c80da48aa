"""The shapes of HE product jobs (:mod:`protocols.randomness.he_products`): what one party
encrypts, what the other answers, and how many ciphertexts each side makes per plaintext prime.
Pure arithmetic on public sizes: both parties compute the same counts (a peer's message of
another count is refused before it is read).

``N`` below is the ring degree (the slots of one ciphertext).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass


@dataclass(frozen=True)
class _SlotJob:
    """``n`` elements in SIMD slots (``N`` per ciphertext per prime), ``reps`` products each."""

    n: int
    reps: int = 1
    one_prime = False


class MulJob(_SlotJob):
    """Elementwise ring products of ``n`` elements with ``reps`` right operands:
    ``(n,) * (n, reps) -> (n, reps)`` (element-major; ``reps = 1``: ``(n,) * (n,) -> (n,)``).
    The left operand is encrypted ONCE for all ``reps`` products.  Sides: ``ceil(n/N)``
    ciphertexts in, ``ceil(n/N) reps`` out."""

    bound_bits = 128


class DualJob(_SlotJob):
    """BOTH cross terms of ``reps`` elementwise products ``u * v_q`` in one answer, so each
    element is made in one direction.  The encrypting party A sends ``Enc(u_A)`` and
    ``Enc(v_A,q)`` (its operand ``x``: (n, 1 + reps), column 0 ``u``); the other, B, answers
    ``Enc(u_A) v_B,q + Enc(v_A,q) u_B`` with its own (``y``: (n, 1 + reps), same layout), so
    the shares add to ``u_A v_B,q + v_A,q u_B``: (n, reps), element-major.  Sides:
    ``ceil(n/N) (1 + reps)`` ciphertexts in, ``ceil(n/N) reps`` out.  The sum of two products
    is below ``2^129``."""

    bound_bits = 129


@dataclass(frozen=True)
class BitJob:
    """Elementwise products of ``n`` bits (0/1): ``(n,) * (n,) -> (n,)`` at scale 1; slots of
    the first prime only (a product of bits is below 2)."""

    n: int
    reps = 1
    bound_bits = 1
    one_prime = True


@dataclass(frozen=True)
class MatJob:
    """``(n, k) @ (k, m) -> (n, m)`` ring matrix product (coefficient packing, blocks of
    :func:`mat_blocks`)."""

    n: int
    k: int
    m: int
    one_prime = False


Job = MulJob | DualJob | BitJob | MatJob


@functools.lru_cache(maxsize=1024)
def mat_blocks(n: int, k: int, m: int, degree: int) -> tuple[int, int, int]:
    """Block sizes ``(n_b, k_b, m_b)`` with ``n_b k_b m_b + k_b <= degree`` that minimize the
    ciphertexts sent (A's ``ceil(n/n_b) ceil(k/k_b)`` plus B's ``ceil(n/n_b) ceil(m/m_b)``)."""
    best, choice = None, None
    for kb in sorted({min(k, degree // 2)} | {-(-k // q) for q in range(1, k + 1)}):
        if kb > degree // 2:
            continue
        for nb in range(1, n + 1):
            mb = min(m, (degree - kb) // (nb * kb))
            if mb < 1:
                break
            rows = -(-n // nb)
            cost = rows * -(-k // kb) + rows * -(-m // mb)
            if best is None or cost < best:
                best, choice = cost, (nb, kb, mb)
    return choice


def ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def count(job: Job, side: str, degree: int) -> int:
    """Ciphertexts per prime for ``job``: ``side`` "in" (the encrypting party's) or "out" (the
    answering party's)."""
    if isinstance(job, MatJob):
        nb, kb, mb = mat_blocks(job.n, job.k, job.m, degree)
        return ceil_div(job.n, nb) * ceil_div(
            job.k if side == "in" else job.m, kb if side == "in" else mb
        )
    blocks = ceil_div(job.n, degree)
    if side == "out":
        return blocks * job.reps
    return blocks * (1 + job.reps if isinstance(job, DualJob) else 1)


def out_size(job: Job) -> int:
    """Ring elements of the job's product (each party's share)."""
    return job.n * job.m if isinstance(job, MatJob) else job.n * job.reps


def bound(job: Job) -> int:
    """Exclusive bound on one output element's integer value (before reduction)."""
    return job.k << 128 if isinstance(job, MatJob) else 1 << job.bound_bits
