"""The benchmark harness in its smallest configuration, so it cannot rot.  Every script writes
``<name>.md`` (a header naming command, commit, date, machine and load, then the table) and
``<name>.json`` (``{"provenance": ..., "data": ...}``) through ``benchmarks/common``."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_harness_smoke(tmp_path, subprocesses):
    res = subprocesses.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "harness.py"),
            "--smoke",
            "--out",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=ROOT,
    )
    assert res.returncode == 0, res.stderr[-3000:]
    written = json.loads((tmp_path / "harness.json").read_text())
    assert {"command", "commit", "machine", "load_start", "load_end"} <= set(written["provenance"])
    assert written["provenance"]["command"].startswith("python benchmarks/harness.py --smoke")
    data = written["data"]
    rows = data["w1"]
    assert set(rows) == {
        "torch GRU (exact, float32)",
        "mirror, polynomials (float64)",
        "naive CrypTen autograd",
        "mpcrnn",
    }
    assert (
        rows["mpcrnn"]["rounds_per_step"] > 0
        and rows["naive CrypTen autograd"]["rounds_per_step"] > 0
    )
    assert all(0.0 <= r["test_accuracy"] <= 1.0 for k, r in rows.items() if "test_accuracy" in r)
    assert set(data["wan"]) == {"1", "10", "50"} and data["floor"]["rtt_s"] > 0
    text = (tmp_path / "harness.md").read_text()
    assert text.startswith("# What privacy costs") and "> - Commit: `" in text
    assert "| mpcrnn |" in text and "WAN projection" in text and "Sweeps" in text
    assert "Summary: mpcrnn" in res.stdout
    fed = data["modes"]["fedavg"]
    assert (
        len(fed["accuracy_by_round"]) == fed["rounds"] == fed["revealed_models"] == 2
        and fed["total_bytes"] > 0
    )
    assert "| fedavg | 2 global models (one per round) |" in text


def _adv_rows(*args, check=True):
    res = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "adversarial_rows.py"), *args],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=ROOT,
    )
    if check:
        assert res.returncode == 0, res.stderr[-3000:]
    return res


def test_adversarial_rows_split_and_merge(tmp_path, subprocesses):
    """The table's plaintext part and its MPC part run apart (the MPC part on a machine with more
    cores) and merge into one table; an MPC run given twice is refused, not double-counted."""
    _adv_rows("--smoke", "--part", "plain", "--out", str(tmp_path / "plain"))
    _adv_rows("--smoke", "--part", "d", "--out", str(tmp_path / "mpc"))
    runs = tmp_path / "mpc" / "adversarial_rows.runs.jsonl"
    assert len(runs.read_text().splitlines()) == 1  # one finished run: (d), seed 0
    plain = tmp_path / "plain" / "adversarial_rows.json"
    _adv_rows("--merge", str(plain), str(runs), "--out", str(tmp_path / "all"))
    merged = json.loads((tmp_path / "all" / "adversarial_rows.json").read_text())["data"]
    row = merged["japanese_vowels gru"]
    assert set(row) >= {"a", "b", "c0", "d0", "d"} and "c" not in row
    assert row["d"]["seeds"] == [0]
    assert set(row["d"]["acc"]) == set(row["d0"])  # the same metrics as the plaintext columns
    assert all(0.0 <= v[0] <= 1.0 for v in row["d"]["acc"].values())
    md = (tmp_path / "all" / "adversarial_rows.md").read_text()
    assert "(d) mpcrnn adversarial" in md and "(b) plaintext adversarial" in md
    res = _adv_rows("--merge", str(plain), str(runs), str(runs), check=False)
    assert res.returncode != 0
    assert "merge: japanese_vowels gru (d) seed 0 twice" in res.stderr
