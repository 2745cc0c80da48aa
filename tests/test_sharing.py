"""Secret sharing a party's own values (protocols.arithmetic.sharing): shares look random."""

from __future__ import annotations

import torch


def _inputs():
    g = torch.Generator().manual_seed(7)
    return torch.rand(4, 5, generator=g, dtype=torch.float64) * 6 - 3


def shares_party(session):
    rank = session.rank
    from protocols.arithmetic.sharing import share

    s = session
    x = _inputs()
    return share(s, x if rank == 0 else None, src=0, shape=tuple(x.shape))


def test_shares_look_random_and_sum_to_value(parties):
    shares = parties(shares_party, world_size=3, provider="TFP")
    x = _inputs()
    total = sum(shares)
    torch.testing.assert_close(total.double() / 2**16, x, atol=2e-5, rtol=0)
    # no single share is close to the encoded value: each is masked by the PRZS randomness
    enc = torch.round(x * 2**16).long()
    for sh in shares:
        assert (sh - enc).abs().min() > 2**40
