"""What privacy costs, side by side in one run: the W1 table, sweeps, a WAN projection, plots.

Run as a file (never imported as a package named ``benchmarks``)::

    .venv/bin/python benchmarks/harness.py            # full (make bench)
    .venv/bin/python benchmarks/harness.py --quick    # under 5 minutes (make bench-quick)
    .venv/bin/python benchmarks/harness.py --smoke    # seconds-scale, for the test suite

Writes ``harness.md``, ``harness.json`` and ``harness-sweep_*.png`` (``common.write_results``;
into benchmarks/results/, or bench-out/ with --quick or --smoke).

W1: Japanese Vowels, GRU H=32, 1 layer, batch 32, 3 data parties + TTP dealer, loopback.
Also: the training modes (mpc, fedavg, plaintext) by time to the W1 accuracy.  The DP-SGD rows
at the same workload are benchmarks/dp_rows.py's (make bench runs both).
Rows, same data, seed and schedule:
  1. torch.nn.GRU, exact activations, float32, autograd + the run's optimizer in torch (Adam)
  2. the plaintext mirror with mpcrnn's polynomials (float64)
  3. naive CrypTen: the same GRU on CrypTen autograd with CrypTen's sigmoid/tanh/cross-entropy
     (time, rounds and bytes per step measured on a few steps; its accuracy is not trained to
     the full schedule: the projected time is printed instead)
  4. mpcrnn (3 parties + dealer, through the launcher)

Rounds and bytes are CrypTen's communicator counters on party 0 (one instrument for rows 3 and
4).  The floor of a step is openings x (measured round trip of the step's point-to-point opening)
+ truncation gathers x (measured gather) + bytes / (measured bandwidth); the WAN projection
replaces the measured round trip and bandwidth with the WAN's.  Rounds per time step are the
slope of a step's rounds over T (the T sweep).  Test accuracy: exact activations (polynomial in
parentheses); in the full run rows 1-2 are repeated over 5 training seeds to show the spread.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import common
from common.steps import pingpong
from common.w1_report import markdown, plots, rounds_per_time_step, summary, wan_seconds

from launch.local_parties import run_parties


def _med(xs):
    return statistics.median(xs), min(xs), max(xs)


# ---------------------------------------------------------------- plaintext rows


def torch_optimizer(model, tc):
    """The run's optimizer (``TrainConfig`` ``tc``) in torch."""
    import torch

    if tc.optimizer == "sgd":
        return torch.optim.SGD(model.parameters(), lr=tc.step_lr, momentum=tc.momentum)
    return (torch.optim.AdamW if tc.optimizer == "adamw" else torch.optim.Adam)(
        model.parameters(),
        lr=tc.step_lr,
        betas=(tc.beta1, tc.beta2),
        eps=tc.eps,
        weight_decay=tc.weight_decay,
    )


def plain_rows(parts, test, cfg, epochs):
    import numpy as np
    import torch

    from mpcrnn.backend import PlainBackend
    from mpcrnn.model import export_state_dicts, init_params
    from mpcrnn.secure import concat, evaluate_local
    from mpcrnn.train import lr_at, plain_dataset, schedule, train

    torch.set_num_threads(1)
    pooled = concat(parts)
    rows = {}
    # row 1: torch.nn.GRU with autograd, float32, the run's optimizer and lr schedule in torch
    model = export_state_dicts(cfg.model, init_params(cfg.model, cfg.train.seed))
    batches = common.scheduled_batches(pooled, cfg.train)
    total = epochs * len(schedule(len(pooled.y), cfg.train, 0))
    steps, t_epoch = common.torch_loop(
        model,
        torch_optimizer(model, cfg.train),
        batches,
        epochs,
        lr=lambda n: lr_at(cfg.train, n, total),  # public, as the mirror and MPC use it
        clip_value=cfg.train.clip_value,
    )
    rows["torch GRU (exact, float32)"] = {
        "step_s": _med(steps),
        "epoch_s": _med(t_epoch),
        "test_accuracy": common.torch_accuracy(model, test),
        "train_s": sum(t_epoch),
    }
    # row 2: the mirror with polynomials
    B = PlainBackend(cfg.activation)
    steps, marks = [], []
    t0 = time.perf_counter()
    params, _ = train(
        B,
        cfg.model,
        cfg.train.__class__(**{**cfg.train.__dict__, "epochs": epochs}),
        plain_dataset(pooled.x, pooled.lengths, pooled.y, cfg.model),
        init_params(cfg.model, cfg.train.seed),
        progress=lambda ev: steps.append(ev["seconds"]),
        on_epoch_end=lambda e, p, v: marks.append(time.perf_counter()),
    )
    t_epoch = list(np.diff([t0] + marks))
    ev = evaluate_local(cfg, params, test)
    rows["mirror, polynomials (float64)"] = {
        "step_s": _med(steps),
        "epoch_s": _med(t_epoch),
        "test_accuracy": ev["accuracy_exact"],
        "test_accuracy_polynomial": ev["accuracy_polynomial"],
        "max_preactivation_over_bound": B.max_abs_preactivation,
    }
    return rows


# ---------------------------------------------------------------- MPC rows


def naive_row(T, repeats, parties):
    out = run_parties(
        common.naive_step,
        world_size=parties,
        provider="TTP",
        args=(32, T, 32, repeats),
        timeout_s=3000,
    )[0]
    return {
        "step_s": _med(out["times"]),
        "rounds_per_step": out["rounds"],
        "bytes_per_step": out["bytes"],
        "forward_rounds_per_step": out["forward_rounds"],
    }


def mpcrnn_row(parts, tests, cfg, epochs, workdir: Path):
    from dataclasses import replace

    parties, wall = common.launch_parties(
        replace(cfg, train=replace(cfg.train, epochs=epochs)), parts, tests, workdir
    )
    p0 = parties[0]
    n_steps = len(p0["step_seconds"])
    acc = common.pooled_accuracy([p["local_test"] for p in parties])
    acc_poly = common.pooled_accuracy([p["local_test"] for p in parties], "accuracy_polynomial")
    rss = [p["peak_rss_mb"] for p in parties]
    steps_per_epoch = n_steps // epochs
    epoch_s = [
        sum(p0["step_seconds"][i * steps_per_epoch : (i + 1) * steps_per_epoch])
        for i in range(epochs)
    ]
    return {
        "step_s": _med(p0["step_seconds"]),
        "epoch_s": _med(epoch_s),
        "test_accuracy": acc,
        "test_accuracy_polynomial": acc_poly,
        "rounds_per_step": p0["crypten_counted"]["rounds"] / n_steps,
        "bytes_per_step": p0["crypten_counted"]["bytes"] / n_steps,
        "peak_rss_mb_per_party": rss,
        "run_wall_s": wall,
        "steps": n_steps,
        "train_s": p0["train_seconds"],
        "total_rounds": p0["crypten_counted"]["rounds"],
        "total_bytes": p0["crypten_counted"]["bytes"],
    }


def fedavg_row(parts, tests, cfg, rounds, workdir: Path, target: float):
    """--mode fedavg through the launcher: pooled test accuracy after every round (each party's
    own evaluation, weighted by its test rows), time and communication until the W1 target."""
    from dataclasses import replace

    run_cfg = replace(cfg, mode="fedavg", fedavg=replace(cfg.fedavg, rounds=rounds))
    parties, _ = common.launch_parties(run_cfg, parts, tests, workdir)
    p0 = parties[0]
    acc_by_round = [
        common.pooled_accuracy([p["local_test_by_round"][r] for p in parties])
        for r in range(rounds)
    ]
    elapsed = [sum(p0["round_seconds"][: r + 1]) for r in range(rounds)]
    reached = next((r for r in range(rounds) if acc_by_round[r] >= target), None)
    per_round_rounds = p0["crypten_counted"]["rounds"] / rounds
    per_round_bytes = p0["crypten_counted"]["bytes"] / rounds
    return {
        "rounds": rounds,
        "local_epochs": run_cfg.fedavg.local_epochs,
        "accuracy_by_round": acc_by_round,
        "test_accuracy": acc_by_round[-1],
        "train_s": elapsed[-1],
        "target": target,
        "round_reaching_target": None if reached is None else reached + 1,
        "time_to_target_s": None if reached is None else elapsed[reached],
        "comm_rounds_to_target": None if reached is None else per_round_rounds * (reached + 1),
        "bytes_to_target": None if reached is None else per_round_bytes * (reached + 1),
        "total_rounds": p0["crypten_counted"]["rounds"],
        "total_bytes": p0["crypten_counted"]["bytes"],
        "local_train_s": sum(p0["local_train_seconds"]),
        "revealed_models": rounds,
    }


def sweep_point(parties, provider, B, T, H, cell, repeats=1):
    out = run_parties(
        common.mpcrnn_step,
        world_size=parties,
        provider=provider,
        args=(B, T, H, repeats, cell),
        timeout_s=1800,
    )[0]
    return {
        "parties": parties,
        "provider": provider,
        "B": B,
        "T": T,
        "H": H,
        "cell": cell,
        "step_s": statistics.median(out["times"]),
        "rounds": out["rounds"],
        "bytes": out["bytes"],
        "forward_rounds": out["forward_rounds"],
        "gathers": out["mine"]["rounds"].get("truncate", 0),
    }


def workload(args):
    """(epochs, naive T, naive repeats, raw parts, raw tests, RunConfig, sweep grid) for the
    flags: the W1 workload (smoke: a tiny one)."""
    from mpcrnn import data as D
    from mpcrnn.config import ModelConfig, RunConfig, TrainConfig

    spec = D.JAPANESE_VOWELS_SPEC
    raw_parts, raw_tests = common.party_parts(
        D.japanese_vowels("train"), D.japanese_vowels("test"), smoke=args.smoke
    )
    if args.smoke:
        cfg = RunConfig(
            model=ModelConfig(hidden_size=4), train=TrainConfig(epochs=1, batch_size=16), spec=spec
        )
        grid = [dict(axis="T", parties=2, provider="TTP", B=4, T=3, H=4, cell="gru")]
        return 1, 3, 1, raw_parts, raw_tests, cfg, grid
    epochs = 2 if args.quick else 12  # the default schedule (cosine) needs ~12 epochs
    naive_T, naive_rep = 29, 1 if args.quick else 2
    base = dict(parties=3, provider="TTP", B=32, T=29, H=32, cell="gru")
    Ts = (8, 29) if args.quick else (8, 16, 29)
    Bs = (8, 32) if args.quick else (8, 16, 32)
    Ps = (2, 3) if args.quick else (2, 3, 4, 5)
    grid = [dict(base, axis="T", T=t) for t in Ts]
    grid += [dict(base, axis="B", B=b) for b in Bs if b != 32]
    grid += [dict(base, axis="parties", parties=p) for p in Ps if p != 3]
    grid += [
        dict(base, axis="provider", provider="TFP"),
        dict(base, axis="parties", parties=2, T=8),
    ]
    if not args.quick:
        grid += [dict(base, axis="H", H=h) for h in (16, 64)]
        grid += [dict(base, axis="cell", cell=c) for c in ("rnn", "lstm")]
    return epochs, naive_T, naive_rep, raw_parts, raw_tests, RunConfig(spec=spec), grid


def seed_spread(parts, test_all, cfg, epochs) -> list[dict]:
    """Rows 1 and 2 over training seeds 0-4 (initial weights and batch order): the spread."""
    from dataclasses import replace

    seeds = []
    for seed in range(5):
        r = plain_rows(parts, test_all, replace(cfg, train=replace(cfg.train, seed=seed)), epochs)
        mirror = r["mirror, polynomials (float64)"]
        seeds.append(
            {
                "seed": seed,
                "torch": r["torch GRU (exact, float32)"]["test_accuracy"],
                "mirror": mirror["test_accuracy"],
                "mirror_polynomial": mirror["test_accuracy_polynomial"],
            }
        )
    return seeds


def floor(m: dict, w1_point: list[dict]) -> dict:
    """The step's floor on this machine: measured round trip, gather and bandwidth (3 parties),
    times mpcrnn's openings, gathers and bytes per step (``m``: the mpcrnn row)."""
    pp = run_parties(
        pingpong, world_size=3, provider="TTP", args=([1, 1 << 17], 30), timeout_s=300
    )[0]
    rtt = pp[("open", 1)]
    gather_s = max(pp[("gather", 1)] - rtt, 0.0)
    # party 0 sends 2 x 1 MB per open
    bw = (2 * 8 * (1 << 17)) / max(pp[("open", 1 << 17)] - rtt, 1e-9)
    gathers = w1_point[0]["gathers"] if w1_point else 0
    floor_s = (m["rounds_per_step"] - gathers) * rtt + gathers * gather_s
    floor_s += m["bytes_per_step"] / bw
    return {
        "rtt_s": rtt,
        "gather_s": gather_s,
        "gathers_per_step": gathers,
        "bandwidth_MBps": bw / 1e6,
        "floor_s": floor_s,
        "wall_over_floor": m["step_s"][0] / floor_s,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0], parents=[common.parent()])
    args = common.parse(ap)
    import torch

    torch.set_num_threads(1)
    from mpcrnn import data as D
    from mpcrnn.secure import concat

    epochs, naive_T, naive_rep, raw_parts, raw_tests, cfg, grid = workload(args)
    # the plaintext rows scale in-process; the launched parties get raw rows and scale them once
    parts = [D.scale_features(p, cfg.spec) for p in raw_parts]
    test_all = concat([D.scale_features(p, cfg.spec) for p in raw_tests])
    t_start = time.perf_counter()
    print("rows 1-2: plaintext ...", flush=True)
    w1 = plain_rows(parts, test_all, cfg, epochs)
    seeds = []
    if not args.smoke and not args.quick:
        print("rows 1-2 over seeds 0-4 ...", flush=True)
        seeds = seed_spread(parts, test_all, cfg, epochs)
    print("row 3: naive CrypTen ...", flush=True)
    naive = naive_row(naive_T, naive_rep, 3)
    steps_total = epochs * -(-sum(p.n_rows for p in parts) // cfg.train.batch_size)
    naive["accuracy_note"] = (
        f"not trained (projected {naive['step_s'][0] * steps_total / 60:.0f} min)"
    )
    w1["naive CrypTen autograd"] = naive
    print("row 4: mpcrnn ...", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        w1["mpcrnn"] = mpcrnn_row(raw_parts, raw_tests, cfg, epochs, Path(tmp))
    print("mode fedavg ...", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        target = w1["torch GRU (exact, float32)"]["test_accuracy"]
        fed = fedavg_row(raw_parts, raw_tests, cfg, 2 if args.smoke else 15, Path(tmp), target)
    modes = {"epochs": epochs, "torch": w1["torch GRU (exact, float32)"], "mpc": w1["mpcrnn"]}
    modes["fedavg"] = fed
    print(f"sweeps ({len(grid)} points) ...", flush=True)
    sweeps = []
    for point in grid:
        axis = point.pop("axis")
        sweeps.append({**sweep_point(**point), "axis": axis})
    m = w1["mpcrnn"]
    w1_shape = (3, "TTP", cfg.train.batch_size, 29, cfg.model.hidden_size, cfg.model.cell)
    w1_point = [
        p
        for p in sweeps
        if (p["parties"], p["provider"], p["B"], p["T"], p["H"], p["cell"]) == w1_shape
    ]
    counts_from = (
        "whole training run / steps "
        "(includes sharing, the reveal and the plan-recording first step)"
    )
    if w1_point:  # a steady-state step (its triple plan replayed), measured in the sweep
        m["rounds_per_step"], m["bytes_per_step"] = w1_point[0]["rounds"], w1_point[0]["bytes"]
        counts_from = "a steady-state step (sweep point at the W1 shape)"
    print("round trip and bandwidth ...", flush=True)
    fl = floor(m, w1_point)
    compute = max(m["step_s"][0] - fl["floor_s"], 0.0)
    per_t = {p: rounds_per_time_step(sweeps, p) for p in (2, 3)}
    res = {
        "machine": f"{os.cpu_count()} cores, loopback",
        "epochs": epochs,
        "w1": w1,
        "mpcrnn_counts_from": counts_from,
        "workload": f"Japanese Vowels, {cfg.model.cell.upper()} H={cfg.model.hidden_size}, "
        f"batch {cfg.train.batch_size}, T=29, 3 parties + TTP dealer",
        "floor": fl,
        "rounds_per_time_step": {str(p): v for p, v in per_t.items()},
        "rounds_all_in_per_time_step": m["rounds_per_step"] / 29 if w1_point else None,
        "seeds": seeds,
        "wan": {
            r: wan_seconds(compute, m["rounds_per_step"], m["bytes_per_step"], r / 1e3, 100)
            for r in (1, 10, 50)
        },
        "sweeps": sweeps,
        "modes": modes,
    }
    res["seconds"] = time.perf_counter() - t_start
    text = markdown(res)
    md = common.write_results("harness", text, res, args)
    print("\n" + text)
    summary(w1, res, [md, md.with_suffix(".json"), *plots(res, Path(args.out))])


if __name__ == "__main__":
    main()
