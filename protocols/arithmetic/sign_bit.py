"""Sign bits of arithmetic shares: shares of ``[x < 0]`` for every element of ``[x]`` at once.

``x`` is an int64 in Z_{2^64} read as two's complement, additively shared by p parties
(``x = sum_i x_i mod 2^64``).  Output: additive shares of the bit ``msb(x)`` at scale 1 (an
integer 0 or 1, usable as a multiplication operand with shift 0).  Shapes: any; one call
handles every element of ``x`` in the same rounds.

1. A2B, no communication: party i's share ``x_i`` is a number held in binary by party i alone
   (the other parties' XOR shares of it are 0).
2. Carry-save adders reduce the p numbers to two, ``s + t = x (mod 2^64)``::

       CSA(u, v, w) = (u ^ v ^ w,  maj(u, v, w) << 1),   maj = ((u ^ w) & (v ^ w)) ^ w

   ONE AND round per level, every CSA of a level batched: p = 2: no level, 3: 1, 4: 2, 5: 3.
3. ``msb(s + t) = s_63 ^ t_63 ^ c_63`` with ``c_63`` the carry into bit 63, from a
   Kogge-Stone prefix over all 64 bit positions of the word at once::

       G = s & t,  P = s ^ t;   for k in 1, 2, 4, 8, 16, 32:  G ^= P & (G << k);  P &= P << k

   (``^`` may replace ``|``: the two terms are never both 1.)  1 + 6 AND rounds;
   ``c_63`` is bit 62 of G.
4. B2A with a dealer pair (``[r]_B``, ``[r]_A``) of one random bit r: open ``c = msb ^ r``
   (ONE round), then ``[msb]_A = c + (1 - 2c) [r]_A`` (c public).

AND of XOR shares with a dealer triple ``(a, b, c = a & b)``: open ``d = x ^ a``,
``e = y ^ b`` (every AND of a level in ONE exchange), ``z = c ^ (d & b) ^ (e & a) ^ (d & e)``
(the last term by party 0 only).

Security: every opened value is XOR-masked by fresh uniform dealer randomness (a, b; r), so
it is uniform and independent of x.  The dealer's randomness arrives with the rest of the
step's in the step's one bulk round trip (:mod:`protocols.randomness.triples`).

Rounds: p = 3: 1 + 1 + 6 + 1 = 9; p = 2: 8.  CrypTen's own comparison, which this replaces
inside training steps, costs 13 counted rounds plus one dealer round trip per AND level.
Bytes per party and element: 16 per AND per level (two masked words), 8 for the B2A: 216 for
p = 3 (13 ANDs).

**Two elements per word** (``lane_bits=32``), for values the caller knows satisfy
``|x| < 2^31``: then ``x < 0`` is bit 31 of ``x mod 2^32 = sum_i (x_i mod 2^32) mod 2^32``, so
party i's share reduced mod 2^32 is a valid share of it, and two elements share one 64-bit word
(one in bits 0-31, one in bits 32-63).  The circuit is the same with every left shift followed
by a public AND with a lane mask that clears the low k bits of each 32-bit lane (a carry never
crosses into the other element; a public AND is local on XOR shares), and the Kogge-Stone
prefix needs shifts 1..16 only.  Per element: 11 ANDs on half a word + the B2A, 96 bytes where
the full word takes 216, and one round less (p = 3: 8).
"""

from __future__ import annotations

import torch

from protocols.arithmetic.reveal import open_masked
from protocols.arithmetic.sharing import held_by_party0
from protocols.randomness.requests import AndRequest, BitRequest

KOGGE_STONE_SHIFTS = (1, 2, 4, 8, 16, 32)
LANE_BITS = (64, 32)  # elements per word: 1 (any int64) or 2 (|x| < 2^31)


def _signed(word: int) -> int:
    """A 64-bit pattern as the int64 torch stores."""
    return word - (1 << 64) if word >> 63 else word


def _lane_mask(k: int) -> int:
    """Clears the low k bits of both 32-bit lanes: applied after every ``<< k`` on packed words."""
    low = (1 << k) - 1
    return _signed(((1 << 64) - 1) ^ low ^ (low << 32))


def and_many(session, pairs: list[tuple[torch.Tensor, torch.Tensor]]) -> list[torch.Tensor]:
    """XOR shares of ``x & y`` for each pair of same-shape XOR-shared int64 tensors, ONE round."""
    triples = session.triples.fetch([AndRequest(x.shape, y.shape) for x, y in pairs])
    masked = []
    for (x, y), (a, b, _c) in zip(pairs, triples):
        masked += [x ^ a, y ^ b]
    opened = open_masked(session, masked, "and", combine="xor")
    out = []
    for i, (a, b, c) in enumerate(triples):
        d, e = opened[2 * i], opened[2 * i + 1]
        z = c ^ (d & b) ^ (e & a)
        if session.rank == 0:
            z = z ^ (d & e)
        out.append(z)
    return out


def negative_bits(session, x: torch.Tensor, lane_bits: int = 64) -> torch.Tensor:
    """Arithmetic shares (scale 1) of ``[x < 0]`` for shares ``x`` (int64, any shape).

    lane_bits: 64 (exact for every int64) or 32 (two elements per word; exact only where the
        caller guarantees ``|x| < 2^31``: see the module docstring).
    """
    if lane_bits not in LANE_BITS:
        from protocols.errors import ProtocolError

        raise ProtocolError(f"internal: sign-bit lanes of {lane_bits} bits (64 or 32)")
    shape = x.shape
    flat = x.reshape(-1)
    p = session.world_size
    if p == 1:  # one party: its share is the value
        return (flat < 0).long().reshape(shape)
    n = flat.numel()
    packed = lane_bits == 32
    if packed:  # element i in the low lane of word i, element h + i in the high lane
        h = (n + 1) // 2
        hi = torch.zeros(h, dtype=torch.int64)
        hi[: n - h] = flat[h:]
        word = (flat[:h] & 0xFFFFFFFF) | (hi << 32)
    else:
        word = flat
    shifts = tuple(k for k in KOGGE_STONE_SHIFTS if k < lane_bits)

    def shl(t: torch.Tensor, k: int) -> torch.Tensor:
        return (t << k) & _lane_mask(k) if packed else t << k

    zero = torch.zeros_like(word)
    nums = [word if i == session.rank else zero for i in range(p)]
    while len(nums) > 2:  # carry-save levels
        k = len(nums) - len(nums) % 3
        groups = [nums[i : i + 3] for i in range(0, k, 3)]
        majs = and_many(session, [(u ^ w, v ^ w) for u, v, w in groups])
        carried = [y for (u, v, w), m in zip(groups, majs) for y in (u ^ v ^ w, shl(m ^ w, 1))]
        nums = carried + nums[k:]
    s, t = nums
    prop = s ^ t
    (gen,) = and_many(session, [(s, t)])
    for k in shifts:
        if k < shifts[-1]:
            g_new, prop_new = and_many(session, [(prop, shl(gen, k)), (prop, shl(prop, k))])
            prop = prop_new
        else:  # the last level needs no P
            (g_new,) = and_many(session, [(prop, shl(gen, k))])
        gen = gen ^ g_new
    top = lane_bits - 1  # the sign bit of the (low) lane; the high lane's is 32 above
    msb = ((s ^ t) >> top) ^ (gen >> (top - 1))  # XOR shares in bit 0 (and bit 32 if packed)
    msb = torch.cat([msb & 1, (msb >> 32) & 1])[:n] if packed else msb & 1
    ((r_bin, r_arith),) = session.triples.fetch([BitRequest(flat.shape)])
    (c,) = open_masked(session, [msb ^ r_bin], "b2a", combine="xor")
    bit = (1 - 2 * c) * r_arith + held_by_party0(session, c)  # [r XOR c] = r + c - 2 r c
    return bit.reshape(shape)


def nonnegative_bits(session, x: torch.Tensor) -> torch.Tensor:
    """Arithmetic shares (scale 1) of ``[x >= 0]``."""
    neg = negative_bits(session, x)
    return held_by_party0(session, torch.ones_like(neg)) - neg
