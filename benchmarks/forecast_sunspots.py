"""Forecasting on a real public series: yearly sunspot numbers 1700-2008 (statsmodels'
``datasets.sunspots``, shipped in mpcrnn/datasets/sunspots with its source).

Three organizations each hold one contiguous era of the series (103 years each) as a long-series
CSV, train and test files split in time (:func:`mpcrnn.windows.split_in_time`: the last 20 % of
its years for testing, the test file starting one window earlier).  The run declares the
windows (``[data] window = 22``, ``horizon = 1``; stride 1), and each party's intake cuts its
OWN files into windows locally (:func:`mpcrnn.readers_series.read_series`).  Declared public
bounds: 0 .. 200 for the values and the target.  Rows: torch (exact activations), the
plaintext mirror (polynomials), optionally MPC (``--mpc``, 3 parties + dealer), and the naive
forecasts (training mean, last value, seasonal last value with an 11-year period), test RMSE
in sunspot numbers.  Writes benchmarks/results/forecast-sunspots.md (command, commit, machine,
date).

    .venv/bin/python benchmarks/forecast_sunspots.py --seeds 0 1 2 [--mpc]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import common
import numpy as np

ROOT = Path(__file__).resolve().parents[1]

WINDOW, HORIZON, PERIOD, PARTIES = 22, 1, 11, 3
DATA = {  # the run file's [data]: max_len = window, n_targets = horizon follow
    "n_features": 1,
    "scaling": "bounds",
    "feature_low": (0.0,),
    "feature_high": (200.0,),
    "target_low": 0.0,
    "target_high": 200.0,
    "window": WINDOW,
    "horizon": HORIZON,
}
SCHEDULE = {"model": {"hidden_size": 16}, "train": {"epochs": 30, "lr": 0.03}}


def sunspots() -> np.ndarray:
    path = ROOT / "mpcrnn" / "datasets" / "sunspots" / "sunspots.csv"
    return np.loadtxt(path, delimiter=",", skiprows=1)[:, 1]


def party_files(work: Path) -> tuple[list[str], list[str]]:
    """Each organization's train and test series files, from its own era only."""
    from mpcrnn.readers_series import write_series
    from mpcrnn.windows import split_in_time

    train_files, test_files = [], []
    for r, era in enumerate(np.array_split(sunspots(), PARTIES)):
        for part, files, name in zip(
            split_in_time(era, 0.2, WINDOW), (train_files, test_files), ("train", "test")
        ):
            files.append(str(work / f"party{r}-{name}.csv"))
            write_series(part, files[-1], ["sunspots"])
    return train_files, test_files


def rows_for_seed(seed: int, mpc: bool) -> dict:
    from launch.runfile import build
    from mpcrnn import data as D
    from mpcrnn.regression import mean_baseline, metrics, unscale_targets
    from mpcrnn.secure import concat, evaluate_local, train_plain_mirror
    from mpcrnn.windows import last_value, seasonal_last

    raw = {"data": dict(DATA), "run": {"insecure_plaintext_transport": True}, **SCHEDULE}
    cfg = build(raw, {"seed": seed})
    work = Path(tempfile.mkdtemp(prefix="mpcrnn-forecast-"))
    train_files, test_files = party_files(work)
    raw_tr, raw_te = (
        concat([D.load_party_file(f, cfg.spec) for f in fs]) for fs in (train_files, test_files)
    )
    tr, te = (D.scale_features(d, cfg.spec) for d in (raw_tr, raw_te))
    out = {"seed": seed, "rows": (tr.n_rows, te.n_rows)}
    out["torch"] = evaluate_local(cfg, train_plain_mirror(cfg, tr, exact=True), te, False)["exact"]
    out["mirror"] = evaluate_local(cfg, train_plain_mirror(cfg, tr, exact=False), te)["polynomial"]
    y_te = unscale_targets(te.y, cfg.spec)
    out["mean"] = mean_baseline(unscale_targets(tr.y, cfg.spec), y_te)
    out["last"] = metrics(last_value(raw_te.x, HORIZON), y_te)
    out["seasonal"] = metrics(seasonal_last(raw_te.x, HORIZON, PERIOD), y_te)
    if mpc:
        from launch.launcher import launch_local
        from mpcrnn.regression import pooled

        t0 = time.perf_counter()
        reports = launch_local(cfg, train_files, test_files, str(work), show_progress=False)
        out["mpc"] = pooled([r["local_test"]["polynomial"] for r in reports if "local_test" in r])
        out["mpc_seconds"] = time.perf_counter() - t0
    return out


def markdown(results: list[dict]) -> str:
    data = (
        "yearly sunspots 1700-2008 (statsmodels datasets.sunspots), 3 organizations of one era "
        f"each, window {WINDOW}, horizon {HORIZON}, stride 1, last 20 % of each era for testing "
        f"({results[0]['rows'][0]} train / {results[0]['rows'][1]} test windows); GRU H 16, "
        "30 epochs, Adam lr 0.03"
    )
    lines = [
        f"Data: {data}.",
        "",
        "| seed | torch RMSE | mirror RMSE | MPC RMSE | training mean | last value | "
        "seasonal last (11 y) | mirror / torch | MPC / mirror | MPC s |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        mpc = r.get("mpc")
        cells = [
            str(r["seed"]),
            *(f"{r[k]['rmse']:.2f}" for k in ("torch", "mirror")),
            f"{mpc['rmse']:.2f}" if mpc else "-",
            *(f"{r[k]['rmse']:.2f}" for k in ("mean", "last", "seasonal")),
            f"{r['mirror']['rmse'] / r['torch']['rmse']:.3f}",
            f"{mpc['rmse'] / r['mirror']['rmse']:.3f}" if mpc else "-",
            f"{r['mpc_seconds']:.0f}" if mpc else "-",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], parents=[common.parent(smoke=False, seeds=(0, 1, 2))]
    )
    ap.add_argument("--mpc", action="store_true", help="also the MPC run (minutes per seed)")
    args = common.parse(ap)
    results = []
    for seed in args.seeds:
        results.append(rows_for_seed(seed, args.mpc))
        print(results[-1], flush=True)
    title = "Sunspots forecasting (1 year ahead): torch, mirror, MPC and naive forecasts"
    path = common.write_results("forecast_sunspots", markdown(results), results, args, title)
    print(path.read_text())


if __name__ == "__main__":
    main()
