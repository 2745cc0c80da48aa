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

from launch.launcher import STOPPED_LIMIT_S, launch_local
from mpcrnn import data as D
from mpcrnn.config import ModelConfig, RunConfig, TrainConfig
from protocols.errors import PartyError

CFG = RunConfig(
    model=ModelConfig(hidden_size=4),
    train=TrainConfig(epochs=40, batch_size=20),
    spec=D.JAPANESE_VOWELS_SPEC,
    world_size=2,
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
def test_stopped_process_is_named_within_30_s(tmp_path, monkeypatch, rank, who):
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
        launch_local(
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
