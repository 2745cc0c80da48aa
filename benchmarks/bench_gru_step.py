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


def mpcrnn_step(rank, B, T, H, repeats, cell="gru"):
    import torch
    from crypten import communicator as comm
    from crypten.config import cfg as ccfg

    from mpcrnn.backend import SharedBackend
    from mpcrnn.config import ActivationConfig, ModelConfig, TrainConfig
    from mpcrnn.model import init_params
    from mpcrnn.train import masks, sgd_step
    from mpcrnn.model import forward_backward
    from protocols.session import MpcSession
    from protocols.sharing import public, share

    ccfg.communicator.verbose = True
    s = MpcSession.current()
    mc = ModelConfig(cell=cell, hidden_size=H)
    x, lengths, y = _data(B, T, 12, 9)
    own = rank == 0
    xs = share(s, x if own else None, src=0, shape=(B, T, 12)).transpose(0, 1)
    ms = share(s, masks(lengths, T) if own else None, src=0, shape=(B, T, 1)).transpose(0, 1)
    ys = share(s, torch.nn.functional.one_hot(y, 9).double() if own else None, src=0, shape=(B, 9))
    params = {k: public(s, v) for k, v in init_params(mc, 0).items()}
    vel = {k: torch.zeros_like(v) for k, v in params.items()}
    Bk = SharedBackend(s, ActivationConfig())
    times, cpu = [], []
    for i in range(repeats + 2):  # step 0 records the triple plan, step 1 warms up
        comm.get().reset_communication_stats()
        s.stats.reset()
        t0, c0 = time.perf_counter(), time.process_time()
        Bk.begin_step((B, T), (B, T) if i < repeats + 1 else None)
        grads, _ = forward_backward(Bk, mc, params, xs, ms, ys)
        params, vel = sgd_step(Bk, params, grads, vel, TrainConfig(), B)
        Bk.end_step()
        if i > 1:
            times.append(time.perf_counter() - t0)
            cpu.append(time.process_time() - c0)  # this party's CPU seconds (less sensitive to a busy machine)
    st = comm.get()
    total = {"times": times, "cpu": cpu, "rounds": st.comm_rounds, "bytes": st.comm_bytes, "mine": s.stats.snapshot()}
    from mpcrnn.model import forward

    s.stats.reset()  # forward alone, outside a prefetched step: count openings + truncations only
    forward(Bk, mc, params, xs, ms)
    total["forward_rounds"] = s.stats.rounds["beaver"] + s.stats.rounds["truncate"]
    return total


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


def naive_step(rank, B, T, H, repeats):
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
    args = ap.parse_args()
    T, rep = (8, 1) if args.quick else (args.T, args.repeats)
    B, H = 32, 32
    os.environ.setdefault("MPCRNN_LINK_IFNAME", "lo")
    from mpc_harness import run_parties

    rows = []
    for name, fn in (("mpcrnn", mpcrnn_step), ("naive CrypTen autograd", naive_step)):
        out = run_parties(fn, world_size=args.parties, provider="TTP", args=(B, T, H, rep), timeout_s=1800)[0]
        rows.append((name, statistics.median(out["times"]), min(out["times"]), max(out["times"]), out["rounds"], out["bytes"], out.get("mine"), out["forward_rounds"]))
    base = rows[1][1]
    print(f"\nGRU H={H}, batch {B}, T={T}, {args.parties} parties + TTP dealer, loopback, torch threads=1; median of {rep}")
    print("| implementation | s/step (median) | min-max | rounds/step | rounds per time step: forward / backward+update | MB/step (party 0) | speed-up vs naive |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, med, lo, hi, rounds, nbytes, _, fwd in rows:
        print(f"| {name} | {med:.2f} | {lo:.2f}-{hi:.2f} | {rounds} | {fwd / T:.1f} / {(rounds - fwd) / T:.1f} | {nbytes / 1e6:.1f} | {base / med:.1f}x |")
    mine = rows[0][6]
    if mine:
        print(f"mpcrnn by kind (party 0's own counters): {mine['rounds']} (dealer entries = dealer round trips)")


if __name__ == "__main__":
    main()
