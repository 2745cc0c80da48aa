"""Properties of the polynomial activations (protocols/arithmetic/polynomial.py) against torch.

Stated contracts: ``fit_tanh(D, B)`` is within its ``max_error`` of tanh on [-B, B], and
``sigmoid_from_tanh`` within half of it of sigmoid on [-2B, 2B]; the default (degree 23, B = 8)
within 0.0069 / 0.0035 and degree 15 within 0.033 / 0.0165; the polynomials are odd (sigmoid's
about 1/2); the Chebyshev coefficients are small (|c_k| <= 1.3); on shares
(``evaluate_many``, one party in this process) the polynomial is the plaintext one up to the
fixed point's truncations.  In-process, no processes: part of ``make test-fast``.
"""

from __future__ import annotations

import functools

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from protocols.arithmetic.polynomial import OddPolynomial, fit_tanh, sigmoid_from_tanh

FAST = settings(max_examples=50, deadline=None)

# (degree, bound) pairs: each is a fit (~0.07 s, cached), so a fixed spread of them rather than
# all 75: the README's table, the default, both ends of the degrees and of the bounds
FITTED = [(3, 1.0), (7, 4.0), (15, 4.0), (7, 8.0), (11, 8.0), (15, 8.0), (23, 8.0), (31, 16.0)]
fits = st.sampled_from(FITTED)
# the stated rows: (degree, bound, tanh error on [-B, B], sigmoid error on [-2B, 2B])
STATED = [(23, 8.0, 0.0069, 0.0035), (15, 8.0, 0.033, 0.0165)]


@functools.cache
def tanh_poly(degree: int, bound: float) -> OddPolynomial:
    return fit_tanh(degree, bound)


def points(bound: float, min_size: int = 1, max_size: int = 64):
    """Reals in [-bound, bound], as a float64 tensor (endpoints and 0 included by hypothesis)."""
    x = st.floats(-bound, bound, allow_nan=False)
    return st.lists(x, min_size=min_size, max_size=max_size).map(
        lambda v: torch.tensor(v, dtype=torch.float64)
    )


@FAST
@given(fits, st.data())
def test_tanh_within_its_max_error_on_the_interval(fit, data):
    """``max_error`` is measured on a grid of 200001 points; between them the error can exceed
    it only by a rounding's worth (1e-9)."""
    degree, bound = fit
    t = tanh_poly(degree, bound)
    x = data.draw(points(bound))
    assert float((t(x) - torch.tanh(x)).abs().max()) <= t.max_error + 1e-9


@FAST
@given(fits, st.data())
def test_sigmoid_within_half_the_tanh_error_on_twice_the_interval(fit, data):
    degree, bound = fit
    s = sigmoid_from_tanh(tanh_poly(degree, bound))
    assert s.bound == 2 * bound and s.max_error == tanh_poly(degree, bound).max_error / 2
    v = data.draw(points(2 * bound))
    assert float((s(v) - torch.sigmoid(v)).abs().max()) <= s.max_error + 1e-9


@FAST
@given(st.sampled_from(STATED), st.data())
def test_the_stated_errors_of_the_default_and_degree_15(row, data):
    degree, bound, tanh_err, sigmoid_err = row
    t = tanh_poly(degree, bound)
    s = sigmoid_from_tanh(t)
    x, v = data.draw(points(bound)), data.draw(points(2 * bound))
    assert float((t(x) - torch.tanh(x)).abs().max()) <= tanh_err
    assert float((s(v) - torch.sigmoid(v)).abs().max()) <= sigmoid_err


@FAST
@given(fits, st.data())
def test_odd_symmetry(fit, data):
    """tanh's polynomial is odd exactly (the recurrence is sign-symmetric in floating point);
    sigmoid's is 1 - itself mirrored."""
    degree, bound = fit
    t = tanh_poly(degree, bound)
    s = sigmoid_from_tanh(t)
    x = data.draw(points(2 * bound))
    assert torch.equal(t(-x), -t(x))
    torch.testing.assert_close(s(-x), 1 - s(x), atol=1e-12, rtol=0)


@FAST
@given(fits)
def test_chebyshev_coefficients_are_small(fit):
    """Why the Chebyshev basis: |c_k| <= 1.3, so 16 fractional bits lose nothing to
    cancellation.  (Degree 1, the line through tanh, reaches 1.75 at B = 16: degrees >= 3.)"""
    assert max(abs(c) for c in tanh_poly(*fit).coeffs) <= 1.3


def _one_party_session():
    from protocols.network.parties import init_in_process

    return init_in_process()


@settings(max_examples=15, deadline=None)
@given(st.sampled_from([3, 7, 15, 23]), st.sampled_from([4.0, 8.0]), st.data())
def test_on_shares_equals_the_plaintext_polynomial(degree, bound, data):
    """``evaluate_many`` with sigmoid and tanh columns side by side (one tree), one party in this
    process: the opened result is the plaintext polynomial within 3e-4 (each truncation is off
    by at most 2^-16), so within ``max_error + 3e-4`` of torch.tanh / torch.sigmoid."""
    from protocols.arithmetic.polynomial import evaluate_many
    from protocols.arithmetic.reveal import reveal
    from protocols.arithmetic.sharing import share

    s = _one_party_session()
    t = tanh_poly(degree, bound)
    sg = sigmoid_from_tanh(t)
    rows = data.draw(st.integers(1, 8))
    sig_in, tanh_in = data.draw(points(2 * bound, rows, rows)), data.draw(points(bound, rows, rows))
    u = torch.stack([sig_in, tanh_in], 1)  # column 0 goes through sigmoid, column 1 tanh
    x = share(s, u, src=0, shape=tuple(u.shape))
    coeffs = torch.tensor([sg.coeffs, t.coeffs], dtype=torch.float64).T
    (y,) = evaluate_many(
        s, [x], [coeffs], [torch.tensor([0.5, 0.0])], [torch.tensor([2 * bound, bound])]
    )
    got = reveal(s, y, to=(0,), what="y", why="test")
    want = torch.stack([sg(u[:, 0]), t(u[:, 1])], 1)
    torch.testing.assert_close(got, want, atol=3e-4, rtol=0)
    exact = torch.stack([torch.sigmoid(u[:, 0]), torch.tanh(u[:, 1])], 1)
    assert float((got[:, 0] - exact[:, 0]).abs().max()) <= sg.max_error + 3e-4
    assert float((got[:, 1] - exact[:, 1]).abs().max()) <= t.max_error + 3e-4
