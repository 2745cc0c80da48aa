"""``mpcrnn train --provider he --parties 2`` end to end (slow process tests, ~2 min on 2
cores): no dealer process, the report names the provider and lists no dealer, the reveal ledger
equals the TTP run's and the test accuracy is within 1 point of the TTP run with the same seed
(Japanese Vowels rows, small GRU, one epoch); and two ``mpcrnn party --he-workers 2`` over
mutual TLS, the next step's plan prefetched."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

pytest.importorskip("tenseal")

from mpcrnn import data as D  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def _files(tmp_path, name, rows):
    parts = D.split_rows(D.japanese_vowels(name), [rows, rows], 0)
    out = []
    for r, p in enumerate(parts):
        f = tmp_path / f"{name}{r}.npz"
        D.write_npz(p, f)
        out.append(str(f))
    return out


def _train(subprocesses, tmp_path, provider, train, test):
    out = tmp_path / provider
    args = [sys.executable, "-m", "launch.cli", "train", "--provider", provider, "--parties", "2"]
    args += ["--epochs", "1", "--hidden-size", "4", "--batch-size", "20", "--seed", "3"]
    args += ["--out", str(out), "--no-baseline", "--timeout", "300"]
    for f in train:
        args += ["--data", f]
    for f in test:
        args += ["--test", f]
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    res = subprocesses.run(args, capture_output=True, text=True, timeout=1500, env=env, cwd=ROOT)
    assert res.returncode == 0, res.stderr[-2000:]
    return json.loads((out / "report.json").read_text()), res.stdout


def _ledger(report):
    return [p["ledger"] for p in report["parties"]]


def test_he_run_matches_the_ttp_run(tmp_path, subprocesses):
    train, test = _files(tmp_path, "train", 40), _files(tmp_path, "test", 30)
    ttp, _ = _train(subprocesses, tmp_path, "ttp", train, test)
    he, stdout = _train(subprocesses, tmp_path, "he", train, test)
    assert he["provider"] == "HE" and he["dealer"] is None and ttp["dealer"] is not None
    assert "no dealer" in he["provider_note"]
    assert _ledger(he) == _ledger(ttp) and _ledger(he)[0]
    key = "mpc_model_exact_activations"
    assert abs(he["test_accuracy"][key] - ttp["test_accuracy"][key]) <= 0.01
    assert "dealer" not in stdout.lower() or "no dealer" in stdout.lower()


def test_two_hosts_with_he_workers_prefetch_the_next_steps_plan(tmp_path, subprocesses):
    """Two ``mpcrnn party --he-workers 2`` processes, mutual TLS, no dealer (two organizations
    on two hosts, here on loopback): each party's HE work on its own worker processes, and the
    next step's plan computed on a thread over the HE links while the step runs."""
    import socket

    from launch.netns import keygen

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    files = _files(tmp_path, "train", 20)
    fps = [keygen(tmp_path / f"key{r}") for r in range(2)]
    (tmp_path / "run.toml").write_text(
        '[run]\nparties = 2\nprovider = "he"\n[model]\nhidden_size = 4\n'
        "[train]\nepochs = 2\nbatch_size = 10\n[identities]\n"
        + "".join(f'party{r} = "{fp}"\n' for r, fp in enumerate(fps))
    )
    mpcrnn = str(Path(sys.executable).with_name("mpcrnn"))
    procs = []
    for r in range(2):
        cmd = [mpcrnn, "party", "--config", str(tmp_path / "run.toml"), "--rank", str(r)]
        cmd += ["--rendezvous", f"tcp://127.0.0.1:{port}", "--data", files[r], "--he-workers", "2"]
        cmd += ["--out", str(tmp_path / f"out{r}"), "--key", str(tmp_path / f"key{r}")]
        cmd += ["--timeout", "300"]
        env = dict(os.environ, PYTHONPATH=str(ROOT), MPCRNN_LINK_IFNAME="lo")
        procs.append(
            subprocesses.Popen(
                cmd, env=env, stdout=subprocesses.PIPE, stderr=subprocesses.PIPE, text=True
            )
        )
    outs = [p.communicate(timeout=900) for p in procs]
    for p, (_, err) in zip(procs, outs):
        assert p.returncode == 0, err[-2000:]
    for r in range(2):
        report = json.loads((tmp_path / f"out{r}" / f"report-party{r}.json").read_text())
        ahead = report["he_prefetch"]
        assert ahead["prefetched_steps"] == 6, ahead  # 8 steps of one shape: the 3rd to the 8th
        assert 0 <= ahead["hidden_s"] <= ahead["offline_s"]
