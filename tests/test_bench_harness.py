"""The benchmark harness in its smallest configuration, so it cannot rot."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_harness_smoke(tmp_path):
    res = subprocess.run(
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
    data = json.loads((tmp_path / "w1.json").read_text())
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
    text = (tmp_path / "w1.md").read_text()
    assert "| mpcrnn |" in text and "WAN projection" in text and "Sweeps" in text
    assert "Summary: mpcrnn" in res.stdout
    fed = data["modes"]["fedavg"]
    assert (
        len(fed["accuracy_by_round"]) == fed["rounds"] == fed["revealed_models"] == 2
        and fed["total_bytes"] > 0
    )
    assert "| fedavg | 2 global models (one per round) |" in text
    assert [r["row"].split()[0] for r in data["dp"]] == ["Opacus", "mpcrnn-DP"] and "DP-SGD" in text
