"""Text through the commands one organization runs alone (no MPC processes): the SMS demo's
fixed split, ``rehearse`` on a text file, the model file with an embedding, ``predict`` on raw
text, and an error line that never quotes a party's text."""

from __future__ import annotations

import json
import os
import sys

import torch
from click.testing import CliRunner

from launch import cli
from mpcrnn.text_demo import PER_CLASS, sms_lines, sms_split

RUN = """[data]
kind = "text"
classes = ["ham", "spam"]
max_len = 12
min_rows = 1

[model]
embedding_dim = 4
hidden_size = 4

[train]
epochs = 2
batch_size = 4
"""

ROWS = [
    ("ham", "see you at 6"),
    ("spam", "WIN CASH NOW call 0800"),
    ("ham", "ok lar"),
    ("spam", "FREE prize txt 87121"),
    ("ham", "sorry, running late"),
    ("spam", "URGENT! you won 1000"),
]


def _files(tmp_path):
    run = tmp_path / "run.toml"
    run.write_text(RUN)
    data = tmp_path / "own.tsv"
    data.write_text("".join(f"{a}\t{b}\n" for a, b in ROWS), encoding="utf-8")
    return run, data


def test_sms_demo_split_is_fixed_balanced_and_disjoint():
    train, test = sms_split()
    assert (train, test) == sms_split()
    assert not set(train) & set(test)
    lines = sms_lines()
    assert len(lines) == 5574
    for rows in (train, test):
        labels = [lines[i][0] for i in rows]
        assert labels.count("spam") == labels.count("ham") == PER_CLASS


def test_rehearse_reads_a_text_file(tmp_path):
    run, data = _files(tmp_path)
    res = CliRunner().invoke(cli.main, ["rehearse", "--config", str(run), "--data", str(data)])
    assert res.exit_code == 0, res.output
    assert "epoch   2/2" in res.output


def test_model_file_with_embedding_loads_into_torch_and_predicts_raw_text(tmp_path):
    from launch.runfile import build, read_file
    from mpcrnn.model import init_params
    from mpcrnn.model_file import read_model_file, write_model_file

    run, data = _files(tmp_path)
    cfg = build(read_file(str(run)), {})
    path = tmp_path / "model.pt"
    write_model_file(path, cfg.model, cfg.activation, cfg.spec, init_params(cfg.model, 0))
    _, spec, model = read_model_file(path)
    assert isinstance(model.embedding, torch.nn.Embedding) and isinstance(model.rnn, torch.nn.GRU)
    assert model.embedding.weight.shape == (256, 4)
    raw = tmp_path / "texts.txt"
    raw.write_text("hello there\nFREE entry txt now to win a prize\n", encoding="utf-8")
    res = CliRunner().invoke(
        cli.main, ["predict", "--model", str(path), "--data", str(raw), "--raw-text"]
    )
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)
    assert out["rows"] == 2 and out["accuracy"] is None
    assert set(out["predictions"]) <= {"ham", "spam"}
    res = CliRunner().invoke(cli.main, ["predict", "--model", str(path), "--data", str(data)])
    assert res.exit_code == 0 and json.loads(res.output)["rows"] == len(ROWS)


def test_a_bad_text_line_is_one_error_line_without_the_text(tmp_path, subprocesses):
    run, data = _files(tmp_path)
    data.write_bytes(data.read_bytes() + b"eggs\tmy secret message\n")
    res = subprocesses.run(  # the CLI exits with os._exit: a process of its own
        [sys.executable, "-m", "launch.cli", "rehearse", "--config", str(run), "--data", str(data)],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": os.getcwd()},
    )
    out = res.stdout + res.stderr
    assert res.returncode != 0
    assert f"{data}: line 7: label" in out and len(res.stderr.strip().splitlines()) == 1
    assert "secret" not in out and "eggs" not in out and "Traceback" not in out


def test_train_offers_the_sms_demo_and_its_settings_apply():
    from launch.runfile import build
    from mpcrnn.text_demo import with_demo_settings

    assert (
        "--demo [vowels|sms|shakespeare|tecator]"
        in CliRunner().invoke(cli.main, ["train", "--help"]).output
    )
    cfg = build(with_demo_settings({}), {"hidden_size": 8})  # a flag still overrides the demo
    assert (cfg.spec.kind, cfg.spec.n_features, cfg.spec.max_len) == ("text", 96, 40)
    assert (cfg.model.embedding_dim, cfg.model.hidden_size, cfg.train.epochs) == (16, 8, 6)
