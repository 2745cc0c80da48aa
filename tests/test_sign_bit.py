"""Sign bits on shares (protocols.arithmetic.sign_bit) against plaintext ``x < 0``: exact, for
every int64.

The circuit is exact (no approximation, no failure probability), so the check is equality on
values that cover the whole ring: 0, +-1, the extremes +-2^63, carries through every bit (2^k,
2^k - 1, -2^k), and random words.  Shares are made with a generator every party seeds alike
(test-only: the point is the arithmetic of the protocol, not secrecy), so each party's share
is uniform and the carries between shares are exercised.
"""

from __future__ import annotations

import pytest
import torch


def _values() -> torch.Tensor:
    g = torch.Generator().manual_seed(11)
    edges = [0, 1, -1, 2, -2, 2**62, -(2**62), 2**63 - 1, -(2**63)]
    edges += (
        [2**k for k in range(63)] + [2**k - 1 for k in range(1, 63)] + [-(2**k) for k in range(63)]
    )
    rand = torch.randint(-(2**63), 2**63 - 1, (400,), generator=g, dtype=torch.int64)
    small = torch.randint(-(2**20), 2**20, (201,), generator=g, dtype=torch.int64)
    return torch.cat([torch.tensor(edges, dtype=torch.int64), rand, small]).reshape(3, -1)


def _values_31() -> torch.Tensor:
    """Every kind of value with |x| < 2^31 (what the packed circuit is for), an odd count; -1
    and 2^31 - 1 in the high lane catch a carry leaking across from the low one."""
    g = torch.Generator().manual_seed(12)
    edges = [0, 1, -1, 2**31 - 1, -(2**31 - 1), -(2**31) + 1]
    edges += (
        [2**k for k in range(31)] + [2**k - 1 for k in range(1, 31)] + [-(2**k) for k in range(31)]
    )
    rand = torch.randint(-(2**31) + 1, 2**31, (301,), generator=g, dtype=torch.int64)
    edges = torch.tensor(edges, dtype=torch.int64)
    return torch.cat([edges, rand, edges])  # the edges in both lanes of the packed words


def _shares(x: torch.Tensor, rank: int, world_size: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(5)
    others = [
        torch.randint(-(2**63), 2**63 - 1, x.shape, generator=g, dtype=torch.int64)
        for _ in range(world_size - 1)
    ]
    return x - sum(others) if rank == 0 else others[rank - 1]


def sign_party(session):
    rank = session.rank
    from protocols.arithmetic.reveal import open_masked
    from protocols.arithmetic.sign_bit import negative_bits, nonnegative_bits

    s = session
    x = _values()
    xs = _shares(x, rank, s.world_size)
    neg = negative_bits(s, xs)
    rounds = (
        s.stats.rounds["and"] + s.stats.rounds["b2a"]
    )  # party 0 also has dealer round trips (no step plan here)
    nonneg = nonnegative_bits(s, xs)
    s.stats.reset()
    packed = negative_bits(s, _shares(_values_31(), rank, s.world_size), lane_bits=32)
    packed_rounds = s.stats.rounds["and"] + s.stats.rounds["b2a"]
    packed_bytes = s.stats.bytes_sent["and"] + s.stats.bytes_sent["b2a"]
    # open the bit shares (test only; sums of shares at scale 1)
    opened = open_masked(s, [neg, nonneg, packed], "test")
    return {
        "neg": opened[0],
        "nonneg": opened[1],
        "packed": opened[2],
        "rounds": rounds,
        "packed_rounds": packed_rounds,
        "packed_bytes": packed_bytes,
    }


def _check(out, world_size):
    x = _values()
    assert torch.equal(out["neg"], (x < 0).long())
    assert torch.equal(out["nonneg"], (x >= 0).long())
    csa_levels = {2: 0, 3: 1, 4: 2, 5: 3}[world_size]
    assert out["rounds"] == csa_levels + 1 + 6 + 1  # CSA levels, G, Kogge-Stone, B2A
    assert torch.equal(out["packed"], (_values_31() < 0).long())
    assert out["packed_rounds"] == csa_levels + 1 + 5 + 1  # one Kogge-Stone level less
    n = _values_31().numel()
    ands = csa_levels + 1 + 2 * 4 + 1  # CSA, G, four levels of (G, P), the last G
    assert out["packed_bytes"] == 16 * ands * ((n + 1) // 2) + 8 * n  # two elements per word


@pytest.mark.parametrize("world_size,provider", [(3, "TTP"), (2, "TTP"), (4, "TTP"), (3, "TFP")])
def test_sign_bits_exact(world_size, provider, parties):
    outs = parties(sign_party, world_size=world_size, provider=provider, timeout_s=240)
    for out in outs:
        _check(out, world_size)


def test_sign_bits_in_process():
    from protocols.arithmetic.sign_bit import negative_bits
    from protocols.network.parties import init_in_process

    session = init_in_process()
    s = session
    x = _values()
    assert torch.equal(negative_bits(s, x), (x < 0).long())
    y = _values_31()
    assert torch.equal(negative_bits(s, y, lane_bits=32), (y < 0).long())


def test_sign_bits_refuse_other_lane_widths():
    from protocols.arithmetic.sign_bit import negative_bits
    from protocols.errors import ProtocolError
    from protocols.network.parties import init_in_process

    session = init_in_process()
    with pytest.raises(ProtocolError, match="lanes of 16 bits"):
        negative_bits(session, torch.zeros(3, dtype=torch.int64), lane_bits=16)
