"""Softmax on shares against torch.softmax (3 parties + dealer), and its stated error bound."""

from __future__ import annotations

import numpy as np
import torch

from protocols.arithmetic.softmax import (
    EXP_DEGREE,
    EXP_SQUARINGS,
    exp_coefficients,
    reciprocal_guess,
)


def _logits():
    g = torch.Generator().manual_seed(11)
    x = torch.randn(32, 9, generator=g, dtype=torch.float64) * 4
    x[0] = torch.tensor([15.0, -15, 0, 3, 3, 1, -2, 8, 14.9])  # wide spread, near-ties
    return x


def softmax_party(session):
    rank = session.rank
    from protocols.arithmetic.comparison import softmax_shares
    from protocols.arithmetic.reveal import reveal
    from protocols.arithmetic.sharing import share
    from protocols.arithmetic.softmax import softmax_rows

    s = session
    s.enable_traffic_counting()
    x = share(s, _logits() if rank == 0 else None, src=0, shape=(32, 9))
    rounds = {}
    s.reset_traffic()
    ours = softmax_rows(s, x)
    rounds["mpcrnn"] = s.comm_rounds
    s.reset_traffic()
    theirs = softmax_shares(s, x)
    rounds["crypten"] = s.comm_rounds
    everyone = (0, 1, 2)
    return (
        reveal(s, ours, to=everyone, what="p", why="test"),
        reveal(s, theirs, to=everyone, what="q", why="test"),
        rounds,
    )


def test_softmax_rows_matches_torch_and_beats_crypten_on_rounds(parties):
    p, q, rounds = parties(softmax_party, world_size=3, provider="TTP", timeout_s=300)[0]
    want = torch.softmax(_logits(), 1)
    torch.testing.assert_close(p, want, atol=1e-3, rtol=0)
    torch.testing.assert_close(p.sum(1), torch.ones(32, dtype=torch.float64), atol=2e-3, rtol=0)
    assert rounds["mpcrnn"] < rounds["crypten"] / 2, rounds


def test_reciprocal_guess_and_exp_error_bounds():
    for c in (2, 9, 26, 100):
        a, b, steps = reciprocal_guess(float(c))
        d = np.linspace(1, c, 20001)
        r = a + b * d
        for _ in range(steps):
            r = r * (2 - d * r)
        assert np.abs(1 - d * r).max() < 2.0**-16  # below the output's fixed-point resolution
    w = np.linspace(-2, 0, 20001)
    q = np.polyval(exp_coefficients()[::-1], w)
    assert np.abs(q / np.exp(w) - 1).max() < 1e-5 and EXP_DEGREE == 6
    z = np.linspace(-64, 0, 20001)
    approx = np.polyval(exp_coefficients()[::-1], z / 2**EXP_SQUARINGS) ** (2**EXP_SQUARINGS)
    assert np.abs(approx / np.exp(z) - 1).max() < 32 * 1e-5


def _wide_logits():
    g = torch.Generator().manual_seed(12)
    x = torch.randn(8, 40, generator=g, dtype=torch.float64) * 4
    x[0, [3, 17, 39]] = 9.5  # a three-way tie for the max
    x[1] = -x[1].abs()  # every entry negative
    return x


def wide_max_party(session):
    from protocols.arithmetic.comparison import pairwise_max, tournament_max
    from protocols.arithmetic.reveal import reveal
    from protocols.arithmetic.sharing import share
    from protocols.arithmetic.softmax import softmax_rows

    s = session
    s.enable_traffic_counting()
    x = share(s, _wide_logits() if s.rank == 0 else None, src=0, shape=(8, 40))
    out, sent = {}, {}
    for name, fn in (("tournament", tournament_max), ("pairwise", pairwise_max)):
        s.reset_traffic()
        out[name] = reveal(s, fn(s, x), to=(0, 1, 2), what="max", why="test")
        sent[name] = s.comm_bytes
    out["softmax"] = reveal(s, softmax_rows(s, x), to=(0, 1, 2), what="p", why="test")
    return out, sent


def test_tournament_max_is_exact_and_cheaper_than_pairwise_for_a_vocabulary(parties):
    out, sent = parties(wide_max_party, world_size=3, provider="TTP", timeout_s=300)[0]
    encoded = torch.round(_wide_logits() * 2.0**16) / 2.0**16
    want = encoded.max(1, keepdim=True).values
    assert torch.equal(out["tournament"], want) and torch.equal(out["pairwise"], want)
    torch.testing.assert_close(out["softmax"], torch.softmax(_wide_logits(), 1), atol=1e-3, rtol=0)
    assert sent["tournament"] * 5 < sent["pairwise"], sent  # 39 against 780 comparisons a row
