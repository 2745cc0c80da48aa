"""Regression rows on Tecator over seeds: torch (exact activations), the plaintext mirror (the
run's polynomials), optionally MPC (3 parties + dealer through the launcher), and the naive
training-mean baseline; test RMSE, MAE, R^2 in fat %.  Writes a markdown table with a header
(command, commit, machine, date).

Run as a file::

    .venv/bin/python benchmarks/regression_rows.py --seeds 0 1 2 [--mpc] [--epochs 40]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import common


def rows_for_seed(seed: int, epochs: int | None, mpc: bool, lr: float | None = None) -> dict:
    from mpcrnn.regression import mean_baseline, unscale_targets
    from mpcrnn.secure import evaluate_local, train_plain_mirror

    cfg, train_files, test_files, tr, te = common.tecator_demo(
        seed, "mpcrnn-regress-", epochs=epochs, lr=lr
    )
    work = Path(train_files[0]).parent
    out = {"seed": seed}
    t0 = time.perf_counter()
    out["torch"] = evaluate_local(cfg, train_plain_mirror(cfg, tr, exact=True), te, False)["exact"]
    out["mirror"] = evaluate_local(cfg, train_plain_mirror(cfg, tr, exact=False), te)["polynomial"]
    out["plain_seconds"] = time.perf_counter() - t0
    out["mean"] = mean_baseline(unscale_targets(tr.y, cfg.spec), unscale_targets(te.y, cfg.spec))
    if mpc:
        from launch.launcher import launch_local
        from mpcrnn.regression import pooled

        t0 = time.perf_counter()
        reports = launch_local(cfg, train_files, test_files, str(work), show_progress=False)
        tests = [r["local_test"]["polynomial"] for r in reports if "local_test" in r]
        out["mpc"] = pooled(tests)
        out["mpc_seconds"] = time.perf_counter() - t0
    return out


DATA = (
    "Tecator (172 train / 43 test, fat %), the demo's split across 3 organizations and its "
    "schedule (second differences x80, GRU H 32, frame 10, 80 epochs, Adam lr 0.02, cosine) "
    "unless --epochs/--lr say"
)


def markdown(results: list[dict]) -> str:
    head = [
        f"Data: {DATA}.",
        "",
        "| seed | torch RMSE | mirror RMSE | MPC RMSE | training mean RMSE | torch R^2 | "
        "mirror / torch | MPC / mirror |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        mpc = r.get("mpc")
        cells = [
            str(r["seed"]),
            f"{r['torch']['rmse']:.3f}",
            f"{r['mirror']['rmse']:.3f}",
            f"{mpc['rmse']:.3f}" if mpc else "-",
            f"{r['mean']['rmse']:.3f}",
            f"{r['torch']['r2']:.3f}",
            f"{r['mirror']['rmse'] / r['torch']['rmse']:.3f}",
            f"{mpc['rmse'] / r['mirror']['rmse']:.3f}" if mpc else "-",
        ]
        head.append("| " + " | ".join(cells) + " |")
    return "\n".join(head) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], parents=[common.parent(smoke=False, seeds=(0, 1, 2))]
    )
    ap.add_argument("--epochs", type=int, default=None)
    ap.add_argument("--lr", type=float, default=None, help="instead of the demo's lr")
    ap.add_argument("--mpc", action="store_true", help="also the MPC run (minutes per seed)")
    args = common.parse(ap)
    results = []
    for seed in args.seeds:
        results.append(rows_for_seed(seed, args.epochs, args.mpc, args.lr))
        print(results[-1], flush=True)
    title = "Tecator regression: torch, mirror, MPC and the training mean"
    path = common.write_results("regression_rows", markdown(results), results, args, title)
    print(path.read_text())


if __name__ == "__main__":
    main()
