"""Regression intake: .ts with @targetLabel, CSV/NPZ targets, the public target bounds."""

from __future__ import annotations

import numpy as np
import pytest

from mpcrnn import data as D
from mpcrnn.declaration import DataSpec
from mpcrnn.regression import error_sums, metrics, pooled, unscale_targets
from protocols.errors import ConfigError, DataError

SPEC = DataSpec(2, (), 4, target_low=0.0, target_high=10.0)
TS = """# a tiny extrinsic regression file
@problemName tiny
@timeStamps false
@univariate false
@dimensions 2
@targetLabel true
@data
0.1,0.2,0.3:1.0,1.1,1.2:3.5
0.5,0.4:0.3,0.2:7.25
0.0,0.1,0.2,0.3:0.1,0.1,0.1,0.1:{last}
"""


def _ts(tmp_path, last="0.5"):
    path = tmp_path / "r.ts"
    path.write_text(TS.format(last=last))
    return path


def test_ts_target_label_reads_real_targets(tmp_path):
    data = D.read_ts(_ts(tmp_path), SPEC)
    assert data.y.dtype == np.float64 and data.y.shape == (3, 1)
    np.testing.assert_array_equal(data.y[:, 0], [3.5, 7.25, 0.5])
    assert data.lengths.tolist() == [3, 2, 4]
    scaled = D.scale_features(data, SPEC)
    np.testing.assert_allclose(scaled.y[:, 0], [-0.3, 0.45, -0.9])
    np.testing.assert_allclose(unscale_targets(scaled.y, SPEC), data.y)


def test_target_outside_bounds_names_file_and_line_not_value(tmp_path):
    with pytest.raises(DataError) as e:
        D.read_ts(_ts(tmp_path, last="12.345"), SPEC)
    msg = str(e.value)
    assert "r.ts: line 10 (sequence 2), target" in msg and "12.345" not in msg
    assert "\n" not in msg


def test_non_numeric_target_is_refused_by_line(tmp_path):
    with pytest.raises(DataError, match="line 10 \\(sequence 2\\), target"):
        D.read_ts(_ts(tmp_path, last="fat"), SPEC)


def test_classification_file_against_regression_declaration(tmp_path):
    path = tmp_path / "c.ts"
    path.write_text("@dimensions 2\n@classLabel true a b\n@data\n0.1:0.2:a\n")
    with pytest.raises(DataError, match="expected @targetLabel true"):
        D.read_ts(path, SPEC)
    with pytest.raises(DataError, match="expected @classLabel true"):
        D.read_ts(_ts(tmp_path), DataSpec(2, ("a", "b"), 4))


def test_template_reads_regression_ts_without_declaration(tmp_path):
    data = D.read_ts(_ts(tmp_path))
    assert data.classes == () and data.y.shape == (3, 1)


def test_csv_and_npz_targets_round_trip(tmp_path):
    data = D.read_ts(_ts(tmp_path), SPEC)
    D.write_csv(data, tmp_path / "r.csv")
    D.write_npz(data, tmp_path / "r.npz")
    for path in ("r.csv", "r.npz"):
        back = D.load_party_file(tmp_path / path, SPEC)
        np.testing.assert_array_equal(back.y, data.y)
        np.testing.assert_array_equal(back.x, data.x)


def test_csv_target_outside_bounds_names_first_line_of_sequence(tmp_path):
    path = tmp_path / "r.csv"
    path.write_text(
        "seq_id,t,f0,f1,target\na,0,0.1,0.2,1.5\nb,0,0.1,0.2,-3.25\nb,1,0.1,0.2,-3.25\n"
    )
    with pytest.raises(DataError, match="line 3 \\(sequence 1\\), target") as e:
        D.read_csv(path, SPEC)
    assert "3.25" not in str(e.value)


def test_npz_target_outside_bounds_names_sequence(tmp_path):
    path = tmp_path / "r.npz"
    np.savez(path, x=np.zeros((2, 4, 2)), lengths=np.array([4, 4]), y=np.array([1.0, 99.0]))
    with pytest.raises(DataError, match="sequence 1, target") as e:
        D.read_npz(path, SPEC)
    assert "99" not in str(e.value)


@pytest.mark.parametrize(
    "kw",
    [
        {"target_low": 1.0, "target_high": 1.0},
        {"target_low": 0.0, "target_high": float("inf")},
        {"target_low": 0.0},
    ],
)
def test_bad_target_bounds_are_config_errors(kw):
    with pytest.raises(ConfigError, match="target_low"):
        DataSpec(2, (), 4, **kw)


def test_classes_with_target_bounds_refused():
    with pytest.raises(ConfigError, match="classes with target bounds"):
        DataSpec(2, ("a", "b"), 4, target_low=0.0, target_high=1.0)


def test_metrics_pool_like_one_set():
    rng = np.random.default_rng(0)
    y, p = rng.normal(size=(20, 1)), rng.normal(size=(20, 1))
    whole = metrics(p, y)
    parts = pooled([error_sums(p[:7], y[:7]), error_sums(p[7:], y[7:])])
    for k in ("rmse", "mae", "r2"):
        assert parts[k] == pytest.approx(whole[k], rel=1e-12)
    assert whole["rmse"] == pytest.approx(np.sqrt(((p - y) ** 2).mean()))
    r2 = 1 - ((p - y) ** 2).sum() / ((y - y.mean()) ** 2).sum()
    assert whole["r2"] == pytest.approx(r2)
