"""Properties of the fixed-point encoding in Z_{2^64} (protocols/arithmetic/fixed_point.py).

The stated contracts: a real ``v`` is stored as ``round(v * 2^f)`` (so the round trip is within
half a unit, 2^-(f+1), while ``v * 2^f`` is a whole float64 integer), ring addition is real
addition, a product carries scale 2^(2f) and one truncation by f brings it back, and
``check_range`` refuses exactly the bounds above ``max_safe_product`` (and f outside 8..24).
In-process, no processes: part of ``make test-fast``.
"""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from protocols.arithmetic.fixed_point import RING_BITS, FixedPoint
from protocols.arithmetic.truncation import shift_right_trunc
from protocols.errors import PrecisionError

FAST = settings(max_examples=100, deadline=None)

frac_bits = st.integers(8, 24)  # the formats check_range accepts


def reals(f: int, exponent: int):
    """Finite reals with |v| <= 2^exponent (exponent may depend on f)."""
    limit = 2.0**exponent
    return st.floats(-limit, limit, allow_nan=False, allow_infinity=False)


@FAST
@given(st.data(), frac_bits)
def test_round_trip_is_within_half_a_unit(data, f):
    """|decode(encode(v)) - v| <= 2^-(f+1) for |v| <= 2^(52-f) (v * 2^f exact in float64);
    with f = 16 that is 2^-17, inside the 2^-16 resolution the docstring states."""
    fp = FixedPoint(f)
    v = torch.tensor(data.draw(st.lists(reals(f, 52 - f), min_size=1, max_size=16)))
    back = fp.decode(fp.encode(v))
    assert fp.encode(v).dtype == torch.int64 and back.dtype == torch.float64
    assert float((back - v).abs().max()) <= 2.0 ** -(f + 1)


@FAST
@given(frac_bits, st.lists(st.integers(-(2**52), 2**52), min_size=1, max_size=16))
def test_grid_points_encode_exactly(f, ks):
    """The ring elements themselves: k / 2^f encodes to k, and decodes back to k / 2^f."""
    fp = FixedPoint(f)
    k = torch.tensor(ks, dtype=torch.int64)
    v = k.to(torch.float64) / fp.scale
    assert torch.equal(fp.encode(v), k)
    assert torch.equal(fp.decode(k), v)


@FAST
@given(st.data(), frac_bits)
def test_ring_addition_is_real_addition(data, f):
    """encode(a) + encode(b), wrapping int64 addition, decodes to a + b within 2^-f while
    |a|, |b| <= 2^(51-f) (no wrap)."""
    fp = FixedPoint(f)
    a = data.draw(reals(f, 51 - f))
    b = data.draw(reals(f, 51 - f))
    got = float(fp.decode(fp.encode(a) + fp.encode(b)))
    assert abs(got - (a + b)) <= 2.0**-f


@FAST
@given(st.data(), frac_bits)
def test_product_truncated_by_f_is_the_real_product(data, f):
    """A product of encodings carries scale 2^(2f); ``shift_right_trunc`` by f returns it to
    2^f.  Within max_safe_product (the product never leaves the ring) the result is a * b
    within (|a| + |b|) 2^-(f+1) (the two roundings) + 2^-(2f+2) + 2^-f (the truncation)."""
    fp = FixedPoint(f)
    limit = math.sqrt(fp.max_safe_product())
    a = data.draw(st.floats(-limit, limit, allow_nan=False))
    b = data.draw(st.floats(-limit, limit, allow_nan=False))
    double = fp.encode(a) * fp.encode(b)
    assert abs(int(double)) < 2 ** (RING_BITS - 1)  # safe: it did not wrap
    got = float(fp.decode(shift_right_trunc(double, f)))
    bound = (abs(a) + abs(b)) * 2.0 ** -(f + 1) + 2.0 ** -(2 * f + 2) + 2.0**-f
    assert abs(got - a * b) <= bound


@FAST
@given(st.integers(0, 40), st.integers(-60, -1))
def test_max_safe_product_is_the_stated_failure_probability(f, log2_failure):
    """failure probability ~ |x| 2^(2f) / 2^63 per element: the bound gives back exactly the
    failure rate asked for (powers of two: exact in float64)."""
    failure = 2.0**log2_failure
    limit = FixedPoint(f).max_safe_product(failure)
    assert limit * 2.0 ** (2 * f) / 2.0 ** (RING_BITS - 1) == failure


@FAST
@given(
    st.integers(0, 40),
    st.floats(0, 2.0**40, allow_nan=False),
    st.integers(-60, -1),
)
def test_check_range_refuses_exactly_the_unsafe_configurations(f, bound, log2_failure):
    fp, failure = FixedPoint(f), 2.0**log2_failure
    unsafe = not 8 <= f <= 24 or bound > fp.max_safe_product(failure)
    if unsafe:
        with pytest.raises(PrecisionError):
            fp.check_range(bound, "x", failure)
    else:
        fp.check_range(bound, "x", failure)
