"""One GRU training step, N parties + TTP dealer: mpcrnn vs the same model written naively on
CrypTen autograd with CrypTen's default sigmoid/tanh.  Prints one table (median of repeats).

Run as a file: ``.venv/bin/python benchmarks/bench_gru_step.py [--quick] [--optimizers]``;
writes ``bench_gru_step.md`` (``bench_gru_step-optimizers.md`` with ``--optimizers``) and .json
(``common.write_results``).  The party functions are :mod:`common.steps`.
Rounds and bytes are CrypTen's own communicator counters on party 0 (cfg.communicator.verbose),
the same instrument for both rows; dealer round trips are listed separately for mpcrnn.
"""

from __future__ import annotations

import argparse
import statistics
import time

import common

from launch.local_parties import run_parties


def optimizer_pairs(session, B, T, H, repeats, cell="gru"):
    """The W1 step with SGD (momentum 0.9, lr 0.2), with Adam (the default) and with Adam
    without the norm clip (``clip_norm = 0``, the default before it), interleaved step by step
    in ONE run (sgd, adam, adam0, sgd, ...) from the same weights, so machine drift hits all
    alike.  Per optimizer: seconds, CrypTen-counted rounds
    and bytes (party 0) of every steady-state step (each optimizer's first two steps record and
    warm its triple plan)."""
    from mpcrnn.backend import SharedBackend
    from mpcrnn.config import ActivationConfig, ModelConfig, TrainConfig
    from mpcrnn.model import forward_backward, init_params
    from mpcrnn.train import init_state, sgd_step
    from protocols.arithmetic.sharing import public

    s = session
    s.enable_traffic_counting()
    mc = ModelConfig(cell=cell, hidden_size=H)
    xs, ms, ys = common.shared_batch(s, B, T)
    Bk = SharedBackend(s, ActivationConfig())
    cfgs = {
        "sgd": TrainConfig(optimizer="sgd"),
        "adam": TrainConfig(),
        "adam0": TrainConfig(clip_norm=0.0),
    }
    params = {k: {n: public(s, v) for n, v in init_params(mc, 0).items()} for k in cfgs}
    state = {k: init_state(Bk, params[k], c) for k, c in cfgs.items()}
    out = {k: {"times": [], "rounds": [], "bytes": []} for k in cfgs}
    order = [k for _ in range(repeats + 2) for k in cfgs]
    for i, k in enumerate(order):
        s.reset_traffic()
        t0 = time.perf_counter()
        nxt = (order[i + 1], B, T) if i + 1 < len(order) else None
        Bk.begin_step((k, B, T), nxt)
        grads, _ = forward_backward(Bk, mc, params[k], xs, ms, ys)
        params[k], state[k] = sgd_step(
            Bk, params[k], grads, state[k], cfgs[k], B, i // len(cfgs) + 1, repeats + 2
        )
        Bk.end_step()
        if i >= 2 * len(cfgs):
            st = s.transport
            out[k]["times"].append(time.perf_counter() - t0)
            out[k]["rounds"].append(st.comm_rounds)
            out[k]["bytes"].append(st.comm_bytes)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], parents=[common.parent(smoke=False)]
    )
    ap.add_argument("--T", type=int, default=29)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--parties", type=int, default=3)
    ap.add_argument(
        "--optimizers", action="store_true", help="only the Adam vs SGD cost of the W1 step"
    )
    args = common.parse(ap)
    if args.optimizers:
        return optimizer_table(args)
    T, rep = (8, 1) if args.quick else (args.T, args.repeats)  # --quick: under a minute
    B, H = 32, 32
    rows = {}
    for name, fn in (("mpcrnn", common.mpcrnn_step), ("naive CrypTen autograd", common.naive_step)):
        rows[name] = run_parties(
            fn, world_size=args.parties, provider="TTP", args=(B, T, H, rep), timeout_s=1800
        )[0]
    base = statistics.median(rows["naive CrypTen autograd"]["times"])
    lines = [
        f"GRU H={H}, batch {B}, T={T}, {args.parties} parties + TTP dealer, loopback, "
        f"torch threads=1; median of {rep}",
        "",
        "| implementation | s/step (median) | min-max | rounds/step "
        "| rounds per time step: forward / backward+update | MB/step (party 0) "
        "| speed-up vs naive |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, r in rows.items():
        med, lo, hi = statistics.median(r["times"]), min(r["times"]), max(r["times"])
        rounds, fwd = r["rounds"], r["forward_rounds"]
        lines.append(
            f"| {name} | {med:.2f} | {lo:.2f}-{hi:.2f} | {rounds} "
            f"| {fwd / T:.1f} / {(rounds - fwd) / T:.1f} | {r['bytes'] / 1e6:.1f} "
            f"| {base / med:.1f}x |"
        )
    mine = rows["mpcrnn"].get("mine")
    if mine:
        lines += [
            "",
            f"mpcrnn by kind (party 0's own counters): {mine['rounds']} "
            "(dealer entries = dealer round trips)",
        ]
    text = "\n".join(lines)
    print("\n" + text)
    path = common.write_results("bench_gru_step", text, {"T": T, "rows": rows}, args)
    print(f"\nwrote {path}")


def optimizer_table(args) -> None:
    T, rep = (8, 2) if args.quick else (args.T, max(args.repeats, 8))
    out = run_parties(
        optimizer_pairs,
        world_size=args.parties,
        provider="TTP",
        args=(32, T, 32, rep),
        timeout_s=3000,
    )[0]
    sgd, adam, adam0 = out["sgd"], out["adam"], out["adam0"]
    med = statistics.median
    lines = [
        f"W1 step (GRU H=32, batch 32, T={T}, {args.parties} parties + TTP dealer), "
        "SGD, Adam and Adam without the norm clip interleaved in one run; "
        f"median of {len(sgd['times'])} triples",
        "",
        "| optimizer | s/step | rounds/step | MB/step (party 0) |",
        "|---|---:|---:|---:|",
    ]
    for name, r in (
        ("sgd (momentum), clip_norm 1", sgd),
        ("adam, clip_norm 1 (default)", adam),
        ("adam, clip_norm 0", adam0),
    ):
        lines.append(
            f"| {name} | {med(r['times']):.3f} | {med(r['rounds']):.0f} "
            f"| {med(r['bytes']) / 1e6:.1f} |"
        )
    for name, a, b in (("adam / sgd", adam, sgd), ("norm clip: adam / adam0", adam, adam0)):
        ratios = [x / y for x, y in zip(a["times"], b["times"])]
        lines.append(
            f"| {name} | {med(ratios):.3f} (per step: {', '.join(f'{r:.2f}' for r in ratios)}) "
            f"| {med(a['rounds']) / med(b['rounds']):.3f} "
            f"| {med(a['bytes']) / med(b['bytes']):.3f} |"
        )
    text = "\n".join(lines)
    print("\n" + text)
    path = common.write_results(
        "bench_gru_step-optimizers",
        text,
        {"T": T, **out},
        args,
        title="Adam vs SGD: the cost of one W1 step",
    )
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
