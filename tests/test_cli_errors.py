"""Bad input through the real CLI: a typed error with expected vs got, a non-zero exit, one
line on stderr, no traceback, no data value in the message, no hang (every case has a timeout).

Data errors are caught by local validation before a party joins the run; run-level errors
(agreement, ranks, party counts, ports, missing peers) involve real processes and short timeouts.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from mpcrnn import data as D

MPCRNN = str(Path(sys.executable).with_name("mpcrnn"))
PLANTED = 123.456  # a distinctive value placed in bad rows: must never appear in any message


def _rows(n=6, seed=0):
    return D.split_rows(D.japanese_vowels("train"), [n], seed)[0]


def _with(data, **changes):
    fields = {
        "x": data.x.copy(),
        "lengths": data.lengths.copy(),
        "y": data.y.copy(),
        "classes": data.classes,
    }
    fields.update(changes)
    return D.SequenceData(**fields)


def _write(tmp, name, data, fmt="npz"):
    path = tmp / f"{name}.{fmt}"
    (D.write_npz if fmt == "npz" else D.write_csv)(data, path)
    return str(path)


def _bad_files(tmp: Path) -> dict[str, tuple[str, str]]:
    good = _rows()
    x = good.x.copy()
    nan, inf, big = x.copy(), x.copy(), x.copy()
    nan[1, 0, 3] = np.nan
    nan[0, 0, 0] = PLANTED
    inf[2, 1, 0] = np.inf
    big[0, 0, 5] = PLANTED * 1e4
    csv_text = Path(_write(tmp, "good", good, "csv")).read_text().splitlines()
    header, first = csv_text[0], csv_text[1].split(",")
    nonnum = first.copy()
    nonnum[4] = "abc"
    badlabel = [line.rsplit(",", 1)[0] + ",10" for line in csv_text[1:]]
    long_x = np.zeros((1, 31, 12))
    long_x[0, :, 0] = PLANTED / 1000
    files = {
        "wrong feature count": (_write(tmp, "f11", _with(good, x=good.x[:, :, :11])), r"feature"),
        "NaN value": (_write(tmp, "nan", _with(good, x=nan)), r"NaN"),
        "infinite value": (_write(tmp, "inf", _with(good, x=inf)), r"infinite"),
        "value out of range": (_write(tmp, "big", _with(good, x=big)), r"expected|bound"),
        "label outside classes": (_csv(tmp, "label", [header, *badlabel]), r"class"),
        "empty file": (_csv(tmp, "empty", [header]), r"empty|no sequence|expected"),
        "non-numeric cell": (
            _csv(tmp, "nonnum", [header, ",".join(nonnum), *csv_text[2:]]),
            r"numeric|number",
        ),
        "unreadable file": (str(tmp / "missing.npz"), r"cannot read|not found|No such|missing"),
        "unknown suffix": (_csv(tmp, "data", [header], suffix=".txt"), r"suffix|format|\.txt"),
        "sequence too long": (
            _write(
                tmp, "long", D.SequenceData(long_x, np.array([31]), np.array([0]), good.classes)
            ),
            r"length|29",
        ),
    }
    return files


def _csv(tmp, name, lines, suffix=".csv"):
    path = tmp / f"{name}{suffix}"
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def _party(rank, world, rendezvous, data, *extra, timeout=4.0, provider="tfp"):
    # the plaintext transport: these cases are about the run's own errors
    # (identities: test_channels.py)
    return subprocess.Popen(
        [
            MPCRNN,
            "party",
            "--rank",
            str(rank),
            "--parties",
            str(world),
            "--rendezvous",
            rendezvous,
            "--data",
            data,
            "--provider",
            provider,
            "--timeout",
            str(timeout),
            "--hidden-size",
            "4",
            "--epochs",
            "1",
            "--insecure-plaintext-transport",
            *extra,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _check(proc, pattern, limit=60):
    out, err = proc.communicate(timeout=limit)
    assert proc.returncode != 0, err
    assert "Traceback" not in err + out, err
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert lines and lines[-1].startswith("error: "), err
    import re

    assert re.search(pattern, lines[-1]), lines[-1]
    assert str(PLANTED) not in err + out and "123.45" not in err + out
    return lines[-1]


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


DATA_CASES = [
    "wrong feature count",
    "NaN value",
    "infinite value",
    "value out of range",
    "label outside classes",
    "empty file",
    "non-numeric cell",
    "unreadable file",
    "unknown suffix",
    "sequence too long",
]


@pytest.mark.parametrize("case", DATA_CASES)
def test_bad_party_file(case, tmp_path, subprocesses):
    path, pattern = _bad_files(tmp_path)[case]
    msg = _check(_party(0, 2, f"tcp://127.0.0.1:{_free_port()}", path), pattern)
    assert "DataError" not in msg or "expected" in msg or "cannot" in msg


def test_mismatched_run_config_between_parties(tmp_path, subprocesses):
    good = _write(tmp_path, "good", _rows())
    rdv = f"tcp://127.0.0.1:{_free_port()}"
    a = _party(0, 2, rdv, good, timeout=20)
    time.sleep(0.5)
    b = _party(1, 2, rdv, good, "--lr", "0.3", timeout=20)
    for p in (a, b):
        _check(p, r"run configuration \(SHA-256\): expected .*, got .*same run config")


def test_duplicate_rank(tmp_path, subprocesses):
    good = _write(tmp_path, "good", _rows())
    rdv = f"tcp://127.0.0.1:{_free_port()}"
    a = _party(0, 2, rdv, good)
    time.sleep(1.0)
    b = _party(0, 2, rdv, good)
    for p in (a, b):
        _check(p, r"rank 0: could not join the run")


def test_wrong_party_count(tmp_path, subprocesses):
    good = _write(tmp_path, "good", _rows())
    rdv = f"tcp://127.0.0.1:{_free_port()}"
    a = _party(0, 3, rdv, good)
    time.sleep(0.5)
    b = _party(1, 2, rdv, good)
    for p in (a, b):
        _check(p, r"could not join the run .* within 4 s")


def test_port_already_in_use(tmp_path, subprocesses):
    good = _write(tmp_path, "good", _rows())
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        _check(
            _party(0, 2, f"tcp://127.0.0.1:{port}", good),
            r"rank 0: could not join the run at tcp://127\.0\.0\.1",
        )


def test_unreachable_master(tmp_path, subprocesses):
    good = _write(tmp_path, "good", _rows())
    _check(
        _party(1, 2, f"tcp://127.0.0.1:{_free_port()}", good),
        r"rank 1: could not join the run .* within 4 s",
    )


def test_dealer_missing(tmp_path, subprocesses):
    good = _write(tmp_path, "good", _rows())
    rdv = f"tcp://127.0.0.1:{_free_port()}"
    a = _party(0, 2, rdv, good, provider="ttp")
    b = _party(1, 2, rdv, good, provider="ttp")
    for p in (a, b):
        _check(p, r"could not join the run .* within 4 s")


@pytest.mark.parametrize(
    "args,pattern",
    [
        (["--rank", "5"], r"rank: expected 0\.\.2, got 5"),
        (["--rank", "-1"], r"rank: expected 0\.\.2, got -1"),
        (
            ["--parties", "0", "--rank", "0"],
            r"\[run\] parties \(--parties\): expected >= 2, got 0",
        ),
    ],
)
def test_out_of_range_rank_and_world(args, pattern, tmp_path, subprocesses):
    good = _write(tmp_path, "good", _rows())
    base = {"--rank": "0", "--parties": "2"}
    it = iter(args)
    base.update(dict(zip(it, it)))
    proc = subprocesses.Popen(
        [
            MPCRNN,
            "party",
            "--rank",
            base["--rank"],
            "--parties",
            base["--parties"],
            "--rendezvous",
            "tcp://127.0.0.1:1",
            "--data",
            good,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    _check(proc, pattern)


def test_only_connection_errors_read_as_lost_contact():
    """A dropped connection is reported as lost contact (PartyError, exit 4); any other
    exception (a bug) as an internal error naming its type, never as a network failure."""
    from launch.party import describe_failure
    from protocols.errors import ConfigError

    msg, code = describe_failure(ConnectionResetError(104, "Connection reset by peer"), "party 1")
    assert code == 4 and msg.startswith("PartyError: party 1: lost contact with a peer")
    assert "ConnectionResetError" in msg
    msg, code = describe_failure(RuntimeError("index out of range"), "party 1")
    assert code == 1 and msg == "internal error RuntimeError: index out of range"
    assert "lost contact" not in msg
    assert describe_failure(ConfigError("bad"), "dealer") == ("ConfigError: bad", 2)
