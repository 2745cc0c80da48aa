"""Forecasting windows: each party cuts its OWN long series into (input window, next values)
rows, locally, before intake; the windows of one party never contain another's values.

Row i of a party's windows, for the public ``window`` (input length W), ``horizon`` (h) and
``stride`` (s): the input is ``series[i s : i s + W]`` (all features) and the target is
``series[i s + W : i s + W + h, target]``: the h values of the target feature right after the
window (multi-horizon, predicted from the window's end by the many-to-one head with
``output_size = h``).  Targets never lie inside their own input window (the label-leak test in
tests/test_windows.py).  The resulting rows are a regression data set of ``max_len = W``,
``n_targets = h``: declare ``[data] max_len = W``, ``n_targets = h`` and the public target
bounds (those of the target feature), and write them with :func:`mpcrnn.data.write_npz`.

Splitting train and test in time (the test rows' windows after the training rows'): see
:func:`split_in_time`, whose gap keeps a training target from being a test input.

From files: ``[data] window`` (and ``horizon``, ``stride``, ``target_column``) declares the
windows, checked by :func:`check_forecast`; each party's file is then one long series that
:func:`mpcrnn.readers_series.read_series` reads and cuts with :func:`cut`, in the party's own
process.
"""

from __future__ import annotations

import numpy as np

from mpcrnn.declaration import DataSpec, SequenceData
from protocols.errors import ConfigError, expected_got


def window_starts(length: int, window: int, horizon: int, stride: int) -> np.ndarray:
    """Start indices of every complete (window + horizon) span of a series of ``length``."""
    for name, v in (("window", window), ("horizon", horizon), ("stride", stride)):
        if not isinstance(v, int) or v < 1:
            raise ConfigError(expected_got(f"forecasting {name}", "an integer >= 1", v))
    last = length - window - horizon
    if last < 0:
        raise ConfigError(
            expected_got(
                "series length", f">= window + horizon = {window + horizon}", f"{length} steps"
            )
        )
    return np.arange(0, last + 1, stride)


def cut(
    series: np.ndarray, window: int, horizon: int, stride: int = 1, target: int = 0
) -> SequenceData:
    """One party's series (L, F) or (L,) -> its windows: x (N, W, F), y (N, h) raw values of
    feature ``target`` after each window (regression SequenceData, classes ())."""
    s = np.asarray(series, dtype=np.float64)
    s = s[:, None] if s.ndim == 1 else s
    starts = window_starts(len(s), window, horizon, stride)
    x = np.stack([s[i : i + window] for i in starts])
    y = np.stack([s[i + window : i + window + horizon, target] for i in starts])
    return SequenceData(x, np.full(len(starts), window, dtype=np.int64), y, ())


def split_in_time(series: np.ndarray, test_fraction: float, window: int) -> tuple:
    """(train part, test part) of one party's series: the last ``test_fraction`` of its steps
    (plus the ``window`` steps before them, as inputs only) for testing.  Test targets come
    after every training target."""
    n = len(series)
    cut_at = int(round(n * (1 - test_fraction)))
    return series[:cut_at], series[max(cut_at - window, 0) :]


def last_value(x_raw: np.ndarray, horizon: int, target: int = 0) -> np.ndarray:
    """The naive forecast: the window's last value of the target, for every horizon step."""
    return np.repeat(x_raw[:, -1, target : target + 1], horizon, axis=1)


def seasonal_last(x_raw: np.ndarray, horizon: int, period: int, target: int = 0) -> np.ndarray:
    """The seasonal naive forecast: step k after the window repeats the value one ``period``
    earlier (``x[W - period + (k mod period)]``); needs ``period <= W``."""
    W = x_raw.shape[1]
    if not 1 <= period <= W:
        raise ConfigError(expected_got("seasonal period", f"in 1..{W} (the window)", period))
    idx = [W - period + (k % period) for k in range(horizon)]
    return x_raw[:, idx, target]


NEEDS_TARGETS = (
    "target_low and target_high declared too (forecasting is a regression)",
    "no target bounds",
)


def forecast_keys(body: dict, in_file: bool = True) -> dict:
    """A ``[data]`` body with its forecasting keys typed as settings (``[data] window: expected
    an integer``) and, with ``window``, ``max_len = window`` and ``n_targets = horizon`` where
    left out.  ``in_file``: the run file has a ``[data]`` section (flags alone cannot declare
    the series' features and bounds)."""
    from mpcrnn.settings import coerce, settings_of

    for s in settings_of(DataSpec):
        if s.name in body:
            if not in_file:
                raise ConfigError(
                    expected_got(
                        s.label,
                        "a [data] section in the run file declaring the series (n_features, "
                        "feature and target bounds)",
                        "no [data]",
                    )
                )
            body[s.name] = coerce(s, body[s.name])
    window = body.get("window")
    if window is not None:  # checked here first: max_len and the regression head follow from it
        if window < 1:
            raise ConfigError(expected_got("[data] window", "an integer >= 1", window))
        if body.get("target_low") is None and body.get("target_high") is None:
            raise ConfigError(expected_got("[data] window", *NEEDS_TARGETS))
        body.setdefault("max_len", window)
        body.setdefault("n_targets", body.get("horizon") or 1)
    return body


def check_forecast(spec) -> None:
    """The forecasting keys of a DataSpec: all unset, or ``window`` set with target bounds,
    ``max_len = window`` and ``n_targets = horizon``; fills the defaults (horizon: n_targets,
    stride: 1).  One ConfigError line naming the key otherwise."""
    if spec.window is None:
        for key in ("horizon", "stride", "target_column", "season"):
            if getattr(spec, key) is not None:
                raise ConfigError(
                    expected_got(
                        f"[data] {key}",
                        "unset unless [data] window is set (forecasting from a long series)",
                        getattr(spec, key),
                    )
                )
        return
    horizon = spec.n_targets if spec.horizon is None else spec.horizon
    stride = 1 if spec.stride is None else spec.stride
    for key, v in (("window", spec.window), ("horizon", horizon), ("stride", stride)):
        if not isinstance(v, int) or isinstance(v, bool) or v < 1:
            raise ConfigError(expected_got(f"[data] {key}", "an integer >= 1", repr(v)))
    for key, want, got in (
        ("max_len", spec.window, spec.max_len),
        ("n_targets", horizon, spec.n_targets),
    ):
        if got != want:
            what = "window" if key == "max_len" else "horizon"
            raise ConfigError(
                expected_got(f"[data] {key} with window", f"the {what}, {want} (or left out)", got)
            )
    if not spec.is_regression or spec.kind != "sequence":
        got = NEEDS_TARGETS[1] if not spec.is_regression else f"kind {spec.kind}"
        raise ConfigError(expected_got("[data] window", NEEDS_TARGETS[0], got))
    _check_target_column(spec)
    season = spec.season
    if season is not None and (
        not isinstance(season, int) or isinstance(season, bool) or not 1 <= season <= spec.window
    ):
        raise ConfigError(
            expected_got("[data] season", f"an integer in 1..{spec.window} (the window)", season)
        )
    object.__setattr__(spec, "horizon", horizon)
    object.__setattr__(spec, "stride", stride)


def _check_target_column(spec) -> None:
    name = spec.target_column
    if name is None and spec.n_features > 1:
        raise ConfigError(
            expected_got(
                "[data] target_column",
                f"the header name of the target among the {spec.n_features} columns "
                "(required with more than one)",
                "unset",
            )
        )
    if name is not None and (
        not isinstance(name, str)
        or not name
        or name != name.strip()
        or any(c in name for c in ',"\n')
    ):
        raise ConfigError(
            expected_got(
                "[data] target_column",
                "a column name (non-empty, no surrounding spaces, no comma or quote)",
                repr(name),
            )
        )
