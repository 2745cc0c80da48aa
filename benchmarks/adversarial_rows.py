"""Adversarial training rows: what it costs and what it buys, plaintext and on shares.

Run as a file (never imported as a package named ``benchmarks``)::

    .venv/bin/python benchmarks/adversarial_rows.py          # JV GRU, JV LSTM, GunPoint GRU
    .venv/bin/python benchmarks/adversarial_rows.py --quick  # JV GRU and JV LSTM only
    .venv/bin/python benchmarks/adversarial_rows.py --smoke  # seconds-scale (H=4, 1 epoch, JV GRU)
    .venv/bin/python benchmarks/adversarial_rows.py --part mpc --parallel 5 --out mpc  # 16 cores

For each data set and cell, four models, each evaluated on the test rows: clean accuracy, and
robust accuracy under FGSM and PGD-10 (step 2.5 eps / 10, start at x) at three eps, in plain
torch on the exported model (:mod:`mpcrnn.attacks`):

(a) plaintext, standard training     (b) plaintext, adversarial training (the same algorithm)
(c) mpcrnn, standard (3 parties + dealer, on shares)
(d) mpcrnn, adversarial (FGSM, mix 0.5, on shares; eps 0.1, GunPoint 0.02: TRAIN_EPS)

(a) and (b) are the plaintext mirror with exact activations: the same code, optimizer, schedule,
initialization and adversarial algorithm as (c) and (d), so the columns differ only in MPC's
polynomials and fixed point.  Every column: median (min-max) over the training seeds (``--seeds``,
0 1 2).  (c0) and (d0) are what (c) and (d) follow, up to fixed-point noise: the mirror with
MPC's polynomials, on MPC's row order (the parties' parts pooled in rank order; the batch
schedule permutes row indices, so the file's order is another draw of the batches), per seed.
Also per step, from party 0's report: seconds (median), rounds and MB sent, standard
vs adversarial, side by side (same run of this script).  Every perturbation is in scaled
feature units (the declared bounds map to [-1, 1]).

The MPC runs are most of the time (18 launcher runs for the full table, about 3 h on 2 cores):
``--part mpc --parallel K`` runs K at a time on a machine with 3K cores or more, ``--part plain``
the rest anywhere, and ``--merge plain/adversarial_rows.json mpc/adversarial_rows.runs.jsonl``
writes the table.  Writes ``adversarial_rows.md`` and .json (``common.write_results``).

Data: Japanese Vowels (UCI; the project's copy) split 50/30/20 across 3 parties; GunPoint from
the UCR Time Series Classification Archive (Dau et al. 2019; originally Ratanamahatana and Keogh
2004), read from ``../shared/datasets/gunpoint`` next to the project (skipped, saying so, when
that folder is absent), split across 3 parties the same way.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import common

# attack and training eps per data set, in scaled feature units.  GunPoint's standard model falls
# to 15% at eps 0.05 and adversarial training at 0.1 leaves the majority class (49.3%, plaintext
# and MPC alike): its perturbations are 5x smaller (train 0.02, attacks 0.01 / 0.02 / 0.05)
EPS = {"japanese_vowels": (0.05, 0.1, 0.2), "gunpoint": (0.01, 0.02, 0.05)}
TRAIN_EPS = {"japanese_vowels": 0.1, "gunpoint": 0.02}
# epochs per data set: the default schedule (12) for Japanese Vowels; GunPoint as in
# learning_rows.py's declaration (240 epochs of 2 steps, frames of 10 steps: its declaration there)
EPOCHS = {"japanese_vowels": 12, "gunpoint": 240}


def datasets(which: list[str]):
    """{name: (spec, raw train, raw test)}: :func:`common.load` (learning_rows.py's data)."""
    out = {}
    for name in which:
        if name == "gunpoint" and not (common.GUNPOINT / "GunPoint_TRAIN.ts").exists():
            print(f"GunPoint skipped: {common.GUNPOINT} not found")
            continue
        out[name] = common.load(name)
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


def plain_column(cfg, train_scaled, test_scaled, seeds, eps_list, exact=True) -> dict:
    """The mirror over ``seeds``: {metric: [value per seed]}.  ``exact``: torch's sigmoid/tanh
    on the file's rows ((a), (b)); otherwise MPC's polynomials, and ``train_scaled`` is MPC's
    row order (the parties' parts pooled in rank order): what an MPC column follows ((c0),
    (d0))."""
    from mpcrnn.secure import train_plain_mirror

    rows = []
    for seed in seeds:
        c = replace(cfg, train=replace(cfg.train, seed=seed))
        rows.append(
            _eval(c, train_plain_mirror(c, train_scaled, exact=exact), test_scaled, eps_list)
        )
    return {k: [r[k] for r in rows] for k in rows[0]}


def mpc_run(cfg, parts, tests_raw, test_scaled, eps_list) -> dict:
    """One launcher run (3 parties + dealer); the released model attacked in plain torch."""
    import torch

    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        reports, wall = common.launch_parties(cfg, parts, tests_raw, workdir, timeout_s=600)
        state = torch.load(workdir / "run" / "model-party0.pt", weights_only=True)["state_dict"]
    acc = _eval(cfg, {k: v.double() for k, v in state.items()}, test_scaled, eps_list)
    r0 = reports[0]
    steps = r0["step_seconds"][1:] or r0["step_seconds"]  # the first step records the plan
    rounds = r0["step_rounds"][1:] or r0["step_rounds"]
    n_steps = len(r0["step_seconds"])
    return {
        "acc": acc,
        "s_per_step": statistics.median(steps),
        "rounds_per_step": statistics.median(rounds),
        "mb_per_step": r0["crypten_counted"]["bytes"] / 1e6 / max(n_steps, 1),  # as harness.py
        "wall_s": wall,
        "steps": n_steps,
    }


def mpc_columns(jobs: list[tuple], parallel: int, log: Path | None = None) -> dict:
    """Run ``jobs`` = [(key, col, seed, cfg, parts, tests_raw, test_scaled, eps_list)], at most
    ``parallel`` launcher runs at a time (each is 3 party processes and a dealer: give it 3
    cores); {key: {col: column}}, a column being {"seeds": [...], "acc": {metric: [per seed]},
    "s_per_step": [per seed], ...} in seed order.  Each finished run is also appended to ``log``
    (one JSON line: key, col, seed, result), so a run stopped midway keeps what finished;
    ``--merge`` reads such a file too."""
    from concurrent.futures import ThreadPoolExecutor, as_completed

    done: dict = {}
    with ThreadPoolExecutor(max_workers=max(1, parallel)) as pool:
        futures = {
            pool.submit(mpc_run, cfg, parts, tests, test_scaled, eps): (key, col, seed)
            for key, col, seed, cfg, parts, tests, test_scaled, eps in jobs
        }
        for fut in as_completed(futures):
            key, col, seed = futures[fut]
            r = fut.result()
            done.setdefault(key, {}).setdefault(col, {})[seed] = r
            if log:
                with log.open("a") as f:
                    f.write(json.dumps({"key": key, "col": col, "seed": seed, "run": r}) + "\n")
            accs = " ".join(f"{m} {100 * v:.1f}" for m, v in r["acc"].items())
            print(f"[{key} ({col}) seed {seed}: {accs}; {r['s_per_step']:.3f} s/step]", flush=True)
    return columns(done)


def columns(done: dict) -> dict:
    """{key: {col: {seed: run}}} -> {key: {col: column}} (see :func:`mpc_columns`)."""
    out: dict = {}
    for key, cols in done.items():
        for col, by_seed in cols.items():
            rs = [by_seed[s] for s in sorted(by_seed)]
            out.setdefault(key, {})[col] = {
                "seeds": sorted(by_seed),
                "acc": {m: [r["acc"][m] for r in rs] for m in rs[0]["acc"]},
                **{
                    f: [r[f] for r in rs]
                    for f in ("s_per_step", "rounds_per_step", "mb_per_step", "wall_s", "steps")
                },
            }
    return out


def run(args) -> dict:
    """The table for the parsed flags.  ``args.part``: "all", "plain" ((a), (b), (c0), (d0)),
    "mpc" ((c), (d)), "c" or "d"; parts' JSON files are merged by ``--merge`` (the MPC part on a
    machine with more cores)."""
    quick, smoke, only, part = args.quick, args.smoke, args.only, args.part
    from mpcrnn import data as D
    from mpcrnn.config import AdversarialConfig, ModelConfig, RunConfig
    from mpcrnn.secure import concat

    which = ["japanese_vowels"] if smoke or quick else ["japanese_vowels", "gunpoint"]
    which = [w for w in which if not only or w in only]
    cells = ["gru"] if smoke else list(args.cells)
    seeds = (0,) if smoke else tuple(args.seeds)
    results: dict = {}
    jobs = []
    for name, (spec, train_raw, test_raw) in datasets(which).items():
        train_scaled, test_scaled = (
            D.scale_features(train_raw, spec),
            D.scale_features(test_raw, spec),
        )
        parts, tests = common.party_parts(train_raw, test_raw)
        pooled = D.scale_features(concat(parts), spec)
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
            row = results[key] = {"epochs": epochs, "train_eps": TRAIN_EPS[name]}
            if part in ("all", "plain"):
                t0 = time.perf_counter()
                row["a"] = plain_column(base, train_scaled, test_scaled, seeds, eps_list)
                row["b"] = plain_column(advc, train_scaled, test_scaled, seeds, eps_list)
                row["c0"] = plain_column(base, pooled, test_scaled, seeds, eps_list, False)
                row["d0"] = plain_column(advc, pooled, test_scaled, seeds, eps_list, False)
                row["plain_seconds"] = time.perf_counter() - t0
                print(markdown({key: row}), flush=True)
            if part in ("all", "mpc", "c", "d"):
                for col, cfg in (("d", advc), ("c", base)):
                    if part not in (col, "mpc", "all"):
                        continue
                    for seed in seeds:
                        cs = replace(cfg, train=replace(cfg.train, seed=seed))
                        jobs.append((key, col, seed, cs, parts, tests, test_scaled, eps_list))
    # the adversarial runs first (the comparison the issue asks for), the longest cell first
    jobs.sort(key=lambda j: (j[1] != "d", "lstm" not in j[0], j[2]))
    log = None
    if jobs:
        args.out.mkdir(parents=True, exist_ok=True)
        log = args.out / "adversarial_rows.runs.jsonl"
        log.write_text("")  # this run's finished runs only: an earlier run's would merge twice
    for key, cols in mpc_columns(jobs, args.parallel, log).items():
        results[key].update(cols)
    save(results, args)
    return results


def save(results: dict, args) -> None:
    text = markdown(results)
    print(text, flush=True)
    common.write_results(
        "adversarial_rows", text, results, args, title="Adversarial training: robustness and cost"
    )


def merge(files: list[Path]) -> dict:
    """The union of several runs' columns: ``adversarial_rows.json`` files (e.g. --part plain
    here) and ``adversarial_rows.runs.jsonl`` files (finished MPC runs, seeds from several
    files pooled: e.g. --part mpc on a machine with more cores, and a run stopped midway).  A
    column, or an MPC run (data set, column, seed), present twice is an error."""
    results: dict = {}
    done: dict = {}
    for f in files:
        if f.suffix == ".jsonl":
            for line in f.read_text().splitlines():
                r = json.loads(line)
                runs = done.setdefault(r["key"], {}).setdefault(r["col"], {})
                if r["seed"] in runs:
                    raise SystemExit(f"merge: {r['key']} ({r['col']}) seed {r['seed']} twice ({f})")
                runs[r["seed"]] = r["run"]
            continue
        for key, row in common.read_results(f).items():
            mine = results.setdefault(key, {})
            for col, v in row.items():
                if col in mine and col not in ("epochs", "train_eps") and mine[col] != v:
                    raise SystemExit(f"merge: {key} column {col} is in more than one file ({f})")
                mine[col] = v
    for key, cols in columns(done).items():
        for col, v in cols.items():
            if col in results.get(key, {}):
                raise SystemExit(f"merge: {key} column {col} is in a .json and a .jsonl file")
            results.setdefault(key, {})[col] = v
    return results


def _fmt(vals: list[float]) -> str:
    if len(vals) == 1:
        return f"{100 * vals[0]:.1f}"
    return f"{100 * statistics.median(vals):.1f} ({100 * min(vals):.1f}-{100 * max(vals):.1f})"


def markdown(results: dict) -> str:
    names = {
        "a": "(a) plaintext standard",
        "b": "(b) plaintext adversarial",
        "c0": "(c0) mirror of (c): polynomials, MPC's row order",
        "c": "(c) mpcrnn standard",
        "d0": "(d0) mirror of (d): polynomials, MPC's row order",
        "d": "(d) mpcrnn adversarial",
    }
    lines = []
    for key, row in results.items():
        cols = [c for c in names if c in row]
        if not cols:
            continue
        first = row[cols[0]]
        metrics = list(first["acc"] if cols[0] in "cd" else first)
        seeds = row["d"]["seeds"] if "d" in row else None
        lines += [
            f"**{key}** ({row.get('epochs', '?')} epochs, adversarial training FGSM eps "
            f"{row.get('train_eps', float('nan')):g}; median (min-max) over seeds"
            + (f" {', '.join(map(str, seeds))}" if seeds else "")
            + ")",
            "",
            "| model | " + " | ".join(metrics) + " |",
            "|---|" + "---:|" * len(metrics),
        ]
        for col in cols:
            acc = row[col]["acc"] if col in "cd" else row[col]
            lines.append(f"| {names[col]} | " + " | ".join(_fmt(acc[m]) for m in metrics) + " |")
        lines.append("")
        if "c" not in row or "d" not in row:
            continue
        c, d = row["c"], row["d"]
        med = {
            col: {
                f: statistics.median(v[f]) for f in ("s_per_step", "rounds_per_step", "mb_per_step")
            }
            for col, v in (("c", c), ("d", d))
        }
        lines += [
            "| per step (party 0; median over seeds) | s (median) | rounds | MB sent |",
            "|---|---:|---:|---:|",
        ]
        for label, col in (("standard", "c"), ("adversarial (FGSM)", "d")):
            v = med[col]
            lines.append(
                f"| {label} | {v['s_per_step']:.3f} | {v['rounds_per_step']:.0f} | "
                f"{v['mb_per_step']:.1f} |"
            )
        mc, mdd = med["c"], med["d"]
        lines.append(
            f"| ratio | {mdd['s_per_step'] / mc['s_per_step']:.2f}x | "
            f"{mdd['rounds_per_step'] / max(mc['rounds_per_step'], 1):.2f}x | "
            f"{mdd['mb_per_step'] / mc['mb_per_step']:.2f}x |"
        )
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], parents=[common.parent(seeds=(0, 1, 2))]
    )
    ap.add_argument("--only", nargs="*", default=(), help="data sets to run (default: all)")
    ap.add_argument(
        "--part",
        choices=("all", "plain", "mpc", "c", "d"),
        default="all",
        help="plain: (a), (b), (c0), (d0); mpc: (c), (d); c or d: that MPC column (default: all)",
    )
    ap.add_argument(
        "--parallel", type=int, default=1, help="MPC runs at a time (each wants 3 cores)"
    )
    ap.add_argument(
        "--cells", nargs="+", default=["gru", "lstm"], help="Japanese Vowels cells (GunPoint: GRU)"
    )
    ap.add_argument(
        "--merge",
        nargs="+",
        type=Path,
        help="adversarial_rows.json and adversarial_rows.runs.jsonl files to combine",
    )
    args = common.parse(ap)
    if args.merge:
        return save(merge(args.merge), args)
    run(args)


if __name__ == "__main__":
    main()
