"""A stopped process (SIGSTOP) is named within 30 s at the default settings, whatever --timeout
is, and the run folder the launcher made is removed on every exit path."""

from __future__ import annotations

import os
import signal
import tempfile
import threading
import time
from pathlib import Path

import pytest

from launch.launcher import STOPPED_LIMIT_S
from mpcrnn import data as D
from mpcrnn.config import ModelConfig, RunConfig, TrainConfig
from protocols.errors import PartyError

CFG = RunConfig(
    model=ModelConfig(hidden_size=4),
    train=TrainConfig(epochs=40, batch_size=20),
    spec=D.JAPANESE_VOWELS_SPEC,
    parties=2,
)


def _files(tmp):
    files = []
    for r, part in enumerate(D.split_rows(D.japanese_vowels("train"), [20, 20], 3)):
        files.append(str(tmp / f"p{r}.npz"))
        D.write_npz(part, files[-1])
    return files


def _run_dirs() -> list[str]:
    return [p.name for p in Path(tempfile.gettempdir()).iterdir()]


@pytest.mark.parametrize("rank, who", [(1, "party 1"), (2, "dealer")])
def test_stopped_process_is_named_within_30_s(tmp_path, monkeypatch, rank, who, launcher):
    files = _files(tmp_path)
    (tmp_path / "tmp").mkdir()
    monkeypatch.setattr(
        tempfile, "tempdir", str(tmp_path / "tmp")
    )  # where the launcher makes its run folder
    started = {}

    def on_start(pids):
        def stop():
            time.sleep(4.0)  # joined and training
            started["t"] = time.monotonic()
            os.kill(pids[rank], signal.SIGSTOP)

        threading.Thread(target=stop, daemon=True).start()

    with pytest.raises(
        PartyError
    ) as err:  # --timeout 120 (the CLI default): far longer than the detection
        launcher(
            CFG,
            files,
            [None, None],
            str(tmp_path / "out"),
            timeout_s=120,
            show_progress=False,
            on_start=on_start,
        )
    took = time.monotonic() - started["t"]
    msg = str(err.value)
    assert msg.startswith(f"{who} was stopped"), msg
    assert STOPPED_LIMIT_S <= took < 30, took
    assert not list((tmp_path / "out").glob("model-*"))
    assert _run_dirs() == []  # the run folder is gone


@pytest.mark.parametrize("stop, who", [(2, "party 1"), (0, "dealer")])
def test_stopped_remote_process_is_named_by_its_peers_within_30_s(
    tmp_path, stop, who, subprocesses
):
    """One process per host (`mpcrnn party` / `mpcrnn dealer`, no launcher watching them): the
    others name the stopped one by its missing heartbeat, with --timeout 120 (far longer)."""
    import subprocess

    import test_multihost as M

    files = M._setup_files(tmp_path)
    toml = tmp_path / "run.toml"
    toml.write_text(toml.read_text().replace("epochs = 1", "epochs = 200"))
    port = str(M._free_port())
    base = {"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": port, "WORLD_SIZE": "3"}
    envs = [{**base, "RANK": "2"}, {**base, "RANK": "0"}, {**base, "RANK": "1"}]
    cmds = [
        [a if a != "60" else "120" for a in c] for c in M._commands(tmp_path, files, [[], [], []])
    ]
    logs = [tmp_path / f"stderr{i}" for i in range(3)]
    procs = [
        subprocesses.Popen(
            c,
            env={**os.environ, **e},
            stdout=subprocess.DEVNULL,
            stderr=log.open("w"),
        )
        for c, e, log in zip(cmds, envs, logs)
    ]
    try:
        deadline = time.monotonic() + 120
        while not list(tmp_path.glob("out0/checkpoints/party0/epoch-*")):  # joined, training
            assert time.monotonic() < deadline and procs[1].poll() is None, "no epoch finished"
            time.sleep(0.5)
        assert all(p.poll() is None for p in procs), [p.poll() for p in procs]
        t0 = time.monotonic()
        os.kill(procs[stop].pid, signal.SIGSTOP)
        others = [p for i, p in enumerate(procs) if i != stop]
        for p in others:
            p.wait(timeout=40)
        took = time.monotonic() - t0
        errs = [log.read_text() for i, log in enumerate(logs) if i != stop]
        assert took < 30, took
        for p, err in zip(others, errs):
            assert p.returncode == PartyError.exit_code, err[-2000:]
            assert f"{who} stopped responding" in err, err[-2000:]
            assert "Traceback" not in err, err[-2000:]
            assert err.splitlines()[-1].startswith("error: "), err[-2000:]  # on a fresh line
    finally:
        for p in procs:
            if p.poll() is None:
                os.kill(p.pid, signal.SIGCONT)
                p.kill()
            p.wait()
