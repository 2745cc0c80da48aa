"""Differences along time: a declared, public, local preprocessing of numeric sequences.

``[data] differences = [k0, k1, ...]`` makes the model read, for every feature j, the k-th
differences of its scaled values for each listed order k (0: the values themselves), each times
its public gain ``difference_gains[i]`` (default 1)::

    D^0 x_t = x_t        D^k x_t = D^(k-1) x_t - D^(k-1) x_(t-1)   for k <= t < length
    D^k x_t = 0          for t < k and for t >= length (padding)

    x (N, T, F) scaled  ->  concat_i(g_i D^(k_i) x) (N, T, F len(differences)), orders outermost

before framing (:func:`mpcrnn.declaration.frame_steps`).  Each party applies it to its own rows
before sharing, as it scales them; nothing about any row leaves the party.  Differences are what
chemometrics reads from a spectrum (a second derivative removes the baseline and slope that
dominate raw absorbances: Tecator's fat content, docs/regression.md) and what a forecaster uses
to remove a trend (sktime's ``Differencer``, ARIMA's d).

The differences of values in [-1, 1] are small (Tecator's second differences: |D^2 x| <= 0.011),
so a gain puts them back near [-1, 1]: without it they sit a few hundred units of 2^-16 above
zero on shares, and the first layer's weights must grow by the same factor.  A gained value past
``value_bound`` is refused, never clipped, like a scaled value (one DataError naming the cell,
never the value): lower the gain.
"""

from __future__ import annotations

import math

import numpy as np

from protocols.errors import ConfigError, DataError, expected_got


def check_differences(spec) -> None:
    """``differences``: distinct integers in [0, max_len); ``difference_gains``: unset or one
    finite positive number per order (filled with 1.0).  Numeric sequences only.  One
    ConfigError line naming the key otherwise."""
    orders = spec.differences
    if isinstance(orders, int) and not isinstance(orders, bool):
        orders = (orders,)
    orders = tuple(orders) if isinstance(orders, (list, tuple)) else None
    ok = (
        orders
        and all(isinstance(k, int) and not isinstance(k, bool) for k in orders)
        and all(0 <= k < spec.max_len for k in orders)
        and len(set(orders)) == len(orders)
    )
    if not ok:
        raise ConfigError(
            expected_got(
                "[data] differences",
                f"distinct integer orders in 0..{spec.max_len - 1} (0: the values)",
                repr(spec.differences),
            )
        )
    if orders != (0,) and spec.kind != "sequence":
        raise ConfigError(expected_got("[data] differences", "[0] for text", repr(orders)))
    gains = (1.0,) * len(orders) if spec.difference_gains is None else spec.difference_gains
    if not (
        isinstance(gains, (list, tuple))
        and len(gains) == len(orders)
        and all(isinstance(g, (int, float)) and not isinstance(g, bool) for g in gains)
        and all(0 < g < math.inf for g in gains)
    ):
        raise ConfigError(
            expected_got(
                "[data] difference_gains",
                f"{len(orders)} finite number(s) > 0, one per order in differences",
                repr(spec.difference_gains),
            )
        )
    object.__setattr__(spec, "differences", orders)
    object.__setattr__(spec, "difference_gains", tuple(float(g) for g in gains))


def difference(x: np.ndarray, lengths: np.ndarray, order: int) -> np.ndarray:
    """D^order of x (N, T, F) along T within each row's valid steps (module docstring)."""
    out = np.array(x, dtype=np.float64)
    valid = np.arange(x.shape[1])[None, :] < np.asarray(lengths)[:, None]  # (N, T)
    for _ in range(order):
        out[:, 1:] = out[:, 1:] - out[:, :-1]
        out[:, 0] = 0.0
    for k in range(min(order, x.shape[1])):
        out[:, k] = 0.0
    return np.where(valid[:, :, None], out, 0.0)


def with_differences(x: np.ndarray, lengths: np.ndarray, spec, source: str) -> np.ndarray:
    """The model's channels (N, T, F len(differences)) of scaled x (N, T, F), before framing;
    ``x`` itself when the declaration reads only the values (``differences = [0]``, gain 1).
    DataError (naming the sequence, step, feature and order, never a value) if a gained
    difference exceeds ``spec.value_bound``."""
    if spec.differences == (0,) and spec.difference_gains == (1.0,):
        return x
    parts = []
    for k, g in zip(spec.differences, spec.difference_gains):
        part = g * difference(x, lengths, k)
        bad = ~(np.abs(part) <= spec.value_bound)
        if bad.any():
            i, t, j = np.argwhere(bad)[0]
            raise DataError(
                expected_got(
                    f"{source}: sequence {i}, time step {t}, feature f{j}, difference order {k}",
                    f"|gain x difference| <= value_bound = {spec.value_bound:g}",
                    f"a value past it ({int(bad.sum())} cell(s) affected)",
                    "Lower [data] difference_gains for this order",
                )
            )
        parts.append(part)
    return np.concatenate(parts, axis=2)
