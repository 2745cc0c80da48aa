"""``mpcrnn rehearse`` and the data-declaration message, through the real CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np

from mpcrnn import data as D

MPCRNN = str(Path(sys.executable).with_name("mpcrnn"))
SPEC_TOML = """
[model]
cell = "gru"
hidden = 8
[train]
epochs = {epochs}
lr = {lr}
[data]
n_features = 2
classes = ["a", "b"]
max_len = 10
scaling = "bounds"
feature_low = [-1.0, -1.0]
feature_high = [1.0, 1.0]
"""


def _toy(n=64, seed=0, learnable=True):
    """Two classes: the sign of the first feature's mean (or random labels)."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    x = rng.uniform(-0.4, 0.4, (n, 10, 2))
    if learnable:
        x[:, :, 0] += np.where(y == 1, 0.5, -0.5)[:, None]
    return D.SequenceData(x, np.full(n, 10, dtype=np.int64), y, ("a", "b"))


def _run(args, cwd):
    return subprocess.run([MPCRNN, *args], capture_output=True, text=True, timeout=120, cwd=cwd)


def test_rehearse_prints_epochs_and_learns(tmp_path, subprocesses):
    (tmp_path / "run.toml").write_text(SPEC_TOML.format(epochs=8, lr=0.03))
    D.write_npz(_toy(), tmp_path / "mine.npz")
    D.write_npz(_toy(seed=1), tmp_path / "test.npz")
    out = _run(
        ["rehearse", "--config", "run.toml", "--data", "mine.npz", "--test", "test.npz", "--json"],
        tmp_path,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.count("epoch ") == 8 and "max |pre-activation|/B" in out.stdout
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["history"][-1]["train_accuracy"] > 0.8 and result["warnings"] == []
    assert result["history"][-1]["loss"] < result["history"][0]["loss"]
    assert 0 < result["max_preactivation_over_bound"] < 1


def test_rehearse_warns_when_training_does_not_learn(tmp_path, subprocesses):
    (tmp_path / "run.toml").write_text(SPEC_TOML.format(epochs=2, lr=0.0002))
    D.write_npz(_toy(learnable=False), tmp_path / "mine.npz")
    out = _run(["rehearse", "--config", "run.toml", "--data", "mine.npz"], tmp_path)
    assert out.returncode == 0
    assert (
        "WARNING: training does not learn" in out.stderr
        or "WARNING: loss did not decrease" in out.stderr
    )


def test_data_without_declaration_says_what_is_missing(tmp_path, subprocesses):
    D.write_npz(_toy(), tmp_path / "mine.npz")
    for args in (
        ["rehearse", "--data", "mine.npz"],
        ["train", "--parties", "1", "--data", "mine.npz"],
        [
            "party",
            "--rank",
            "0",
            "--parties",
            "1",
            "--rendezvous",
            "tcp://127.0.0.1:1",
            "--data",
            "mine.npz",
        ],
    ):
        out = _run(args, tmp_path)
        assert out.returncode != 0
        lines = out.stderr.strip().splitlines()
        assert lines[-1].startswith(
            "error: data declaration for --data mine.npz: expected a [data] section"
        ), lines
        assert (
            "Traceback" not in out.stderr and sum(line.startswith("error:") for line in lines) == 1
        )
        text = "\n".join(lines[:-1])
        for key in (
            "[data]",
            "n_features",
            "classes",
            "max_len",
            "feature_low",
            "feature_high",
            "PUBLIC",
        ):
            assert key in text, key


def test_rehearse_bad_input_is_one_error_line(tmp_path, subprocesses):
    (tmp_path / "run.toml").write_text(SPEC_TOML.format(epochs=1, lr=0.01))
    bad = _toy()
    bad.x[3, 2, 1] = 123.456  # far outside the declared bounds
    D.write_npz(bad, tmp_path / "mine.npz")
    out = _run(["rehearse", "--config", "run.toml", "--data", "mine.npz"], tmp_path)
    assert out.returncode != 0
    assert out.stderr.startswith("error: ") and len(out.stderr.strip().splitlines()) == 1
    assert "123.456" not in out.stderr


def test_long_series_get_a_frame_hint_and_frames_run(tmp_path, subprocesses):
    """A 60-step series that does not learn: the warning names [data] frame; with frame = 4
    the same rows rehearse as 15 steps of 8 values."""
    toml = SPEC_TOML.format(epochs=2, lr=0.0002).replace("max_len = 10", "max_len = 60")
    (tmp_path / "run.toml").write_text(toml)
    rows = _toy(learnable=False)
    x = np.concatenate([rows.x] * 6, axis=1)  # (64, 60, 2)
    D.write_npz(D.SequenceData(x, np.full(64, 60), rows.y, rows.classes), tmp_path / "mine.npz")
    out = _run(["rehearse", "--config", "run.toml", "--data", "mine.npz"], tmp_path)
    assert out.returncode == 0, out.stderr
    assert "[data] frame = 4 (4 time steps per model input, 15 steps)" in out.stderr
    (tmp_path / "run.toml").write_text(toml + "frame = 4\n")
    out = _run(["rehearse", "--config", "run.toml", "--data", "mine.npz", "--json"], tmp_path)
    assert out.returncode == 0, out.stderr
    assert "[data] frame" not in out.stderr
    assert json.loads(out.stdout.strip().splitlines()[-1])["rows"] == 64


def test_template_for_a_long_series_suggests_frames(tmp_path):
    from launch.runfile import data_template

    lines = ["@problemName long", "@univariate true", "@classLabel true a b", "@data"]
    lines += [",".join(["0.5"] * 150) + ":a", ",".join(["0.1"] * 150) + ":b"]
    (tmp_path / "long.ts").write_text("\n".join(lines) + "\n")
    text = data_template(str(tmp_path / "long.ts"))
    assert "max_len = 150" in text and "frame = 10" in text
    assert "# differences = [0, 1]" in text  # commented: a choice, not a default


def test_interval_warnings_past_and_near_the_edge():
    """Past B: 'left the interval'; within 10% of it: 'came close'; below: neither."""
    from mpcrnn.rehearse import _warnings

    history = [{"loss": 1.0, "train_accuracy": 0.9}, {"loss": 0.2, "train_accuracy": 1.0}]
    assert _warnings(history, 0.5, 0.5, 8.0) == []
    (near,) = _warnings(history, 0.5, 0.95, 8.0)
    assert "came close" in near and "0.95 > 0.9 (B = 8)" in near and "\n" not in near
    (past,) = _warnings(history, 0.5, 1.2, 8.0)
    assert "left the polynomials' interval" in past and "1.20 > 1 (B = 8)" in past
