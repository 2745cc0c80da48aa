"""Adversarial training rows: what it costs and what it buys, plaintext and on shares.

Run as a file (never imported as a package named ``benchmarks``)::

    .venv/bin/python benchmarks/adversarial_rows.py          # JV GRU, JV LSTM, GunPoint GRU
    .venv/bin/python benchmarks/adversarial_rows.py --quick  # JV GRU and JV LSTM only
    .venv/bin/python benchmarks/adversarial_rows.py --smoke  # seconds-scale (H=4, 1 epoch, JV GRU)

For each data set and cell, four models, each evaluated on the test rows: clean accuracy, and
robust accuracy under FGSM and PGD-10 (step 2.5 eps / 10, start at x) at three eps, in plain
torch on the exported model (:mod:`mpcrnn.attacks`):

(a) plaintext, standard training     (b) plaintext, adversarial training (the same algorithm)
(c) mpcrnn, standard (3 parties + dealer, on shares)
(d) mpcrnn, adversarial (FGSM, mix 0.5, on shares; eps 0.1, GunPoint 0.02: TRAIN_EPS)

(a) and (b) are the plaintext mirror with exact activations: the same code, optimizer, schedule,
initialization and adversarial algorithm as (c) and (d), so the columns differ only in MPC's
polynomials and fixed point.  Plaintext columns: median (min-max) over 3 training seeds; MPC:
seed 0.  (c0) and (d0) are what (c) and (d) follow, up to fixed-point noise: the mirror with
MPC's polynomials, seed 0, on MPC's row order (the parties' parts pooled in rank order; the
batch schedule permutes row indices, so the file's order is another draw of the batches).
Also per step, from party 0's report: seconds (median), rounds and MB sent, standard
vs adversarial, side by side (same run of this script).  Every perturbation is in scaled
feature units (the declared bounds map to [-1, 1]).

Data: Japanese Vowels (UCI; the project's copy) split 50/30/20 across 3 parties; GunPoint from
the UCR Time Series Classification Archive (Dau et al. 2019; originally Ratanamahatana and Keogh
2004), read from ``../shared/datasets/gunpoint`` next to the project (skipped, saying so, when
that folder is absent), split across 3 parties the same way.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))  # harness.py (as a file-level module, never `benchmarks.*`)

# attack and training eps per data set, in scaled feature units.  GunPoint's standard model falls
# to 15% at eps 0.05 and adversarial training at 0.1 leaves the majority class (49.3%, plaintext
# and MPC alike): its perturbations are 5x smaller (train 0.02, attacks 0.01 / 0.02 / 0.05)
EPS = {"japanese_vowels": (0.05, 0.1, 0.2), "gunpoint": (0.01, 0.02, 0.05)}
TRAIN_EPS = {"japanese_vowels": 0.1, "gunpoint": 0.02}
# epochs per data set: the default schedule (12) for Japanese Vowels; GunPoint as in
# learning_rows.py (240 epochs of 2 steps, frames of 10 steps: its declaration there)
EPOCHS = {"japanese_vowels": 12, "gunpoint": 240}


def datasets(which: list[str]):
    """{name: (spec, raw train, raw test)}: learning_rows.py's loaders (the same declarations)."""
    from learning_rows import GUNPOINT, load

    out = {}
    for name in which:
        if name == "gunpoint" and not (GUNPOINT / "GunPoint_TRAIN.ts").exists():
            print(f"GunPoint skipped: {GUNPOINT} not found")
            continue
        out[name] = load(name)
    return out


def _eval(cfg, params, test_scaled, eps_list) -> dict:
    import torch

    from mpcrnn.attacks import robust_accuracy
    from mpcrnn.model import export_state_dicts
    from mpcrnn.secure import value_range

    model = export_state_dicts(
        cfg.model, {k: torch.as_tensor(v) for k, v in params.items()}
    ).double()
    x, ln, y = test_scaled.x, test_scaled.lengths, test_scaled.y
    R = value_range(cfg)
    row = {"clean": robust_accuracy(model, x, ln, y, "none", 0.0, R)}
    for eps in eps_list:
        row[f"fgsm {eps:g}"] = robust_accuracy(model, x, ln, y, "fgsm", eps, R)
        row[f"pgd10 {eps:g}"] = robust_accuracy(model, x, ln, y, "pgd", eps, R, steps=10)
    return row


def plain_column(cfg, train_scaled, test_scaled, seeds, eps_list) -> dict:
    """The mirror with exact activations over ``seeds``: {metric: [value per seed]}."""
    from mpcrnn.secure import train_plain_mirror

    rows = []
    for seed in seeds:
        c = replace(cfg, train=replace(cfg.train, seed=seed))
        rows.append(
            _eval(c, train_plain_mirror(c, train_scaled, exact=True), test_scaled, eps_list)
        )
    return {k: [r[k] for r in rows] for k in rows[0]}


def mpc_column(cfg, parts, tests_raw, test_scaled, workdir: Path, eps_list) -> dict:
    """One launcher run (3 parties + dealer); the released model attacked in plain torch."""
    import torch
    from harness import launch_parties

    workdir.mkdir(parents=True, exist_ok=True)
    reports, wall = launch_parties(cfg, parts, tests_raw, workdir, timeout_s=600)
    state = torch.load(workdir / "run" / "model-party0.pt", weights_only=True)["state_dict"]
    row = {
        k: [v]
        for k, v in _eval(
            cfg, {k: v.double() for k, v in state.items()}, test_scaled, eps_list
        ).items()
    }
    r0 = reports[0]
    steps = r0["step_seconds"][1:] or r0["step_seconds"]  # the first step records the plan
    rounds = r0["step_rounds"][1:] or r0["step_rounds"]
    n_steps = len(r0["step_seconds"])
    return {
        "acc": row,
        "s_per_step": statistics.median(steps),
        "rounds_per_step": statistics.median(rounds),
        "mb_per_step": r0["crypten_counted"]["bytes"]
        / 1e6
        / max(n_steps, 1),  # as harness.py's W1 row
        "wall_s": wall,
        "steps": n_steps,
    }


def run(quick: bool, smoke: bool, out: Path | None, only=()) -> dict:
    from learning_rows import party_parts

    from mpcrnn import data as D
    from mpcrnn.config import AdversarialConfig, ModelConfig, RunConfig
    from mpcrnn.secure import concat, train_plain_mirror

    which = ["japanese_vowels"] if smoke or quick else ["japanese_vowels", "gunpoint"]
    which = [w for w in which if not only or w in only]
    cells = ["gru"] if smoke else ["gru", "lstm"]
    seeds = (0,) if smoke else (0, 1, 2)
    results = {}
    for name, (spec, train_raw, test_raw) in datasets(which).items():
        train_scaled, test_scaled = (
            D.scale_features(train_raw, spec),
            D.scale_features(test_raw, spec),
        )
        parts, tests = party_parts(train_raw, test_raw)
        for cell in cells if name == "japanese_vowels" else ["gru"]:
            base = RunConfig(
                spec=spec,
                model=ModelConfig(
                    cell=cell,
                    input_size=spec.input_size,
                    hidden_size=4 if smoke else 32,
                    num_classes=len(spec.classes),
                ),
            )
            epochs = 1 if smoke else EPOCHS[name]
            base = replace(base, train=replace(base.train, epochs=epochs))
            adv = AdversarialConfig(method="fgsm", eps=TRAIN_EPS[name], mix=0.5)
            advc = replace(base, adversarial=adv)
            eps_list = EPS[name]
            key = f"{name} {cell}"
            t0 = time.perf_counter()
            row = {
                "epochs": epochs,
                "train_eps": TRAIN_EPS[name],
                "a": plain_column(base, train_scaled, test_scaled, seeds, eps_list),
                "b": plain_column(advc, train_scaled, test_scaled, seeds, eps_list),
            }
            pooled = D.scale_features(concat(parts), spec)
            for col, cfg in (("c0", base), ("d0", advc)):
                params = train_plain_mirror(cfg, pooled, exact=False)
                row[col] = {k: [v] for k, v in _eval(cfg, params, test_scaled, eps_list).items()}
            with tempfile.TemporaryDirectory() as tmp:
                row["c"] = mpc_column(base, parts, tests, test_scaled, Path(tmp) / "c", eps_list)
                row["d"] = mpc_column(advc, parts, tests, test_scaled, Path(tmp) / "d", eps_list)
            row["seconds"] = time.perf_counter() - t0
            results[key] = row
            print(markdown({key: row}), flush=True)
    if out:
        out.mkdir(parents=True, exist_ok=True)
        (out / "adversarial.json").write_text(json.dumps(results, indent=2))
        (out / "adversarial.md").write_text(markdown(results))
    return results


def _fmt(vals: list[float]) -> str:
    if len(vals) == 1:
        return f"{100 * vals[0]:.1f}"
    return f"{100 * statistics.median(vals):.1f} ({100 * min(vals):.1f}-{100 * max(vals):.1f})"


def markdown(results: dict) -> str:
    lines = []
    for key, row in results.items():
        metrics = list(row["a"])
        lines += [
            f"**{key}** ({row['epochs']} epochs, adversarial training FGSM eps "
            f"{row['train_eps']:g}; "
            "plaintext: median (min-max) over seeds; MPC: seed 0)",
            "",
            "| model | " + " | ".join(metrics) + " |",
            "|---|" + "---:|" * len(metrics),
        ]
        names = {
            "a": "(a) plaintext standard",
            "b": "(b) plaintext adversarial",
            "c0": "(c0) mirror of (c): polynomials, MPC's row order",
            "c": "(c) mpcrnn standard",
            "d0": "(d0) mirror of (d): polynomials, MPC's row order",
            "d": "(d) mpcrnn adversarial",
        }
        for col in [c for c in names if c in row]:
            acc = row[col]["acc"] if col in "cd" else row[col]
            lines.append(f"| {names[col]} | " + " | ".join(_fmt(acc[m]) for m in metrics) + " |")
        c, d = row["c"], row["d"]
        lines += [
            "",
            "| per step (party 0) | s (median) | rounds | MB sent |",
            "|---|---:|---:|---:|",
        ]
        for label, v in (("standard", c), ("adversarial (FGSM)", d)):
            mb = f"{v['mb_per_step']:.1f}"
            lines.append(f"| {label} | {v['s_per_step']:.3f} | {v['rounds_per_step']:.0f} | {mb} |")
        lines.append(
            f"| ratio | {d['s_per_step'] / c['s_per_step']:.2f}x | "
            f"{d['rounds_per_step'] / max(c['rounds_per_step'], 1):.2f}x | "
            + f"{d['mb_per_step'] / c['mb_per_step']:.2f}x |"
        )
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--smoke", action="store_true")
    ap.add_argument("--out", type=Path)
    ap.add_argument("--only", nargs="*", default=(), help="data sets to run (default: all)")
    a = ap.parse_args()
    run(a.quick, a.smoke, a.out, a.only)


if __name__ == "__main__":
    main()
