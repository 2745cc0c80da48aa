"""Polynomial activations: the stated error table, the power tree, and rounds on shares."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from protocols.arithmetic.polynomial import fit_tanh, power_plan, sigmoid_from_tanh
from protocols.errors import ConfigError

# (degree, bound, max |tanh error| on [-bound, bound]) as stated in docs/README
TABLE = [(7, 4.0, 0.038), (15, 4.0, 0.0019), (7, 8.0, 0.160), (11, 8.0, 0.072), (15, 8.0, 0.033)]


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
    t = fit_tanh(15, 8.0)
    assert abs(float(t(torch.tensor(12.0)))) > 1.5  # documented: unbounded outside the interval


def test_power_plan_depth():
    assert len(power_plan(7)) == 3 and len(power_plan(15)) == 4 and len(power_plan(3)) == 2
    assert power_plan(9)[-1] == [(9, 1, 8)]


@pytest.mark.parametrize("degree", [2, 33, 0])
def test_bad_degree(degree):
    with pytest.raises(ConfigError, match="expected odd, 1..31"):
        fit_tanh(degree, 4.0)


def test_bound_must_be_power_of_two():
    with pytest.raises(ConfigError, match="expected a power of two in 1..16, got 6.0"):
        fit_tanh(15, 6.0)


def test_chebyshev_coefficients_are_small():
    # why the Chebyshev basis: 16 fractional bits lose nothing to cancellation
    assert max(abs(c) for c in fit_tanh(15, 8.0).coeffs) < 1.5


def poly_party(session, degree=15):
    rank = session.rank
    from protocols.arithmetic.polynomial import evaluate_many
    from protocols.arithmetic.reveal import reveal
    from protocols.arithmetic.sharing import share

    s = session
    t = fit_tanh(degree, 8.0)
    sg = sigmoid_from_tanh(t)
    u = torch.linspace(-8, 8, 64, dtype=torch.float64).reshape(32, 2)
    x = share(s, u if rank == 1 else None, src=1, shape=(32, 2))
    coeffs = torch.tensor([sg.coeffs, t.coeffs], dtype=torch.float64).T
    (y,) = evaluate_many(s, [x], [coeffs], [torch.tensor([0.5, 0.0])], [torch.tensor([16.0, 8.0])])
    return (
        reveal(s, y, to=tuple(range(s.world_size)), what="y", why="test"),
        dict(s.stats.rounds),
        dict(s.stats.bytes_sent),
    )


def test_polynomial_on_three_parties(parties):
    outs = parties(poly_party, world_size=3, provider="TTP")
    t = fit_tanh(15, 8.0)
    sg = sigmoid_from_tanh(t)
    u = torch.linspace(-8, 8, 64, dtype=torch.float64).reshape(32, 2)
    want = torch.stack([sg(u[:, 0]), t(u[:, 1])], 1)
    y, rounds, _ = outs[0]
    torch.testing.assert_close(y, want, atol=3e-4, rtol=0)
    # degree 15: 4 levels, each one opening + one truncation, plus the final truncation
    assert rounds["beaver"] == 4 and rounds["truncate"] == 5


# degree -> operands opened once each (x and the powers some product reuses), rounds (3 parties)
OPERANDS = {1: 0, 3: 2, 7: 4, 15: 7}


@pytest.mark.parametrize(
    "degree,world_size,provider", [(1, 3, "TTP"), (3, 3, "TTP"), (7, 3, "TFP"), (15, 2, "TTP")]
)
def test_polynomial_degrees_parties_providers(degree, world_size, provider, parties):
    """Every degree's power tree against the plaintext polynomial; each operand is opened ONCE
    (its mask reused by every product it enters): bytes = 8 x operands x numel per party."""
    from protocols.arithmetic.polynomial import rounds

    outs = parties(poly_party, world_size=world_size, provider=provider, args=(degree,))
    t = fit_tanh(degree, 8.0)
    sg = sigmoid_from_tanh(t)
    u = torch.linspace(-8, 8, 64, dtype=torch.float64).reshape(32, 2)
    want = torch.stack([sg(u[:, 0]), t(u[:, 1])], 1)
    for y, got_rounds, sent in outs:
        torch.testing.assert_close(y, want, atol=3e-4, rtol=0)
        assert sent.get("beaver", 0) == 8 * OPERANDS[degree] * 64
        assert got_rounds.get("beaver", 0) + got_rounds.get("truncate", 0) == rounds(
            degree, world_size
        )
