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


def predict_values(model, data) -> np.ndarray:
    """The torch model's values (N, O) on scaled ``data``, still in scaled units."""
    import torch

    with torch.no_grad():
        out = model(torch.as_tensor(data.x, dtype=torch.float64), torch.as_tensor(data.lengths))
    return out.numpy()


def evaluate_values(cfg, params: dict, data, polynomial: bool = True) -> dict:
    """A party's own test rows (scaled SequenceData) under the opened model, in the target's
    units: RMSE, MAE, R^2 and the sums the report pools (:func:`error_sums`), with torch's exact
    activations (``exact``) and the run's polynomials (``polynomial``)."""
    from mpcrnn.backend import PlainBackend
    from mpcrnn.model import export_state_dicts
    from mpcrnn.train import predict_plain

    spec, y = cfg.spec, unscale_targets(data.y, cfg.spec)
    exact = unscale_targets(
        predict_values(export_state_dicts(cfg.model, params).double(), data), spec
    )
    out = {"rows": data.n_rows, "exact": {**metrics(exact, y), **error_sums(exact, y)}}
    if polynomial:
        B = PlainBackend(cfg.activation)
        poly = predict_plain(B, cfg.model, params, data.x, data.lengths).numpy()
        poly = unscale_targets(poly, spec)
        out["polynomial"] = {**metrics(poly, y), **error_sums(poly, y)}
    return out


def rehearsal_loss(out: np.ndarray, y_scaled: np.ndarray, spec) -> tuple[float, float]:
    """(the loss trained, mean ||y - target||^2 / 2 in scaled units; RMSE in target units)."""
    err = np.asarray(out) - np.asarray(y_scaled)
    rmse = float(np.sqrt((err**2).mean())) * (spec.target_high - spec.target_low) / 2
    return float(0.5 * (err**2).sum(1).mean()), rmse


def mean_warning(train_rmse: float, mean_rmse: float) -> list[str]:
    """``rehearse``'s warning when the model does not beat predicting the training mean (whose
    RMSE on the training rows is their standard deviation)."""
    if train_rmse < mean_rmse:
        return []
    return [
        f"training does not beat the training mean: final training RMSE {train_rmse:.4g} >= "
        f"{mean_rmse:.4g} (always predicting the mean target); try more epochs, a different "
        "lr, a [data] frame, or check the target bounds"
    ]


def predict_report(model, spec, data, dp_epsilon: float | None = None) -> dict:
    """``mpcrnn predict`` on a regression model: values in the target's units (the torch
    export's output, unscaled), the party's own RMSE/MAE/R^2 against its targets; with
    ``dp_epsilon`` the values are clamped to the public [target_low, target_high] and released
    with Laplace noise (:func:`mpcrnn.dp_release.laplace_values`), the metrics computed from the
    noisy values (post-processing)."""
    values = unscale_targets(predict_values(model, data), spec)
    y = unscale_targets(data.y, spec)
    extra = {}
    if dp_epsilon is not None:
        from mpcrnn.dp_release import laplace_values, predict_values_dp_note

        values = laplace_values(values, spec.target_low, spec.target_high, dp_epsilon)
        extra = {"dp": predict_values_dp_note(spec, dp_epsilon, values.size)}
    return {
        "rows": int(len(values)),
        **metrics(values, y),
        "predictions": values.tolist(),
        **extra,
    }
