"""Regression targets: their public bounds, the local checks and scaling, the metrics.

A regression declaration (``[data] target_low``, ``target_high``; ``classes = []``) gives every
sequence ``n_targets`` real targets.  Targets are private like features; the bounds are public
(agreed from domain knowledge, never from the rows' own min/max).  Each party checks its own
targets against the bounds (a target outside them is refused, one error naming the file line or
sequence, never the value) and scales them to [-1, 1] before sharing, as features are.

Metrics (RMSE, MAE, R^2) are computed in the target's units by each party on its own test rows;
the report pools the parties' sums (:func:`pooled`), as accuracy is pooled from counts.
"""

from __future__ import annotations

import math

import numpy as np

from protocols.errors import ConfigError, expected_got


def check_target_bounds(spec) -> None:
    """A regression DataSpec: both bounds finite with low < high, and no classes."""
    lo, hi = spec.target_low, spec.target_high
    ok = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (lo, hi))
    if not (ok and math.isfinite(lo) and math.isfinite(hi) and lo < hi):
        raise ConfigError(
            expected_got(
                "[data] target_low and target_high",
                "two finite public bounds with target_low < target_high",
                "another pair",
            )
        )
    if spec.classes:
        raise ConfigError(
            expected_got("[data] classes with target bounds", "[] (a regression task)", "names")
        )
    object.__setattr__(spec, "target_low", float(lo))
    object.__setattr__(spec, "target_high", float(hi))


def check_targets(y: np.ndarray, spec, source: str, lines: list[int] | None = None) -> None:
    """Raw targets (N, n_targets): finite, within [target_low, target_high]; else one DataError
    naming the first bad sequence (its file line when ``lines`` is given), never the value."""
    from mpcrnn.declaration import fail

    n = len(y) if isinstance(y, np.ndarray) else 0
    if not (isinstance(y, np.ndarray) and y.dtype.kind == "f" and y.shape == (n, spec.n_targets)):
        fail(f"{source}: targets", f"real numbers of shape (N, {spec.n_targets})", "another array")
    with np.errstate(invalid="ignore"):
        bad = ~((y >= spec.target_low) & (y <= spec.target_high))  # NaN is bad too
    rows = np.flatnonzero(bad.any(axis=1))
    if rows.size:
        i = int(rows[0])
        where = f"line {lines[i]} (sequence {i})" if lines else f"sequence {i}"
        fail(
            f"{source}: {where}, target",
            f"a finite value within the declared [data] target_low {spec.target_low:g} .. "
            f"target_high {spec.target_high:g}",
            f"a value outside them ({rows.size} sequence(s) affected)",
            "Declare public bounds that hold every party's targets, or drop those rows",
        )


def scale_targets(y: np.ndarray, spec) -> np.ndarray:
    """Targets -> [-1, 1] by the declared bounds (the model learns these)."""
    lo, hi = spec.target_low, spec.target_high
    return (np.asarray(y, dtype=np.float64) - lo) * (2.0 / (hi - lo)) - 1.0


def unscale_targets(v, spec):
    """Scaled values (numpy or torch) -> the target's units."""
    lo, hi = spec.target_low, spec.target_high
    return (v + 1.0) * ((hi - lo) / 2.0) + lo


def error_sums(pred: np.ndarray, y: np.ndarray) -> dict:
    """The sums a party reports about its own test rows (target units), from which the report
    pools RMSE, MAE and R^2 over every party: rows, SSE, SAE, sum y, sum y^2 (per target)."""
    pred, y = np.asarray(pred, dtype=np.float64), np.asarray(y, dtype=np.float64)
    err = pred - y
    return {
        "rows": int(len(y)),
        "sse": float((err**2).sum()),
        "sae": float(np.abs(err).sum()),
        "sum_y": y.sum(0).tolist(),
        "sum_y2": (y**2).sum(0).tolist(),
    }


def pooled(sums: list[dict]) -> dict:
    """RMSE, MAE, R^2 of the rows behind every entry of ``sums`` (:func:`error_sums`)."""
    n = sum(s["rows"] for s in sums)
    k = len(sums[0]["sum_y"])
    sse, sae = sum(s["sse"] for s in sums), sum(s["sae"] for s in sums)
    sy = np.sum([s["sum_y"] for s in sums], axis=0)
    sy2 = np.sum([s["sum_y2"] for s in sums], axis=0)
    sst = float((sy2 - sy**2 / n).sum())
    return {
        "rows": n,
        "rmse": math.sqrt(sse / (n * k)),
        "mae": sae / (n * k),
        "r2": 1.0 - sse / sst if sst > 0 else float("nan"),
    }


def metrics(pred: np.ndarray, y: np.ndarray) -> dict:
    """RMSE, MAE, R^2 of predictions against targets (same units)."""
    return pooled([error_sums(pred, y)])


def mean_baseline(train_y: np.ndarray, test_y: np.ndarray) -> dict:
    """The naive baseline: predict the training mean for every test row."""
    mean = np.asarray(train_y, dtype=np.float64).mean(0, keepdims=True)
    return metrics(np.broadcast_to(mean, np.shape(test_y)), test_y)
