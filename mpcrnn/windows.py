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
"""

from __future__ import annotations

import numpy as np

from mpcrnn.declaration import SequenceData
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
