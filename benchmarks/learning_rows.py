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
``../shared/datasets/gunpoint/`` or ``$MPCRNN_GUNPOINT``.

    .venv/bin/python benchmarks/learning_rows.py            # full (make bench)
    .venv/bin/python benchmarks/learning_rows.py --quick    # fewer epochs, MPC on two rows
    .venv/bin/python benchmarks/learning_rows.py --sweep    # the defaults sweep (mirror only)
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "tests"))

GUNPOINT = Path(
    os.environ.get("MPCRNN_GUNPOINT", HERE.parent.parent / "shared" / "datasets" / "gunpoint")
)
# GunPoint: 50 rows, 2 steps per epoch; the cosine schedule's mean lr is half of torch's constant
# one, and it needs 320 epochs (640 steps) where torch's Adam is within 3 points at 80
# (results/learning.md)
EPOCHS = {"japanese_vowels": 20, "gunpoint": 320}
QUICK_EPOCHS = {"japanese_vowels": 12, "gunpoint": 60}
ROWS = [("japanese_vowels", c, L) for c in ("rnn", "gru", "lstm") for L in (1, 2)] + [
    ("gunpoint", "gru", 1),
    ("gunpoint", "lstm", 1),
]


def gunpoint_spec():
    from mpcrnn import data as D

    # z-normalized series (UCR): public bounds [-2.5, 2.5] from that convention, not from the
    # rows; frames of 10 steps (15 model steps of 10 values): step by step (150 x 1) neither
    # torch's Adam nor the mirror learns GunPoint (docs/approximations.md)
    return D.DataSpec(
        n_features=1,
        classes=("1", "2"),
        max_len=150,
        scaling="bounds",
        feature_low=(-2.5,),
        feature_high=(2.5,),
        frame=10,
    )


def load(name: str):
    """(spec, raw train, raw test)."""
    from mpcrnn import data as D

    if name == "japanese_vowels":
        return D.JAPANESE_VOWELS_SPEC, D.japanese_vowels("train"), D.japanese_vowels("test")
    spec = gunpoint_spec()
    return (
        spec,
        D.read_ts(GUNPOINT / "GunPoint_TRAIN.ts", spec),
        D.read_ts(GUNPOINT / "GunPoint_TEST.ts", spec),
    )


def run_config(name: str, cell: str, layers: int, seed: int, epochs: int, **train_overrides):
    from mpcrnn.config import ModelConfig, RunConfig, TrainConfig

    spec, _, _ = load(name)
    return RunConfig(
        model=ModelConfig(
            cell=cell, num_layers=layers, input_size=spec.input_size, num_classes=len(spec.classes)
        ),
        train=TrainConfig(epochs=epochs, seed=seed, **train_overrides),
        spec=spec,
    )


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
    from mpcrnn.train import schedule

    model = export_state_dicts(cfg.model, init_params(cfg.model, cfg.train.seed))
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    x, n = torch.as_tensor(tr.x, dtype=torch.float32), torch.as_tensor(tr.lengths)
    y = torch.as_tensor(tr.y)
    for epoch in range(cfg.train.epochs):
        for idx in schedule(len(y), cfg.train, epoch):
            idx = torch.as_tensor(idx)
            opt.zero_grad()
            torch.nn.functional.cross_entropy(model(x[idx], n[idx]), y[idx]).backward()
            opt.step()
    with torch.no_grad():
        pred = (
            model(torch.as_tensor(te.x, dtype=torch.float32), torch.as_tensor(te.lengths))
            .argmax(1)
            .numpy()
        )
    return float((pred == te.y).mean())


def mirror(cfg, tr, te, backend=None) -> tuple[float, float]:
    """(test accuracy with exact activations, as MPC's model is evaluated; max |x| / B).
    ``backend``: a :class:`mpcrnn.backend.PlainBackend` (subclass) to train with, e.g. one
    that injects a fault (``one_bad_step.py``); default a plain one."""
    from mpcrnn.backend import PlainBackend
    from mpcrnn.model import init_params
    from mpcrnn.secure import evaluate_local
    from mpcrnn.train import plain_dataset, train

    B = backend or PlainBackend(cfg.activation)
    params, _ = train(
        B,
        cfg.model,
        cfg.train,
        plain_dataset(tr.x, tr.lengths, tr.y, cfg.model),
        init_params(cfg.model, cfg.train.seed),
    )
    return evaluate_local(cfg, params, te, polynomial=False)[
        "accuracy_exact"
    ], B.max_abs_preactivation


def party_parts(raw_tr, raw_te):
    """The harness's 50/30/20 split of the train and test rows among 3 parties."""
    from mpcrnn import data as D

    return D.split_rows(raw_tr, [0.5, 0.3, 0.2], 0), D.split_rows(raw_te, [0.5, 0.3, 0.2], 1)


def mirror_on_party_order(cfg, spec, parts, te, backend=None) -> float:
    """The mirror on the rows in MPC's order: the parties' parts concatenated in rank order,
    as :func:`mpcrnn.secure.share_all` pools them.  The batch schedule permutes row INDICES,
    so this order, not the file's, is the trajectory an MPC run with this seed follows (up to
    fixed-point noise); the mirror on the file's order is another draw of the batches."""
    from mpcrnn import data as D
    from mpcrnn.secure import concat

    return mirror(cfg, D.scale_features(concat(parts), spec), te, backend)[0]


def mpc(cfg, parts, tests, workdir: Path) -> dict:
    """One launcher run on the parties' raw rows (:func:`party_parts`)."""
    from harness import launch_parties, pooled_accuracy

    parties, wall = launch_parties(cfg, parts, tests, workdir, timeout_s=600)
    p0 = parties[0]
    return {
        "test_accuracy": pooled_accuracy([p["local_test"] for p in parties]),
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


def bench(
    quick: bool, mpc_rows, seeds=(0, 1, 2), out: Path | None = None, only=(), **overrides
) -> list[dict]:
    """Plaintext columns for every row first, then the MPC runs (in ``mpc_rows`` order)."""
    import torch

    torch.set_num_threads(1)
    from mpcrnn import data as D

    epochs_by = QUICK_EPOCHS if quick else EPOCHS
    rows = []
    for name, cell, layers in ROWS:
        if only and name not in only:
            continue
        spec, raw_tr, raw_te = load(name)
        tr, te = D.scale_features(raw_tr, spec), D.scale_features(raw_te, spec)
        epochs = epochs_by[name]
        t0 = time.perf_counter()
        ts, ms, peaks = [], [], []
        for seed in seeds:
            cfg = run_config(name, cell, layers, seed, epochs, **overrides)
            ts.append(yardstick(cfg, tr, te))
            acc, peak = mirror(cfg, tr, te)
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
        if out:
            out.write_text(json.dumps(rows, indent=1))
    for key in mpc_rows:
        row = next(r for r in rows if (r["data"], r["cell"], r["layers"]) == key)
        spec, raw_tr, raw_te = load(key[0])
        cfg = run_config(*key, 0, row["epochs"], **overrides)
        parts, tests = party_parts(raw_tr, raw_te)
        row["mirror_party_order"] = mirror_on_party_order(
            cfg, spec, parts, D.scale_features(raw_te, spec)
        )
        with tempfile.TemporaryDirectory() as tmp:
            row["mpc"] = mpc(cfg, parts, tests, Path(tmp))
        print(json.dumps({"mpc": key, **row["mpc"]}), flush=True)
        if out:
            out.write_text(json.dumps(rows, indent=1))
            out.with_suffix(".md").write_text(table(rows) + "\n")
    return rows


def sweep(out: Path, seeds=(0, 1, 2)) -> None:
    """The defaults sweep on the mirror: every grid point over every row and seed."""
    grid = [
        dict(lr=0.01, eps=1e-3),
        dict(lr=0.02, eps=1e-3),
        dict(lr=0.01, eps=1e-3, schedule="cosine", warmup_steps=10),
        dict(lr=0.005, eps=1e-3),
        dict(lr=0.01, eps=1e-3, optimizer="adamw", weight_decay=0.01),
        dict(lr=0.01, eps=1e-2),
    ]
    grid = grid[int(os.environ.get("SWEEP_FROM", "0")) :]
    results = []
    for point in grid:
        rows = bench(False, set(), seeds, **point)
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
        print(
            "POINT",
            json.dumps(point),
            "worst gap",
            round(100 * min(gaps), 1),
            "mean gap",
            round(100 * statistics.mean(gaps), 1),
            flush=True,
        )
        out.write_text(json.dumps(results, indent=1))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--sweep", action="store_true")
    ap.add_argument("--no-mpc", action="store_true")
    ap.add_argument(
        "--mpc-rows",
        nargs="*",
        help="data:cell:layers rows to run in MPC (default: all; --quick: two)",
    )
    ap.add_argument("--only", nargs="*", default=(), help="data sets to run (default: all)")
    ap.add_argument("--out", default="bench-out")
    args = ap.parse_args()
    os.environ.setdefault("GLOO_SOCKET_IFNAME", "lo")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.sweep:
        sweep(out / f"sweep_defaults{os.environ.get('SWEEP_FROM', '')}.json")
        return
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
    rows = bench(args.quick, mpc_rows, out=out / "learning_rows.json", only=args.only)
    text = table(rows)
    (out / "learning_rows.md").write_text(text + "\n")
    print("\n" + text + f"\n\nran {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
