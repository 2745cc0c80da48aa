"""Polynomial activations: the stated error table, the power tree, and rounds on shares."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mpc_harness import run_parties
from protocols.errors import ConfigError
from protocols.polynomial import fit_tanh, power_plan, sigmoid_from_tanh

# (degree, bound, max |tanh error| on [-bound, bound]) as stated in docs/README
TABLE = [(5, 4.0, 0.082), (7, 4.0, 0.038), (9, 4.0, 0.018), (9, 6.0, 0.059), (11, 6.0, 0.035)]


@pytest.mark.parametrize("degree,bound,stated", TABLE)
def test_error_table(degree, bound, stated):
    t = fit_tanh(degree, bound)
    grid = np.linspace(-bound, bound, 100001)
    measured = np.abs(t(torch.as_tensor(grid)).numpy() - np.tanh(grid)).max()
    assert measured <= stated and measured >= 0.9 * stated  # the table is tight, not loose
    assert abs(t.max_error - measured) < 1e-4
    s = sigmoid_from_tanh(t)
    g2 = np.linspace(-2 * bound, 2 * bound, 100001)
    sig = 1 / (1 + np.exp(-g2))
    assert np.abs(s(torch.as_tensor(g2)).numpy() - sig).max() <= stated / 2 + 1e-9


def test_outside_interval_grows():
    t = fit_tanh(9, 6.0)
    assert abs(float(t(torch.tensor(9.0)))) > 1.5  # documented: unbounded outside the interval


def test_power_plan_depth():
    assert len(power_plan(7)) == 3 and len(power_plan(9)) == 4 and len(power_plan(3)) == 2
    assert power_plan(9)[-1] == [(9, 1, 8)]


@pytest.mark.parametrize("degree", [2, 17, 0])
def test_bad_degree(degree):
    with pytest.raises(ConfigError, match="expected odd, 1..15"):
        fit_tanh(degree, 4.0)


def poly_party(rank):
    from protocols.polynomial import evaluate_many
    from protocols.reveal import reveal
    from protocols.session import MpcSession
    from protocols.sharing import share

    s = MpcSession.current()
    t = fit_tanh(7, 4.0)
    sg = sigmoid_from_tanh(t)
    u = torch.linspace(-4, 4, 64, dtype=torch.float64).reshape(32, 2)
    x = share(s, u if rank == 1 else None, src=1, shape=(32, 2))
    coeffs = torch.tensor([sg.coeffs, t.coeffs], dtype=torch.float64).T
    (y,) = evaluate_many(s, [x], [coeffs], [torch.tensor([0.5, 0.0])], [torch.tensor([8.0, 4.0])])
    return reveal(s, y, to=(0, 1, 2), what="y", why="test"), dict(s.stats.rounds)


def test_polynomial_on_three_parties():
    outs = run_parties(poly_party, world_size=3, provider="TTP")
    t = fit_tanh(7, 4.0)
    sg = sigmoid_from_tanh(t)
    u = torch.linspace(-4, 4, 64, dtype=torch.float64).reshape(32, 2)
    want = torch.stack([sg(u[:, 0]), t(u[:, 1])], 1)
    y, rounds = outs[0]
    torch.testing.assert_close(y, want, atol=1e-3, rtol=0)
    # degree 7: 3 levels, each one opening + one truncation, plus the final truncation
    assert rounds["beaver"] == 3 and rounds["truncate"] == 4
