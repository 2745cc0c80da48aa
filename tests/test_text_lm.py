"""A language model through the run file and the commands one organization runs alone
([data] kind = "text-lm"): windows cut locally, bad input in one line without the text, the
task and what it refuses, per-example gradients for DP-SGD, the local evaluation sums,
``rehearse`` and ``predict`` (bits per character, generation, the noisy max)."""

from __future__ import annotations

import hashlib
import json
import math

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from launch import cli
from launch.runfile import build
from mpcrnn.text_lm import read_lm_text, windows
from protocols.errors import ConfigError, DataError

CHARS = ["a", "b", "c", " ", "\\n"]  # V = 6 with the unknown id 0
TEXT = "abc ab\nca bc\n" * 6


def vocab(tmp_path):
    path = tmp_path / "vocab.txt"
    path.write_text("\n".join(CHARS) + "\n", encoding="utf-8")
    return str(path), hashlib.sha256(path.read_bytes()).hexdigest()


def lm_raw(tmp_path, **model) -> dict:
    path, digest = vocab(tmp_path)
    data = {"kind": "text-lm", "max_len": 8, "min_rows": 1, "vocab": path, "vocab_sha256": digest}
    train = {"epochs": 2, "batch_size": 4, "lr": 0.05}
    return {"data": data, "model": {"embedding_dim": 3, "hidden_size": 4, **model}, "train": train}


def test_windows_overlap_by_one_so_every_token_but_the_first_is_predicted_once():
    ids = list(range(8))
    assert windows(ids, 4) == [[0, 1, 2, 3], [3, 4, 5, 6], [6, 7]]
    assert windows(list(range(7)), 4) == [[0, 1, 2, 3], [3, 4, 5, 6]]
    for n in range(2, 30):
        rows = windows(list(range(n)), 5)
        assert all(2 <= len(r) <= 5 for r in rows)
        assert sorted(t for r in rows for t in r[1:]) == list(range(1, n))


def test_run_file_declares_a_language_model(tmp_path):
    cfg = build(lm_raw(tmp_path), {})
    assert (cfg.model.task, cfg.model.input_size, cfg.model.output_size) == ("lm", 6, 6)
    assert cfg.spec.classes == () and cfg.spec.is_lm
    with pytest.raises(ConfigError, match="reveal_metrics with a language model"):
        build(lm_raw(tmp_path), {"reveal_metrics": True})
    assert build(lm_raw(tmp_path), {"mode": "fedavg"}).mode == "fedavg"
    with pytest.raises(ConfigError, match="method with a language model"):
        build(lm_raw(tmp_path, embedding_dim=0), {"adversarial": "fgsm"})
    raw = lm_raw(tmp_path)
    raw["data"]["classes"] = ["x", "y"]
    with pytest.raises(ConfigError, match="classes"):
        build(raw, {})


def test_a_file_is_cut_into_windows_and_bad_input_is_one_line_without_the_text(tmp_path):
    cfg = build(lm_raw(tmp_path), {})
    f = tmp_path / "own.txt"
    f.write_text(TEXT, encoding="utf-8")
    data = read_lm_text(f, cfg.spec)
    n = len(TEXT)
    assert data.n_rows == len(windows(list(range(n)), 8)) and data.x.shape[1:] == (8, 6)
    assert int(data.lengths.sum()) - data.n_rows == n - 1  # every token but the first predicted
    f.write_bytes(b"my secret\nline two \xff\n")
    with pytest.raises(DataError) as e:
        read_lm_text(f, cfg.spec)
    assert f"{f}: line 2" in str(e.value) and "secret" not in str(e.value)
    f.write_bytes(b"a")
    with pytest.raises(DataError, match="at least 2 tokens"):
        read_lm_text(f, cfg.spec)


def test_per_example_gradients_sum_to_the_batch_gradient(tmp_path):
    from mpcrnn.backend import PlainBackend
    from mpcrnn.config import ActivationConfig
    from mpcrnn.model import forward_backward, init_params
    from mpcrnn.train import masks

    for dim in (3, 0):  # with and without an embedding
        cfg = build(lm_raw(tmp_path, embedding_dim=dim), {})
        f = tmp_path / "own.txt"
        f.write_text(TEXT, encoding="utf-8")
        data = read_lm_text(f, cfg.spec)
        x = torch.as_tensor(data.x).transpose(0, 1)
        m = masks(torch.as_tensor(data.lengths), 8).transpose(0, 1)
        B, params = PlainBackend(ActivationConfig(exact=True)), init_params(cfg.model, 1)
        batch, _ = forward_backward(B, cfg.model, params, x, m, None)
        rows, _ = forward_backward(B, cfg.model, params, x, m, None, per_example=True)
        assert set(rows) == set(params)
        for k, g in batch.items():
            assert rows[k].shape == (data.n_rows, *params[k].shape)
            torch.testing.assert_close(rows[k].sum(0), g, atol=1e-10, rtol=0, msg=k)


def test_local_evaluation_sums_agree_with_the_mirror_and_torch(tmp_path):
    from mpcrnn.model import init_params
    from mpcrnn.secure import evaluate_local, train_plain_mirror

    cfg = build(lm_raw(tmp_path), {})
    f = tmp_path / "own.txt"
    f.write_text(TEXT, encoding="utf-8")
    data = read_lm_text(f, cfg.spec)
    before = evaluate_local(cfg, init_params(cfg.model, 0), data)
    assert before["tokens"] == len(TEXT) - 1
    assert before["bits_exact"] / before["tokens"] == pytest.approx(math.log2(6), abs=0.3)
    assert before["bits_polynomial"] == pytest.approx(before["bits_exact"], rel=1e-2)
    longer = build(lm_raw(tmp_path), {"epochs": 15})
    after = evaluate_local(cfg, train_plain_mirror(longer, data, exact=True), data)
    assert after["bits_exact"] < 0.8 * before["bits_exact"]  # it learns the repeated text


def test_fedavg_local_training_learns_the_next_token(tmp_path):
    from mpcrnn.fedavg import local_train
    from mpcrnn.model import init_params
    from mpcrnn.secure import evaluate_local

    cfg = build(lm_raw(tmp_path), {"mode": "fedavg", "local_epochs": 10})
    f = tmp_path / "own.txt"
    f.write_text(TEXT, encoding="utf-8")
    data = read_lm_text(f, cfg.spec)
    start = init_params(cfg.model, 0)
    trained = local_train(cfg, start, data, 0, 0)
    before, after = (evaluate_local(cfg, p, data, polynomial=False) for p in (start, trained))
    assert after["bits_exact"] < 0.8 * before["bits_exact"]


def test_rehearse_and_predict_a_language_model(tmp_path):
    from mpcrnn.model_file import write_model_file
    from mpcrnn.secure import train_plain_mirror

    raw = lm_raw(tmp_path)
    run = tmp_path / "run.toml"
    run.write_text(_toml(raw))
    f = tmp_path / "own.txt"
    f.write_text(TEXT, encoding="utf-8")
    res = CliRunner().invoke(cli.main, ["rehearse", "--config", str(run), "--data", str(f)])
    assert res.exit_code == 0, res.output
    assert "bits/char" in res.output and "epoch   2/2" in res.output
    cfg = build(raw, {"epochs": 12})
    params = train_plain_mirror(cfg, read_lm_text(f, cfg.spec), exact=True)
    model = tmp_path / "lm.pt"
    write_model_file(model, cfg.model, cfg.activation, cfg.spec, params)
    invoke = lambda *a: CliRunner().invoke(cli.main, ["predict", "--model", str(model), *a])  # noqa: E731
    res = invoke("--data", str(f))
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)
    assert out["tokens"] == len(TEXT) - 1 and out["bits_per_char"] < math.log2(6)
    gen = [invoke("--generate", "12", "--prompt", "ab", "--seed", "3") for _ in range(2)]
    assert gen[0].output == gen[1].output and len(json.loads(gen[0].output)["generated"]) == 12
    greedy = json.loads(invoke("--generate", "6", "--temperature", "0").output)["generated"]
    assert set(greedy) <= set("abc \n")
    noisy = json.loads(invoke("--generate", "5", "--dp-epsilon", "2").output)
    assert noisy["dp"]["epsilon_all_tokens_basic_composition"] == 10
    from mpcrnn.model_file import read_model_file
    from mpcrnn.text_lm import predict_lm

    _, spec, torch_model = read_model_file(model)  # an error exits the CLI's process: call it
    with pytest.raises(DataError, match="--dp-epsilon on a language model"):
        predict_lm(torch_model, spec, str(f), None, "a", 1.0, 0, 2.0)


def test_the_noisy_max_is_the_exponential_mechanism():
    from mpcrnn.dp_release import LM_LOGP_FLOOR, noisy_next_token

    logits = torch.tensor([3.0, 1.0, -20.0])
    eps, g = 4.0, torch.Generator().manual_seed(0)
    draws = np.bincount([noisy_next_token(logits, eps, 1.0, g) for _ in range(6000)], minlength=3)
    u = torch.log_softmax(logits.double(), -1).clamp(min=-LM_LOGP_FLOOR)
    want = torch.softmax(eps * u / (2 * LM_LOGP_FLOOR), -1).numpy()
    np.testing.assert_allclose(draws / draws.sum(), want, atol=0.02)


def _toml(raw: dict) -> str:
    lines = []
    for section, body in raw.items():
        lines.append(f"[{section}]")
        lines += [f"{k} = {json.dumps(v)}" for k, v in body.items()]
    return "\n".join(lines) + "\n"


def test_shakespeare_demo_data_split_and_settings_are_fixed(tmp_path):
    from mpcrnn import lm_demo

    for name, digest in (
        ("train.txt", "ecc770ba7df8b30f84ae78b8a1dd80ea2cc306b9227615a23ad7985ed1741d7c"),
        ("test.txt", "fac24ad5ed348af8cb8d6e2b363b6672081427000d5e95899006cbb92f916daf"),
        ("vocab_lowercase.txt", lm_demo.VOCAB_SHA256),
    ):  # the shipped slices and the public vocabulary, as SOURCE.md states them
        assert hashlib.sha256((lm_demo.DIR / name).read_bytes()).hexdigest() == digest
    cfg = build(lm_demo.with_demo_settings({}), {"hidden_size": 8})  # a flag still overrides
    assert (cfg.model.task, cfg.spec.n_features, cfg.spec.max_len) == ("lm", 37, 24)
    assert (cfg.model.embedding_dim, cfg.model.hidden_size, cfg.train.epochs) == (16, 8, 2)
    train, test, counts = lm_demo.write_party_files(3, tmp_path)
    assert counts == [7500, 4500, 3000]
    text = (lm_demo.DIR / "train.txt").read_text(encoding="utf-8").lower()
    assert "".join(open(p, encoding="utf-8", newline="").read() for p in train) == text
    assert all(read_lm_text(p, cfg.spec).n_rows > 10 for p in train + test)
    assert "shakespeare" in CliRunner().invoke(cli.main, ["train", "--help"]).output


def test_a_bad_text_file_is_one_error_line_from_the_cli(tmp_path, subprocesses):
    import os
    import sys

    run = tmp_path / "run.toml"
    run.write_text(_toml(lm_raw(tmp_path)))
    f = tmp_path / "own.txt"
    f.write_bytes(b"my secret words\nand more \xfe\xff\n")
    res = subprocesses.run(  # the CLI exits with os._exit: a process of its own
        [sys.executable, "-m", "launch.cli", "rehearse", "--config", str(run), "--data", str(f)],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": os.getcwd()},
    )
    out = res.stdout + res.stderr
    assert res.returncode != 0 and len(res.stderr.strip().splitlines()) == 1
    assert f"{f}: line 2" in out and "UTF-8" in out
    assert "secret" not in out and "Traceback" not in out
