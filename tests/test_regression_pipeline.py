"""Regression through the run file, rehearse, predict and the model file (no MPC processes)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from launch.cli import main
from launch.runfile import build, data_template
from mpcrnn import data as D
from mpcrnn.config import ActivationConfig
from mpcrnn.declaration import DataSpec
from mpcrnn.dp_release import laplace_values
from mpcrnn.model import init_params
from mpcrnn.model_file import read_model_file, write_model_file
from mpcrnn.regression import unscale_targets
from protocols.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]

DATA = {
    "n_features": 2,
    "classes": [],
    "max_len": 10,
    "scaling": "bounds",
    "feature_low": [-1.0, -1.0],
    "feature_high": [1.0, 1.0],
    "target_low": 10.0,
    "target_high": 30.0,
}
TOML = """
[model]
hidden_size = 8
[train]
epochs = {epochs}
lr = {lr}
[data]
n_features = 2
max_len = 10
scaling = "bounds"
feature_low = [-1.0, -1.0]
feature_high = [1.0, 1.0]
target_low = 10.0
target_high = 30.0
"""


def _toy(n=64, seed=0, learnable=True):
    """Target 20 + 8 * (mean of feature 0) (or unrelated to the features)."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(-0.8, 0.8, (n, 10, 2))
    y = 20 + 8 * (x[:, :, 0].mean(1) if learnable else rng.uniform(-1, 1, n))
    return D.SequenceData(x, np.full(n, 10, dtype=np.int64), y[:, None], ())


def test_run_file_target_bounds_choose_the_regression_head():
    cfg = build({"data": DATA}, {})
    assert cfg.model.task == "regress" and cfg.model.output_size == 1 and cfg.spec.is_regression
    assert cfg.model.head_size == 1


@pytest.mark.parametrize(
    "section,match",
    [
        ({"adversarial": {"method": "fgsm"}}, "regression task"),
        ({"run": {"reveal_metrics": True}}, "regression task"),
    ],
)
def test_what_regression_refuses_is_one_config_error(section, match):
    with pytest.raises(ConfigError, match=match) as e:
        build({"data": DATA, **section}, {})
    assert "\n" not in str(e.value)


def test_fedavg_and_dp_accept_regression():
    assert build({"data": DATA, "run": {"mode": "fedavg"}}, {}).mode == "fedavg"
    assert build({"data": DATA, "dp": {"epsilon": 8.0}}, {}).dp.enabled


def test_template_for_a_regression_ts(tmp_path, subprocesses):
    path = tmp_path / "r.ts"
    path.write_text("@targetLabel true\n@data\n0.1,0.2,0.3:1.5\n0.3,0.2:2.5\n")
    text = data_template(str(path))
    assert "classes = []" in text and "target_low = <low>" in text and "max_len = 3" in text
    out = _cli(["rehearse", "--data", str(path)], tmp_path)  # an error exits the process
    assert out.returncode != 0 and "target_low = <low>" in out.stderr
    assert out.stderr.strip().splitlines()[-1].startswith("error: ")


def _cli(args, cwd):
    """``mpcrnn ...`` in a process of its own (its errors exit the process); the calling test
    requests the ``subprocesses`` fixture."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "launch.cli", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, cwd=cwd, env=env)


def _model_file(tmp_path):
    cfg = build({"data": DATA, "model": {"hidden_size": 4}}, {})
    params = init_params(cfg.model, 0)
    params["fc.bias"] = params["fc.bias"] + 0.3
    path = tmp_path / "model.pt"
    saved = write_model_file(path, cfg.model, ActivationConfig(), cfg.spec, params)
    return cfg, saved, path


def test_predict_values_are_the_torch_export_unscaled(tmp_path):
    cfg, _, path = _model_file(tmp_path)
    data = _toy(20)
    D.write_npz(data, tmp_path / "mine.npz")
    out = CliRunner().invoke(
        main, ["predict", "--model", str(path), "--data", str(tmp_path / "mine.npz")]
    )
    assert out.exit_code == 0, out.output
    got = json.loads(out.output)
    _, spec, model = read_model_file(path)
    scaled = D.scale_features(data, spec)
    with torch.no_grad():
        ref = model(torch.as_tensor(scaled.x), torch.as_tensor(scaled.lengths)).numpy()
    np.testing.assert_allclose(got["predictions"], unscale_targets(ref, spec), rtol=0, atol=1e-9)
    assert 10 <= np.min(got["predictions"]) and got["rows"] == 20 and "rmse" in got
    err = np.array(got["predictions"]) - data.y
    assert got["rmse"] == pytest.approx(float(np.sqrt((err**2).mean())))


def test_predict_dp_values_state_their_sensitivity(tmp_path):
    _, _, path = _model_file(tmp_path)
    D.write_npz(_toy(20), tmp_path / "mine.npz")
    out = CliRunner().invoke(
        main,
        [
            "predict",
            "--model",
            str(path),
            "--data",
            str(tmp_path / "mine.npz"),
            "--dp-epsilon",
            "1",
        ],
    )
    got = json.loads(out.output)
    assert got["dp"]["sensitivity"] == 20.0 and got["dp"]["laplace_scale"] == 20.0


def test_laplace_values_clamp_then_noise_at_scale_width_over_epsilon():
    g = torch.Generator().manual_seed(0)
    vals = np.full((20000, 1), 99.0)  # clamped to 30 first
    noisy = laplace_values(vals, 10.0, 30.0, 2.0, generator=g)
    assert abs(np.median(noisy) - 30.0) < 0.3
    assert np.mean(np.abs(noisy - 30.0)) == pytest.approx(10.0, rel=0.05)  # E|Laplace(b)| = b


def test_rehearse_learns_and_warns_against_the_training_mean(tmp_path):
    (tmp_path / "run.toml").write_text(TOML.format(epochs=6, lr=0.03))
    D.write_npz(_toy(), tmp_path / "mine.npz")
    D.write_npz(_toy(seed=1), tmp_path / "test.npz")
    args = [
        "rehearse",
        "--config",
        str(tmp_path / "run.toml"),
        "--data",
        str(tmp_path / "mine.npz"),
    ]
    out = CliRunner().invoke(main, [*args, "--test", str(tmp_path / "test.npz"), "--json"])
    assert out.exit_code == 0, out.output
    result = json.loads(out.output.strip().splitlines()[-1])
    assert "train RMSE" in out.output and "test RMSE" in out.output
    assert result["history"][-1]["train_rmse"] < result["majority_class_rate"]
    (tmp_path / "run.toml").write_text(TOML.format(epochs=2, lr=0.0002))
    D.write_npz(_toy(learnable=False), tmp_path / "mine.npz")
    out = CliRunner().invoke(main, args)
    assert "does not beat the training mean" in out.output


def test_windows_spec_round_trip():
    spec = DataSpec(1, (), 5, target_low=0.0, target_high=1.0, n_targets=3)
    assert replace(spec, frame=1).n_targets == 3


def test_tecator_demo_declaration_split_and_schedule(tmp_path):
    from mpcrnn.tecator import demo_files, demo_run_file, tecator

    cfg = build(demo_run_file({}), {"epochs": 2})
    assert cfg.model.task == "regress" and cfg.spec.frame == 10 and cfg.train.epochs == 2
    assert cfg.model.hidden_size == 32 and cfg.train.step_lr == 0.02
    assert build(demo_run_file({}), {}).train.epochs == 80
    assert tecator("train").n_rows == 172 and tecator("test").n_rows == 43
    lines = []
    train_files, test_files = demo_files(cfg, tmp_path, lines.append)
    counts = [
        [D.load_party_file(f, cfg.spec).n_rows for f in fs] for fs in (train_files, test_files)
    ]
    assert counts == [[86, 52, 34], [21, 13, 9]]
    assert "party 0: 86 train, 21 test" in lines[-1]


def test_fedavg_local_training_fits_regression_targets():
    from mpcrnn.fedavg import local_train
    from mpcrnn.secure import evaluate_local

    cfg = build({"data": DATA, "run": {"mode": "fedavg"}, "fedavg": {"local_epochs": 8}}, {})
    cfg = replace(cfg, model=replace(cfg.model, hidden_size=8))
    local = D.scale_features(_toy(), cfg.spec)
    start = init_params(cfg.model, 0)
    before = evaluate_local(cfg, start, local, polynomial=False)["exact"]["rmse"]
    after = evaluate_local(cfg, local_train(cfg, start, local, 0, 0), local, False)["exact"]["rmse"]
    assert after < 0.7 * before


def test_attack_refuses_a_regression_model_in_one_line(tmp_path, subprocesses):
    _, _, path = _model_file(tmp_path)
    D.write_npz(_toy(20), tmp_path / "mine.npz")
    out = _cli(["attack", "--model", str(path), "--data", str(tmp_path / "mine.npz")], tmp_path)
    assert out.returncode != 0 and "Traceback" not in out.stderr
    last = out.stderr.strip().splitlines()
    assert len(last) == 1 and "a regression model" in last[0] and last[0].startswith("error: ")


def test_report_pools_parties_and_prints_mpc_beside_mirror_torch_and_mean(tmp_path):
    from mpcrnn.report import summarize
    from mpcrnn.secure import concat, evaluate_local

    cfg = build({"data": DATA, "model": {"hidden_size": 4}, "train": {"epochs": 1}}, {})
    parts = [_toy(16, seed=s) for s in range(3)]
    tests = [_toy(8, seed=10 + s) for s in range(3)]
    train_files, test_files = D.write_party_files(parts, tests, tmp_path)
    params = init_params(cfg.model, 0)
    reports = [
        {"role": "party", "local_test": evaluate_local(cfg, params, D.scale_features(t, cfg.spec))}
        for t in tests
    ]
    lines = []
    summary = summarize(cfg, reports, True, train_files, lines.append, test_files)
    text = "\n".join(lines)
    assert "MPC model test RMSE (24 rows" in text and "(mirror, polynomial)" in text
    assert "training mean:" in text and "torch GRU" in text
    pooled = summary["test_regression"]["mpc_model_exact"]
    whole = evaluate_local(cfg, params, D.scale_features(concat(tests), cfg.spec))
    assert pooled["rmse"] == pytest.approx(whole["exact"]["rmse"])
    assert summary["baseline"]["training_mean"]["rmse"] > 0
