"""Checkpoints under fault injection: swapped, truncated, corrupted, stray and foreign files,
and a schedule changed on --resume.  Never a wrong model with exit 0: every case either resumes
from the party's own authentic files or stops with one line naming the file, and no model is
written as final.  Plus: files 0600 in a per-party folder 0700, shares encrypted at rest.

One 2-party + dealer launcher run (H=4, 2 epochs) makes the checkpoints; each case tampers with
a copy of its output folder, then resumes (resuming a finished run loads the last checkpoint and
reveals it)."""

from __future__ import annotations

import os
import re
import shutil
import stat
from pathlib import Path

import pytest
import torch

from launch.launcher import launch_local
from mpcrnn import checkpoint
from mpcrnn import data as D
from mpcrnn.config import ModelConfig, RunConfig, TrainConfig
from protocols.errors import PartyError

CFG = RunConfig(
    model=ModelConfig(hidden_size=4),
    train=TrainConfig(epochs=2, batch_size=20),
    spec=D.JAPANESE_VOWELS_SPEC,
    parties=2,
)


@pytest.fixture(scope="module")
def finished(tmp_path_factory, launcher):
    tmp = tmp_path_factory.mktemp("ckpt")
    files = []
    for r, part in enumerate(D.split_rows(D.japanese_vowels("train"), [20, 20], 3)):
        files.append(str(tmp / f"p{r}.npz"))
        D.write_npz(part, files[-1])
    launcher(CFG, files, [None, None], str(tmp / "run"), timeout_s=30, show_progress=False)
    return tmp, files


def _copy(finished, tmp_path) -> Path:
    src, _ = finished
    dst = tmp_path / "run"
    shutil.copytree(src / "run", dst)
    return dst


def _resume(run: Path, files, cfg=CFG):
    before = {p.name: p.stat().st_mtime_ns for p in run.glob("model-*.pt")}
    try:
        launch_local(
            cfg, files, [None, None], str(run), timeout_s=30, show_progress=False, resume=True
        )
    except PartyError as exc:
        after = {p.name: p.stat().st_mtime_ns for p in run.glob("model-*.pt")}
        assert after == before, "a model was written as final by a failed resume"
        return str(exc)
    return None


def _last(run: Path, rank: int) -> Path:
    return run / "checkpoints" / f"party{rank}" / "epoch-000002.ckpt"


def test_files_are_private_and_encrypted(finished):
    tmp, _ = finished
    ckpt = tmp / "run" / "checkpoints"
    for r in range(2):
        assert stat.S_IMODE((ckpt / f"party{r}").stat().st_mode) == 0o700
        for f in (ckpt / f"party{r}").iterdir():
            assert stat.S_IMODE(f.stat().st_mode) == 0o600, f
        names = sorted(p.name for p in (ckpt / f"party{r}").iterdir())
        assert names == ["epoch-000001.ckpt", "epoch-000002.ckpt", "key"]
    # at rest the shares are ciphertext: the torch.save zip magic appears nowhere in the file
    assert b"PK\x03\x04" not in _last(tmp / "run", 1).read_bytes()


def _swap(run):  # party 0's checkpoint copied over party 1's
    shutil.copy(_last(run, 0), _last(run, 1))


def _swap_keys_too(run):  # ... and party 0's key over party 1's: still refused (rank in the header)
    _swap(run)
    shutil.copy(run / "checkpoints" / "party0" / "key", run / "checkpoints" / "party1" / "key")


def _truncate(run):
    p = _last(run, 1)
    p.write_bytes(p.read_bytes()[:-100])


def _corrupt(run):
    p = _last(run, 1)
    b = bytearray(p.read_bytes())
    b[-50] ^= 1
    p.write_bytes(bytes(b))


def _renamed(run):  # an authentic epoch-1 file under the epoch-2 name
    shutil.copy(run / "checkpoints" / "party1" / "epoch-000001.ckpt", _last(run, 1))


def _foreign_bytes(run):
    _last(run, 1).write_bytes(os.urandom(3000))


def _torch_file(run):  # an old-format or hand-made torch file under the right name
    torch.save({"rank": 1, "epoch": 2, "digest": "x", "params": {}, "velocity": {}}, _last(run, 1))


def _key_lost(run):
    (run / "checkpoints" / "party1" / "key").unlink()


FAULTS = [  # (id, tamper, pattern of the launcher's one-line error)
    (
        "swapped",
        _swap,
        r"party1/epoch-000002\.ckpt: expected a checkpoint of party 1, got one of party 0",
    ),
    ("swapped-with-key", _swap_keys_too, r"expected a checkpoint of party 1, got one of party 0"),
    (
        "truncated",
        _truncate,
        r"party1/epoch-000002\.ckpt: expected a file sealed by party 1 of this run",
    ),
    (
        "corrupted",
        _corrupt,
        r"party1/epoch-000002\.ckpt: expected a file sealed by party 1 of this run",
    ),
    ("renamed-epoch", _renamed, r"expected epoch 2 \(its name\), got epoch 1 inside"),
    (
        "random-bytes",
        _foreign_bytes,
        r"epoch-000002\.ckpt: expected an mpcrnn checkpoint, got another kind",
    ),
    (
        "old-torch-file",
        _torch_file,
        r"epoch-000002\.ckpt: expected an mpcrnn checkpoint, got another kind",
    ),
    ("key-lost", _key_lost, r"party1/key: expected this party's checkpoint key"),
]


@pytest.mark.parametrize("tamper, pattern", [f[1:] for f in FAULTS], ids=[f[0] for f in FAULTS])
def test_tampered_checkpoint_stops_the_resume_naming_the_file(
    finished, tmp_path, tamper, pattern, launcher
):
    _, files = finished
    run = _copy(finished, tmp_path)
    tamper(run)
    error = _resume(run, files)
    assert error is not None and "\n" not in error, error
    assert re.search(pattern, error), error
    assert "party 1 died" in error or "party 1" in error


def test_stray_files_are_never_read(finished, tmp_path, launcher):
    _, files = finished
    run = _copy(finished, tmp_path)
    for name in ("party0-epochold.pt", "party1-epochbackup.pt"):
        (run / "checkpoints" / name).write_bytes(b"junk")
    for name in ("epoch-old.ckpt", "epoch-000009.ckpt~", "epoch-2.ckpt"):
        (run / "checkpoints" / "party0" / name).write_bytes(b"junk")
    assert _resume(run, files) is None  # resumes from the authentic epoch-2 files
    launcher(
        CFG, files, [None, None], str(run), timeout_s=30, show_progress=False
    )  # and a fresh run


def test_resume_with_a_longer_schedule_says_it_cannot_be_extended(finished, tmp_path, launcher):
    from dataclasses import replace

    _, files = finished
    run = _copy(finished, tmp_path)
    longer = replace(CFG, train=replace(CFG.train, epochs=3))
    error = _resume(run, files, longer)
    assert error is not None and re.search(
        r"schedule: expected 3 epochs \(this run\), "
        r"got 2 epochs \(the checkpointed run\)\. the schedule cannot "
        r"be extended",
        error,
    ), error


def test_load_unit_checks_without_processes(finished):
    tmp, _ = finished
    params, velocity = checkpoint.load(
        tmp / "run" / "checkpoints", 1, 2, CFG.checkpoint_digest(), 2
    )
    assert params and velocity  # the weights' and the optimizer state's shares
    assert all(v.dtype == torch.int64 for v in [*params.values(), *velocity.values()])


def test_an_earlier_runs_checkpoints_in_the_same_folder_are_refused(finished, tmp_path):
    """Issue 26 #1: party 1's folder (key included) from an earlier run of the same
    configuration, put back into the --out folder a later fresh run wrote: --resume must be
    refused naming the file (old code: exit 0, shares of two runs mixed into garbage)."""
    _, files = finished
    run = _copy(finished, tmp_path)
    earlier = tmp_path / "earlier-party1"
    shutil.copytree(run / "checkpoints" / "party1", earlier)
    launch_local(CFG, files, [None, None], str(run), timeout_s=30, show_progress=False)  # fresh
    shutil.rmtree(run / "checkpoints" / "party1")
    shutil.copytree(earlier, run / "checkpoints" / "party1")
    error = _resume(run, files)
    assert error is not None and "\n" not in error, error
    assert re.search(r"party1/epoch-000002\.ckpt: run: expected run \w+", error), error
