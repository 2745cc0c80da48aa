"""Truncation after products (protocols.arithmetic.truncation): wraps and shifts, exact."""

from __future__ import annotations

import pytest
import torch


def _edge_ring_values(n: int = 4000) -> torch.Tensor:
    g = torch.Generator().manual_seed(11)
    edges = torch.tensor(
        [-(2**63), 2**63 - 1, -1, 0, 1, 2**62, -(2**62), 2**16, -(2**16) - 1], dtype=torch.int64
    )
    return torch.cat(
        [edges, torch.randint(-(2**63), 2**63 - 1, (n,), generator=g, dtype=torch.int64)]
    )


@pytest.mark.parametrize("as_numpy", [False, True])
@pytest.mark.parametrize("n_shares", [2, 3, 4])
def test_count_wraps_is_exact_over_the_integers(n_shares, as_numpy):
    """theta = (sum over the integers - wrapped sum) / 2^64, checked with Python's exact ints on
    random shares plus every pairing of the edge values (-2^63 + -2^63 wraps down once)."""
    from protocols.arithmetic.truncation import count_wraps

    base = _edge_ring_values()
    shares = [base.roll(7 * i) for i in range(n_shares)]
    edges = base[:9]
    shares[0] = torch.cat([shares[0], edges.repeat_interleave(9)])
    for i in range(1, n_shares):
        shares[i] = torch.cat([shares[i], edges.repeat(9)])
    got = count_wraps([s.numpy() for s in shares] if as_numpy else shares).tolist()
    rows = zip(*[s.tolist() for s in shares])
    want = []
    for row in rows:
        exact = sum(row)
        wrapped = (exact + 2**63) % 2**64 - 2**63
        want.append((exact - wrapped) // 2**64)
    assert got == want
    assert count_wraps([edges[:1], edges[:1]]).item() == -1  # CrypTen's own count says 0 here


@pytest.mark.parametrize("k", [0, 1, 16, 33, 63])
def test_shift_right_trunc_matches_division_toward_zero(k):
    from protocols.arithmetic.truncation import shift_right_trunc

    x = _edge_ring_values()
    want = [(abs(v) >> k) * (1 if v >= 0 else -1) for v in x.tolist()]  # exact, toward zero
    assert shift_right_trunc(x, k).tolist() == want
    ks = torch.full_like(x, k)
    assert shift_right_trunc(x, ks).tolist() == want
    assert shift_right_trunc(x.numpy(), k).tolist() == want
    assert shift_right_trunc(x.numpy(), ks.numpy()).tolist() == want
