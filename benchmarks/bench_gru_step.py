"""One GRU training step, N parties + TTP dealer: mpcrnn vs the same model written naively on
CrypTen autograd with CrypTen's default sigmoid/tanh.  Prints one table (median of repeats).

Run as a file: ``.venv/bin/python benchmarks/bench_gru_step.py [--quick]``.
Rounds and bytes are CrypTen's own communicator counters on party 0 (cfg.communicator.verbose),
the same instrument for both rows; dealer round trips are listed separately for mpcrnn.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # the party harness


def _data(B, T, F, C, seed=0):
    import torch

    g = torch.Generator().manual_seed(seed)
    x = torch.rand(B, T, F, generator=g, dtype=torch.float64) * 2 - 1
    lengths = torch.randint(T // 2, T + 1, (B,), generator=g)
    y = torch.randint(0, C, (B,), generator=g)
    return x, lengths, y


def mpcrnn_step(session, B, T, H, repeats, cell="gru"):
    rank = session.rank
    import torch

    from mpcrnn.backend import SharedBackend
    from mpcrnn.config import ActivationConfig, ModelConfig, TrainConfig
    from mpcrnn.model import forward_backward, init_params
    from mpcrnn.train import init_state, masks, sgd_step
    from protocols.arithmetic.sharing import public, share

    s = session
    s.enable_traffic_counting()
    mc = ModelConfig(cell=cell, hidden_size=H)
    x, lengths, y = _data(B, T, 12, 9)
    own = rank == 0
    xs = share(s, x if own else None, src=0, shape=(B, T, 12)).transpose(0, 1)
    ms = share(s, masks(lengths, T) if own else None, src=0, shape=(B, T, 1)).transpose(0, 1)
    ys = share(s, torch.nn.functional.one_hot(y, 9).double() if own else None, src=0, shape=(B, 9))
    params = {k: public(s, v) for k, v in init_params(mc, 0).items()}
    Bk = SharedBackend(s, ActivationConfig())
    tcfg = TrainConfig()
    vel = init_state(Bk, params, tcfg)
    times, cpu = [], []
    for i in range(repeats + 2):  # step 0 records the triple plan, step 1 warms up
        s.reset_traffic()
        s.stats.reset()
        t0, c0 = time.perf_counter(), time.process_time()
        Bk.begin_step((B, T), (B, T) if i < repeats + 1 else None)
        grads, _ = forward_backward(Bk, mc, params, xs, ms, ys)
        params, vel = sgd_step(Bk, params, grads, vel, tcfg, B, i + 1, repeats + 2)
        Bk.end_step()
        if i > 1:
            times.append(time.perf_counter() - t0)
            cpu.append(
                time.process_time() - c0
            )  # this party's CPU seconds (less sensitive to a busy machine)
    st = s.transport
    total = {
        "times": times,
        "cpu": cpu,
        "rounds": st.comm_rounds,
        "bytes": st.comm_bytes,
        "mine": s.stats.snapshot(),
    }
    from mpcrnn.model import forward

    s.stats.reset()  # forward alone, outside a prefetched step: count openings + truncations only
    forward(Bk, mc, params, xs, ms)
    total["forward_rounds"] = s.stats.rounds["beaver"] + s.stats.rounds["truncate"]
    return total


def optimizer_pairs(session, B, T, H, repeats, cell="gru"):
    """The W1 step with SGD (momentum 0.9, lr 0.2), with Adam (the default) and with Adam
    without the norm clip (``clip_norm = 0``, the default before it), interleaved step by step
    in ONE run (sgd, adam, adam0, sgd, ...) from the same weights, so machine drift hits all
    alike.  Per optimizer: seconds, CrypTen-counted rounds
    and bytes (party 0) of every steady-state step (each optimizer's first two steps record and
    warm its triple plan)."""
    rank = session.rank
    import torch

    from mpcrnn.backend import SharedBackend
    from mpcrnn.config import ActivationConfig, ModelConfig, TrainConfig
    from mpcrnn.model import forward_backward, init_params
    from mpcrnn.train import init_state, masks, sgd_step
    from protocols.arithmetic.sharing import public, share

    s = session
    s.enable_traffic_counting()
    mc = ModelConfig(cell=cell, hidden_size=H)
    x, lengths, y = _data(B, T, 12, 9)
    own = rank == 0
    xs = share(s, x if own else None, src=0, shape=(B, T, 12)).transpose(0, 1)
    ms = share(s, masks(lengths, T) if own else None, src=0, shape=(B, T, 1)).transpose(0, 1)
    ys = share(s, torch.nn.functional.one_hot(y, 9).double() if own else None, src=0, shape=(B, 9))
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


def _naive_gru(crypten, torch, xe, me, W_ih, W_hh, b_ih, b_hh, B, T, H):
    """torch's GRU equations on CrypTen autograd with CrypTen's sigmoid/tanh; masked freeze."""
    h = crypten.cryptensor(torch.zeros(B, H))
    for t in range(T):
        gi = xe[t].matmul(W_ih.t()) + b_ih
        gh = h.matmul(W_hh.t()) + b_hh
        r = (gi[:, :H] + gh[:, :H]).sigmoid()
        z = (gi[:, H : 2 * H] + gh[:, H : 2 * H]).sigmoid()
        n = (gi[:, 2 * H :] + r * gh[:, 2 * H :]).tanh()
        h = h + me[t] * ((1 - z) * n + z * h - h)
    return h


def naive_step(session, B, T, H, repeats):
    import crypten
    import torch
    from crypten import communicator as comm
    from crypten.config import cfg as ccfg

    ccfg.communicator.verbose = True
    x, lengths, y = _data(B, T, 12, 9)
    torch.manual_seed(0)
    ref = torch.nn.GRU(12, H, batch_first=True)
    fc = torch.nn.Linear(H, 9)
    enc = lambda v, rg=True: crypten.cryptensor(v.detach().float(), src=0, requires_grad=rg)  # noqa: E731
    W_ih, W_hh = enc(ref.weight_ih_l0), enc(ref.weight_hh_l0)
    b_ih, b_hh = enc(ref.bias_ih_l0), enc(ref.bias_hh_l0)
    W, b = enc(fc.weight), enc(fc.bias)
    xe = enc(x.transpose(0, 1), False)
    me = enc(((torch.arange(T)[None, :] < lengths[:, None]).float().T.unsqueeze(-1)), False)
    ye = enc(torch.nn.functional.one_hot(y, 9), False)
    times = []
    for i in range(repeats + 1):
        comm.get().reset_communication_stats()
        t0 = time.perf_counter()
        h = _naive_gru(crypten, torch, xe, me, W_ih, W_hh, b_ih, b_hh, B, T, H)
        loss = (h.matmul(W.t()) + b).cross_entropy(ye)
        loss.backward()
        if i:
            times.append(time.perf_counter() - t0)
    st = comm.get()
    total = {"times": times, "rounds": st.comm_rounds, "bytes": st.comm_bytes}
    comm.get().reset_communication_stats()
    _naive_gru(crypten, torch, xe, me, W_ih, W_hh, b_ih, b_hh, B, T, H).matmul(W.t())
    total["forward_rounds"] = comm.get().comm_rounds
    return total


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="T=8, 1 repeat (under a minute)")
    ap.add_argument("--T", type=int, default=29)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--parties", type=int, default=3)
    ap.add_argument(
        "--optimizers", action="store_true", help="only the Adam vs SGD cost of the W1 step"
    )
    args = ap.parse_args()
    if args.optimizers:
        return optimizer_table(args)
    T, rep = (8, 1) if args.quick else (args.T, args.repeats)
    B, H = 32, 32
    os.environ.setdefault("MPCRNN_LINK_IFNAME", "lo")
    from mpc_harness import run_parties

    rows = []
    for name, fn in (("mpcrnn", mpcrnn_step), ("naive CrypTen autograd", naive_step)):
        out = run_parties(
            fn, world_size=args.parties, provider="TTP", args=(B, T, H, rep), timeout_s=1800
        )[0]
        rows.append(
            (
                name,
                statistics.median(out["times"]),
                min(out["times"]),
                max(out["times"]),
                out["rounds"],
                out["bytes"],
                out.get("mine"),
                out["forward_rounds"],
            )
        )
    base = rows[1][1]
    print(
        f"\nGRU H={H}, batch {B}, T={T}, {args.parties} parties + TTP dealer, loopback, "
        f"torch threads=1; median of {rep}"
    )
    print(
        "| implementation | s/step (median) | min-max | rounds/step "
        "| rounds per time step: forward / backward+update | MB/step (party 0) "
        "| speed-up vs naive |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, med, lo, hi, rounds, nbytes, _, fwd in rows:
        print(
            f"| {name} | {med:.2f} | {lo:.2f}-{hi:.2f} | {rounds} "
            f"| {fwd / T:.1f} / {(rounds - fwd) / T:.1f} | {nbytes / 1e6:.1f} | {base / med:.1f}x |"
        )
    mine = rows[0][6]
    if mine:
        print(
            f"mpcrnn by kind (party 0's own counters): {mine['rounds']} "
            "(dealer entries = dealer round trips)"
        )


def optimizer_table(args) -> None:
    from mpc_harness import run_parties

    os.environ.setdefault("GLOO_SOCKET_IFNAME", "lo")
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
    print(
        f"\nW1 step (GRU H=32, batch 32, T={T}, {args.parties} parties + TTP dealer), "
        "SGD, Adam and Adam without the norm clip interleaved in one run; "
        f"median of {len(sgd['times'])} triples"
    )
    print("| optimizer | s/step | rounds/step | MB/step (party 0) |")
    print("|---|---:|---:|---:|")
    for name, r in (
        ("sgd (momentum), clip_norm 1", sgd),
        ("adam, clip_norm 1 (default)", adam),
        ("adam, clip_norm 0", adam0),
    ):
        print(
            f"| {name} | {med(r['times']):.3f} | {med(r['rounds']):.0f} "
            f"| {med(r['bytes']) / 1e6:.1f} |"
        )
    for name, a, b in (("adam / sgd", adam, sgd), ("norm clip: adam / adam0", adam, adam0)):
        ratios = [x / y for x, y in zip(a["times"], b["times"])]
        print(
            f"| {name} | {med(ratios):.3f} (per step: {', '.join(f'{r:.2f}' for r in ratios)}) "
            f"| {med(a['rounds']) / med(b['rounds']):.3f} "
            f"| {med(a['bytes']) / med(b['bytes']):.3f} |"
        )


if __name__ == "__main__":
    main()
