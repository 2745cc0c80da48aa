"""Properties of count_wraps and truncation (protocols/arithmetic/truncation.py) against Python's
big integers, over arbitrary int64 shares (hypothesis favours the edges: 0, -1, +-2^63).

Stated contracts:

* ``count_wraps(shares) = (sum_i s_i over the integers - (sum mod 2^64, signed)) / 2^64``, for
  torch tensors and numpy arrays alike, exact also at ``-2^63 + -2^63`` (where CrypTen's is not);
* ``shift_right_trunc(x, k) = x / 2^k`` rounded toward zero;
* two parties truncate locally: wrong by at most one unit, unless the shares wrap (then by
  ``2^(64-f)``: that wrap is what ``count_wraps`` counts);
* more than two parties (``truncate_many``, steps 1-3 of the module docstring): the sum of the
  parties' results is within (parties) units of ``x / 2^f`` (each party's shift is off by less
  than one), except when ``x + r`` wraps (the
  ``eta_xr`` failure, probability ~ |x| / 2^63), which then shifts it by ``2^(64-f)``.

In-process, no processes: part of ``make test-fast``.
"""

from __future__ import annotations

from types import SimpleNamespace
from unittest import mock

import numpy as np
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from protocols.arithmetic import truncation
from protocols.arithmetic.fixed_point import FixedPoint
from protocols.arithmetic.truncation import count_wraps, shift_right_trunc, truncate_many

FAST = settings(max_examples=100, deadline=None)
RING = 2**64
int64s = st.integers(-(2**63), 2**63 - 1)


def signed(v: int) -> int:
    """A Python integer reduced into the ring, as the signed int64 it is stored as."""
    v %= RING
    return v - RING if v >= 2**63 else v


def wraps_reference(values: list[int]) -> int:
    total = sum(values)
    return (total - signed(total)) // RING


def trunc_div(x: int, k: int) -> int:
    """x / 2^k rounded toward zero, in big integers."""
    q = abs(x) >> k
    return q if x >= 0 else -q


def units_off(got: int, x: int, f: int) -> int:
    """``got`` (a ring element at scale 2^f) minus the real x / 2^f, times 2^f: exact, in big
    integers; ``got`` is read as the ring element nearest to x / 2^f."""
    return signed(got - trunc_div(x, f)) * 2**f + trunc_div(x, f) * 2**f - x


def shares_of(n_parties: int, n_elements: int):
    """``n_parties`` lists of ``n_elements`` arbitrary int64 shares."""
    row = st.lists(int64s, min_size=n_elements, max_size=n_elements)
    return st.lists(row, min_size=n_parties, max_size=n_parties)


@st.composite
def share_tables(draw, min_parties=1, max_parties=5):
    n = draw(st.integers(min_parties, max_parties))
    return draw(shares_of(n, draw(st.integers(1, 6))))


@FAST
@given(share_tables(), st.sampled_from(["torch", "numpy"]))
def test_count_wraps_equals_the_big_integer_definition(table, kind):
    make = (lambda row: torch.tensor(row, dtype=torch.int64)) if kind == "torch" else np.array
    got = count_wraps([make(row) for row in table])
    want = [wraps_reference([row[i] for row in table]) for i in range(len(table[0]))]
    assert [int(v) for v in got] == want


def test_count_wraps_of_two_minimal_values_is_minus_one():
    """The case the docstring names: -2^63 + -2^63 wraps down once (CrypTen counts 0)."""
    low = torch.tensor([-(2**63)], dtype=torch.int64)
    assert int(count_wraps([low, low])[0]) == -1


@FAST
@given(st.lists(int64s, min_size=1, max_size=16), st.integers(0, 63))
def test_shift_right_trunc_rounds_toward_zero(xs, k):
    x = torch.tensor(xs, dtype=torch.int64)
    for got in (shift_right_trunc(x, k).tolist(), shift_right_trunc(x.numpy(), k).tolist()):
        assert got == [trunc_div(v, k) for v in xs]


@FAST
@given(st.lists(int64s, min_size=1, max_size=8), st.data())
def test_shift_right_trunc_per_element_shifts(xs, data):
    """Per-column shifts (the polynomial evaluator's): an int64 tensor of k, broadcasting."""
    ks = data.draw(st.lists(st.integers(0, 63), min_size=len(xs), max_size=len(xs)))
    got = shift_right_trunc(torch.tensor(xs, dtype=torch.int64), torch.tensor(ks))
    assert got.tolist() == [trunc_div(v, k) for v, k in zip(xs, ks)]


@FAST
@given(shares_of(2, 6), st.integers(8, 24))
def test_two_party_local_truncation_is_one_unit_off_unless_the_shares_wrap(table, f):
    """SecureML: each party shifts its own share.  The sum is ``count_wraps * 2^(64-f)`` plus
    x / 2^f within two units; one unit in the last place when the shares do not wrap."""
    s0, s1 = (torch.tensor(row, dtype=torch.int64) for row in table)
    theta = count_wraps([s0, s1]).tolist()
    out = (shift_right_trunc(s0, f) + shift_right_trunc(s1, f)).tolist()
    for i, got in enumerate(out):
        x = signed(table[0][i] + table[1][i])
        assert abs(units_off(got - theta[i] * 2 ** (64 - f), x, f)) < 2 * 2**f
        if theta[i] == 0:  # no wrap: one unit in the last place
            assert abs(signed(got - trunc_div(x, f))) <= 1


@st.composite
def truncation_cases(draw):
    n = draw(st.integers(3, 5))
    size = draw(st.integers(1, 6))
    xs = draw(shares_of(n, size))
    rs = draw(shares_of(n, size))
    # theta_r's shares: any split of the true count
    theta_r = [wraps_reference([r[i] for r in rs]) for i in range(size)]
    split = draw(shares_of(n - 1, size))
    theta_shares = split + [[signed(t - sum(s[i] for s in split)) for i, t in enumerate(theta_r)]]
    f = draw(st.integers(8, 24))
    return n, xs, rs, theta_shares, f


@FAST
@given(truncation_cases())
def test_truncate_many_for_more_than_two_parties_against_big_integers(case):
    """Every party's ``truncate_many`` (the module's own code, with the dealer's ``(r, theta_r)``
    given and the one gather to party 0 simulated) on arbitrary shares of x: the results sum to
    x / 2^f within (parties) units, or, when x + r wraps, to that shifted by 2^(64-f)."""
    n, xs, rs, theta_shares, f = case
    t = lambda rows: [torch.tensor(row, dtype=torch.int64) for row in rows]  # noqa: E731
    x_t, r_t, th_t = t(xs), t(rs), t(theta_shares)
    gathered = [x + r for x, r in zip(x_t, r_t)]  # what each party sends party 0 (step 2)

    def gather(session, z, kind):
        assert torch.equal(z, gathered[session.rank])
        return gathered if session.rank == 0 else None

    outs = []
    with mock.patch.object(truncation, "gather_masked", gather):
        for rank in range(n):
            session = SimpleNamespace(rank=rank, world_size=n, fp=FixedPoint(f))
            (out,) = truncate_many(session, [x_t[rank]], wraps=(r_t[rank], th_t[rank]))
            outs.append(out.tolist())
    for i in range(len(xs[0])):
        x = signed(sum(row[i] for row in xs))
        r = signed(sum(row[i] for row in rs))
        eta = wraps_reference([x, r])  # CrypTen's eta_xr: x + r itself wraps
        got = sum(o[i] for o in outs)
        assert abs(units_off(got + eta * 2 ** (64 - f), x, f)) < n * 2**f, (x, r, eta)
