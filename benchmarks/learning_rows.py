"""Do the defaults learn off the demo?  One table: per data set, cell and depth, test accuracy of

  1. the yardstick: plain torch (torch.nn.RNN/GRU/LSTM, exact activations, float32) with
     torch.optim.Adam (lr 0.01, no clipping), the same initial weights and batch schedule;
  2. the plaintext mirror with mpcrnn's defaults (TrainConfig(): Adam on the bias-corrected
     moments, lr 0.01, eps 1e-3, clip_value 1, clip_norm 1, cosine schedule with 10 warm-up steps,
     polynomials) -- median and range over seeds 0, 1, 2;
  3. mpcrnn itself: 3 parties + dealer through the launcher (seed 0);

and the largest |pre-activation| / polynomial bound the mirror met (the guard).  Only the data
declaration and the epoch count differ per data set.

Data: UCI Japanese Vowels (shipped) and UCR GunPoint (Dau et al., The UCR Time Series
Classification Archive, 2018; Ratanamahatana and Keogh 2004), read from
``../shared/datasets/gunpoint/`` or ``$MPCRNN_GUNPOINT`` (:func:`common.load`).

    .venv/bin/python benchmarks/learning_rows.py            # full (make bench)
    .venv/bin/python benchmarks/learning_rows.py --quick    # fewer epochs, MPC on two rows
    .venv/bin/python benchmarks/learning_rows.py --sweep    # the defaults sweep (mirror only)

Writes ``learning_rows.md`` and .json (``learning_rows-sweep`` with ``--sweep``), after every
row, so a long run stopped midway keeps what finished.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

import common

QUICK_EPOCHS = {"japanese_vowels": 12, "gunpoint": 60}
ROWS = [("japanese_vowels", c, L) for c in ("rnn", "gru", "lstm") for L in (1, 2)] + [
    ("gunpoint", "gru", 1),
    ("gunpoint", "lstm", 1),
]


_YARD: dict = {}


def yardstick(cfg, tr, te) -> float:
    """Plain torch, exact activations, torch.optim.Adam(lr 0.01), the mirror's init and batches
    (cached: it does not depend on mpcrnn's settings)."""
    key = (cfg.model, cfg.train.seed, cfg.train.epochs, cfg.train.batch_size, len(tr.y), len(te.y))
    if key not in _YARD:
        _YARD[key] = _yardstick(cfg, tr, te)
    return _YARD[key]


def _yardstick(cfg, tr, te) -> float:
    import torch

    from mpcrnn.model import export_state_dicts, init_params

    model = export_state_dicts(cfg.model, init_params(cfg.model, cfg.train.seed))
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    common.torch_loop(model, opt, common.scheduled_batches(tr, cfg.train), cfg.train.epochs)
    return common.torch_accuracy(model, te)


def mpc(cfg, parts, tests, workdir: Path) -> dict:
    """One launcher run on the parties' raw rows (:func:`common.party_parts`)."""
    parties, wall = common.launch_parties(cfg, parts, tests, workdir, timeout_s=600)
    p0 = parties[0]
    return {
        "test_accuracy": common.pooled_accuracy([p["local_test"] for p in parties]),
        "wall_s": wall,
        "step_s": statistics.median(p0["step_seconds"]),
        "steps": len(p0["step_seconds"]),
    }


def _stats(xs):
    return {"median": statistics.median(xs), "min": min(xs), "max": max(xs), "all": xs}


def table(rows: list[dict]) -> str:
    out = [
        "| data | model | epochs | torch Adam (exact) median (range) "
        "| mirror, defaults median (range) | mirror - torch (medians) "
        "| mirror seed 0, MPC's row order | MPC seed 0 | MPC - mirror | MPC s/step "
        "| max abs(x)/B |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        t, m = r["torch"], r["mirror"]
        ran = r.get("mpc")
        mp = f"{100 * ran['test_accuracy']:.1f}%" if ran else "not run"
        sp = f"{ran['step_s']:.2f}" if ran else "-"
        mo = f"{100 * r['mirror_party_order']:.1f}%" if ran else "-"
        gap = f"{100 * (ran['test_accuracy'] - r['mirror_party_order']):+.1f}" if ran else "-"
        out.append(
            f"| {r['data']} | {r['cell'].upper()} x{r['layers']} | {r['epochs']} "
            f"| {100 * t['median']:.1f}% "
            f"({100 * t['min']:.1f}-{100 * t['max']:.1f}) | {100 * m['median']:.1f}% "
            f"({100 * m['min']:.1f}-{100 * m['max']:.1f}) "
            f"| {100 * (m['median'] - t['median']):+.1f} | {mo} | {mp} | {gap} | {sp} "
            f"| {r['max_preact']:.2f} |"
        )
    return "\n".join(out)


def bench(quick: bool, mpc_rows, seeds=(0, 1, 2), save=None, only=(), **overrides) -> list[dict]:
    """Plaintext columns for every row first, then the MPC runs (in ``mpc_rows`` order);
    ``save(rows)``, if given, after every row."""
    import torch

    torch.set_num_threads(1)
    from mpcrnn import data as D

    epochs_by = QUICK_EPOCHS if quick else common.EPOCHS
    rows = []
    for name, cell, layers in ROWS:
        if only and name not in only:
            continue
        spec, raw_tr, raw_te = common.load(name)
        tr, te = D.scale_features(raw_tr, spec), D.scale_features(raw_te, spec)
        epochs = epochs_by[name]
        t0 = time.perf_counter()
        ts, ms, peaks = [], [], []
        for seed in seeds:
            cfg = common.run_config(name, cell, layers, seed, epochs, **overrides)
            ts.append(yardstick(cfg, tr, te))
            acc, peak = common.mirror(cfg, tr, te)
            ms.append(acc)
            peaks.append(peak)
        row = {
            "data": name,
            "cell": cell,
            "layers": layers,
            "epochs": epochs,
            "torch": _stats(ts),
            "mirror": _stats(ms),
            "max_preact": max(peaks),
            "plain_s": time.perf_counter() - t0,
        }
        rows.append(row)
        print(
            json.dumps(
                {k: v for k, v in row.items() if k not in ("torch", "mirror")}
                | {"torch": ts, "mirror": ms}
            ),
            flush=True,
        )
        if save:
            save(rows)
    for key in mpc_rows:
        row = next(r for r in rows if (r["data"], r["cell"], r["layers"]) == key)
        spec, raw_tr, raw_te = common.load(key[0])
        cfg = common.run_config(*key, 0, row["epochs"], **overrides)
        parts, tests = common.party_parts(raw_tr, raw_te)
        row["mirror_party_order"] = common.mirror_on_party_order(
            cfg, spec, parts, D.scale_features(raw_te, spec)
        )
        with tempfile.TemporaryDirectory() as tmp:
            row["mpc"] = mpc(cfg, parts, tests, Path(tmp))
        print(json.dumps({"mpc": key, **row["mpc"]}), flush=True)
        if save:
            save(rows)
    return rows


def sweep(args) -> None:
    """The defaults sweep on the mirror: every grid point over every row and seed
    (``$SWEEP_FROM``: start at that grid point)."""
    grid = [
        dict(lr=0.01, eps=1e-3),
        dict(lr=0.02, eps=1e-3),
        dict(lr=0.01, eps=1e-3, schedule="cosine", warmup_steps=10),
        dict(lr=0.005, eps=1e-3),
        dict(lr=0.01, eps=1e-3, optimizer="adamw", weight_decay=0.01),
        dict(lr=0.01, eps=1e-2),
    ]
    start = os.environ.get("SWEEP_FROM", "")
    grid = grid[int(start or "0") :]
    results = []
    for point in grid:
        rows = bench(args.quick, set(), args.seeds, only=args.only, **point)
        gaps = [r["mirror"]["median"] - r["torch"]["median"] for r in rows]
        results.append(
            {
                "point": point,
                "rows": rows,
                "worst_gap": min(gaps),
                "mean_gap": statistics.mean(gaps),
                "worst_mirror_min": min(r["mirror"]["min"] for r in rows),
            }
        )
        print("POINT", json.dumps(point), "worst gap", round(100 * min(gaps), 1), flush=True)
        common.write_results(
            f"learning_rows-sweep{start}",
            sweep_table(results),
            results,
            args,
            title="The defaults sweep on the mirror",
        )


def sweep_table(results: list[dict]) -> str:
    lines = [
        "Mirror minus torch Adam (medians over seeds, percentage points), per grid point "
        "(TrainConfig fields; the rest are the defaults):",
        "",
        "| grid point | worst gap | mean gap | worst mirror accuracy (min over seeds) |",
        "|---|---:|---:|---:|",
    ]
    for r in results:
        point = ", ".join(f"{k}={v}" for k, v in r["point"].items())
        lines.append(
            f"| {point} | {100 * r['worst_gap']:+.1f} | {100 * r['mean_gap']:+.1f} "
            f"| {100 * r['worst_mirror_min']:.1f}% |"
        )
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], parents=[common.parent(smoke=False, seeds=(0, 1, 2))]
    )
    ap.add_argument("--sweep", action="store_true", help="the defaults sweep (mirror only)")
    ap.add_argument("--no-mpc", action="store_true")
    ap.add_argument(
        "--mpc-rows",
        nargs="*",
        help="data:cell:layers rows to run in MPC (default: all; --quick: two)",
    )
    ap.add_argument("--only", nargs="*", default=(), help="data sets to run (default: all)")
    args = common.parse(ap)
    if args.sweep:
        return sweep(args)
    ap_rows = (
        [tuple(r.split(":")[:2]) + (int(r.split(":")[2]),) for r in args.mpc_rows]
        if args.mpc_rows
        else None
    )
    mpc_rows = (
        []
        if args.no_mpc
        else (
            ap_rows
            or ([("japanese_vowels", "gru", 1), ("gunpoint", "gru", 1)] if args.quick else ROWS)
        )
    )
    t0 = time.perf_counter()
    if args.only:
        mpc_rows = [r for r in mpc_rows if r[0] in args.only]

    def save(rows):
        return common.write_results("learning_rows", table(rows), rows, args)

    rows = bench(args.quick, mpc_rows, args.seeds, save=save, only=args.only)
    print("\n" + table(rows) + f"\n\nran {time.perf_counter() - t0:.0f} s; wrote {save(rows)}")


if __name__ == "__main__":
    main()
