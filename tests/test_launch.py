"""Launcher and CLI: a dead party stops the run and is named; bad input is one clear line."""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from pathlib import Path

import click
import pytest

from mpcrnn import data as D
from mpcrnn.config import ModelConfig, RunConfig, TrainConfig
from protocols.errors import PartyError

MPCRNN = str(Path(sys.executable).with_name("mpcrnn"))


def _files(tmp_path, parties=3):
    parts = D.split_rows(D.japanese_vowels("train"), [20] * parties, 0)
    files = []
    for r, p in enumerate(parts):
        f = tmp_path / f"p{r}.npz"
        D.write_npz(p, f)
        files.append(str(f))
    return files


def test_killed_party_stops_everyone_and_is_named(tmp_path, launcher):
    spec = D.JAPANESE_VOWELS_SPEC
    cfg = RunConfig(
        model=ModelConfig(hidden_size=4), train=TrainConfig(epochs=50, batch_size=8), spec=spec
    )
    pids: list[int] = []

    def kill_party1_later(started):
        pids.extend(started)
        threading.Timer(12.0, lambda: os.kill(started[1], signal.SIGKILL)).start()

    t0 = time.monotonic()
    with pytest.raises(
        PartyError, match=r"party 1 died \(exit code -9\).*All other processes were stopped"
    ):
        launcher(
            cfg,
            _files(tmp_path),
            [None] * 3,
            str(tmp_path / "out"),
            timeout_s=30,
            show_progress=False,
            on_start=kill_party1_later,
        )
    assert time.monotonic() - t0 < 12 + 30
    for pid in pids:  # no orphans
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    assert not list((tmp_path / "out").glob("model-*.pt"))  # no partial model written as final


def test_cli_help_and_version(subprocesses):
    out = subprocesses.run([MPCRNN, "--help"], capture_output=True, text=True, check=True).stdout
    assert "train" in out and "party" in out and "dealer" in out and "predict" in out
    assert (
        "0.1.0"
        in subprocesses.run(
            [MPCRNN, "--version"], capture_output=True, text=True, check=True
        ).stdout
    )


@pytest.mark.parametrize(
    "args,pattern",
    [
        (
            ["predict", "--model", "/nonexistent/model.pt", "--data", "x.npz"],
            r"expected a readable model file",
        ),
        (
            ["train", "--data", "/nonexistent/a.npz", "--parties", "1"],
            r"expected one file per party|cannot read|No such|expected",
        ),
        (
            [
                "party",
                "--rank",
                "7",
                "--parties",
                "3",
                "--rendezvous",
                "tcp://127.0.0.1:1",
                "--data",
                "x.npz",
            ],
            r"rank: expected 0\.\.3, got 7",
        ),
        (
            [
                "party",
                "--rank",
                "0",
                "--parties",
                "3",
                "--rendezvous",
                "udp://x",
                "--data",
                "x.npz",
            ],
            r"rendezvous: expected tcp://host:port",
        ),
        (
            ["party", "--rank", "0", "--parties", "2", "--he-workers", "0", "--data", "x.npz"],
            r"--he-workers': expected an integer 1..256 or auto, got '0'",
        ),
        (
            ["party", "--rank", "0", "--parties", "2", "--he-workers", "all", "--data", "x.npz"],
            r"--he-workers': expected an integer 1..256 or auto, got 'all'",
        ),
    ],
)
def test_cli_bad_input_is_one_line_no_traceback(args, pattern, tmp_path, subprocesses):
    res = subprocesses.run(
        [MPCRNN, *args], capture_output=True, text=True, cwd=tmp_path, timeout=120
    )
    assert res.returncode != 0
    assert "Traceback" not in res.stderr + res.stdout
    import re

    assert re.search(pattern, res.stderr), res.stderr


def test_train_then_predict_end_to_end(tmp_path, subprocesses):
    """CLI train (3 parties + dealer) -> model file -> torch.nn.GRU takes the weights ->
    `mpcrnn predict` on party 0's own test file matches the report's local evaluation."""
    import json

    import torch

    files = _files(tmp_path)
    tests = []
    for r, p in enumerate(D.split_rows(D.japanese_vowels("test"), [15] * 3, 1)):
        D.write_npz(p, tmp_path / f"t{r}.npz")
        tests.append(str(tmp_path / f"t{r}.npz"))
    out = tmp_path / "run"
    args = [
        MPCRNN,
        "train",
        "--epochs",
        "1",
        "--hidden-size",
        "4",
        "--batch-size",
        "20",
        "--out",
        str(out),
        "--reveal-to",
        "0",
        "--reveal-metrics",
    ]
    for f in files:
        args += ["--data", f]
    for f in tests:
        args += ["--test", f]
    res = subprocesses.run(args, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-2000:]
    report = json.loads((out / "report.json").read_text())
    assert [p["received_model"] for p in report["parties"]] == [True, False, False]
    assert not (out / "model-party1.pt").exists()
    assert 0.0 <= report["train_accuracy_revealed"] <= 1.0
    ledger = report["parties"][0]["ledger"]
    assert ledger[0]["what"].startswith("training accuracy") and len(ledger) == 7
    blob = torch.load(out / "model-party0.pt", weights_only=True)
    gru = torch.nn.GRU(12, 4, batch_first=True)
    gru.load_state_dict({k: v for k, v in blob["state_dict"].items() if not k.startswith("fc.")})
    pred = subprocesses.run(
        [MPCRNN, "predict", "--model", str(out / "model-party0.pt"), "--data", tests[0]],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    got = json.loads(pred.stdout)
    assert got["rows"] == 15
    assert abs(got["accuracy"] - report["parties"][0]["local_test"]["accuracy_exact"]) < 1e-9


def test_kill_then_resume_reaches_the_uninterrupted_weights(tmp_path, kill_resume):
    import torch

    spec = D.JAPANESE_VOWELS_SPEC
    # SGD: with Adam two MPC runs with fresh masks differ by up to ~7e-3 here (a gradient entry
    # that is rounding noise moves by lr 2^-16 / eps per step); Adam's resume is exact on the
    # mirror (tests/test_adam.py::test_resume_continues_the_schedule_and_moments_exactly)
    cfg = RunConfig(
        model=ModelConfig(hidden_size=4),
        train=TrainConfig(optimizer="sgd", epochs=4, batch_size=20),
        spec=spec,
    )
    out = kill_resume(cfg, _files(tmp_path), tmp_path, kill_after=2, rank=1)
    assert out["error"] is not None and "party 1 died" in out["error"]
    assert out["models_after_kill"] == []
    assert out["reports"][0]["resumed_from_epoch"] >= 2
    for k in out["ref"]:  # fresh masks after the restart: equal up to fixed-point noise
        torch.testing.assert_close(out["got"][k], out["ref"][k], atol=2e-3, rtol=0, msg=k)


@pytest.mark.parametrize("frame", [1, 2])
def test_train_with_a_run_file_on_other_data(tmp_path, frame, subprocesses):
    """An organization's own data shape, declared in the shared run file: 3 features, 2 classes,
    sequences up to 5 steps, CSV files; explicit flags override the file.  ``frame = 2``: the
    model reads 3 steps of 6 values (the released weight_ih is (3 H, 6))."""
    import json

    import numpy as np

    rng = np.random.default_rng(0)
    for r in range(2):
        n = 12
        lengths = rng.integers(2, 6, n)
        x = np.zeros((n, 5, 3))
        for i, L in enumerate(lengths):
            x[i, :L] = rng.uniform(-1, 1, (L, 3))
        y = (x[:, 0, 0] > 0).astype(np.int64)
        D.write_csv(D.SequenceData(x, lengths, y, ("no", "yes")), tmp_path / f"org{r}.csv")
    (tmp_path / "run.toml").write_text(
        "[run]\nparties = 2\n[model]\nhidden_size = 4\n[train]\nepochs = 3\nbatch_size = 8\n"
        '[data]\nn_features = 3\nclasses = ["no", "yes"]\nmax_len = 5\n'
        'scaling = "none"\nvalue_bound = 2.0\n' + f"frame = {frame}\n"
    )
    out = tmp_path / "run"
    res = subprocesses.run(
        [
            MPCRNN,
            "train",
            "--config",
            str(tmp_path / "run.toml"),
            "--epochs",
            "2",
            "--data",
            str(tmp_path / "org0.csv"),
            "--data",
            str(tmp_path / "org1.csv"),
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert res.returncode == 0, res.stderr[-2000:]
    report = json.loads((out / "report.json").read_text())
    assert report["config"]["train"]["epochs"] == 2  # the flag overrides the file's 3
    assert report["config"]["spec"]["classes"] == ["no", "yes"] and report["config"]["parties"] == 2
    assert [p["rows"] for p in report["parties"]] == [12, 12]
    import torch

    blob = torch.load(out / "model-party1.pt", weights_only=True)
    assert report["config"]["spec"]["frame"] == frame
    assert tuple(blob["state_dict"]["weight_ih_l0"].shape) == (12, 3 * frame) and tuple(
        blob["state_dict"]["fc.weight"].shape
    ) == (2, 4)


def _key_files(folder: Path) -> list[str]:
    """Every file under ``folder`` that holds a private key (by name or by content)."""
    found = []
    for p in folder.rglob("*"):
        try:
            if p.is_file() and (p.name == "key.pem" or b"PRIVATE KEY" in p.read_bytes()):
                found.append(str(p))
        except OSError:
            continue
    return found


def test_launcher_killed_with_sigkill_leaves_no_throwaway_key(tmp_path, subprocesses):
    """Issue 26 #4: `mpcrnn train`'s throw-away private keys never outlive the run, even when
    the launcher gets SIGKILL (no finally runs).  The children are killed after the check."""
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    files = _files(tmp_path)
    args = [sys.executable, "-m", "launch.cli", "train", "--epochs", "5", "--hidden-size", "4"]
    args += ["--batch-size", "20", "--out", str(tmp_path / "run")]
    for f in files:
        args += ["--data", f]
    env = {**os.environ, "TMPDIR": str(tmp), "PYTHONPATH": str(Path(__file__).parents[1])}
    proc = subprocesses.Popen(
        args, env=env, start_new_session=True, stdout=subprocesses.DEVNULL, stderr=subprocesses.PIPE
    )
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            if list(tmp.glob("mpcrnn-run-*/rendezvous*")):
                break
            time.sleep(0.2)  # the processes are joining: every identity has been made
        assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
        time.sleep(3.0)
        proc.kill()  # SIGKILL: the launcher's clean-up never runs
        proc.wait(timeout=10)
        time.sleep(1.0)
        assert _key_files(tmp) == []
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # the orphaned children of this test's launcher
        except ProcessLookupError:
            pass


def test_each_process_prints_the_run_file_digest_and_its_pins_at_start(tmp_path, capsys):
    """Issue 26 #5: before joining, an organization's process prints what it trusts (the run
    file's SHA-256, the configuration digest, every pinned fingerprint), one line each, so two
    organizations can compare them by phone.  Here the dealer, whose peers never come."""
    import hashlib
    import socket
    from dataclasses import replace

    from launch.party import PartyJob, run_party
    from mpcrnn.config import RunConfig
    from protocols.errors import MpcrnnError
    from protocols.network.identity import keygen

    pins = tuple(keygen(str(tmp_path / f"id{r}")) for r in range(3))
    cfg = replace(RunConfig(parties=2), provider="TTP", identities=pins)
    run_file = tmp_path / "run.toml"
    run_file.write_bytes(b"[run]\nparties = 2\n")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    job = PartyJob(2, f"tcp://127.0.0.1:{port}", cfg, None, None, str(tmp_path), 2.0)
    job = replace(job, key_dir=str(tmp_path / "id2"), run_file=str(run_file))
    with pytest.raises(MpcrnnError):
        run_party(job)
    err = capsys.readouterr().err.splitlines()
    digest = hashlib.sha256(run_file.read_bytes()).hexdigest()
    assert f"dealer: run file {run_file} sha256:{digest}" in err
    assert f"dealer: run configuration sha256:{cfg.digest()}" in err
    for who, fp in zip(("party 0", "party 1", "dealer"), pins, strict=True):
        assert f"dealer: pins {who} {fp}" in err


def test_he_workers_auto_is_this_hosts_cores_less_one():
    import os

    from launch.cli import HeWorkerCount

    count = HeWorkerCount()
    assert count.convert("auto", None, None) == max(1, len(os.sched_getaffinity(0)) - 1)
    assert count.convert("AUTO", None, None) == count.convert("auto", None, None)
    assert count.convert("7", None, None) == 7
    with pytest.raises(click.BadParameter, match="expected an integer 1..256 or auto, got '257'"):
        count.convert("257", None, None)
