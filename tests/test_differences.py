"""[data] differences: the declared differences along time, their gains, bounds and errors."""

from __future__ import annotations

import numpy as np
import pytest

from launch.runfile import build
from mpcrnn import data as D
from mpcrnn.declaration import DataSpec, SequenceData
from mpcrnn.differences import difference
from protocols.errors import ConfigError, DataError

BOUNDS = {"scaling": "bounds", "feature_low": (-2.0, 0.0), "feature_high": (2.0, 4.0)}


def _spec(**kw) -> DataSpec:
    return DataSpec(2, (), 12, target_low=0.0, target_high=1.0, **{**BOUNDS, **kw})


def _data(seed: int = 0) -> SequenceData:
    rng = np.random.default_rng(seed)
    lengths = np.array([12, 7, 3, 1])
    x = np.zeros((4, 12, 2))
    for i, n in enumerate(lengths):
        x[i, :n, 0] = rng.uniform(-2, 2, n)
        x[i, :n, 1] = rng.uniform(0, 4, n)
    return SequenceData(x, lengths, rng.uniform(0, 1, (4, 1)), ())


@pytest.mark.parametrize("order", [0, 1, 2, 3])
def test_difference_is_numpy_diff_inside_each_row(order):
    d = _data()
    got = difference(d.x, d.lengths, order)
    for i, n in enumerate(d.lengths):
        want = np.zeros((12, 2))
        if n > order:
            want[order:n] = np.diff(d.x[i, :n], n=order, axis=0)
        np.testing.assert_allclose(got[i], want, rtol=0, atol=1e-12)


def test_scale_features_stacks_gained_orders_before_framing():
    d = _data()
    plain = D.scale_features(d, _spec())
    spec = _spec(differences=[0, 2], difference_gains=[1, 1.5], frame=3)
    got = D.scale_features(d, spec)
    assert spec.input_size == 3 * 2 * 2 and got.x.shape == (4, 4, 12)
    assert got.lengths.tolist() == [4, 3, 1, 1]
    want = np.concatenate([plain.x, 1.5 * difference(plain.x, d.lengths, 2)], axis=2)
    np.testing.assert_allclose(got.x, want.reshape(4, 4, 12), rtol=0, atol=1e-12)
    np.testing.assert_array_equal(got.y, plain.y)  # targets are not differenced


def test_default_reads_the_values_only():
    d = _data()
    spec = _spec()
    assert spec.differences == (0,) and spec.difference_gains == (1.0,)
    assert spec.input_size == 2
    np.testing.assert_array_equal(D.scale_features(d, spec).x, D.scale_features(d, _spec()).x)


def test_a_gained_difference_past_value_bound_is_refused_without_its_value():
    d = _data()
    with pytest.raises(DataError) as err:
        D.scale_features(d, _spec(differences=[1], difference_gains=[40.0]), "a.csv")
    msg = str(err.value)
    assert msg.startswith("a.csv: sequence ") and "difference order 1" in msg
    assert "expected |gain x difference| <= value_bound = 8" in msg
    assert "Lower [data] difference_gains" in msg and "\n" not in msg
    scaled = D.scale_features(d, _spec()).x
    for v in np.unique(np.round(40 * np.diff(scaled, axis=1), 2)):
        assert f"{v:g}" not in msg.split("got")[1].split("(")[0]


@pytest.mark.parametrize(
    "kw, key",
    [
        ({"differences": []}, "differences"),
        ({"differences": [1, 1]}, "differences"),
        ({"differences": [-1]}, "differences"),
        ({"differences": [12]}, "differences"),
        ({"differences": [True]}, "differences"),
        ({"differences": [1.0]}, "differences"),
        ({"differences": [0, 1], "difference_gains": [1.0]}, "difference_gains"),
        ({"differences": [1], "difference_gains": [0.0]}, "difference_gains"),
        ({"differences": [1], "difference_gains": [float("inf")]}, "difference_gains"),
        ({"differences": [1], "difference_gains": ["2"]}, "difference_gains"),
    ],
)
def test_bad_declarations_are_one_config_error_naming_the_key(kw, key):
    with pytest.raises(ConfigError, match=rf"^\[data\] {key}: expected "):
        _spec(**kw)


def test_text_reads_tokens_not_differences():
    with pytest.raises(ConfigError, match=r"\[data\] differences: expected \[0\] for text"):
        DataSpec(256, ("ham", "spam"), 20, kind="text", differences=[1])


def test_run_file_lists_set_the_model_input_size():
    data = {
        "n_features": 2,
        "max_len": 12,
        "frame": 2,
        "target_low": 0.0,
        "target_high": 1.0,
        "differences": [0, 1],
        "difference_gains": [1.0, 8],
        **{k: list(v) if isinstance(v, tuple) else v for k, v in BOUNDS.items()},
    }
    cfg = build({"data": data}, {})
    assert cfg.spec.differences == (0, 1) and cfg.spec.difference_gains == (1.0, 8.0)
    assert cfg.model.input_size == 2 * 2 * 2


def test_predict_differences_a_raw_file_as_training_did(tmp_path):
    """A model file keeps the declared differences: `mpcrnn predict` on a raw file equals the
    torch export applied to the scaled, differenced and framed rows."""
    import json

    import torch
    from click.testing import CliRunner

    from launch.cli import main
    from mpcrnn.config import ActivationConfig
    from mpcrnn.model import init_params
    from mpcrnn.model_file import read_model_file, write_model_file
    from mpcrnn.regression import unscale_targets

    spec = _spec(differences=[0, 1], difference_gains=[1.0, 2.0], frame=2)
    cfg = build({"data": {**spec.__dict__}}, {})
    assert cfg.model.input_size == 8
    params = init_params(cfg.model, 0)
    path = tmp_path / "model.pt"
    write_model_file(path, cfg.model, ActivationConfig(), cfg.spec, params)
    data = _data()
    D.write_npz(data, tmp_path / "mine.npz")
    out = CliRunner().invoke(
        main, ["predict", "--model", str(path), "--data", str(tmp_path / "mine.npz")]
    )
    assert out.exit_code == 0, out.output
    _, saved, model = read_model_file(path)
    assert saved.differences == (0, 1) and saved.difference_gains == (1.0, 2.0)
    rows = D.scale_features(data, saved)
    with torch.no_grad():
        ref = model(torch.as_tensor(rows.x), torch.as_tensor(rows.lengths)).numpy()
    got = json.loads(out.output)["predictions"]
    np.testing.assert_allclose(got, unscale_targets(ref, saved), rtol=0, atol=1e-9)
