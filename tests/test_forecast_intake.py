"""Forecasting from files: ``[data] window`` / ``horizon`` / ``stride`` / ``target_column`` make
each party's data file one long series (a CSV) that its intake cuts into windows locally
(mpcrnn.readers_series).  The windows equal mpcrnn.windows.cut by hand, never cross parties,
never leak a target into its own input or a test target into a training input; bad files and
bad declarations are one line each, never naming a value.  One end-to-end MPC run at the end."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from launch.cli import main
from launch.runfile import build, read_file
from mpcrnn import data as D
from mpcrnn.readers_series import naive_sums, write_series
from mpcrnn.windows import cut, split_in_time
from protocols.errors import ConfigError, DataError

ROOT = Path(__file__).resolve().parents[1]

DATA = {  # two columns: an exogenous feature and the target ("load")
    "n_features": 2,
    "scaling": "bounds",
    "feature_low": [-10.0, 0.0],
    "feature_high": [10.0, 1000.0],
    "target_low": -10.0,
    "target_high": 1000.0,
    "window": 6,
    "horizon": 2,
    "stride": 3,
    "target_column": "load",
}


def _spec(**changes):
    return build({"data": {**DATA, **changes}}, {}).spec


def _series(n=40, offset=0.0):
    """(n, 2): column 0 a bounded sine, column 1 ("load") offset + step index."""
    t = np.arange(n, dtype=np.float64)
    return np.stack([5 * np.sin(t / 3), offset + t], axis=1)


def _write(path, series, columns=("temp", "load")):
    write_series(series, path, list(columns))
    return str(path)


# ----------------------------------------------------------------- the declaration


def test_the_declaration_gives_the_window_shape_and_the_head():
    cfg = build({"data": DATA}, {})
    assert (cfg.spec.max_len, cfg.spec.n_targets, cfg.spec.stride) == (6, 2, 3)
    assert cfg.model.task == "regress" and cfg.model.output_size == 2
    defaults = build({"data": {**DATA, "horizon": None, "stride": None}}, {}).spec
    assert (defaults.horizon, defaults.n_targets, defaults.stride) == (1, 1, 1)


def test_flags_override_the_run_files_forecasting_keys(tmp_path):
    changed = {"window": 9, "horizon": 3, "stride": 1, "target_column": "temp"}
    in_file = build({"data": {**DATA, **changed}}, {})
    assert build({"data": DATA}, changed) == in_file
    assert (in_file.spec.max_len, in_file.model.output_size) == (9, 3)
    (tmp_path / "run.toml").write_text(
        "[data]\n" + "\n".join(f"{k} = {json.dumps(v)}" for k, v in DATA.items()) + "\n"
    )
    assert build(read_file(str(tmp_path / "run.toml")), {}) == build({"data": DATA}, {})


@pytest.mark.parametrize(
    "data, pattern",
    [
        (
            {"window": None, "max_len": 6},
            r"^\[data\] horizon: expected unset unless \[data\] window is set",
        ),
        ({"window": 0}, r"^\[data\] window: expected an integer >= 1, got 0"),
        ({"window": "6"}, r"^\[data\] window: expected an integer, got str"),
        ({"stride": 1.5}, r"^\[data\] stride: expected an integer, got float"),
        ({"max_len": 7}, r"^\[data\] max_len with window: expected the window, 6"),
        ({"n_targets": 1}, r"^\[data\] n_targets with window: expected the horizon, 2"),
        ({"target_low": None, "target_high": None}, r"^\[data\] window: expected target_low"),
        ({"target_column": None}, r"^\[data\] target_column: expected the header name"),
        ({"target_column": "a,b"}, r"^\[data\] target_column: expected a column name"),
    ],
)
def test_a_bad_declaration_is_one_config_error(data, pattern):
    body = {k: v for k, v in {**DATA, **data}.items() if v is not None}
    with pytest.raises(ConfigError, match=pattern) as e:
        build({"data": body}, {})
    assert "\n" not in str(e.value)


def test_a_forecasting_flag_without_a_data_section_is_refused():
    with pytest.raises(ConfigError, match=r"^\[data\] window: expected a \[data\] section"):
        build({}, {"window": 10})


def test_the_command_line_names_the_flag(tmp_path, subprocesses):
    """`mpcrnn train --window` without [data]: one line naming key and flag (its own process:
    the CLI exits the process on errors)."""
    cmd = [sys.executable, "-m", "launch.cli", "train", "--window", "10", "--data", "x.csv"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocesses.run(cmd, capture_output=True, text=True, timeout=120, cwd=tmp_path, env=env)
    assert out.returncode != 0
    assert (
        out.stderr.strip()
        .splitlines()[-1]
        .startswith("error: [data] window (--window): expected a [data] section")
    )


# ----------------------------------------------------------------- the windows


@pytest.mark.parametrize(
    "window, horizon, stride, column", [(6, 2, 3, "load"), (1, 1, 1, "temp"), (10, 5, 7, "load")]
)
def test_declared_windows_equal_cut_by_hand(tmp_path, window, horizon, stride, column):
    series = _series(41)
    spec = _spec(window=window, horizon=horizon, stride=stride, target_column=column)
    got = D.load_party_file(_write(tmp_path / "s.csv", series), spec)
    want = cut(series, window, horizon, stride, target=["temp", "load"].index(column))
    np.testing.assert_array_equal(got.x, want.x)
    np.testing.assert_array_equal(got.y, want.y)
    np.testing.assert_array_equal(got.lengths, want.lengths)
    assert got.classes == () and got.y.shape == (want.n_rows, horizon)


def test_one_column_is_the_target_whatever_its_name(tmp_path):
    one = {"n_features": 1, "feature_low": [0.0], "feature_high": [1000.0], "target_column": None}
    spec = _spec(**one)
    series = _series(30)[:, 1]
    got = D.load_party_file(_write(tmp_path / "s.csv", series, ["anything"]), spec)
    np.testing.assert_array_equal(got.y, cut(series, 6, 2, 3).y)


def test_no_window_crosses_parties(tmp_path):
    """Each party's files hold only its values (1000 r + t): so do all of its windows."""
    spec = _spec(feature_high=[10.0, 4000.0], target_high=4000.0)
    for r in range(3):
        rows = D.load_party_file(_write(tmp_path / f"p{r}.csv", _series(40, 1000.0 * r)), spec)
        owners = np.concatenate([rows.x[:, :, 1].ravel(), rows.y.ravel()]) // 1000
        assert set(owners.tolist()) == {r}


def test_no_label_leak_within_a_window_or_from_test_into_training(tmp_path):
    """On a target equal to its step index: every target comes after its own input window, within
    the horizon; with the time split written as two files, every test target comes after every
    training input and target (no test target is inside a training input)."""
    spec = _spec(stride=1)
    train, test = split_in_time(_series(60), 0.25, window=6)
    tr = D.load_party_file(_write(tmp_path / "train.csv", train), spec)
    te = D.load_party_file(_write(tmp_path / "test.csv", test), spec)
    for rows in (tr, te):
        for x, y in zip(rows.x[:, :, 1], rows.y):
            assert set(x).isdisjoint(y) and y.min() == x.max() + 1 and y.max() == x.max() + 2
    assert te.y.min() > max(tr.x[:, :, 1].max(), tr.y.max())
    assert set(te.y.ravel()).isdisjoint(tr.x[:, :, 1].ravel())


# ----------------------------------------------------------------- bad files


def _lines_of(series, columns="temp,load"):
    return columns + "\n" + "".join(f"{a!r},{b!r}\n" for a, b in series.tolist())


BAD_FILES = [  # (id, file text, error pattern, the value that must not appear)
    (
        "non-numeric",
        lambda s: _lines_of(s).replace("3.0\n", "abc\n", 1),
        r"line 5, column 2 of 2: expected a number, got a non-numeric cell",
        "abc",
    ),
    (
        "nan",
        lambda s: _lines_of(s).replace("3.0\n", "nan\n", 1),
        r"line 5, column 2 of 2: expected a number, got NaN",
        None,
    ),
    (
        "inf",
        lambda s: _lines_of(s).replace("3.0\n", "inf\n", 1),
        r"line 5, column 2 of 2: expected a finite number, got an infinite value",
        None,
    ),
    (
        "missing target column",
        lambda s: _lines_of(s, "temp,power"),
        r"header: expected a column named 'load' \(\[data\] target_column\), got no such column",
        None,
    ),
    (
        "columns",
        lambda s: "load\n1.0\n",
        r"number of columns: expected 2 \(\[data\] n_features\), got 1",
        None,
    ),
    (
        "cells",
        lambda s: _lines_of(s).replace("3.0\n", "3.0,4.0\n", 1),
        r"line 5: number of cells: expected 2, got 3",
        None,
    ),
    (
        "short",
        lambda s: _lines_of(s[:7]),
        r"length: expected at least window \+ horizon = 8 time steps",
        None,
    ),
    (
        "no header",
        lambda s: _lines_of(s, "1.5,2.5"),
        r"line 1: expected a header of column names",
        None,
    ),
    ("empty", lambda s: "", r"expected a header line of column names", None),
    (
        "target out of bounds",
        lambda s: _lines_of(s).replace("7.0\n", "1234.5\n", 1),
        r"line 9, column 2 of 2: expected a target within the declared \[data\] target_low -10 "
        r"\.\. target_high 1000",
        "1234.5",
    ),
    (
        "feature out of bounds",
        lambda s: _lines_of(s).replace(",3.0\n", ",-9876.5\n", 1),
        r"line 5, column 2 of 2: expected a value within the declared bounds",
        "9876",
    ),
]


@pytest.mark.parametrize(
    "text, pattern, secret", [b[1:] for b in BAD_FILES], ids=[b[0] for b in BAD_FILES]
)
def test_a_bad_series_file_is_one_data_error_naming_line_and_column(
    tmp_path, text, pattern, secret
):
    path = tmp_path / "s.csv"
    path.write_text(text(_series(20)))
    with pytest.raises(DataError, match=pattern) as e:
        D.load_party_file(path, _spec())
    message = str(e.value)
    assert message.startswith(str(path)) and "\n" not in message
    assert secret is None or secret not in message


def test_only_a_csv_is_a_series(tmp_path):
    D.write_npz(cut(_series(30), 6, 2, 3), tmp_path / "w.npz")
    with pytest.raises(DataError, match=r"file type: expected a \.csv long series"):
        D.load_party_file(tmp_path / "w.npz", _spec())


# ----------------------------------------------------------------- end to end


SUNSPOTS_DATA = {
    "n_features": 1,
    "scaling": "bounds",
    "feature_low": [0.0],
    "feature_high": [200.0],
    "target_low": 0.0,
    "target_high": 200.0,
    "window": 22,
}


def _sunspot_files(directory: Path, parties: int) -> tuple[list[str], list[str]]:
    series = np.loadtxt(
        ROOT / "mpcrnn" / "datasets" / "sunspots" / "sunspots.csv", delimiter=",", skiprows=1
    )[:, 1]
    train, test = [], []
    for r, era in enumerate(np.array_split(series, parties)):
        for part, files, name in zip(split_in_time(era, 0.2, 22), (train, test), ("train", "test")):
            files.append(str(directory / f"p{r}-{name}.csv"))
            write_series(part, files[-1], ["sunspots"])
    return train, test


def test_rehearse_forecasts_the_sunspots_from_a_declared_window(tmp_path):
    """`mpcrnn rehearse` on one party's long series (no processes): the windows are its rows."""
    body = "\n".join(f"{k} = {json.dumps(v)}" for k, v in SUNSPOTS_DATA.items())
    (tmp_path / "run.toml").write_text(
        f"[model]\nhidden_size = 8\n[train]\nepochs = 4\n[data]\n{body}\n"
    )
    train, test = _sunspot_files(tmp_path, 1)
    args = ["rehearse", "--config", str(tmp_path / "run.toml"), "--data", train[0]]
    out = CliRunner().invoke(main, [*args, "--test", test[0], "--json"])
    assert out.exit_code == 0, out.output
    assert "test RMSE" in out.output


def test_mpc_trains_a_forecaster_from_series_files(tmp_path, launcher):
    """Two parties, each with its own era of the sunspots as a series file: the launcher's
    intake windows them and the parties report a test RMSE in sunspot numbers."""
    cfg = build(
        {
            "data": {**SUNSPOTS_DATA, "season": 11},
            "run": {"parties": 2, "insecure_plaintext_transport": True},
            "model": {"hidden_size": 4},
            "train": {"epochs": 1, "batch_size": 32},
        },
        {},
    )
    train, test = _sunspot_files(tmp_path, 2)
    reports = launcher(cfg, train, test, str(tmp_path / "run"), timeout_s=60, show_progress=False)
    tests = [r["local_test"]["polynomial"] for r in reports if "local_test" in r]
    assert len(tests) == 2
    assert all(np.isfinite(t["rmse"]) and 0 < t["rmse"] < 200 for t in tests)
    naive = [r["local_naive"] for r in reports if "local_naive" in r]
    assert naive == [naive_sums(f, cfg.spec) for f in test]  # each party's own, no more


def test_naive_forecasts_are_the_windows_last_and_seasonal_values(tmp_path):
    """Each party's naive sums: the last value and (with [data] season) the value one season
    earlier, on its own test windows, against the window's targets; the report pools them."""
    from mpcrnn.regression import error_sums, pooled
    from mpcrnn.regression_report import test_metrics

    data = {**SUNSPOTS_DATA, "season": 11, "horizon": 3}
    cfg = build({"data": data, "run": {"parties": 2}}, {})
    _, test = _sunspot_files(tmp_path, 2)
    series = np.loadtxt(test[0], delimiter=",", skiprows=1)
    starts = range(0, len(series) - 22 - 3 + 1)
    y = np.array([series[i + 22 : i + 25] for i in starts])
    last = np.array([[series[i + 21]] * 3 for i in starts])
    seasonal = np.array([series[i + 11 : i + 14] for i in starts])
    got = naive_sums(test[0], cfg.spec)
    assert got["last_value"] == error_sums(last, y)
    assert got["seasonal_last"] == error_sums(seasonal, y)
    parties = [
        {
            "local_test": {"exact": got["last_value"], "polynomial": got["last_value"]},
            "local_naive": got,
        },
        {
            "local_test": {"exact": got["last_value"], "polynomial": got["last_value"]},
            "local_naive": naive_sums(test[1], cfg.spec),
        },
    ]
    summary, lines = {}, []
    test_metrics(cfg, parties, summary, lines.append)
    both = pooled([got["seasonal_last"], parties[1]["local_naive"]["seasonal_last"]])
    assert summary["test_regression"]["naive_seasonal_last"] == both
    assert "seasonal last (11) RMSE" in lines[-1]


@pytest.mark.parametrize(
    "extra, expected",
    [
        ({"season": 23}, "[data] season: expected an integer in 1..22 (the window), got 23"),
        ({"season": 0}, "[data] season: expected an integer in 1..22 (the window), got 0"),
    ],
)
def test_a_season_outside_the_window_is_refused(extra, expected):
    with pytest.raises(ConfigError) as err:
        build({"data": {**SUNSPOTS_DATA, **extra}}, {})
    assert str(err.value).startswith(expected)


def test_a_season_without_a_window_is_refused():
    data = {k: v for k, v in SUNSPOTS_DATA.items() if k != "window"}
    with pytest.raises(ConfigError) as err:
        build({"data": {**data, "max_len": 22, "season": 11}}, {})
    assert "[data] season: expected unset unless [data] window is set" in str(err.value)
