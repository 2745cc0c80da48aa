"""Forecasting windows: cut per party, no label leak, naive baselines, the regression head."""

from __future__ import annotations

import numpy as np
import pytest

from mpcrnn import data as D
from mpcrnn.declaration import DataSpec
from mpcrnn.windows import cut, last_value, seasonal_last, split_in_time
from protocols.errors import ConfigError


def test_targets_are_never_inside_their_input_window():
    """Label leak: on a series whose value is its own index, every target index lies after
    every input index of its row, within the horizon."""
    series = np.arange(50, dtype=np.float64)
    for window, horizon, stride in [(5, 1, 1), (7, 3, 2), (10, 4, 5), (1, 1, 3)]:
        rows = cut(series, window, horizon, stride)
        assert rows.y.shape == (rows.n_rows, horizon) and rows.x.shape[1] == window
        for x, y in zip(rows.x[:, :, 0], rows.y):
            assert set(x).isdisjoint(set(y))
            assert y.min() == x.max() + 1 and y.max() == x.max() + horizon
            assert np.all(np.diff(x) == 1) and np.all(np.diff(y) == 1)


def test_windows_never_mix_parties():
    """Each party cuts its own series: no window of one party holds another's value."""
    parties = [np.arange(30.0) + 1000 * r for r in range(3)]  # values tell the owner apart
    for r, series in enumerate(parties):
        rows = cut(series, 6, 2, 1)
        owners = np.concatenate([rows.x.ravel(), rows.y.ravel()]) // 1000
        assert set(owners.tolist()) == {r}


def test_time_split_keeps_test_targets_after_training_targets():
    series = np.arange(100.0)
    train, test = split_in_time(series, 0.2, window=8)
    tr, te = cut(train, 8, 2), cut(test, 8, 2)
    assert tr.y.max() < te.y.min()
    assert te.x.min() >= 80 - 8  # test inputs reach back one window only


def test_naive_baselines():
    x = np.arange(12.0).reshape(1, 12, 1)
    np.testing.assert_array_equal(last_value(x, 3), [[11, 11, 11]])
    np.testing.assert_array_equal(seasonal_last(x, 5, 4), [[8, 9, 10, 11, 8]])
    with pytest.raises(ConfigError):
        seasonal_last(x, 2, 13)


def test_short_series_and_bad_sizes_are_config_errors():
    with pytest.raises(ConfigError, match="series length"):
        cut(np.arange(5.0), 4, 2)
    with pytest.raises(ConfigError, match="stride"):
        cut(np.arange(50.0), 4, 2, 0)


def test_windows_are_a_regression_data_set(tmp_path):
    rows = cut(np.sin(np.arange(60) / 3.0), 8, 3, 2)
    spec = DataSpec(1, (), 8, target_low=-1.0, target_high=1.0, n_targets=3)
    D.write_npz(rows, tmp_path / "w.npz")
    back = D.load_party_file(tmp_path / "w.npz", spec)
    np.testing.assert_array_equal(back.y, rows.y)
    assert D.scale_features(back, spec).y.shape == (rows.n_rows, 3)
